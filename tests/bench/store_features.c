/*
 * store_features.c - what MongoDB 7 (production, the compose files) does,
 * probed one feature at a time on a candidate: each probe runs the real
 * command on a small data set and checks the answer, then prints a
 * "feature" line (store_bench.h). A store that accepts a command but does
 * not do what MongoDB does (a transaction whose abort keeps its writes)
 * fails the probe.
 */
#include <stdio.h>
#include <string.h>

#include "store_bench.h"

/* Four orders of two tenants; tenant "a" has three. */
static const char *const sb_orders[] = {
        "{\"_id\": 1, \"tenant\": \"a\", \"amount\": 10, \"tags\": [\"x\", "
        "\"y\"], \"m\": {\"k\": 1}, \"at\": {\"$date\": "
        "\"2026-01-01T10:00:00Z\"}}",
        "{\"_id\": 2, \"tenant\": \"a\", \"amount\": 20, \"tags\": [\"x\"], "
        "\"m\": {\"k\": 2}, \"at\": {\"$date\": \"2026-01-01T12:00:00Z\"}}",
        "{\"_id\": 3, \"tenant\": \"b\", \"amount\": 5, \"tags\": [], \"m\": "
        "{\"k\": 2}, \"at\": {\"$date\": \"2026-01-02T09:00:00Z\"}}",
        "{\"_id\": 4, \"tenant\": \"a\", \"amount\": 1, \"tags\": [\"z\"], "
        "\"m\": {\"k\": 3}, \"at\": {\"$date\": \"2026-01-03T00:00:00Z\"}}",
};

/* An aggregation probe: the pipeline, how many documents come back, and a
 * dotted field of the first whose number must equal want. */
typedef struct sb_agg_probe {
        const char *name;
        const char *pipeline;
        int docs;
        const char *field;
        double want;
} sb_agg_probe_t;

static const sb_agg_probe_t sb_agg_probes[] = {
        {"agg_group_avg_min_max",
         "[{\"$group\": {\"_id\": \"$tenant\", \"avg\": {\"$avg\": "
         "\"$amount\"}, \"min\": {\"$min\": \"$amount\"}, \"max\": {\"$max\": "
         "\"$amount\"}, \"n\": {\"$sum\": 1}}}, {\"$sort\": {\"_id\": 1}}]",
         2, "max", 20},
        {"agg_group_push_size",
         "[{\"$match\": {\"tenant\": \"a\"}}, {\"$group\": {\"_id\": null, "
         "\"ids\": {\"$push\": \"$_id\"}, \"t\": {\"$addToSet\": "
         "\"$tenant\"}}}, {\"$project\": {\"n\": {\"$size\": \"$ids\"}}}]",
         1, "n", 3},
        {"agg_addFields",
         "[{\"$match\": {\"_id\": 1}}, {\"$addFields\": {\"d\": "
         "{\"$multiply\": [\"$amount\", 2]}}}]",
         1, "d", 20},
        {"agg_unwind_count", "[{\"$unwind\": \"$tags\"}, {\"$count\": \"n\"}]",
         1, "n", 4},
        {"agg_facet",
         "[{\"$facet\": {\"a\": [{\"$match\": {\"tenant\": \"a\"}}, "
         "{\"$count\": \"n\"}], \"all\": [{\"$count\": \"n\"}]}}]",
         1, "a.0.n", 3},
        {"agg_bucket",
         "[{\"$bucket\": {\"groupBy\": \"$amount\", \"boundaries\": [0, 10, "
         "100], \"default\": \"other\"}}]",
         2, "count", 2},
        {"agg_sortByCount", "[{\"$sortByCount\": \"$tenant\"}]", 2, "count", 3},
        {"agg_group_by_dateToString",
         "[{\"$group\": {\"_id\": {\"$dateToString\": {\"format\": "
         "\"%Y-%m-%d\", \"date\": \"$at\"}}, \"s\": {\"$sum\": "
         "\"$amount\"}}}, {\"$sort\": {\"_id\": 1}}]",
         3, "s", 30},
        {"agg_group_by_dateTrunc",
         "[{\"$group\": {\"_id\": {\"$dateTrunc\": {\"date\": \"$at\", "
         "\"unit\": \"day\"}}, \"s\": {\"$sum\": \"$amount\"}}}, {\"$sort\": "
         "{\"_id\": 1}}]",
         3, "s", 30},
        {"agg_lookup",
         "[{\"$match\": {\"_id\": 1}}, {\"$lookup\": {\"from\": "
         "\"f_tenants\", \"localField\": \"tenant\", \"foreignField\": "
         "\"_id\", \"as\": \"t\"}}, {\"$project\": {\"n\": {\"$size\": "
         "\"$t\"}}}]",
         1, "n", 1},
        {"agg_setWindowFields",
         "[{\"$setWindowFields\": {\"partitionBy\": \"$tenant\", \"sortBy\": "
         "{\"at\": 1}, \"output\": {\"run\": {\"$sum\": \"$amount\", "
         "\"window\": {\"documents\": [\"unbounded\", \"current\"]}}}}}, "
         "{\"$match\": {\"_id\": 2}}]",
         1, "run", 30},
        {"agg_match_expr",
         "[{\"$match\": {\"$expr\": {\"$gt\": [\"$amount\", 9]}}}, "
         "{\"$count\": \"n\"}]",
         1, "n", 2},
        {"agg_project_cond",
         "[{\"$match\": {\"_id\": 3}}, {\"$project\": {\"v\": {\"$cond\": "
         "[{\"$gt\": [\"$amount\", 1]}, 1, 0]}}}]",
         1, "v", 1},
        {"agg_match_dotted",
         "[{\"$match\": {\"m.k\": 2}}, {\"$count\": \"n\"}]", 1, "n", 2},
        {NULL, NULL, 0, NULL, 0},
};

