/*
 * analytics_internal.h - what the files of the analytics group share.
 *
 * The group is split by concern: analytics.c (the table, start-up),
 * settings.c, record.c (how facts are written into and read out of
 * projection documents), fold.c (the projections and their folds, shared
 * by the live handler and `omnify replay`), live.c (the live subscription),
 * closing.c (analytics.day.closed), read.c (reading a tenant's facts for a
 * range), query.c (the one query model: metrics x dimensions x filters;
 * its metrics in query_metrics.c, reading a query from a command in
 * query_read.c), metrics.c (the metrics routes), dashboard.c,
 * attribution.c, insights.c (the brain modules, insights and budgets),
 * reports.c (definitions and schedules) and reports_run.c (runs), and
 * replays.c (replay progress and projection versions for operators).
 *
 * Projections (versioned, rebuilt by replay; collections "<base>_v<N>",
 * see shared/projection.h). Every fact is a last-writer-wins register
 * (shared/lww.h): a text "<observed ms, 16 digits>|<event id>|values..."
 * written with $max under a key hashed from the fact's id, many to a
 * document:
 *   ads          ad_days      {_id "<t>|<provider>|<account>|<day>", tenant,
 *                              provider, account_id, day, c: {campaign}}
 *                ad_accounts  {_id tenant, tenant, a: {key: "<provider>|
 *                              <account>"}, first: {key: day}, last: {...}}
 *   orders       order_days   {_id "<t>|<provider>|<account>|<day>|<b>",
 *                              ..., o: {order}} (b: one of ORDER_BUCKETS)
 *                order_accounts (as ad_accounts)
 *   crm          contact_days, deal_days (by the day they were created),
 *                crm_accounts
 *   summaries    tw_days {_id "<t>|<provider>|<account>|<day>", v}, tw_accounts
 *   connections  connections {_id tenant, c: {key: status}, s: {key: last
 *                              sync completed}}
 *   orgs         orgs {_id tenant, m: {key: member}, created}
 * Plain collections (commands' state, not rebuilt by replay):
 *   views (first dashboard view per tenant), day_closed (the days announced
 *   per tenant), insights, budgets, reports, report_runs.
 *
 * Every function runs on the thread of the handler calling it.
 */
#ifndef OMNIFY_ANALYTICS_INTERNAL_H
#define OMNIFY_ANALYTICS_INTERNAL_H

#include <bson/bson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "caltime.h"
#include "codec.h"
#include "lww.h"
#include "mail.h"
#include "outbox.h"
#include "projection.h"
#include "registry.h"
#include "replay.h"
#include "runtime.h"
#include "slice.h"
#include "timer.h"

/* ---------------------------------------------------------------------------
 * Settings (settings.c)
 * ------------------------------------------------------------------------ */

typedef struct analytics_settings {
        int close_lag_h;          /* a sync this long after a UTC day's end
                                     covers the day */
        int close_max_days;       /* days announced at once at most */
        int insight_change_pct;   /* week-over-week move that raises one */
        int insight_min_spend;    /* minor units over a week */
        int pacing_tolerance_pct; /* budget pacing band */
        int top_campaigns;        /* top and bottom campaigns reported */
        int max_range_days;       /* longest query period */
        int report_max_rows;
        int gc_interval_s;   /* janitor of retired projection versions */
        int replay_grace_s;  /* default grace of `omnify replay` */
        char *mail_base_url; /* scheduled report mails */
        char *mail_api_key;
        char *mail_from;
} analytics_settings_t;

extern const config_table_t analytics_settings;

/* ---------------------------------------------------------------------------
 * Projections (fold.c)
 * ------------------------------------------------------------------------ */

enum {
        PROJ_ADS,
        PROJ_ORDERS,
        PROJ_CRM,
        PROJ_SUMMARIES,
        PROJ_CONNECTIONS,
        PROJ_ORGS,
        PROJ_COUNT
};

#define ORDER_BUCKETS 4

extern const projection_def_t *const analytics_projection_defs[PROJ_COUNT];
extern const replay_set_t analytics_replay_set;

/* The fold of projection p (also used by the live handler). */
const replay_fold_t *analytics_fold(int p);

