/*
 * features.c - ml's own feature store, folded from integrations' events
 * (a group never reads another group's database):
 *   integrations.contact.recorded  -> contacts {_id "<t>|<provider>|
 *       <account>|<contact>", tenant, provider, account_id, contact_id,
 *       created_ms, updated_ms, stage, email_domain, opened, clicked,
 *       views, last_engaged_ms (-1: never), observed_ms}
 *   integrations.deal.recorded     -> deals {_id "<t>|<p>|<a>|<deal>",
 *       tenant, contact_key (a contacts _id, "" without a contact), stage,
 *       amount, currency, created_ms, closed_ms (-1: open), won (1, 0, -1
 *       while open), observed_ms}
 *   integrations.order.recorded    -> orders {_id "<t>|<p>|<a>|<order>",
 *       tenant, provider, account_id, customer_id, customer_key ("" for
 *       guests), placed_ms, total, refunded, currency, new_customer,
 *       observed_ms}
 *
 * Each object keeps the values with the highest observed_ms (EVENTS.md),
 * whatever order events arrive in: an upsert whose filter asks for an
 * older observed_ms matches nothing when the stored one is newer, and its
 * insert is then refused as a duplicate _id (counted, not an error, in an
 * unordered bulk). A replay or a redelivery writes the same values again.
 * One bulk write per collection per poll.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ml_internal.h"

#define KEY_MAX 600

typedef struct fold {
        store_bulk_t *contacts, *deals, *orders;
} fold_t;

/* "<tenant>|<provider>|<account>|<id>" into out; false when a part is
 * missing or the key too long. */
static bool object_key(const char *tenant, const msgpack_object *body,
                       const char *id_field, char *out, size_t len,
                       char *provider, char *account, char *id) {
        int w;
        if (!ml_str(body, "provider", provider, ML_CHANNEL_MAX) ||
            !ml_str(body, "account_id", account, 160) ||
            !ml_str(body, id_field, id, 160) || !provider[0] || !id[0])
                return false;
        w = snprintf(out, len, "%s|%s|%s|%s", tenant, provider, account, id);
        return w > 0 && (size_t)w < len;
}

/* The LWW upsert of doc (the $set fields) under key at observed. */
static void lww_upsert(store_bulk_t *b, const char *key, int64_t observed,
                       bson_t *set) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, lt;
        BSON_APPEND_UTF8(&filter, "_id", key);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "observed_ms", &lt);
        BSON_APPEND_INT64(&lt, "$lt", observed);
        bson_append_document_end(&filter, &lt);
        BSON_APPEND_INT64(set, "observed_ms", observed);
        BSON_APPEND_DOCUMENT(&update, "$set", set);
        store_bulk_update(b, &filter, &update, STORE_UPSERT);
        bson_destroy(&filter);
        bson_destroy(&update);
}

static int64_t time_or(const msgpack_object *body, const char *key,
                       int64_t def) {
        int64_t ms;
        return ml_time_parse(codec_map_str(body, key), &ms) ? ms : def;
}

static const char *contact(const char *tenant, const msgpack_object *b,
                           fold_t *f) {
        char key[KEY_MAX], provider[ML_CHANNEL_MAX], account[160], id[160];
        char stage[64] = "", domain[256] = "";
        const msgpack_object *eng = codec_map_get(b, "engagement");
        int64_t observed, v;
        bson_t set = BSON_INITIALIZER;
        if (!object_key(tenant, b, "contact_id", key, sizeof(key), provider,
                        account, id) ||
            !ml_int(b, "observed_ms", &observed) || !eng ||
            eng->type != MSGPACK_OBJECT_MAP) {
                bson_destroy(&set);
                return "a contact needs provider, account_id, contact_id, "
                       "engagement and observed_ms";
        }
        ml_str(b, "lifecycle_stage", stage, sizeof(stage));
        ml_str(b, "email_domain", domain, sizeof(domain));
        BSON_APPEND_UTF8(&set, "tenant", tenant);
        BSON_APPEND_UTF8(&set, "provider", provider);
        BSON_APPEND_UTF8(&set, "account_id", account);
        BSON_APPEND_UTF8(&set, "contact_id", id);
        BSON_APPEND_INT64(&set, "created_ms", time_or(b, "created_at", -1));
        BSON_APPEND_INT64(&set, "updated_ms", time_or(b, "updated_at", -1));
        BSON_APPEND_UTF8(&set, "stage", stage);
        BSON_APPEND_UTF8(&set, "email_domain", domain);
        BSON_APPEND_INT64(&set, "opened",
                          ml_int(eng, "emails_opened", &v) ? v : 0);
        BSON_APPEND_INT64(&set, "clicked",
                          ml_int(eng, "emails_clicked", &v) ? v : 0);
        BSON_APPEND_INT64(&set, "views", ml_int(eng, "page_views", &v) ? v : 0);
        BSON_APPEND_INT64(&set, "last_engaged_ms",
                          time_or(eng, "last_engaged_at", -1));
        lww_upsert(f->contacts, key, observed, &set);
        bson_destroy(&set);
        return NULL;
}

