/*
 * records.c - the bodies and ids of integrations.events (see records.h).
 *
 * Each body is one msgpack map whose fields are packed in a fixed order,
 * observed_ms last; the id is msgid_derive over
 * "<provider>|<account>|<object>|<day>|<sha256 of the body before
 * observed_ms>", with the fact's own time (its day, or when it was placed
 * or created) in the id's time bits so ids still sort by it.
 */
#include "records.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "connector.h"
#include "log.h"

void ig_records_init(ig_records_t *r, int64_t observed_ms) {
        memset(r, 0, sizeof(*r));
        r->observed_ms = observed_ms;
}

void ig_records_clear(ig_records_t *r) {
        for (size_t i = 0; i < r->n; i++) {
                free(r->v[i].key);
                msgpack_sbuffer_destroy(&r->v[i].body);
        }
        free(r->v);
        r->v = NULL;
        r->n = r->cap = 0;
}

int ig_records_emit(rt_ctx_t *ctx, const ig_records_t *r) {
        int rc = 0;
        for (size_t i = 0; i < r->n; i++)
                if (rt_emit_id(ctx, r->v[i].type, slice_of(r->v[i].key),
                               &r->v[i].body, r->v[i].id) != 0)
                        rc = -1;
        return rc;
}

void ig_record_key(const char *tenant, const char *provider,
                   const char *account_id, char *out, size_t size) {
        snprintf(out, size, "%s|%s|%s", tenant ? tenant : "", provider,
                 account_id ? account_id : "");
}

void ig_record_id(int64_t time_ms, const char *seed,
                  char out[MSGID_TEXT_SIZE]) {
        msgid_t id;
        msgid_derive((uint64_t)(time_ms > 0 ? time_ms : 0), seed, strlen(seed),
                     &id);
        msgid_format(&id, out);
}

/* A new record of type for job's account; its body packer is returned
 * through pk (the caller packs the map, then calls rec__finish). */
static ig_record_t *rec__new(ig_records_t *out, const char *type,
                             const char *tenant, const char *provider,
                             const char *account_id, msgpack_packer *pk) {
        ig_record_t *r;
        char key[512];
        if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 64;
                out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
        }
        r = &out->v[out->n++];
        memset(r, 0, sizeof(*r));
        snprintf(r->type, sizeof(r->type), "%s", type);
        ig_record_key(tenant, provider, account_id, key, sizeof(key));
        r->key = xstrdup(key);
        msgpack_sbuffer_init(&r->body);
        msgpack_packer_init(pk, &r->body, msgpack_sbuffer_write);
        return r;
}

/* observed_ms last; the id from the seed and the hash of what came
 * before. */
static void rec__finish(ig_records_t *out, ig_record_t *r, msgpack_packer *pk,
                        const char *provider, const char *account,
                        const char *object, const char *day, int64_t time_ms) {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        char seed[1024];

        SHA256((const unsigned char *)r->body.data, r->body.size, digest);
        ig_hex(digest, sizeof(digest), hex);
        codec_pack_str(pk, "observed_ms");
        msgpack_pack_int64(pk, out->observed_ms);
        snprintf(seed, sizeof(seed), "%s|%s|%s|%s|%s", provider, account,
                 object, day ? day : "", hex);
        ig_record_id(time_ms, seed, r->id);
}