static double sb__num(const bson_t *doc, const char *dotted, bool *found) {
        bson_iter_t it, d;
        *found = bson_iter_init(&it, doc) &&
                 bson_iter_find_descendant(&it, dotted, &d) &&
                 (BSON_ITER_HOLDS_NUMBER(&d));
        return *found ? bson_iter_as_double(&d) : 0;
}

static void sb__agg_probe(sb_run_t *run, mongoc_collection_t *coll,
                          const sb_agg_probe_t *p) {
        bson_error_t err;
        char note[300];
        bson_t *arr =
                bson_new_from_json((const uint8_t *)p->pipeline, -1, &err);
        if (!arr) {
                snprintf(note, sizeof(note), "bad probe: %.150s", err.message);
                sb_feature(run, p->name, false, note);
                return;
        }
        bson_t pipeline = BSON_INITIALIZER;
        BSON_APPEND_ARRAY(&pipeline, "pipeline", arr);
        mongoc_cursor_t *cur = mongoc_collection_aggregate(
                coll, MONGOC_QUERY_NONE, &pipeline, NULL, NULL);
        const bson_t *doc;
        int n = 0;
        double first = 0;
        bool found = false;
        while (mongoc_cursor_next(cur, &doc)) {
                if (n++ == 0) {
                        first = sb__num(doc, p->field, &found);
                }
        }
        if (mongoc_cursor_error(cur, &err)) {
                snprintf(note, sizeof(note), "error: %.150s", err.message);
                sb_feature(run, p->name, false, note);
        } else {
                bool ok = n == p->docs && found && first == p->want;
                snprintf(note, sizeof(note),
                         "%d docs (want %d), %s = %g (want %g)%s", n, p->docs,
                         p->field, first, p->want, found ? "" : " missing");
                sb_feature(run, p->name, ok, ok ? "" : note);
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(&pipeline);
        bson_destroy(arr);
}

/* ---------------------------------------------------------------- probes */

static void sb__transactions(sb_run_t *run, mongoc_client_t *client) {
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "f_txn");
        bson_error_t err;
        char note[300] = "";
        bool ok = false;
        /* The collection exists first: MongoDB before 4.4 cannot create
         * one inside a transaction. */
        bson_t *seed = BCON_NEW("_id", BCON_INT32(0));
        mongoc_collection_insert_one(coll, seed, NULL, NULL, &err);
        bson_destroy(seed);
        mongoc_client_session_t *cs =
                mongoc_client_start_session(client, NULL, &err);
        if (!cs) {
                snprintf(note, sizeof(note), "startSession: %.150s",
                         err.message);
                goto out;
        }
        /* An aborted transaction's write must vanish, a committed one's
         * stay. */
        for (int commit = 0; commit < 2; commit++) {
                bson_t opts = BSON_INITIALIZER;
                bson_t *doc = BCON_NEW("_id", BCON_INT32(commit + 1));
                bool step = mongoc_client_session_start_transaction(cs, NULL,
                                                                    &err) &&
                            mongoc_client_session_append(cs, &opts, &err) &&
                            mongoc_collection_insert_one(coll, doc, &opts, NULL,
                                                         &err);
                step = step &&
                       (commit ? mongoc_client_session_commit_transaction(
                                         cs, NULL, &err)
                               : mongoc_client_session_abort_transaction(cs,
                                                                         &err));
                bson_destroy(doc);
                bson_destroy(&opts);
                if (!step) {
                        snprintf(note, sizeof(note), "%.150s: %.150s",
                                 commit ? "commit" : "abort", err.message);
                        goto out;
                }
        }
        bson_t *aborted = BCON_NEW("_id", BCON_INT32(1));
        bson_t *committed = BCON_NEW("_id", BCON_INT32(2));
        int64_t a = sb_count(coll, aborted), c = sb_count(coll, committed);
        bson_destroy(aborted);
        bson_destroy(committed);
        ok = a == 0 && c == 1;
        snprintf(note, sizeof(note), "aborted write %s, committed write %s",
                 a == 0 ? "gone" : "KEPT", c == 1 ? "kept" : "LOST");
out:
        mongoc_client_session_destroy(cs);
        sb_feature(run, "transactions", ok, note);
        mongoc_collection_destroy(coll);
}

