/*
 * store_claims.c - bench-store's patterns with more than one writer or a
 * clock in them: claims with a lease (durable timers, outboxes),
 * compare-and-set, unique indexes and TTL expiry. See store.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_bench.h"

#define SB_CLAIMERS 8
#define SB_LEASE_MS 60000

static int64_t sb__ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- claims */

typedef struct sb_claimer {
        sb_run_t *run;
        const char *coll;
        int id;
        double t0;
        int *claims;       /* per document n: how often claimed (atomic) */
        int total;         /* size of claims[] */
        long max;          /* stop after this many claims; 0: no limit */
        long done;         /* claims made by this claimer */
        long attempts_sum; /* of the claimed documents, as returned */
        sb_lat_t lat;
        char err[200];
} sb_claimer_t;

/* One claim: the oldest due pending timer, or one whose lease expired. */
static int sb__claim_one(mongoc_collection_t *coll, int owner, int64_t now,
                         int *n_out, int *attempts_out, bson_error_t *err) {
        bson_t *query =
                BCON_NEW("$or", "[", "{", "status", BCON_UTF8("pending"),
                         "due_at", "{", "$lte", BCON_DATE_TIME(now), "}", "}",
                         "{", "status", BCON_UTF8("claimed"), "lease_until",
                         "{", "$lt", BCON_DATE_TIME(now), "}", "}", "]");
        bson_t *update = BCON_NEW("$set", "{", "status", BCON_UTF8("claimed"),
                                  "owner", BCON_INT32(owner), "lease_until",
                                  BCON_DATE_TIME(now + SB_LEASE_MS), "}",
                                  "$inc", "{", "attempts", BCON_INT32(1), "}");
        bson_t *sort = BCON_NEW("due_at", BCON_INT32(1));
        mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
        mongoc_find_and_modify_opts_set_sort(opts, sort);
        mongoc_find_and_modify_opts_set_update(opts, update);
        mongoc_find_and_modify_opts_set_flags(
                opts, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
        bson_t reply;
        int rc = -1;
        if (mongoc_collection_find_and_modify_with_opts(coll, query, opts,
                                                        &reply, err)) {
                bson_iter_t it, v;
                rc = 0;
                if (bson_iter_init_find(&it, &reply, "value") &&
                    BSON_ITER_HOLDS_DOCUMENT(&it) &&
                    bson_iter_recurse(&it, &v)) {
                        rc = 1;
                        *n_out = -1;
                        *attempts_out = 0;
                        while (bson_iter_next(&v)) {
                                if (strcmp(bson_iter_key(&v), "n") == 0) {
                                        *n_out = (int)bson_iter_as_int64(&v);
                                } else if (strcmp(bson_iter_key(&v),
                                                  "attempts") == 0) {
                                        *attempts_out =
                                                (int)bson_iter_as_int64(&v);
                                }
                        }
                }
        }
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(opts);
        bson_destroy(sort);
        bson_destroy(update);
        bson_destroy(query);
        return rc;
}

static void *sb__claimer(void *arg) {
        sb_claimer_t *c = arg;
        mongoc_client_t *client = mongoc_client_pool_pop(c->run->pool);
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, c->run->db, c->coll);
        for (;;) {
                if (sb_now() - c->t0 > c->run->budget_s) {
                        snprintf(c->err, sizeof(c->err), "budget");
                        break;
                }
                bson_error_t err;
                int n = -1, attempts = 0;
                double t = sb_now();
                int rc = sb__claim_one(coll, c->id, sb__ms(), &n, &attempts,
                                       &err);
                if (rc < 0) {
                        snprintf(c->err, sizeof(c->err),
                                 "findAndModify: %.150s", err.message);
                        break;
                }
                if (rc == 0) {
                        break; /* nothing due */
                }
                if (c->max && c->done + 1 >= c->max) {
                        c->max = -1; /* this claim is the last */
                }
                sb_lat_add(&c->lat, (sb_now() - t) * 1e3);
                if (n >= 0 && n < c->total) {
                        __atomic_fetch_add(&c->claims[n], 1, __ATOMIC_RELAXED);
                }
                c->done++;
                c->attempts_sum += attempts;
                if (c->max < 0) {
                        break;
                }
        }
        mongoc_collection_destroy(coll);
        mongoc_client_pool_push(c->run->pool, client);
        return NULL;
}

