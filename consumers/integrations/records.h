/*
 * records.h - the normalised events of integrations.events (EVENTS.md) and
 * their ids.
 *
 * A connector turns what its provider answered into these structs; this
 * file packs them as the declared bodies and gives each an id derived from
 * (provider, account, object id, day, a hash of the values): a re-sync of
 * unchanged data publishes the same id again, changed data (late
 * conversions, a refund) a new one. observed_ms is in the body but not in
 * the hash. The record key is "<tenant>|<provider>|<account_id>" (order per
 * account), for records and for the connection and sync events alike, so a
 * follower sees a sync's records before its sync.completed.
 *
 * Buffers, not emission: the sync engine and the webhook handler emit what
 * a page or a delivery gathered (rt_emit_id).
 */
#ifndef OMNIFY_IG_RECORDS_H
#define OMNIFY_IG_RECORDS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "ig.h"
#include "msgid.h"

struct ig_job;

typedef struct ig_record {
        char type[64];
        char id[MSGID_TEXT_SIZE];
        char *key;
        msgpack_sbuffer body;
} ig_record_t;

typedef struct ig_records {
        ig_record_t *v;
        size_t n, cap;
        int64_t observed_ms; /* stamped on every record */
} ig_records_t;

void ig_records_init(ig_records_t *r, int64_t observed_ms);
void ig_records_clear(ig_records_t *r);
/* Emit every record (rt_emit_id). -1 when one breaks its declaration (a
 * bug: logged). */
int ig_records_emit(rt_ctx_t *ctx, const ig_records_t *r);

/* "<tenant>|<provider>|<account_id>" into out. */
void ig_record_key(const char *tenant, const char *provider,
                   const char *account_id, char *out, size_t size);

typedef struct ig_ad_row {
        const char *campaign_id;
        const char *campaign_name;
        ig_day_t day;
        const char *currency;
        int64_t spend_minor, impressions, clicks;
        double conversions;
        int64_t conversion_value_minor;
        int64_t video_views; /* < 0: none (not a video campaign) */
} ig_ad_row_t;

typedef struct ig_line {
        const char *sku, *name;
        int64_t quantity, price_minor;
} ig_line_t;

typedef struct ig_touch {
        int64_t at_ms;
        const char *source, *medium, *campaign;
        const char *provider, *campaign_id, *click_id; /* may be NULL */
} ig_touch_t;

#define IG_MAX_LINES 64
#define IG_MAX_TOUCHES 8

typedef struct ig_order {
        const char *order_id;
        int64_t placed_ms;
        const char *currency;
        int64_t total_minor, subtotal_minor, refunded_minor;
        const char *customer_id; /* "" for guests */
        bool new_customer;
        const char *status;
        ig_line_t lines[IG_MAX_LINES];
        size_t n_lines;
        ig_touch_t touches[IG_MAX_TOUCHES];
        size_t n_touches;
} ig_order_t;

typedef struct ig_contact {
        const char *contact_id;
        int64_t created_ms, updated_ms;
        const char *stage;
        const char *email; /* only its domain is published */
        int64_t opened, clicked, views;
        int64_t last_engaged_ms; /* 0: never */
} ig_contact_t;

typedef struct ig_deal {
        const char *deal_id, *contact_id, *stage;
        int64_t amount_minor;
        const char *currency;
        int64_t created_ms;
        int64_t closed_ms; /* 0: open */
        int won;           /* -1 open, 0 lost, 1 won */
} ig_deal_t;

typedef struct ig_summary {
        ig_day_t day;
        const char *currency;
        int64_t spend_minor, revenue_minor, orders, new_customers;
} ig_summary_t;

/* A touchpoint from UTM parameters and a click id (either may be NULL):
 * the ad provider they name (gclid: google_ads, or youtube when the source
 * says so; fbclid: meta_ads; ttclid: tiktok_ads; li_fat_id: linkedin_ads;
 * else the UTM source of a paid medium), and the campaign id when the
 * campaign is one (digits, as the ad platforms' ids are). The strings are
 * borrowed. */
void ig_touch_from_utm(ig_touch_t *t, int64_t at_ms, const char *source,
                       const char *medium, const char *campaign,
                       const char *click_param, const char *click_id);

void ig_rec_ad(ig_records_t *out, const struct ig_job *job,
               const ig_ad_row_t *row);
void ig_rec_order(ig_records_t *out, const struct ig_job *job,
                  const ig_order_t *o);
void ig_rec_contact(ig_records_t *out, const struct ig_job *job,
                    const ig_contact_t *c);
void ig_rec_deal(ig_records_t *out, const struct ig_job *job,
                 const ig_deal_t *d);
void ig_rec_summary(ig_records_t *out, const struct ig_job *job,
                    const ig_summary_t *s);

/*
 * A lifecycle event (connection.*, sync.*) whose body the caller packed
 * (one map). Its id derives from identity (e.g. "<sync id>") and
 * time_ms (a time fixed with it: when the sync started): a redelivered
 * handler publishes it again under the same id.
 */
void ig_rec_event(ig_records_t *out, const char *type, const char *tenant,
                  const char *provider, const char *account_id,
                  const char *identity, int64_t time_ms,
                  const msgpack_sbuffer *body);

/* The id of a fact: msgid_derive over the seed with time_ms first. */
void ig_record_id(int64_t time_ms, const char *seed, char out[MSGID_TEXT_SIZE]);

#endif