static void sb__change_streams(sb_run_t *run, mongoc_client_t *client) {
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "f_watch");
        bson_t pipeline = BSON_INITIALIZER;
        bson_t *opts = BCON_NEW("maxAwaitTimeMS", BCON_INT64(1000));
        mongoc_change_stream_t *cs =
                mongoc_collection_watch(coll, &pipeline, opts);
        const bson_t *doc, *reply;
        bson_error_t err;
        char note[300] = "";
        bool ok = false;
        if (mongoc_change_stream_error_document(cs, &err, &reply)) {
                snprintf(note, sizeof(note), "watch: %.150s", err.message);
        } else {
                bson_t *ins = BCON_NEW("x", BCON_INT32(1));
                mongoc_collection_insert_one(coll, ins, NULL, NULL, &err);
                bson_destroy(ins);
                for (int i = 0; i < 3 && !ok; i++) {
                        ok = mongoc_change_stream_next(cs, &doc);
                }
                if (!ok &&
                    mongoc_change_stream_error_document(cs, &err, &reply)) {
                        snprintf(note, sizeof(note), "next: %.150s",
                                 err.message);
                } else if (!ok) {
                        snprintf(note, sizeof(note), "insert not seen");
                }
        }
        mongoc_change_stream_destroy(cs);
        bson_destroy(opts);
        sb_feature(run, "change_streams", ok, note);
        mongoc_collection_destroy(coll);
}

/* Runs fn-like steps given as JSON commands; true when each answers ok. */
static bool sb__cmd_json(mongoc_client_t *client, sb_run_t *run,
                         const char *json, bson_t *reply, char *note,
                         size_t len) {
        bson_error_t err;
        bson_t *cmd = bson_new_from_json((const uint8_t *)json, -1, &err);
        bool ok = cmd && sb_command(client, run, cmd, reply, &err);
        if (!cmd) {
                bson_init(reply);
        }
        if (!ok) {
                snprintf(note, len, "%.150s", err.message);
        }
        bson_destroy(cmd);
        return ok;
}