static const char *deal(const char *tenant, const msgpack_object *b,
                        fold_t *f) {
        char key[KEY_MAX], provider[ML_CHANNEL_MAX], account[160], id[160];
        char contact_id[160] = "", contact_key[KEY_MAX] = "", stage[64] = "";
        char currency[8] = "";
        const msgpack_object *won = codec_map_get(b, "won");
        int64_t observed, amount = 0;
        bson_t set = BSON_INITIALIZER;
        if (!object_key(tenant, b, "deal_id", key, sizeof(key), provider,
                        account, id) ||
            !ml_int(b, "observed_ms", &observed)) {
                bson_destroy(&set);
                return "a deal needs provider, account_id, deal_id and "
                       "observed_ms";
        }
        if (ml_str(b, "contact_id", contact_id, sizeof(contact_id)) &&
            contact_id[0])
                snprintf(contact_key, sizeof(contact_key), "%s|%s|%s|%s",
                         tenant, provider, account, contact_id);
        ml_str(b, "stage", stage, sizeof(stage));
        ml_str(b, "currency", currency, sizeof(currency));
        ml_int(b, "amount_minor", &amount);
        BSON_APPEND_UTF8(&set, "tenant", tenant);
        BSON_APPEND_UTF8(&set, "contact_key", contact_key);
        BSON_APPEND_UTF8(&set, "stage", stage);
        BSON_APPEND_INT64(&set, "amount", amount);
        BSON_APPEND_UTF8(&set, "currency", currency);
        BSON_APPEND_INT64(&set, "created_ms", time_or(b, "created_at", -1));
        BSON_APPEND_INT64(&set, "closed_ms", time_or(b, "closed_at", -1));
        BSON_APPEND_INT32(&set, "won",
                          won && won->type == MSGPACK_OBJECT_BOOLEAN
                                  ? (won->via.boolean ? 1 : 0)
                                  : -1);
        lww_upsert(f->deals, key, observed, &set);
        bson_destroy(&set);
        return NULL;
}

static const char *order(const char *tenant, const msgpack_object *b,
                         fold_t *f) {
        char key[KEY_MAX], provider[ML_CHANNEL_MAX], account[160], id[160];
        char customer[160] = "", customer_key[KEY_MAX] = "", currency[8] = "";
        const msgpack_object *nc = codec_map_get(b, "new_customer");
        int64_t observed, total = 0, refunded = 0, placed;
        bson_t set = BSON_INITIALIZER;
        if (!object_key(tenant, b, "order_id", key, sizeof(key), provider,
                        account, id) ||
            !ml_int(b, "observed_ms", &observed) ||
            !ml_time_parse(codec_map_str(b, "placed_at"), &placed)) {
                bson_destroy(&set);
                return "an order needs provider, account_id, order_id, "
                       "placed_at and observed_ms";
        }
        if (ml_str(b, "customer_id", customer, sizeof(customer)) && customer[0])
                snprintf(customer_key, sizeof(customer_key), "%s|%s|%s|%s",
                         tenant, provider, account, customer);
        ml_str(b, "currency", currency, sizeof(currency));
        ml_int(b, "total_minor", &total);
        ml_int(b, "refunded_minor", &refunded);
        BSON_APPEND_UTF8(&set, "tenant", tenant);
        BSON_APPEND_UTF8(&set, "provider", provider);
        BSON_APPEND_UTF8(&set, "account_id", account);
        BSON_APPEND_UTF8(&set, "customer_id", customer);
        BSON_APPEND_UTF8(&set, "customer_key", customer_key);
        BSON_APPEND_INT64(&set, "placed_ms", placed);
        BSON_APPEND_INT64(&set, "total", total);
        BSON_APPEND_INT64(&set, "refunded", refunded);
        BSON_APPEND_UTF8(&set, "currency", currency);
        BSON_APPEND_BOOL(&set, "new_customer",
                         nc && nc->type == MSGPACK_OBJECT_BOOLEAN &&
                                 nc->via.boolean);
        lww_upsert(f->orders, key, observed, &set);
        bson_destroy(&set);
        return NULL;
}

handler_result_t ml_features_batch(rt_ctx_t *const *ctxs,
                                   const msgpack_object *const *bodies,
                                   size_t n) {
        ml_state_t *st = rt_state(ctxs[0]);
        fold_t f = {
                store_bulk_new(st->store, ML_DB, "contacts", false),
                store_bulk_new(st->store, ML_DB, "deals", false),
                store_bulk_new(st->store, ML_DB, "orders", false),
        };
        store_bulk_t *bulks[] = {f.contacts, f.deals, f.orders};
        handler_result_t res = HANDLER_OK;
        char err[256];
        for (size_t i = 0; i < n; i++) {
                char tenant[ML_TENANT_MAX];
                slice_t type = rt_env(ctxs[i])->type;
                const char *why = "no tenant";
                if (ml_tenant(ctxs[i], tenant)) {
                        if (slice_eq(type, "integrations.contact.recorded"))
                                why = contact(tenant, bodies[i], &f);
                        else if (slice_eq(type, "integrations.deal.recorded"))
                                why = deal(tenant, bodies[i], &f);
                        else if (slice_eq(type, "integrations.order.recorded"))
                                why = order(tenant, bodies[i], &f);
                        else
                                why = NULL; /* not ours: skipped */
                }
                if (why)
                        rt_fail(ctxs[i], why);
        }
        for (size_t b = 0; b < 3 && res == HANDLER_OK; b++) {
                store_err_t serr =
                        store_bulk_run(bulks[b], NULL, err, sizeof(err));
                if (serr != STORE_OK) {
                        log_warn("ml: feature store: %s", err);
                        res = store_err_transient(serr) ? HANDLER_TRANSIENT
                                                        : HANDLER_PERMANENT;
                }
        }
        for (size_t b = 0; b < 3; b++)
                store_bulk_destroy(bulks[b]);
        return res;
}
