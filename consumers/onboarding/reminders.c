/*
 * reminders.c - a step open past its deadline: one reminder mail through
 * the outbox and one onboarding.reminder.sent event, ever (see onb.h).
 *
 * Each client has one armed durable timer (shared/timer.h), at the earliest
 * deadline of its open steps; its id names the deadline
 * ("<client>.remind.<due ms>"), so the create and a rerun of a firing arm
 * the same timer again. A firing comes back as onboarding.reminders.due with
 * a message id derived from the timer, so a refire after a crash is
 * answered by the operation log. What makes "never twice" hold whatever
 * runs twice is the reminders collection: the first command to insert a
 * step's record owns its reminder; any other command finds the record and
 * leaves the step alone, while a rerun of the owner (killed before its
 * operation record was written, so nothing it emitted went out) queues the
 * mail again (the outbox keeps the first: same outbox id) and emits the
 * event again.
 *
 * Who is mailed: the party that must act. The client's first contact for
 * the client's steps (terms, connections); the account manager given at
 * the client's creation for the agency's and the system's (invitations,
 * dashboards, reports, a first sync). Without an address the event still
 * says the step is overdue (recipient "none"). Events never carry
 * addresses.
 *
 * The outbox (runtime_mailbox_new, from init): <prefix>onboarding.mail_outbox,
 * indexes reminder_mail_due and reminder_mail_expiry; the mail settings are
 * the shared ones (shared/mail.h); an empty OMNIFY_MAIL_API_KEY holds the
 * mails.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "docjson.h"
#include "log.h"
#include "onb.h"

#define ONB_REMIND_TYPE "onboarding.reminders.due"

/* ---------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

handler_result_t onb_remind_arm(rt_ctx_t *ctx, const char *client_id,
                                const json_t *steps, int64_t after) {
        int64_t due = onb_next_due(steps, after);
        char id[TIMER_ID_MAX + 1], errstr[256];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        timer_spec_t spec = {0};
        timer_err_t err;

        if (!due)
                return HANDLER_OK; /* every step is done or skipped */
        snprintf(id, sizeof(id), "%s.remind.%" PRId64, client_id, due);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        codec_pack_str(&pk, "client_id");
        codec_pack_str(&pk, client_id);
        codec_pack_str(&pk, "due_at");
        msgpack_pack_int64(&pk, due);
        spec.id = id;
        spec.fire_at_ms = due;
        spec.type = ONB_REMIND_TYPE;
        spec.key = slice_of(client_id);
        spec.body = (slice_t){sb.data, sb.size};
        spec.caller = cmdsend_caller(rt_env(ctx));
        err = timer_set(rt_timers(ctx), &spec, errstr, sizeof(errstr));
        msgpack_sbuffer_destroy(&sb);
        switch (err) {
        case TIMER_OK:
        case TIMER_FIRED:  /* set by an earlier run, and gone off */
        case TIMER_FIRING: /* the same timer, about to go off */
                return HANDLER_OK;
        case TIMER_STORE_DOWN:
                return HANDLER_TRANSIENT;
        default:
                log_error("reminder timer %s: %s", id, errstr);
                return HANDLER_PERMANENT;
        }
}

/* ---------------------------------------------------------------------------
 * One step's reminder
 * ------------------------------------------------------------------------ */

typedef enum onb_claim {
        ONB_CLAIM_MINE,  /* this command owns the step's reminder */
        ONB_CLAIM_TAKEN, /* another command reminded of it already */
        ONB_CLAIM_FAILED,
} onb_claim_t;