/* Runs `claimers` threads until nothing is due; their results summed. */
static long sb__claim_all(sb_run_t *run, const char *coll, int claimers,
                          long max, int *claims, int total, sb_lat_t *lat,
                          char *err, size_t errlen, long *attempts_sum) {
        sb_claimer_t c[SB_CLAIMERS];
        pthread_t th[SB_CLAIMERS];
        double t0 = sb_now();
        long done = 0;
        *attempts_sum = 0;
        memset(c, 0, sizeof(c));
        for (int i = 0; i < claimers; i++) {
                c[i] = (sb_claimer_t){.run = run,
                                      .coll = coll,
                                      .id = i,
                                      .t0 = t0,
                                      .claims = claims,
                                      .total = total,
                                      .max = max};
                pthread_create(&th[i], NULL, sb__claimer, &c[i]);
        }
        for (int i = 0; i < claimers; i++) {
                pthread_join(th[i], NULL);
                done += c[i].done;
                *attempts_sum += c[i].attempts_sum;
                for (size_t k = 0; k < c[i].lat.n; k++) {
                        sb_lat_add(lat, c[i].lat.ms[k]);
                }
                if (c[i].err[0] && !err[0]) {
                        snprintf(err, errlen, "%s", c[i].err);
                }
                sb_lat_free(&c[i].lat);
        }
        return done;
}