/* ---------------------------------------------------------------------------
 * Records (record.c): ids, keys and register texts
 * ------------------------------------------------------------------------ */

#define REC_FIELDS_MAX 16
#define REC_ID_MAX 512

/* A register text being built: "<ver>|field|field...", each field escaped
 * (%XX for '%', '|', ';', ',' and control characters). */
typedef struct rec_buf {
        char *p;
        size_t len, cap;
} rec_buf_t;

void rec_init(rec_buf_t *b);
void rec_free(rec_buf_t *b);
void rec_reset(rec_buf_t *b);
/* The version first: "<observed_ms zero-padded to 16>|<event id>". */
void rec_ver(rec_buf_t *b, int64_t observed_ms, slice_t event_id);
void rec_str(rec_buf_t *b, slice_t s); /* "|" + escaped s */
void rec_int(rec_buf_t *b, int64_t v);
void rec_num(rec_buf_t *b, double v); /* %.17g */
void rec_raw(rec_buf_t *b, const char *s);
slice_t rec_slice(const rec_buf_t *b);
/* Append escaped s without a separator (ids, touchpoints). */
void rec_escape(rec_buf_t *b, slice_t s);

/* A register text split into fields (unescaped, NUL-terminated, in buf);
 * field 0 is the observed ms, 1 the event id. */
typedef struct rec_fields {
        char buf[16384];
        const char *f[REC_FIELDS_MAX + 8];
        size_t n;
} rec_fields_t;

bool rec_split(slice_t text, rec_fields_t *out);
/* Undo rec_escape in place (the values of a list field). */
void rec_unescape(char *s);
int64_t rec_atoi(const char *s);
double rec_atof(const char *s);

/* A 16-hex-digit key of a fact id (FNV-1a 64). */
void rec_key(slice_t id, char out[17]);
/* "<a>|<b>|..." with each part escaped into out (REC_ID_MAX). */
void rec_id(char out[REC_ID_MAX], size_t n, const slice_t *parts);

/* ---------------------------------------------------------------------------
 * Views: the versions a request or batch reads (read.c)
 * ------------------------------------------------------------------------ */

typedef struct aview {
        store_t *store;
        const char *db;
        char tenant[PROJECTION_TENANT_MAX];
        int64_t version[PROJ_COUNT];
} aview_t;

/* The pointer, then the tenant's versions. STORE_* on failure. */
store_err_t aview_load(store_t *store, const char *db, slice_t tenant,
                       aview_t *v, char *errstr, size_t errlen);

/* The same from a snapshot already loaded. */
void aview_from(const projection_snapshot_t *snap, store_t *store,
                const char *db, slice_t tenant, aview_t *v);

/* "<base>_v<N>" of projection p's collection base in v. */
void aview_coll(const aview_t *v, int p, const char *base, char *out,
                size_t size);

/* Filters of a query (empty lists: everything). */
#define FILTER_MAX 32
typedef struct afilter {
        const char *provider[FILTER_MAX];
        size_t n_provider;
        const char *account[FILTER_MAX];
        size_t n_account;
        const char *campaign[FILTER_MAX];
        size_t n_campaign;
        const char *currency[FILTER_MAX];
        size_t n_currency;
} afilter_t;

bool afilter_has(const char *const *list, size_t n, const char *s);

typedef struct ad_entry {
        int64_t day;
        const char *provider, *account, *currency, *campaign_id, *campaign_name;
        int64_t spend, impressions, clicks, conversion_value, video_views;
        double conversions;
} ad_entry_t;

#define TOUCH_MAX 32
typedef struct touch {
        int64_t at_ms;
        const char *source, *medium, *campaign, *provider, *campaign_id,
                *click_id;
} touch_t;

typedef struct order_entry {
        int64_t day;
        const char *provider, *account, *currency, *order_id, *customer_id,
                *status;
        int64_t placed_ms;
        int64_t total, subtotal, refunded, items, units;
        bool new_customer;
        touch_t touch[TOUCH_MAX];
        size_t n_touch;
} order_entry_t;