/* Insert the step's reminder record, or find who owns it. */
static onb_claim_t onb__claim(rt_ctx_t *ctx, const char *client_id,
                              const char *step, int64_t due, store_err_t *err) {
        const env_t *env = rt_env(ctx);
        char id[256], errstr[256];
        bson_t doc = BSON_INITIALIZER, filter = BSON_INITIALIZER, found;
        onb_claim_t claim = ONB_CLAIM_FAILED;

        snprintf(id, sizeof(id), "%s|%s", client_id, step);
        BSON_APPEND_UTF8(&doc, "_id", id);
        bson_append_utf8(&doc, "tenant", 6, env->tenant.ptr,
                         (int)env->tenant.len);
        BSON_APPEND_UTF8(&doc, "client_id", client_id);
        BSON_APPEND_UTF8(&doc, "step", step);
        BSON_APPEND_INT64(&doc, "due_at", due);
        bson_append_utf8(&doc, "command_id", 10, env->id.ptr, (int)env->id.len);
        BSON_APPEND_INT64(&doc, "at", (int64_t)clock_wall_ms());
        *err = store_insert(rt_store(ctx), ONB_DB, "reminders", &doc, errstr,
                            sizeof(errstr));
        bson_destroy(&doc);
        if (*err == STORE_OK)
                return ONB_CLAIM_MINE;
        if (*err != STORE_DUPLICATE)
                return ONB_CLAIM_FAILED;
        BSON_APPEND_UTF8(&filter, "_id", id);
        *err = store_find_one(rt_store(ctx), ONB_DB, "reminders", &filter, NULL,
                              &found, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (*err == STORE_OK) {
                bson_iter_t it;
                uint32_t len = 0;
                const char *owner =
                        bson_iter_init_find(&it, &found, "command_id") &&
                                        BSON_ITER_HOLDS_UTF8(&it)
                                ? bson_iter_utf8(&it, &len)
                                : "";
                claim = len == env->id.len &&
                                        memcmp(owner, env->id.ptr, len) == 0
                                ? ONB_CLAIM_MINE
                                : ONB_CLAIM_TAKEN;
                bson_destroy(&found);
        }
        return claim;
}

/* Who is mailed for a step of party: the address into *to (NULL: nobody)
 * and the recipient's kind. */
static const char *onb__recipient(const json_t *client, const char *party,
                                  const char **to, const char **name) {
        const json_t *who;
        if (strcmp(party, "client") == 0) {
                who = json_array_get(json_object_get(client, "contacts"), 0);
                *to = json_string_value(json_object_get(who, "email"));
                *name = json_string_value(json_object_get(who, "name"));
                return *to ? "contact" : "none";
        }
        who = json_object_get(client, "account_manager");
        *to = json_string_value(json_object_get(who, "email"));
        *name = json_string_value(json_object_get(who, "name"));
        return *to ? "account_manager" : "none";
}

static const char *onb__waits_for(const char *party) {
        if (strcmp(party, "client") == 0)
                return "It waits for you: please complete it, or tell your "
                       "agency what is in the way.";
        if (strcmp(party, "system") == 0)
                return "It waits for the first data sync of the connection: "
                       "check that the connection works.";
        return "It waits for the agency.";
}

/* Queue the step's reminder mail (outbox id "<client>.<step>.remind": one
 * per step whatever runs twice). */
static handler_result_t onb__mail(rt_ctx_t *ctx, const json_t *client,
                                  const json_t *step, const char *to,
                                  const char *name) {
        onb_state_t *st = rt_state(ctx);
        const char *cname = json_string_value(json_object_get(client, "name"));
        const char *title = json_string_value(json_object_get(step, "title"));
        const char *key = json_string_value(json_object_get(step, "key"));
        const char *party = json_string_value(json_object_get(step, "party"));
        time_t due =
                (time_t)(json_integer_value(json_object_get(step, "due_at")) /
                         1000);
        char id[OUTBOX_ID_MAX + 1], subject[512], text[2048], when[32],
                errstr[256];
        struct tm tm;
        mail_message_t msg;

        gmtime_r(&due, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
        snprintf(id, sizeof(id), "%s.%s.remind",
                 json_string_value(json_object_get(client, "id")), key);
        snprintf(subject, sizeof(subject), "Onboarding of %s: %s is overdue",
                 cname, title);
        snprintf(text, sizeof(text),
                 "Hello%s%s,\n\nThe onboarding step \"%s\" of %s was due on "
                 "%s and is still open.\n%s\n\n(step %s)\n",
                 name ? " " : "", name ? name : "", title, cname, when,
                 onb__waits_for(party), key);
        msg = (mail_message_t){to, subject, text};
        switch (mail_enqueue(st->mailer->mail, st->mailer->outbox, id, &msg,
                             NULL, errstr, sizeof(errstr))) {
        case OUTBOX_OK:
        case OUTBOX_EXISTS:
                return HANDLER_OK;
        case OUTBOX_STORE_DOWN:
                return HANDLER_TRANSIENT;
        default:
                log_error("reminder mail %s: %s", id, errstr);
                return HANDLER_PERMANENT;
        }
}

/* Remind of one overdue step, unless another command did. *sent: 1 when
 * this command reminded of it. */
static handler_result_t onb__remind(rt_ctx_t *ctx, const json_t *client,
                                    const json_t *step, int *sent) {
        const char *cid = json_string_value(json_object_get(client, "id"));
        const char *key = json_string_value(json_object_get(step, "key"));
        const char *party = json_string_value(json_object_get(step, "party"));
        json_int_t due = json_integer_value(json_object_get(step, "due_at"));
        const char *to = NULL, *name = NULL, *recipient;
        store_err_t err;
        handler_result_t r;

        *sent = 0;
        switch (onb__claim(ctx, cid, key, due, &err)) {
        case ONB_CLAIM_TAKEN:
                return HANDLER_OK;
        case ONB_CLAIM_FAILED:
                return store_err_transient(err) ? HANDLER_TRANSIENT
                                                : HANDLER_PERMANENT;
        case ONB_CLAIM_MINE:
                break;
        }
        recipient = onb__recipient(client, party, &to, &name);
        if (to && (r = onb__mail(ctx, client, step, to, name)) != HANDLER_OK)
                return r;
        if (onb_emit(ctx, "onboarding.reminder.sent", cid,
                     json_pack("{s:s, s:s, s:s, s:I, s:s}", "client_id", cid,
                               "step", key, "party", party, "due_at", due,
                               "recipient", recipient)) != 0)
                return HANDLER_PERMANENT;
        *sent = 1;
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * The firing
 * ------------------------------------------------------------------------ */

handler_result_t onb_reminders_due(rt_ctx_t *ctx, const msgpack_object *body) {
        onb_state_t *st = rt_state(ctx);
        const msgpack_object *at = codec_map_get(body, "due_at");
        int64_t due = at ? at->via.i64 : 0, now = (int64_t)clock_wall_ms();
        store_err_t err;
        json_t *client, *facts, *steps, *s, *out;
        handler_result_t r = HANDLER_OK;
        char cid[128];
        int reminded = 0;
        size_t i;

        client = onb_client_find(ctx, codec_map_str(body, "client_id"), &err);
        if (!client)
                return err ? onb_store_failed(ctx, err) : HANDLER_OK;
        if (!(facts = onb_facts(rt_store(ctx), NULL, client, &err))) {
                json_decref(client);
                return onb_store_failed(ctx, err);
        }
        /* The timer went off: its deadline has come, whatever this
         * process's clock says. */
        if (now < due)
                now = due;
        onb_checklist(client, facts, now, st->set->day_s);
        json_decref(facts);
        snprintf(cid, sizeof(cid), "%s",
                 json_string_value(json_object_get(client, "_id")));
        json_object_set_new(client, "id", json_string(cid));
        steps = json_object_get(client, "steps");
        json_array_foreach(steps, i, s) {
                int sent;
                /* Due now counts: this firing is the step's deadline. */
                if (!slice_eq(slice_of(json_string_value(
                                      json_object_get(s, "status"))),
                              "open") ||
                    json_integer_value(json_object_get(s, "due_at")) > now)
                        continue;
                if ((r = onb__remind(ctx, client, s, &sent)) != HANDLER_OK)
                        break;
                reminded += sent;
        }
        if (r == HANDLER_OK)
                r = onb_remind_arm(ctx, cid, steps, now);
        if (r != HANDLER_OK) {
                json_decref(client);
                return r;
        }
        out = json_pack("{s:i}", "reminded", reminded);
        if (onb_next_due(steps, now))
                json_object_set_new(out, "next_due_at",
                                    json_integer(onb_next_due(steps, now)));
        if (reminded)
                log_info("client %s: %d reminder(s) sent", cid, reminded);
        json_decref(client);
        return docjson_reply(ctx, 200, out);
}