static void sb__claims(sb_run_t *run, mongoc_client_t *client,
                       const char *pattern, const char *name, int total,
                       int due) {
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, name);
        int *claims = calloc((size_t)total, sizeof(int));
        bson_t **docs = calloc((size_t)total, sizeof(*docs));
        char why[1024] = "", err[200] = "";
        sb_lat_t lat = {0};
        if (!claims || !docs) {
                abort();
        }
        int64_t now = sb__ms();
        /* n < due: due now; then half done (history), half due in an hour
         * or later (future timers). */
        for (int n = 0; n < total; n++) {
                const char *status = n < due || n % 2 ? "pending" : "done";
                int64_t due_at = n < due ? now - 60000 + n
                                 : n % 2 ? now + 3600000 + n
                                         : now - 86400000 + n;
                docs[n] = BCON_NEW("n", BCON_INT32(n), "status",
                                   BCON_UTF8(status), "due_at",
                                   BCON_DATE_TIME(due_at), "attempts",
                                   BCON_INT32(0), "payload",
                                   BCON_UTF8("{\"to\":\"x@example.com\"}"));
        }
        bson_t *ordered = BCON_NEW("ordered", BCON_BOOL(false));
        bson_t *keys =
                BCON_NEW("status", BCON_INT32(1), "due_at", BCON_INT32(1));
        bson_t *lkeys =
                BCON_NEW("status", BCON_INT32(1), "lease_until", BCON_INT32(1));
        bson_error_t berr;
        bool ok = sb_index(client, run, name, "status_due", keys, false, -1,
                           why, sizeof(why)) &&
                  sb_index(client, run, name, "status_lease", lkeys, false, -1,
                           why, sizeof(why));
        for (int i = 0; ok && i < total; i += 1000) {
                int k = total - i < 1000 ? total - i : 1000;
                ok = mongoc_collection_insert_many(
                        coll, (const bson_t **)(docs + i), (size_t)k, ordered,
                        NULL, &berr);
                if (!ok) {
                        snprintf(why, sizeof(why), "insert_many: %.150s",
                                 berr.message);
                }
        }
        if (!ok) {
                sb_row(run, pattern, 0, "claims/s", 0, NULL, false, why);
                goto out;
        }

        long attempts = 0;
        double t0 = sb_now();
        long done = sb__claim_all(run, name, SB_CLAIMERS, 0, claims, total,
                                  &lat, err, sizeof(err), &attempts);
        double secs = sb_now() - t0;
        int doubles = 0, wrong = 0;
        for (int n = 0; n < total; n++) {
                doubles += claims[n] > 1;
                wrong += n >= due && claims[n] > 0;
        }
        bool budget = strcmp(err, "budget") == 0;
        bool claimed_all = done == due && !err[0];

        /* Leases of the ten oldest timers run out (their worker died): the
         * next ten claims take exactly those, with attempts 2. */
        long again = 0, again_attempts = 0;
        char err2[200] = "";
        if ((claimed_all || budget) && done >= 10) {
                bson_t *sel = BCON_NEW("n", "{", "$lt", BCON_INT32(10), "}");
                bson_t *upd = BCON_NEW("$set", "{", "lease_until",
                                       BCON_DATE_TIME(sb__ms() - 1000), "}");
                memset(claims, 0, (size_t)total * sizeof(int));
                sb_lat_t lat2 = {0};
                if (mongoc_collection_update_many(coll, sel, upd, NULL, NULL,
                                                  &berr)) {
                        again = sb__claim_all(run, name, 1, 10, claims, total,
                                              &lat2, err2, sizeof(err2),
                                              &again_attempts);
                } else {
                        snprintf(err2, sizeof(err2), "updateMany: %.150s",
                                 berr.message);
                }
                for (int n = 0; n < total; n++) {
                        wrong += (n < 10) != (claims[n] == 1);
                }
                sb_lat_free(&lat2);
                bson_destroy(sel);
                bson_destroy(upd);
        }
        /* Under the budget with fewer than ten claims the lease check
         * cannot run: what was claimed is still checked. */
        bool lease_checked = (claimed_all || budget) && done >= 10;
        ok = (claimed_all || budget) && doubles == 0 && wrong == 0 &&
             attempts == done &&
             (!lease_checked ||
              (again == 10 && again_attempts == 20 && !err2[0]));
        snprintf(why, sizeof(why),
                 "%d claimers, %d due of %d docs (index {status, due_at}); "
                 "%ld claimed%s, %d twice, %d wrong; %s10 expired leases: %ld "
                 "claimed again (attempts sum %ld, want 20)%s%s%s%s",
                 SB_CLAIMERS, due, total, done, budget ? " (budget)" : "",
                 doubles, wrong, lease_checked ? "" : "NOT CHECKED: ", again,
                 again_attempts, err[0] && !budget ? "; " : "",
                 budget ? "" : err, err2[0] ? "; " : "", err2);
        sb_row(run, pattern, done, "claims/s", (double)done / secs, &lat, ok,
               why);
out:
        for (int n = 0; n < total; n++) {
                bson_destroy(docs[n]);
        }
        bson_destroy(ordered);
        bson_destroy(keys);
        bson_destroy(lkeys);
        free(docs);
        free(claims);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
}

void sb_claims(sb_run_t *run, mongoc_client_t *client) {
        int due = run->quick ? 500 : 2000;
        sb__claims(run, client, "claims_small", "timers_small",
                   run->quick ? 5000 : 10000, due);
        sb__claims(run, client, "claims_large", "timers_large",
                   run->quick ? 20000 : 100000, due);
}

/* ---------------------------------------------------------------- cas */

#define SB_CAS_DOCS 20

typedef struct sb_casser {
        sb_run_t *run;
        int id, want;
        double t0;
        long ok, conflicts;
        sb_lat_t lat;
        char err[200];
} sb_casser_t;

