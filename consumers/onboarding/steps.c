/*
 * steps.c - a client's checklist, worked out from its workspace's facts,
 * its skips and its deadlines (see onb.h).
 *
 * Deadlines count from the client's creation in "days" of
 * OMNIFY_ONBOARDING_DAY_S seconds. "Who is blocking" is the party of the
 * next open step: the client (terms, provider connections), the agency
 * (workspace, team, dashboards, reports) or the system (a first sync).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docjson.h"
#include "onb.h"

typedef struct onb_step_def {
        const char *key; /* "connected" and "synced" take ":<provider>" */
        const char *title;
        const char *owner; /* the group whose events complete it */
        const char *party; /* who must act */
        int due_days;
        bool per_provider;
} onb_step_def_t;

static const onb_step_def_t onb_steps[] = {
        {"workspace_created", "Workspace created", "auth", "agency", 1, false},
        {"terms_accepted", "Terms accepted", "auth", "client", 2, false},
        {"team_invited", "Team invited", "auth", "agency", 3, false},
        {"connected", "Connect", "integrations", "client", 5, true},
        {"synced", "First sync of", "integrations", "system", 6, true},
        {"dashboard_viewed", "First dashboard viewed", "analytics", "agency", 7,
         false},
        {"report_scheduled", "First report scheduled", "analytics", "agency",
         10, false},
};

#define ONB_N_STEPS (sizeof(onb_steps) / sizeof(onb_steps[0]))

/* Each step of client, in order, to fn. */
static void onb__each(const json_t *client,
                      void (*fn)(void *arg, const onb_step_def_t *d,
                                 const char *key, const char *provider),
                      void *arg) {
        const json_t *providers = json_object_get(client, "providers");
        char key[96];
        for (size_t i = 0; i < ONB_N_STEPS; i++) {
                const onb_step_def_t *d = &onb_steps[i];
                size_t k;
                json_t *p;
                if (!d->per_provider) {
                        fn(arg, d, d->key, NULL);
                        continue;
                }
                json_array_foreach(providers, k, p) {
                        snprintf(key, sizeof(key), "%s:%s", d->key,
                                 json_string_value(p));
                        fn(arg, d, key, json_string_value(p));
                }
        }
}

typedef struct onb_known {
        const char *step;
        bool found;
} onb_known_t;

static void onb__known(void *arg, const onb_step_def_t *d, const char *key,
                       const char *provider) {
        onb_known_t *k = arg;
        (void)d;
        (void)provider;
        if (strcmp(k->step, key) == 0)
                k->found = true;
}

bool onb_step_known(const json_t *client, const char *step) {
        onb_known_t k = {step, false};
        onb__each(client, onb__known, &k);
        return k.found;
}

typedef struct onb_build {
        const json_t *client, *facts, *skipped;
        int64_t now, created;
        int day_s;
        json_t *steps, *next;
        int done, skipped_n, total, overdue;
} onb_build_t;

static void onb__step(void *arg, const onb_step_def_t *d, const char *key,
                      const char *provider) {
        onb_build_t *b = arg;
        const json_t *at = json_object_get(b->facts, key);
        const json_t *skip = json_object_get(b->skipped, key);
        int64_t due = b->created + (int64_t)d->due_days * b->day_s * 1000;
        char title[160];
        json_t *s;
        snprintf(title, sizeof(title), "%s%s%s", d->title, provider ? " " : "",
                 provider ? provider : "");
        s = json_pack("{s:s, s:s, s:s, s:s, s:I}", "key", key, "title", title,
                      "owner", d->owner, "party", d->party, "due_at",
                      (json_int_t)due);
        b->total++;
        if (at) {
                json_object_set_new(s, "status", json_string("done"));
                json_object_set(s, "done_at", (json_t *)at);
                b->done++;
        } else if (skip) {
                json_object_set_new(s, "status", json_string("skipped"));
                json_object_set(s, "skip", (json_t *)skip);
                b->skipped_n++;
        } else {
                bool late = b->now > due;
                json_object_set_new(s, "status", json_string("open"));
                json_object_set_new(s, "overdue", json_boolean(late));
                b->overdue += late;
                if (!b->next)
                        b->next = s;
        }
        json_array_append_new(b->steps, s);
}

