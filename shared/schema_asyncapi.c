/*
 * schema_asyncapi.c - the AsyncAPI 3.0 document of the bus (see
 * schema_asyncapi in schema.h).
 *
 * Channels are the topics every group has (<group>.commands, .events, .dlq)
 * and edge.replies, at their prefixed address. Operations are written from
 * the groups' side: a group receives each of its commands on its commands
 * topic and replies on edge.replies (the reply-to header says which
 * partition), and sends each of its events on its events topic. Messages
 * carry msgpack maps whose shape is the JSON Schema of their fields; their
 * metadata travels in Kafka headers, described once per kind.
 */
#include "schema_internal.h"

#include <stdio.h>
#include <string.h>

#define ASYNC_MSGPACK "application/msgpack"

static json_t *async_ref(const char *a, const char *b, const char *c) {
        char ref[320];

        if (c)
                snprintf(ref, sizeof(ref), "#/%s/%s/messages/%s", a, b, c);
        else
                snprintf(ref, sizeof(ref), "#/%s/%s", a, b);
        return json_pack("{s:s}", "$ref", ref);
}

/* The Kafka headers of a command, a reply or an event. */
static json_t *async_headers(const char *kind) {
        json_t *props = json_pack(
                "{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}}",
                "id", "type", "string", "description",
                "Message id, a UUIDv7 (sortable).", "type", "type", "string",
                "description", "The message type.", "schema-version", "type",
                "string", "description", "The schema version, in decimal.",
                "created-at", "type", "string", "description",
                "Unix milliseconds.");
        json_t *h = json_pack("{s:s, s:o, s:[s,s,s,s]}", "type", "object",
                              "properties", props, "required", "id", "type",
                              "schema-version", "created-at");

        json_object_set_new(props, "correlation-id",
                            json_pack("{s:s, s:s}", "type", "string",
                                      "description",
                                      "The id of the request this belongs "
                                      "to."));
        json_object_set_new(props, "traceparent",
                            json_pack("{s:s, s:s}", "type", "string",
                                      "description", "W3C trace context."));
        json_object_set_new(props, "tenant",
                            json_pack("{s:s, s:s}", "type", "string",
                                      "description",
                                      "The organisation, set by the edge "
                                      "from the token."));
        if (strcmp(kind, "command") == 0) {
                static const char *const extra[][2] = {
                        {"reply-to", "<topic>:<partition> of the waiting "
                                     "edge; absent: no reply is wanted."},
                        {"user", "The caller, from the token."},
                        {"roles", "The caller's roles, from the token."},
                        {"idempotency-key", "The client's Idempotency-Key."},
                };
                for (size_t i = 0; i < SCHEMA__ARRAY_LEN(extra); i++)
                        json_object_set_new(props, extra[i][0],
                                            json_pack("{s:s, s:s}", "type",
                                                      "string", "description",
                                                      extra[i][1]));
        } else if (strcmp(kind, "reply") == 0) {
                json_object_set_new(props, "status",
                                    json_pack("{s:s, s:s}", "type", "string",
                                              "description",
                                              "HTTP-like status, decimal; "
                                              ">= 400 carries a problem."));
        }
        return h;
}

static json_t *async_message(const char *name, const char *summary,
                             const char *headers, json_t *payload,
                             const char *key_doc) {
        char ref[64];

        snprintf(ref, sizeof(ref), "#/components/schemas/%s", headers);
        return json_pack("{s:s, s:s, s:s, s:{s:s}, s:o, s:{s:s}, "
                         "s:{s:{s:{s:s, s:s}}}}",
                         "name", name, "summary", summary, "contentType",
                         ASYNC_MSGPACK, "headers", "$ref", ref, "payload",
                         payload, "correlationId", "location",
                         "$message.header#/correlation-id", "bindings", "kafka",
                         "key", "type", "string", "description", key_doc);
}

static json_t *async_channel(const char *prefix, const char *topic,
                             const char *doc) {
        char address[256];

        snprintf(address, sizeof(address), "%s%s", prefix, topic);
        return json_pack("{s:s, s:s, s:{}}", "address", address, "description",
                         doc, "messages");
}

static json_t *async_fields(const schema_field_t *fields, size_t n,
                            bool additional) {
        return schema__json_object(fields, n, additional, NULL);
}