static bool all_digits(const char *s) {
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

void ig_touch_from_utm(ig_touch_t *t, int64_t at_ms, const char *source,
                       const char *medium, const char *campaign,
                       const char *click_param, const char *click_id) {
        static const struct {
                const char *param, *provider;
        } clicks[] = {{"gclid", "google_ads"},
                      {"fbclid", "meta_ads"},
                      {"ttclid", "tiktok_ads"},
                      {"li_fat_id", "linkedin_ads"}};
        static const struct {
                const char *source, *provider;
        } sources[] = {{"google", "google_ads"},    {"youtube", "youtube"},
                       {"facebook", "meta_ads"},    {"instagram", "meta_ads"},
                       {"meta", "meta_ads"},        {"tiktok", "tiktok_ads"},
                       {"linkedin", "linkedin_ads"}};
        bool paid =
                medium &&
                (strcmp(medium, "cpc") == 0 || strcmp(medium, "paid") == 0 ||
                 strcmp(medium, "video") == 0 || strcmp(medium, "ppc") == 0 ||
                 strcmp(medium, "paid_social") == 0);
        memset(t, 0, sizeof(*t));
        t->at_ms = at_ms;
        t->source = source ? source : "";
        t->medium = medium ? medium : "";
        t->campaign = campaign ? campaign : "";
        for (size_t i = 0; click_param && click_id && *click_id &&
                           i < sizeof(clicks) / sizeof(clicks[0]);
             i++)
                if (strcmp(click_param, clicks[i].param) == 0) {
                        t->provider = clicks[i].provider;
                        t->click_id = click_id;
                }
        if (t->provider && strcmp(t->provider, "google_ads") == 0 && source &&
            strcmp(source, "youtube") == 0)
                t->provider = "youtube";
        for (size_t i = 0; !t->provider && paid && source &&
                           i < sizeof(sources) / sizeof(sources[0]);
             i++)
                if (strcmp(source, sources[i].source) == 0)
                        t->provider = sources[i].provider;
        if (t->provider && all_digits(campaign))
                t->campaign_id = campaign;
}

static const char *job_provider(const ig_job_t *job) {
        return ig_provider_name(job->c->id);
}

void ig_rec_ad(ig_records_t *out, const ig_job_t *job, const ig_ad_row_t *row) {
        const char *prov = job_provider(job);
        msgpack_packer pk;
        ig_record_t *r = rec__new(out, "integrations.ad_metrics.recorded",
                                  job->tenant, prov, job->account_id, &pk);
        char day[11];
        ig_day_format(row->day, day);
        msgpack_pack_map(&pk, row->video_views >= 0 ? 13 : 12);
        ig_kv_str(&pk, "provider", prov);
        ig_kv_str(&pk, "account_id", job->account_id);
        ig_kv_str(&pk, "campaign_id", row->campaign_id);
        ig_kv_str(&pk, "campaign_name", row->campaign_name);
        ig_kv_str(&pk, "day", day);
        ig_kv_str(&pk, "currency", row->currency);
        ig_kv_int(&pk, "spend_minor", row->spend_minor);
        ig_kv_int(&pk, "impressions", row->impressions);
        ig_kv_int(&pk, "clicks", row->clicks);
        codec_pack_str(&pk, "conversions");
        msgpack_pack_double(&pk, row->conversions);
        ig_kv_int(&pk, "conversion_value_minor", row->conversion_value_minor);
        if (row->video_views >= 0)
                ig_kv_int(&pk, "video_views", row->video_views);
        rec__finish(out, r, &pk, prov, job->account_id, row->campaign_id, day,
                    ig_day_start_ms(row->day));
}

void ig_rec_order(ig_records_t *out, const ig_job_t *job, const ig_order_t *o) {
        const char *prov = job_provider(job);
        msgpack_packer pk;
        ig_record_t *r = rec__new(out, "integrations.order.recorded",
                                  job->tenant, prov, job->account_id, &pk);
        char day[11];
        ig_day_format(ig_day_of_ms(o->placed_ms), day);
        msgpack_pack_map(&pk, 15);
        ig_kv_str(&pk, "provider", prov);
        ig_kv_str(&pk, "account_id", job->account_id);
        ig_kv_str(&pk, "order_id", o->order_id);
        ig_kv_time(&pk, "placed_at", o->placed_ms);
        ig_kv_str(&pk, "day", day);
        ig_kv_str(&pk, "currency", o->currency);
        ig_kv_int(&pk, "total_minor", o->total_minor);
        ig_kv_int(&pk, "subtotal_minor", o->subtotal_minor);
        ig_kv_int(&pk, "refunded_minor", o->refunded_minor);
        ig_kv_str(&pk, "customer_id", o->customer_id);
        codec_pack_str(&pk, "new_customer");
        if (o->new_customer)
                msgpack_pack_true(&pk);
        else
                msgpack_pack_false(&pk);
        ig_kv_str(&pk, "status", o->status);
        codec_pack_str(&pk, "line_items");
        msgpack_pack_array(&pk, (uint32_t)o->n_lines);
        for (size_t i = 0; i < o->n_lines; i++) {
                msgpack_pack_map(&pk, 4);
                ig_kv_str(&pk, "sku", o->lines[i].sku);
                ig_kv_str(&pk, "name", o->lines[i].name);
                ig_kv_int(&pk, "quantity", o->lines[i].quantity);
                ig_kv_int(&pk, "price_minor", o->lines[i].price_minor);
        }
        codec_pack_str(&pk, "touchpoints");
        msgpack_pack_array(&pk, (uint32_t)o->n_touches);
        for (size_t i = 0; i < o->n_touches; i++) {
                const ig_touch_t *t = &o->touches[i];
                msgpack_pack_map(&pk, 4 + (t->provider ? 1 : 0) +
                                              (t->campaign_id ? 1 : 0) +
                                              (t->click_id ? 1 : 0));
                ig_kv_time(&pk, "at", t->at_ms);
                ig_kv_str(&pk, "source", t->source);
                ig_kv_str(&pk, "medium", t->medium);
                ig_kv_str(&pk, "campaign", t->campaign);
                if (t->provider)
                        ig_kv_str(&pk, "provider", t->provider);
                if (t->campaign_id)
                        ig_kv_str(&pk, "campaign_id", t->campaign_id);
                if (t->click_id)
                        ig_kv_str(&pk, "click_id", t->click_id);
        }
        rec__finish(out, r, &pk, prov, job->account_id, o->order_id, day,
                    o->placed_ms);
}

void ig_rec_contact(ig_records_t *out, const ig_job_t *job,
                    const ig_contact_t *c) {
        const char *prov = job_provider(job);
        msgpack_packer pk;
        ig_record_t *r = rec__new(out, "integrations.contact.recorded",
                                  job->tenant, prov, job->account_id, &pk);
        char domain[256];
        ig_email_domain(c->email, domain, sizeof(domain));
        /* The fields below, then observed_ms (rec__finish). */
        msgpack_pack_map(&pk, 9);
        ig_kv_str(&pk, "provider", prov);
        ig_kv_str(&pk, "account_id", job->account_id);
        ig_kv_str(&pk, "contact_id", c->contact_id);
        ig_kv_time(&pk, "created_at", c->created_ms);
        ig_kv_time(&pk, "updated_at", c->updated_ms);
        ig_kv_str(&pk, "lifecycle_stage", c->stage);
        ig_kv_str(&pk, "email_domain", domain);
        codec_pack_str(&pk, "engagement");
        msgpack_pack_map(&pk, c->last_engaged_ms ? 4 : 3);
        ig_kv_int(&pk, "emails_opened", c->opened);
        ig_kv_int(&pk, "emails_clicked", c->clicked);
        ig_kv_int(&pk, "page_views", c->views);
        if (c->last_engaged_ms)
                ig_kv_time(&pk, "last_engaged_at", c->last_engaged_ms);
        rec__finish(out, r, &pk, prov, job->account_id, c->contact_id, NULL,
                    c->created_ms);
}

void ig_rec_deal(ig_records_t *out, const ig_job_t *job, const ig_deal_t *d) {
        const char *prov = job_provider(job);
        msgpack_packer pk;
        ig_record_t *r = rec__new(out, "integrations.deal.recorded",
                                  job->tenant, prov, job->account_id, &pk);
        /* The fields below, then observed_ms (rec__finish). */
        msgpack_pack_map(&pk,
                         9 + (d->closed_ms ? 1 : 0) + (d->won >= 0 ? 1 : 0));
        ig_kv_str(&pk, "provider", prov);
        ig_kv_str(&pk, "account_id", job->account_id);
        ig_kv_str(&pk, "deal_id", d->deal_id);
        ig_kv_str(&pk, "contact_id", d->contact_id);
        ig_kv_str(&pk, "stage", d->stage);
        ig_kv_int(&pk, "amount_minor", d->amount_minor);
        ig_kv_str(&pk, "currency", d->currency);
        ig_kv_time(&pk, "created_at", d->created_ms);
        if (d->closed_ms)
                ig_kv_time(&pk, "closed_at", d->closed_ms);
        if (d->won >= 0) {
                codec_pack_str(&pk, "won");
                if (d->won)
                        msgpack_pack_true(&pk);
                else
                        msgpack_pack_false(&pk);
        }
        rec__finish(out, r, &pk, prov, job->account_id, d->deal_id, NULL,
                    d->created_ms);
}

void ig_rec_summary(ig_records_t *out, const ig_job_t *job,
                    const ig_summary_t *s) {
        const char *prov = job_provider(job);
        msgpack_packer pk;
        ig_record_t *r = rec__new(out, "integrations.summary.recorded",
                                  job->tenant, prov, job->account_id, &pk);
        char day[11];
        ig_day_format(s->day, day);
        msgpack_pack_map(&pk, 9);
        ig_kv_str(&pk, "provider", prov);
        ig_kv_str(&pk, "account_id", job->account_id);
        ig_kv_day(&pk, "day", s->day);
        ig_kv_str(&pk, "currency", s->currency);
        ig_kv_int(&pk, "spend_minor", s->spend_minor);
        ig_kv_int(&pk, "revenue_minor", s->revenue_minor);
        ig_kv_int(&pk, "orders", s->orders);
        ig_kv_int(&pk, "new_customers", s->new_customers);
        rec__finish(out, r, &pk, prov, job->account_id, "summary", day,
                    ig_day_start_ms(s->day));
}

void ig_rec_event(ig_records_t *out, const char *type, const char *tenant,
                  const char *provider, const char *account_id,
                  const char *identity, int64_t time_ms,
                  const msgpack_sbuffer *body) {
        msgpack_packer pk;
        ig_record_t *r = rec__new(out, type, tenant, provider, account_id, &pk);
        char seed[512];
        msgpack_sbuffer_write(&r->body, body->data, body->size);
        snprintf(seed, sizeof(seed), "%s|%s", type, identity);
        ig_record_id(time_ms, seed, r->id);
}