static void *sb__casser(void *arg) {
        sb_casser_t *c = arg;
        mongoc_client_t *client = mongoc_client_pool_pop(c->run->pool);
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, c->run->db, "cas");
        unsigned seed = (unsigned)c->id * 7919u + 1;
        while (c->ok < c->want) {
                if (sb_now() - c->t0 > c->run->budget_s) {
                        snprintf(c->err, sizeof(c->err), "budget");
                        break;
                }
                int32_t doc_id = (int32_t)(rand_r(&seed) % SB_CAS_DOCS);
                bson_t *filter = BCON_NEW("_id", BCON_INT32(doc_id));
                bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
                bson_error_t err;
                const bson_t *doc;
                int64_t version = -1;
                double t = sb_now();
                mongoc_cursor_t *cur = mongoc_collection_find_with_opts(
                        coll, filter, opts, NULL);
                if (mongoc_cursor_next(cur, &doc)) {
                        bson_iter_t it;
                        if (bson_iter_init_find(&it, doc, "version")) {
                                version = bson_iter_as_int64(&it);
                        }
                }
                bool failed = mongoc_cursor_error(cur, &err);
                mongoc_cursor_destroy(cur);
                bson_destroy(opts);
                bson_destroy(filter);
                if (failed || version < 0) {
                        snprintf(c->err, sizeof(c->err), "read: %.150s",
                                 failed ? err.message : "no version");
                        break;
                }
                bson_t *sel = BCON_NEW("_id", BCON_INT32(doc_id), "version",
                                       BCON_INT64(version));
                bson_t *upd = BCON_NEW("$set", "{", "version",
                                       BCON_INT64(version + 1), "}", "$inc",
                                       "{", "value", BCON_INT64(1), "}");
                bson_t reply;
                bool ok = mongoc_collection_update_one(coll, sel, upd, NULL,
                                                       &reply, &err);
                bson_iter_t it;
                int64_t matched =
                        ok && bson_iter_init_find(&it, &reply, "matchedCount")
                                ? bson_iter_as_int64(&it)
                                : -1;
                bson_destroy(&reply);
                bson_destroy(sel);
                bson_destroy(upd);
                if (!ok) {
                        snprintf(c->err, sizeof(c->err), "update: %.150s",
                                 err.message);
                        break;
                }
                if (matched == 1) {
                        c->ok++;
                        sb_lat_add(&c->lat, (sb_now() - t) * 1e3);
                } else {
                        c->conflicts++;
                }
        }
        mongoc_collection_destroy(coll);
        mongoc_client_pool_push(c->run->pool, client);
        return NULL;
}

void sb_cas(sb_run_t *run, mongoc_client_t *client) {
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "cas");
        sb_casser_t c[SB_CLAIMERS];
        pthread_t th[SB_CLAIMERS];
        sb_lat_t lat = {0};
        char why[1024] = "", err[200] = "";
        bson_error_t berr;
        for (int i = 0; i < SB_CAS_DOCS; i++) {
                bson_t *doc = BCON_NEW("_id", BCON_INT32(i), "version",
                                       BCON_INT64(0), "value", BCON_INT64(0));
                if (!mongoc_collection_insert_one(coll, doc, NULL, NULL,
                                                  &berr)) {
                        snprintf(err, sizeof(err), "insert: %.150s",
                                 berr.message);
                }
                bson_destroy(doc);
        }
        int want = run->quick ? 100 : 250;
        long total = 0, conflicts = 0;
        double t0 = sb_now();
        memset(c, 0, sizeof(c));
        for (int i = 0; i < SB_CLAIMERS && !err[0]; i++) {
                c[i] = (sb_casser_t){
                        .run = run, .id = i, .want = want, .t0 = t0};
                pthread_create(&th[i], NULL, sb__casser, &c[i]);
        }
        for (int i = 0; i < SB_CLAIMERS && !err[0]; i++) {
                pthread_join(th[i], NULL);
                total += c[i].ok;
                conflicts += c[i].conflicts;
                for (size_t k = 0; k < c[i].lat.n; k++) {
                        sb_lat_add(&lat, c[i].lat.ms[k]);
                }
                sb_lat_free(&c[i].lat);
                if (c[i].err[0] && !err[0]) {
                        snprintf(err, sizeof(err), "%s", c[i].err);
                }
        }
        double secs = sb_now() - t0;
        /* Every successful CAS raised one version and one value. */
        bson_t filter = BSON_INITIALIZER;
        mongoc_cursor_t *cur =
                mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
        const bson_t *doc;
        int64_t versions = 0, values = 0;
        while (mongoc_cursor_next(cur, &doc)) {
                bson_iter_t it;
                if (bson_iter_init_find(&it, doc, "version")) {
                        versions += bson_iter_as_int64(&it);
                }
                if (bson_iter_init_find(&it, doc, "value")) {
                        values += bson_iter_as_int64(&it);
                }
        }
        mongoc_cursor_destroy(cur);
        bool budget = strcmp(err, "budget") == 0;
        bool ok = (!err[0] || budget) && versions == total && values == total;
        snprintf(why, sizeof(why),
                 "%d threads, %d docs, read + update where version matches; "
                 "%ld applied%s, %ld conflicts; versions sum %lld, values sum "
                 "%lld (want %ld)%s%s",
                 SB_CLAIMERS, SB_CAS_DOCS, total, budget ? " (budget)" : "",
                 conflicts, (long long)versions, (long long)values, total,
                 err[0] && !budget ? ": " : "", budget ? "" : err);
        sb_row(run, "cas", total, "updates/s", (double)total / secs, &lat, ok,
               why);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
}