void onb_checklist(json_t *client, const json_t *facts, int64_t now,
                   int day_s) {
        onb_build_t b = {
                .client = client,
                .facts = facts,
                .skipped = json_object_get(client, "skipped"),
                .now = now,
                .created = json_integer_value(
                        json_object_get(client, "created_at")),
                .day_s = day_s,
                .steps = json_array(),
        };
        json_t *progress, *blocking = json_null();
        onb__each(client, onb__step, &b);
        if (b.next) {
                const char *party =
                        json_string_value(json_object_get(b.next, "party"));
                const json_t *contacts = json_object_get(client, "contacts");
                blocking = json_pack("{s:s, s:O}", "party", party, "step",
                                     json_object_get(b.next, "key"));
                if (strcmp(party, "client") == 0 && json_array_size(contacts))
                        json_object_set(blocking, "contact",
                                        json_array_get(contacts, 0));
        }
        progress = json_pack(
                "{s:i, s:i, s:i, s:i, s:i, s:O, s:o, s:b}", "percent",
                b.total ? (b.done + b.skipped_n) * 100 / b.total : 100, "done",
                b.done, "skipped", b.skipped_n, "total", b.total, "overdue",
                b.overdue, "next",
                b.next ? json_object_get(b.next, "key") : json_null(),
                "blocking", blocking, "complete",
                b.done + b.skipped_n == b.total);
        json_object_set_new(client, "steps", b.steps);
        json_object_set_new(client, "progress", progress);
}

int64_t onb_next_due(const json_t *steps, int64_t after) {
        int64_t next = 0;
        size_t i;
        json_t *s;
        json_array_foreach(steps, i, s) {
                int64_t due = json_integer_value(json_object_get(s, "due_at"));
                const char *status =
                        json_string_value(json_object_get(s, "status"));
                if (status && strcmp(status, "open") == 0 && due > after &&
                    (!next || due < next))
                        next = due;
        }
        return next;
}

typedef struct onb_ids {
        const char *workspace;
        bson_t *arr;
        int n;
} onb_ids_t;

static void onb__id(void *arg, const onb_step_def_t *d, const char *key,
                    const char *provider) {
        onb_ids_t *ids = arg;
        char id[512], idx[16];
        (void)d;
        (void)provider;
        snprintf(id, sizeof(id), "%s|%s", ids->workspace, key);
        snprintf(idx, sizeof(idx), "%d", ids->n++);
        BSON_APPEND_UTF8(ids->arr, idx, id);
}

json_t *onb_facts(store_t *store, const projection_snapshot_t *snap,
                  const json_t *client, store_err_t *err) {
        bson_t filter = BSON_INITIALIZER, in, arr;
        onb_ids_t ids = {
                json_string_value(json_object_get(client, "workspace")), &arr,
                0};
        json_t *list, *out, *f;
        char coll[PROJECTION_COLL_MAX];
        size_t i;
        *err = onb_coll(store, snap, "facts",
                        slice_of(ids.workspace ? ids.workspace : ""), coll,
                        sizeof(coll));
        if (*err != STORE_OK)
                return NULL;
        /* By _id: the store answers from its one index. */
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        if (ids.workspace)
                onb__each(client, onb__id, &ids);
        bson_append_array_end(&in, &arr);
        bson_append_document_end(&filter, &in);
        list = docjson_find(store, ONB_DB, coll, &filter, NULL, NULL, err);
        bson_destroy(&filter);
        if (!list)
                return NULL;
        out = json_object();
        json_array_foreach(list, i, f) {
                const char *fact =
                        json_string_value(json_object_get(f, "fact"));
                /* A $min register: "<ms, 16 digits>" (facts.c). */
                const char *at = json_string_value(json_object_get(f, "at"));
                if (fact && at)
                        json_object_set_new(
                                out, fact, json_integer(strtoll(at, NULL, 10)));
        }
        json_decref(list);
        return out;
}