static void sb__collation(sb_run_t *run, mongoc_client_t *client) {
        char note[300] = "";
        bson_t reply;
        bool ok = sb__cmd_json(
                client, run,
                "{\"insert\": \"f_coll\", \"documents\": [{\"name\": "
                "\"Alice\"}, {\"name\": \"alice\"}, {\"name\": \"bob\"}]}",
                &reply, note, sizeof(note));
        bson_destroy(&reply);
        if (ok) {
                ok = sb__cmd_json(
                        client, run,
                        "{\"count\": \"f_coll\", \"query\": {\"name\": "
                        "\"ALICE\"}, \"collation\": {\"locale\": \"en\", "
                        "\"strength\": 2}}",
                        &reply, note, sizeof(note));
                bson_iter_t it;
                int64_t n = ok && bson_iter_init_find(&it, &reply, "n")
                                    ? bson_iter_as_int64(&it)
                                    : -1;
                if (ok && n != 2) {
                        snprintf(note, sizeof(note),
                                 "case-insensitive count %lld (want 2)",
                                 (long long)n);
                        ok = false;
                }
                bson_destroy(&reply);
        }
        sb_feature(run, "collation", ok, note);
}

static void sb__partial_index(sb_run_t *run, mongoc_client_t *client) {
        char note[300] = "";
        bson_t reply;
        bool ok = sb__cmd_json(
                client, run,
                "{\"createIndexes\": \"f_partial\", \"indexes\": [{\"key\": "
                "{\"email\": 1}, \"name\": \"email_active\", \"unique\": true, "
                "\"partialFilterExpression\": {\"active\": true}}]}",
                &reply, note, sizeof(note));
        bson_destroy(&reply);
        if (ok) {
                /* Same email: once inactive, once active (both allowed),
                 * then active again (refused). */
                bool a = sb__cmd_json(
                        client, run,
                        "{\"insert\": \"f_partial\", \"documents\": "
                        "[{\"email\": \"p@x\", \"active\": false}, "
                        "{\"email\": \"p@x\", \"active\": true}]}",
                        &reply, note, sizeof(note));
                bson_iter_t it;
                a = a && !bson_iter_init_find(&it, &reply, "writeErrors");
                bson_destroy(&reply);
                sb__cmd_json(client, run,
                             "{\"insert\": \"f_partial\", \"documents\": "
                             "[{\"email\": \"p@x\", \"active\": true}]}",
                             &reply, note, sizeof(note));
                bool refused = bson_iter_init_find(&it, &reply, "writeErrors");
                bson_destroy(&reply);
                ok = a && refused;
                snprintf(note, sizeof(note),
                         "inactive + active duplicate %s; second active %s",
                         a ? "accepted" : "REFUSED",
                         refused ? "refused" : "ACCEPTED");
        }
        sb_feature(run, "partial_unique_index", ok, note);
}

/* A command, then a number read from a document of the reply. */
typedef struct sb_cmd_probe {
        const char *name;
        const char *setup; /* NULL: none */
        const char *cmd;
        const char *field; /* dotted, in the reply */
        double want;
} sb_cmd_probe_t;