/* ---------------------------------------------------------------- unique */

static bool sb__dup_error(const bson_error_t *err, const bson_t *reply) {
        if (err->code == 11000) {
                return true;
        }
        /* insert_many reports the first write error's code in the reply. */
        bson_iter_t it, arr, e, code;
        if (reply && bson_iter_init_find(&it, reply, "writeErrors") &&
            bson_iter_recurse(&it, &arr)) {
                while (bson_iter_next(&arr)) {
                        if (bson_iter_recurse(&arr, &e) &&
                            bson_iter_find_descendant(&e, "code", &code) &&
                            bson_iter_as_int64(&code) == 11000) {
                                return true;
                        }
                }
        }
        return false;
}

void sb_unique(sb_run_t *run, mongoc_client_t *client) {
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "users");
        mongoc_collection_t *raw =
                mongoc_client_get_collection(client, run->db, "users_raw");
        bson_t reply;
        bson_t *keys = BCON_NEW("email", BCON_INT32(1));
        bson_error_t err;
        char why[1024] = "", ignored[200];
        bool index_ok = sb_index(client, run, "users", "email_unique", keys,
                                 true, -1, why, sizeof(why));

        bson_t *a = BCON_NEW("email", BCON_UTF8("a@example.com"));
        bool first = mongoc_collection_insert_one(coll, a, NULL, NULL, &err);
        bson_t *a2 = BCON_NEW("email", BCON_UTF8("a@example.com"));
        bool second =
                mongoc_collection_insert_one(coll, a2, NULL, &reply, &err);
        bool second_dup = !second && sb__dup_error(&err, &reply);
        bson_destroy(&reply);

        /* Unordered batch of 10 with one duplicate of a stored document and
         * one inside the batch: the other 8 go in. */
        bson_t *docs[10];
        for (int i = 0; i < 10; i++) {
                char email[32];
                snprintf(email, sizeof(email), "u%d@example.com",
                         i == 9 ? 3 : i);
                docs[i] = BCON_NEW("email",
                                   BCON_UTF8(i == 0 ? "a@example.com" : email));
        }
        bson_t *unordered = BCON_NEW("ordered", BCON_BOOL(false));
        bool batch = mongoc_collection_insert_many(coll, (const bson_t **)docs,
                                                   10, unordered, &reply, &err);
        bool batch_dup = !batch && sb__dup_error(&err, &reply);
        bson_destroy(&reply);
        int64_t count = sb_count(coll, NULL);

        /* A unique index over data that already breaks it is refused. */
        bson_t *d1 = BCON_NEW("email", BCON_UTF8("b@example.com"));
        bson_t *d2 = BCON_NEW("email", BCON_UTF8("b@example.com"));
        mongoc_collection_insert_one(raw, d1, NULL, NULL, &err);
        mongoc_collection_insert_one(raw, d2, NULL, NULL, &err);
        bool late_index = sb_index(client, run, "users_raw", "email_unique",
                                   keys, true, -1, ignored, sizeof(ignored));

        bool ok = index_ok && first && second_dup && batch_dup && count == 9 &&
                  !late_index;
        snprintf(why, sizeof(why),
                 "index %s; duplicate insert %s; unordered batch of 10 with "
                 "2 duplicates %s, %lld stored (want 9); unique index over "
                 "duplicates %s",
                 index_ok ? "made" : "failed",
                 second_dup ? "refused (11000)"
                 : second   ? "ACCEPTED"
                            : "failed otherwise",
                 batch_dup ? "refused (11000)"
                 : batch   ? "ACCEPTED"
                           : "failed",
                 (long long)count, late_index ? "ACCEPTED" : "refused");
        sb_row(run, "unique", 0, "-", 0, NULL, ok, why);
        for (int i = 0; i < 10; i++) {
                bson_destroy(docs[i]);
        }
        bson_destroy(unordered);
        bson_destroy(a);
        bson_destroy(a2);
        bson_destroy(d1);
        bson_destroy(d2);
        bson_destroy(keys);
        mongoc_collection_destroy(raw);
        mongoc_collection_destroy(coll);
}