typedef struct tw_entry {
        int64_t day;
        const char *provider, *account, *currency;
        int64_t spend, revenue, orders, new_customers;
} tw_entry_t;

typedef struct crm_entry {
        int64_t day;                               /* created */
        const char *provider, *account, *currency; /* currency: deals */
        bool deal;
        const char *stage;
        int64_t amount;
        int won; /* deals: 1 won, 0 lost, -1 open */
} crm_entry_t;

typedef void (*ad_visit_fn)(const ad_entry_t *e, void *arg);
typedef void (*order_visit_fn)(const order_entry_t *e, void *arg);
typedef void (*tw_visit_fn)(const tw_entry_t *e, void *arg);
typedef void (*crm_visit_fn)(const crm_entry_t *e, void *arg);

/* Every fact of v's tenant with a day in [from, to] that f lets through. */
store_err_t read_ads(const aview_t *v, const afilter_t *f, int64_t from,
                     int64_t to, ad_visit_fn fn, void *arg, char *errstr,
                     size_t errlen);
store_err_t read_orders(const aview_t *v, const afilter_t *f, int64_t from,
                        int64_t to, order_visit_fn fn, void *arg, char *errstr,
                        size_t errlen);
store_err_t read_summaries(const aview_t *v, const afilter_t *f, int64_t from,
                           int64_t to, tw_visit_fn fn, void *arg, char *errstr,
                           size_t errlen);
store_err_t read_crm(const aview_t *v, const afilter_t *f, int64_t from,
                     int64_t to, crm_visit_fn fn, void *arg, char *errstr,
                     size_t errlen);

/* Parse one stored register (read.c; also the digests' tests). */
bool read_ad_entry(slice_t text, rec_fields_t *fs, ad_entry_t *e);
bool read_order_entry(slice_t text, rec_fields_t *fs, order_entry_t *e);

/* ---------------------------------------------------------------------------
 * The query model (query.c; the metrics in query_metrics.c, reading a
 * query from a command in query_read.c)
 * ------------------------------------------------------------------------ */

/* Sums a group holds; every metric is computed from them. */
typedef struct measures {
        int64_t spend, impressions, clicks, conversion_value, video_views;
        double conversions;
        int64_t orders, gross, refunded, net, new_customers, new_customer_net;
        int64_t tw_spend, tw_revenue, tw_orders, tw_new_customers;
        int64_t contacts, deals, deals_won, won_amount;
} measures_t;

enum { SRC_ADS = 1, SRC_ORDERS = 2, SRC_TW = 4, SRC_CRM = 8 };

typedef enum dim {
        DIM_DAY,
        DIM_WEEK,
        DIM_MONTH,
        DIM_PROVIDER,
        DIM_ACCOUNT,
        DIM_CAMPAIGN,
        DIM_COUNT
} dim_t;

typedef struct metric_def {
        const char *name;
        unsigned sources; /* SRC_*: where its sums come from */
        unsigned dims;    /* 1 << dim_t it can be grouped by */
        bool money;       /* in minor units of the row's currency */
        bool ratio;       /* a double (or null) rather than a sum */
        const char *doc;
} metric_def_t;

extern const metric_def_t query_metrics[];
extern const size_t query_n_metrics;
extern const char *const query_dim_names[DIM_COUNT];

const metric_def_t *query_metric(const char *name, size_t len);
/* The metric's value from m; false when it is undefined (a zero
 * denominator). */
bool query_value(const metric_def_t *md, const measures_t *m, double *out);
void measures_add_ad(measures_t *m, const ad_entry_t *e);
void measures_add_order(measures_t *m, const order_entry_t *e);
void measures_add_tw(measures_t *m, const tw_entry_t *e);
void measures_add_crm(measures_t *m, const crm_entry_t *e);
/* Pack a metric of m as a msgpack value (int, double or nil). */
void query_pack_value(msgpack_packer *pk, const metric_def_t *md,
                      const measures_t *m);

/* A query. */
#define QUERY_MAX_METRICS 32
typedef struct query {
        const metric_def_t *metrics[QUERY_MAX_METRICS];
        size_t n_metrics;
        dim_t dims[2];
        size_t n_dims;
        afilter_t filter;
        int64_t from, to; /* days, inclusive */
} query_t;