static const sb_cmd_probe_t sb_cmd_probes[] = {
        {"update_arrayFilters",
         "{\"update\": \"f_orders\", \"updates\": [{\"q\": {\"_id\": 1}, "
         "\"u\": {\"$set\": {\"tags.$[t]\": \"X\"}}, \"arrayFilters\": "
         "[{\"t\": \"x\"}]}]}",
         "{\"count\": \"f_orders\", \"query\": {\"tags\": \"X\"}}", "n", 1},
        {"update_with_pipeline",
         "{\"update\": \"f_orders\", \"updates\": [{\"q\": {\"_id\": 2}, "
         "\"u\": [{\"$set\": {\"amount2\": {\"$add\": [\"$amount\", 1]}}}]}]}",
         "{\"count\": \"f_orders\", \"query\": {\"amount2\": 21}}", "n", 1},
        {"distinct", NULL, "{\"distinct\": \"f_orders\", \"key\": \"tenant\"}",
         "values.1", -1},
        {"find_regex", NULL,
         "{\"count\": \"f_orders\", \"query\": {\"tenant\": {\"$regex\": "
         "\"^A\", \"$options\": \"i\"}}}",
         "n", 3},
        {"write_concern_majority", NULL,
         "{\"insert\": \"f_wc\", \"documents\": [{\"a\": 1}], "
         "\"writeConcern\": {\"w\": \"majority\", \"j\": true}}",
         "n", 1},
        {"findAndModify_upsert", NULL,
         "{\"findAndModify\": \"f_fam\", \"query\": {\"_id\": \"timer-1\"}, "
         "\"update\": {\"$setOnInsert\": {\"due\": 1}}, \"upsert\": true, "
         "\"new\": true}",
         "value.due", 1},
        {"update_push_each_slice",
         "{\"update\": \"f_orders\", \"updates\": [{\"q\": {\"_id\": 4}, "
         "\"u\": {\"$push\": {\"tags\": {\"$each\": [\"a\", \"b\", "
         "\"c\"], \"$slice\": -2}}}}]}",
         "{\"count\": \"f_orders\", \"query\": {\"_id\": 4, \"tags\": "
         "[\"b\", \"c\"]}}",
         "n", 1},
        {"update_pull",
         "{\"update\": \"f_orders\", \"updates\": [{\"q\": {\"_id\": 2}, "
         "\"u\": {\"$pull\": {\"tags\": \"x\"}}}]}",
         "{\"count\": \"f_orders\", \"query\": {\"_id\": 2, \"tags\": "
         "{\"$size\": 0}}}",
         "n", 1},
        {"ttl_index_create",
         "{\"createIndexes\": \"f_ttl\", \"indexes\": [{\"key\": {\"at\": 1}, "
         "\"name\": \"at_ttl\", \"expireAfterSeconds\": 3600}]}",
         "{\"listIndexes\": \"f_ttl\"}", "ok", 1},
        {"collMod_ttl", NULL,
         "{\"collMod\": \"f_ttl\", \"index\": {\"name\": \"at_ttl\", "
         "\"expireAfterSeconds\": 60}}",
         "ok", 1},
        {NULL, NULL, NULL, NULL, 0},
};

static void sb__cmd_probe(sb_run_t *run, mongoc_client_t *client,
                          const sb_cmd_probe_t *p) {
        char note[300] = "";
        bson_t reply;
        bool ok = true;
        if (p->setup) {
                ok = sb__cmd_json(client, run, p->setup, &reply, note,
                                  sizeof(note));
                bson_iter_t it;
                if (ok && bson_iter_init_find(&it, &reply, "writeErrors")) {
                        snprintf(note, sizeof(note), "setup: write error");
                        ok = false;
                }
                bson_destroy(&reply);
        }
        if (ok) {
                ok = sb__cmd_json(client, run, p->cmd, &reply, note,
                                  sizeof(note));
                if (ok && p->want >= 0) {
                        bool found;
                        double v = sb__num(&reply, p->field, &found);
                        ok = found && v == p->want;
                        if (!ok) {
                                snprintf(note, sizeof(note),
                                         "%s = %g (want %g)%s", p->field, v,
                                         p->want, found ? "" : " missing");
                        }
                } else if (ok) {
                        /* distinct: two values, so a second element. */
                        bson_iter_t it, d;
                        ok = bson_iter_init(&it, &reply) &&
                             bson_iter_find_descendant(&it, p->field, &d);
                        if (!ok) {
                                snprintf(note, sizeof(note), "%s missing",
                                         p->field);
                        }
                }
                bson_destroy(&reply);
        }
        sb_feature(run, p->name, ok, note);
}