/* ---------------------------------------------------------------- ttl */

/* Two TTL indexes as the code makes them (store_ensure_index): expiry at
 * the document's own date (expireAfterSeconds 0) and N seconds after a
 * creation date. A thread polls from the start of the run until both sets
 * are gone or the deadline passes, so the wait overlaps the other patterns. */
static struct sb_ttl {
        sb_run_t *run;
        pthread_t th;
        bool started;
        double t_expire; /* when the "soon" documents' dates pass */
        double deadline;
        double gone_at[2]; /* when each set was seen empty; 0: never */
        char err[200];
} sb_ttl;

static void *sb__ttl_poll(void *arg) {
        (void)arg;
        mongoc_client_t *client = mongoc_client_pool_pop(sb_ttl.run->pool);
        mongoc_collection_t *c[2] = {
                mongoc_client_get_collection(client, sb_ttl.run->db, "ttl"),
                mongoc_client_get_collection(client, sb_ttl.run->db,
                                             "ttl_after"),
        };
        bson_t *f[2] = {BCON_NEW("kind", BCON_UTF8("soon")),
                        BCON_NEW("kind", BCON_UTF8("soon"))};
        while (sb_now() < sb_ttl.deadline &&
               !(sb_ttl.gone_at[0] && sb_ttl.gone_at[1])) {
                for (int i = 0; i < 2; i++) {
                        if (sb_ttl.gone_at[i]) {
                                continue;
                        }
                        int64_t n = sb_count(c[i], f[i]);
                        if (n == 0) {
                                sb_ttl.gone_at[i] = sb_now();
                        }
                }
                sleep(1);
        }
        bson_destroy(f[0]);
        bson_destroy(f[1]);
        mongoc_collection_destroy(c[0]);
        mongoc_collection_destroy(c[1]);
        mongoc_client_pool_push(sb_ttl.run->pool, client);
        return NULL;
}