/* The rows of q as a msgpack array of maps: {currency, <dims>, <metrics>}
 * sorted by currency and dimensions. *rows receives their count. */
typedef struct query_result query_result_t;
store_err_t query_run(const aview_t *v, const query_t *q, query_result_t **out,
                      char *errstr, size_t errlen);
size_t query_rows(const query_result_t *r);
/* Row i: its sums, currency, first dimension's value, provider (accounts,
 * campaigns) and campaign name (any out may be NULL). */
const measures_t *query_row(const query_result_t *r, size_t i,
                            const char **currency, const char **dim0,
                            const char **extra0, const char **name0);
void query_pack_rows(const query_result_t *r, const query_t *q,
                     msgpack_packer *pk);
/* The columns of q's rows, in order (at most max into out); how many. */
size_t query_columns(const query_t *q, const char **out, size_t max);
#define QUERY_MAX_COLUMNS (1 + 2 * 3 + QUERY_MAX_METRICS)
void query_result_free(query_result_t *r);

/*
 * Read a query from a command body: metric (array of names), group_by
 * (array), from, to, provider, account_id, campaign_id, currency (arrays).
 * On a bad value the reply becomes a 400 problem naming the field, on a
 * rule across fields (a metric that cannot be grouped by a dimension or
 * filtered by campaign, provider or account; the period) a 422 one, and
 * false is returned. Strings point into body.
 */
bool query_parse(rt_ctx_t *ctx, const msgpack_object *body, query_t *q);

/* The period of a body's from/to (defaults: the 30 days to yesterday,
 * UTC); false after a 400 reply (not a date) or a 422 one (from after to,
 * longer than the longest period). */
bool query_period(rt_ctx_t *ctx, const msgpack_object *body, int64_t *from,
                  int64_t *to);

/* Sums by key, for several groupings in one read (query.c). */
typedef struct macc macc_t;
macc_t *macc_new(void);
void macc_free(macc_t *a);
measures_t *macc_get(macc_t *a, const char *key); /* made when missing */
const measures_t *macc_find(const macc_t *a, const char *key);
/* The keys starting with prefix, sorted (*out: free() it; the keys live
 * as long as a). */
size_t macc_keys(const macc_t *a, const char *prefix, const char ***out);

/* ---------------------------------------------------------------------------
 * CSV (csv.c)
 * ------------------------------------------------------------------------ */

/* Rows (a msgpack array of maps) as CSV: a header of the columns, then a
 * line per row with each column's value (strings, numbers; absent or nil:
 * empty). RFC 4180 quoting; text a spreadsheet would run as a formula is
 * prefixed with a quote. Caller frees. NULL when rows is not an array. */
char *csv_of_rows(const char *const *columns, size_t n_columns, slice_t rows,
                  size_t *len);

/* Reply with rows as CSV (text/csv). */
void csv_reply(rt_ctx_t *ctx, const char *const *columns, size_t n_columns,
               slice_t rows);

/* The caller asked for CSV (its Accept field names text/csv). */
bool csv_wanted(const msgpack_object *body);

/* ---------------------------------------------------------------------------
 * Common helpers (common.c)
 * ------------------------------------------------------------------------ */

/* The group's state (init). */
typedef struct analytics_state {
        const config_t *cfg;
        const analytics_settings_t *set;
        store_t *store;
        uint64_t last_gc_ms; /* live.c, under its thread */
        /* Scheduled reports (reports.c): their durable schedules, and the
         * outbox their mails go through. */
        timer_service_t *timers; /* the runtime's */
        mail_t *mail;
        outbox_kind_t mail_kinds[1];
        outbox_t *outbox;
} analytics_state_t;

/* reports.c: the schedules and the mail of reports, started by init (the
 * harness has no bus: schedules are set, never fired, mails held). */
handler_result_t reports_start(analytics_state_t *st, runtime_t *rt,
                               char *errstr, size_t errlen);
/* NULL members ok. */
void reports_stop(analytics_state_t *st);

/* The collections of report definitions and of their runs (reports.c,
 * reports_run.c). */