/* One command: its message, its reply, and the group's operation. */
static void async_command(const schema_msg_t *msg, json_t *channels,
                          json_t *operations, json_t *messages) {
        char commands[SCHEMA_MAX_NAME + 16], reply[SCHEMA_MAX_TYPE + 8];
        char key_doc[160];
        json_t *reply_payload;

        snprintf(commands, sizeof(commands), "%s.commands", msg->group);
        snprintf(reply, sizeof(reply), "%s.reply", msg->type);
        snprintf(key_doc, sizeof(key_doc), "%s%s",
                 msg->route.key ? "The value of field " : "The tenant id",
                 msg->route.key ? msg->route.key : "");
        json_object_set_new(
                messages, msg->type,
                async_message(msg->type, msg->summary, "Command",
                              async_fields(msg->fields, msg->n_fields,
                                           msg->additional),
                              key_doc));
        reply_payload = msg->reply ? async_fields(msg->reply->fields,
                                                  msg->reply->n_fields,
                                                  msg->reply->additional)
                                   : json_pack("{s:s}", "type", "object");
        reply_payload = json_pack("{s:[o, {s:s}]}", "oneOf", reply_payload,
                                  "$ref", "#/components/schemas/Problem");
        json_object_set_new(messages, reply,
                            async_message(reply,
                                          "The answer: the result, or "
                                          "a problem (status >= 400)",
                                          "Reply", reply_payload,
                                          "The correlation id"));
        /* The channels' messages refer to the components. */
        json_object_set_new(json_object_get(json_object_get(channels, commands),
                                            "messages"),
                            msg->type,
                            json_pack("{s:s+}", "$ref",
                                      "#/components/messages/", msg->type));
        json_object_set_new(
                json_object_get(json_object_get(channels, "edge.replies"),
                                "messages"),
                reply,
                json_pack("{s:s+}", "$ref", "#/components/messages/", reply));
        json_object_set_new(
                operations, msg->type,
                json_pack("{s:s, s:s, s:o, s:[o], s:{s:o, s:[o]}}", "action",
                          "receive", "summary", msg->summary, "channel",
                          async_ref("channels", commands, NULL), "messages",
                          async_ref("channels", commands, msg->type), "reply",
                          "channel",
                          async_ref("channels", "edge.replies", NULL),
                          "messages",
                          async_ref("channels", "edge.replies", reply)));
}

static void async_event(const schema_event_t *ev, json_t *channels,
                        json_t *operations, json_t *messages) {
        char events[SCHEMA_MAX_NAME + 16], key_doc[160];

        snprintf(events, sizeof(events), "%s.events", ev->group);
        snprintf(key_doc, sizeof(key_doc), "%s%s",
                 ev->key ? "The value of field " : "The tenant id",
                 ev->key ? ev->key : "");
        json_object_set_new(messages, ev->type,
                            async_message(ev->type, ev->summary, "Event",
                                          async_fields(ev->fields, ev->n_fields,
                                                       ev->additional),
                                          key_doc));
        json_object_set_new(
                json_object_get(json_object_get(channels, events), "messages"),
                ev->type,
                json_pack("{s:s+}", "$ref", "#/components/messages/",
                          ev->type));
        json_object_set_new(operations, ev->type,
                            json_pack("{s:s, s:s, s:o, s:[o]}", "action",
                                      "send", "summary", ev->summary, "channel",
                                      async_ref("channels", events, NULL),
                                      "messages",
                                      async_ref("channels", events, ev->type)));
}

char *schema_asyncapi(const schema_set_t *set, const char *version,
                      const char *topic_prefix) {
        json_t *doc, *channels, *operations, *messages, *schemas;
        const char *prefix = topic_prefix ? topic_prefix : "";
        char *out = NULL;

        if (!set)
                return NULL;
        channels = json_object();
        operations = json_object();
        messages = json_object();
        for (size_t i = 0; i < set->n_groups; i++) {
                const char *g = set->groups[i];
                static const char *const kinds[][2] = {
                        {"commands", "Requests for the group, keyed by tenant "
                                     "or entity."},
                        {"events", "Facts the group published, kept for "
                                   "replay."},
                        {"dlq", "Messages the group failed for good, with "
                                "the error in headers."},
                };
                for (size_t k = 0; k < SCHEMA__ARRAY_LEN(kinds); k++) {
                        char topic[SCHEMA_MAX_NAME + 16];
                        snprintf(topic, sizeof(topic), "%s.%s", g, kinds[k][0]);
                        json_object_set_new(
                                channels, topic,
                                async_channel(prefix, topic, kinds[k][1]));
                }
        }
        json_object_set_new(channels, "edge.replies",
                            async_channel(prefix, "edge.replies",
                                          "Replies to edges; each edge "
                                          "replica reads its own partition."));
        for (size_t i = 0; i < set->n_msgs; i++)
                async_command(&set->msgs[i], channels, operations, messages);
        for (size_t i = 0; i < set->n_events; i++)
                async_event(&set->events[i], channels, operations, messages);

        schemas = json_pack(
                "{s:o, s:o, s:o}", "Command", async_headers("command"), "Reply",
                async_headers("reply"), "Event", async_headers("event"));
        json_object_set_new(
                schemas, "Problem",
                json_pack("{s:s, s:[s,s,s], s:{s:{s:s}, s:{s:s}, s:{s:s}, "
                          "s:{s:s}}}",
                          "type", "object", "required", "type", "title",
                          "status", "properties", "type", "type", "string",
                          "title", "type", "string", "status", "type",
                          "integer", "detail", "type", "string"));
        doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:o, s:o, s:{s:o, "
                        "s:o}}",
                        "asyncapi", "3.0.0", "info", "title", "Omnify bus",
                        "version", version ? version : "0.0.0", "description",
                        "Generated from schemas/: every topic, command (with "
                        "its reply) and event. Values are msgpack maps; "
                        "metadata is in Kafka headers.",
                        "defaultContentType", ASYNC_MSGPACK, "channels",
                        channels, "operations", operations, "components",
                        "messages", messages, "schemas", schemas);
        if (doc)
                out = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        return out;
}
