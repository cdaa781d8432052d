/*
 * mail.c - mail requests for the outbox (see mail.h).
 */
#include "mail.h"

#include <jansson.h>
#include <stddef.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "metrics.h"

#define MAIL_PATH "/v3/mail/send"
#define MAIL_URL_MAX 600
#define MAIL_POLICY                                                    \
        ((outbox_policy_t){.backoff = {1000, 5 * 60 * 1000},           \
                           .give_up_after_ms = 3LL * 24 * 3600 * 1000, \
                           .timeout_ms = 10000,                        \
                           .connect_timeout_ms = 2000,                 \
                           .max_response_bytes = 64 * 1024})

#define MOFF(f) offsetof(mail_settings_t, f)

static const config_row_t mail_rows[] = {
        {"OMNIFY_MAIL_BASE_URL", CONFIG_STRING, MOFF(base_url), 0, 1, 512,
         "https://api.sendgrid.com", NULL, 0,
         "Base URL of the mail API (SendGrid v3 mail-send)."},
        {"OMNIFY_MAIL_API_KEY", CONFIG_STRING, MOFF(api_key), 0, 0, 512, "",
         NULL, 1,
         "Bearer key of the mail API; empty: mails wait in the outbox."},
        {"OMNIFY_MAIL_FROM", CONFIG_STRING, MOFF(from), 0, 3, 254,
         "no-reply@omnify.local", NULL, 0, "Sender address of mails."},
};

const config_table_t mail_settings = {
        "mail",
        mail_rows,
        sizeof(mail_rows) / sizeof(mail_rows[0]),
        sizeof(mail_settings_t),
};

struct mail {
        char url[MAIL_URL_MAX];
        char *api_key;
        char *from;
        metrics_counter_t *sent, *failed, *queued;
};

mail_t *mail_new(const mail_opts_t *opts, char *errstr, size_t errlen) {
        const char *base = opts->base_url ? opts->base_url : "";
        size_t len = strlen(base);
        char labels[128];
        mail_t *m;

        while (len && base[len - 1] == '/')
                len--;
        if (len + sizeof(MAIL_PATH) > MAIL_URL_MAX || !opts->from ||
            !*opts->from) {
                snprintf(errstr, errlen, "mail: bad base URL or sender");
                return NULL;
        }
        m = xcalloc(1, sizeof(*m));
        snprintf(m->url, sizeof(m->url), "%.*s%s", (int)len, base, MAIL_PATH);
        if (!httpc_url_parts(m->url, NULL, 0, NULL, 0)) {
                snprintf(errstr, errlen, "mail: the base URL is not http(s)");
                free(m);
                return NULL;
        }
        m->api_key = xstrdup(opts->api_key ? opts->api_key : "");
        m->from = xstrdup(opts->from);
        snprintf(labels, sizeof(labels), "group=\"%s\"",
                 opts->group ? opts->group : "");
        m->sent = metrics_counter("omnify_mail_sent_total",
                                  "Mails the mail API accepted.", labels);
        m->failed = metrics_counter("omnify_mail_failed_total",
                                    "Mails given up for good (rejected by "
                                    "the mail API, or retried too long).",
                                    labels);
        m->queued = metrics_gauge("omnify_mail_queued",
                                  "Mails waiting in the outbox (sum over "
                                  "processes).",
                                  labels);
        return m;
}

void mail_destroy(mail_t *m) {
        if (!m)
                return;
        OPENSSL_cleanse(m->api_key, strlen(m->api_key));
        free(m->api_key);
        free(m->from);
        free(m);
}

bool mail_enabled(const mail_t *m) {
        return m->api_key[0] != '\0';
}

/* The key goes on at send time only. */
static bool mail__prepare(void *arg, const bson_t *record,
                          httpc_headers_t *headers) {
        mail_t *m = arg;
        char auth[600];
        bool ok;

        (void)record;
        if (!mail_enabled(m) || strlen(m->api_key) > 512)
                return false;
        snprintf(auth, sizeof(auth), "Bearer %s", m->api_key);
        ok = httpc_headers_add(headers, "Authorization", auth);
        OPENSSL_cleanse(auth, sizeof(auth));
        return ok;
}

outbox_kind_t mail_kind(mail_t *m) {
        return (outbox_kind_t){.name = MAIL_KIND,
                               .prepare = mail__prepare,
                               .arg = m,
                               .sent = m->sent,
                               .failed = m->failed,
                               .queued = m->queued};
}

/* The SendGrid v3 mail-send body, or NULL (a string that is not UTF-8). */
static char *mail__body(const mail_t *m, const mail_message_t *msg) {
        json_t *root =
                json_pack("{s:[{s:[{s:s}]}], s:{s:s}, s:s, s:[{s:s, s:s}]}",
                          "personalizations", "to", "email", msg->to, "from",
                          "email", m->from, "subject", msg->subject, "content",
                          "type", "text/plain", "value", msg->text);
        char *out;

        if (!root)
                return NULL;
        out = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return out;
}

outbox_err_t mail_enqueue(const mail_t *m, outbox_t *ob, const char *id,
                          const mail_message_t *msg,
                          const outbox_report_t *report, char *errstr,
                          size_t errlen) {
        httpc_headers_t headers = HTTPC_HEADERS_INIT;
        outbox_request_t req = {0};
        bson_t extra = BSON_INITIALIZER;
        char *body;
        outbox_err_t err;

        if (!msg->to || !msg->subject || !msg->text ||
            !(body = mail__body(m, msg))) {
                snprintf(errstr, errlen,
                         "mail: a field is missing or not "
                         "UTF-8");
                return OUTBOX_BAD_REQUEST;
        }
        httpc_headers_add(&headers, "Content-Type", "application/json");
        BSON_APPEND_UTF8(&extra, "to", msg->to);
        req.id = id;
        req.kind = MAIL_KIND;
        req.method = "POST";
        req.url = m->url;
        req.route = MAIL_PATH;
        req.headers = &headers;
        req.body = slice_of(body);
        req.policy = MAIL_POLICY;
        req.drop_body = true; /* the text may hold a single-use link */
        req.extra = &extra;
        if (report)
                req.report = *report;
        err = outbox_enqueue(ob, &req, errstr, errlen);
        OPENSSL_cleanse(body, strlen(body));
        free(body);
        httpc_headers_deinit(&headers);
        bson_destroy(&extra);
        return err;
}