#define REPORTS_COLL "reports"
#define REPORT_RUNS_COLL "report_runs"

/* reports.c, for reports_run.c: the stored definition of report id of v's
 * tenant, as msgpack in zone; false after a reply (404, store failure in
 * *res). */
bool reports_load(rt_ctx_t *ctx, const aview_t *v, slice_t id,
                  msgpack_object *def, msgpack_zone *zone,
                  handler_result_t *res);

/* reports.c, for reports_run.c: the metrics query of a definition (the
 * command's body, or a stored definition) for a run on `today`, checked as
 * query_parse checks the metrics route's body; false after a 400 or 422
 * reply. */
bool reports_query(rt_ctx_t *ctx, const msgpack_object *def, int64_t today,
                   query_t *q, msgpack_zone *zone);

analytics_state_t *analytics_state(rt_ctx_t *ctx);

/* A store failure as the reply (503) or a retry: HANDLER_TRANSIENT when
 * the store is away, else a 500 problem and HANDLER_OK. */
handler_result_t analytics_store_failed(rt_ctx_t *ctx, store_err_t err,
                                        const char *errstr);

/* A 400 problem naming one field: a value the schema rules out (the edge
 * checks it first; this is the Kafka boundary's check). */
void analytics_bad_field(rt_ctx_t *ctx, const char *field, const char *why);

/* A 422 problem naming one field: a value the schema allows but a rule
 * across fields refuses (from after to, a period too long, a metric that
 * cannot be grouped or filtered so). The routes declare 422 for it. */
void analytics_refused_field(rt_ctx_t *ctx, const char *field, const char *why);

/* The caller's view (tenant and versions); false after a reply. */
bool analytics_view(rt_ctx_t *ctx, schema_role_t least, aview_t *v,
                    handler_result_t *res);

/* msgpack helpers: a string field as a slice (SLICE_NULL when absent or
 * not a string); an integer; a number. */
slice_t mp_str(const msgpack_object *map, const char *key);
bool mp_int(const msgpack_object *map, const char *key, int64_t *out);
bool mp_num(const msgpack_object *map, const char *key, double *out);
bool mp_bool(const msgpack_object *map, const char *key, bool *out);
void mp_pack_slice(msgpack_packer *pk, slice_t s);
void mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v);
void mp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v);

/* A bson document as a msgpack map (strings, numbers, booleans, nested
 * documents and arrays; dates as Unix ms), skipping fields named in skip
 * (NULL-terminated, may be NULL). */
void bson_to_msgpack(msgpack_packer *pk, const bson_t *doc,
                     const char *const *skip);

/* Documents found, gathered as msgpack maps for an answer's list: _id
 * renamed id_name (NULL: kept unless skipped), the fields of skip left
 * out. alist_add is a store_each_fn. */
typedef struct alist {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        size_t n;
        const char *id_name;
        const char *const *skip;
} alist_t;

void alist_init(alist_t *l, const char *id_name, const char *const *skip);
bool alist_add(const bson_t *doc, void *arg);
/* The list as a msgpack array. */
void alist_pack(msgpack_packer *pk, const alist_t *l);
void alist_deinit(alist_t *l);

/* ---------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

handler_result_t analytics_live_batch(rt_ctx_t *const *ctxs,
                                      const msgpack_object *const *bodies,
                                      size_t n);
/* closing.c: after a batch with connection or sync events of tenant. */
handler_result_t closing_check(rt_ctx_t *ctx, const aview_t *v);

handler_result_t metrics_handle(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t metrics_catalog(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t dashboard_handle(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t dashboard_view(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t attribution_handle(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t insights_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t budgets_set(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t budgets_list(rt_ctx_t *ctx, const msgpack_object *body);
/* insights.c: the brain modules for a tenant whose day closed. */
store_err_t insights_run(rt_ctx_t *ctx, const aview_t *v, int64_t day,
                         char *errstr, size_t errlen);
handler_result_t reports_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t reports_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t reports_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t reports_delete(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t reports_run(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t reports_fire(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t reports_result(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t replays_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t projections_get(rt_ctx_t *ctx, const msgpack_object *body);

#endif