void sb_ttl_start(sb_run_t *run, mongoc_client_t *client) {
        char why[200] = "";
        bson_t *k1 = BCON_NEW("expire_at", BCON_INT32(1));
        bson_t *k2 = BCON_NEW("created_at", BCON_INT32(1));
        bson_error_t err;
        sb_ttl.run = run;
        bool ok = sb_index(client, run, "ttl", "ttl", k1, false, 0, why,
                           sizeof(why)) &&
                  sb_index(client, run, "ttl_after", "ttl", k2, false, 2, why,
                           sizeof(why));
        bson_destroy(k1);
        bson_destroy(k2);
        mongoc_collection_t *ttl =
                mongoc_client_get_collection(client, run->db, "ttl");
        mongoc_collection_t *after =
                mongoc_client_get_collection(client, run->db, "ttl_after");
        int64_t now = sb__ms();
        for (int i = 0; i < 220 && ok; i++) {
                /* 100 due in 2 s, 100 in an hour, 20 with a non-date. */
                bson_t *doc =
                        i < 200 ? BCON_NEW(
                                          "kind",
                                          BCON_UTF8(i < 100 ? "soon" : "later"),
                                          "expire_at",
                                          BCON_DATE_TIME(
                                                  i < 100 ? now + 2000
                                                          : now + 3600000))
                                : BCON_NEW("kind", BCON_UTF8("string"),
                                           "expire_at",
                                           BCON_UTF8("2000-01-01"));
                ok = mongoc_collection_insert_one(ttl, doc, NULL, NULL, &err);
                bson_destroy(doc);
                if (ok && i < 100) {
                        bson_t *d2 =
                                BCON_NEW("kind", BCON_UTF8("soon"),
                                         "created_at", BCON_DATE_TIME(now));
                        ok = mongoc_collection_insert_one(after, d2, NULL, NULL,
                                                          &err);
                        bson_destroy(d2);
                }
                if (!ok) {
                        snprintf(why, sizeof(why), "insert: %.150s",
                                 err.message);
                }
        }
        mongoc_collection_destroy(ttl);
        mongoc_collection_destroy(after);
        if (!ok) {
                snprintf(sb_ttl.err, sizeof(sb_ttl.err), "%s", why);
                return;
        }
        sb_ttl.t_expire = sb_now() + 2;
        sb_ttl.deadline = sb_now() + (run->quick ? 90 : 150);
        sb_ttl.started =
                pthread_create(&sb_ttl.th, NULL, sb__ttl_poll, NULL) == 0;
}

static void sb__ttl_said(char *buf, size_t len, double after, double waited) {
        if (after >= 0) {
                snprintf(buf, len, "gone %.0f s after expiry", after);
        } else {
                snprintf(buf, len, "NOT gone after %.0f s", waited);
        }
}

void sb_ttl_finish(sb_run_t *run) {
        char why[1024];
        if (!sb_ttl.started) {
                sb_row(run, "ttl", 0, "s", 0, NULL, false,
                       sb_ttl.err[0] ? sb_ttl.err : "not started");
                return;
        }
        pthread_join(sb_ttl.th, NULL);
        mongoc_client_t *client = mongoc_client_pool_pop(run->pool);
        mongoc_collection_t *ttl =
                mongoc_client_get_collection(client, run->db, "ttl");
        bson_t *later = BCON_NEW("kind", BCON_UTF8("later"));
        bson_t *str = BCON_NEW("kind", BCON_UTF8("string"));
        int64_t n_later = sb_count(ttl, later);
        int64_t n_str = sb_count(ttl, str);
        double waited = sb_ttl.deadline - sb_ttl.t_expire;
        double s0 =
                sb_ttl.gone_at[0] ? sb_ttl.gone_at[0] - sb_ttl.t_expire : -1;
        double s1 =
                sb_ttl.gone_at[1] ? sb_ttl.gone_at[1] - sb_ttl.t_expire : -1;
        bool ok = s0 >= 0 && s1 >= 0 && n_later == 100 && n_str == 20;
        char a[64], b[64];
        sb__ttl_said(a, sizeof(a), s0, waited);
        sb__ttl_said(b, sizeof(b), s1, waited);
        snprintf(why, sizeof(why),
                 "expireAfterSeconds 0 on a date: %s; expireAfterSeconds 2 "
                 "on created_at: %s; unexpired kept %lld/100, non-dates kept "
                 "%lld/20",
                 a, b, (long long)n_later, (long long)n_str);
        double worst = s0 > s1 ? s0 : s1;
        sb_row(run, "ttl", 100, "s", ok ? worst : -1, NULL, ok, why);
        bson_destroy(later);
        bson_destroy(str);
        mongoc_collection_destroy(ttl);
        mongoc_client_pool_push(run->pool, client);
}