/* listIndexes shows the TTL option of the index ttl_index_create made. */
static void sb__ttl_spec(sb_run_t *run, mongoc_client_t *client) {
        char note[300] = "";
        bson_t reply;
        bool ok = sb__cmd_json(client, run, "{\"listIndexes\": \"f_ttl\"}",
                               &reply, note, sizeof(note));
        bool seen = false;
        bson_iter_t it, batch, idx;
        if (ok && bson_iter_init(&it, &reply) &&
            bson_iter_find_descendant(&it, "cursor.firstBatch", &batch) &&
            bson_iter_recurse(&batch, &idx)) {
                while (bson_iter_next(&idx)) {
                        bson_iter_t f;
                        if (BSON_ITER_HOLDS_DOCUMENT(&idx) &&
                            bson_iter_recurse(&idx, &f) &&
                            bson_iter_find(&f, "expireAfterSeconds")) {
                                seen = bson_iter_as_int64(&f) == 3600;
                        }
                }
        }
        if (ok && !seen) {
                snprintf(note, sizeof(note),
                         "no index lists expireAfterSeconds 3600");
        }
        bson_destroy(&reply);
        sb_feature(run, "listIndexes_ttl_spec", ok && seen, note);
}

/* What explain says of a find on an indexed field: the store's own words. */
static void sb__explain(sb_run_t *run, mongoc_client_t *client) {
        char note[300] = "";
        bson_t reply;
        bool ok = sb__cmd_json(
                client, run,
                "{\"createIndexes\": \"f_orders\", \"indexes\": [{\"key\": "
                "{\"tenant\": 1}, \"name\": \"tenant\"}]}",
                &reply, note, sizeof(note));
        bson_destroy(&reply);
        ok = ok && sb__cmd_json(client, run,
                                "{\"explain\": {\"find\": \"f_orders\", "
                                "\"filter\": {\"tenant\": \"a\"}}}",
                                &reply, note, sizeof(note));
        if (ok) {
                char *json = bson_as_relaxed_extended_json(&reply, NULL);
                const char *hints[] = {"IXSCAN",
                                       "COLLSCAN",
                                       "USING INDEX",
                                       "Index Scan",
                                       "Seq Scan",
                                       "SCAN",
                                       "\"pushdown\" : true",
                                       "\"pushdown\" : false",
                                       NULL};
                size_t off = 0;
                for (int i = 0; hints[i]; i++) {
                        if (json && strstr(json, hints[i]) &&
                            off < sizeof(note) - 40) {
                                off += (size_t)snprintf(
                                        note + off, sizeof(note) - off, "%s%s",
                                        off ? ", " : "", hints[i]);
                        }
                }
                if (!off) {
                        snprintf(note, sizeof(note), "answered, no plan words");
                }
                bson_free(json);
                bson_destroy(&reply);
        }
        sb_feature(run, "explain", ok, note);
}

void sb_features(sb_run_t *run) {
        mongoc_client_t *client = mongoc_client_pool_pop(run->pool);
        mongoc_collection_t *orders =
                mongoc_client_get_collection(client, run->db, "f_orders");
        mongoc_collection_t *tenants =
                mongoc_client_get_collection(client, run->db, "f_tenants");
        bson_error_t err;
        for (size_t i = 0; i < sizeof(sb_orders) / sizeof(sb_orders[0]); i++) {
                bson_t *doc = bson_new_from_json((const uint8_t *)sb_orders[i],
                                                 -1, &err);
                if (!doc || !mongoc_collection_insert_one(orders, doc, NULL,
                                                          NULL, &err)) {
                        fprintf(stderr, "bench-store: features: %s\n",
                                err.message);
                }
                bson_destroy(doc);
        }
        bson_t *t = BCON_NEW("_id", BCON_UTF8("a"), "name", BCON_UTF8("A"));
        mongoc_collection_insert_one(tenants, t, NULL, NULL, &err);
        bson_destroy(t);

        sb__transactions(run, client);
        sb__change_streams(run, client);
        sb__collation(run, client);
        sb__partial_index(run, client);
        for (const sb_agg_probe_t *p = sb_agg_probes; p->name; p++) {
                sb__agg_probe(run, orders, p);
        }
        for (const sb_cmd_probe_t *p = sb_cmd_probes; p->name; p++) {
                sb__cmd_probe(run, client, p);
        }
        sb__ttl_spec(run, client);
        sb__explain(run, client);

        mongoc_collection_destroy(tenants);
        mongoc_collection_destroy(orders);
        mongoc_client_pool_push(run->pool, client);
}
