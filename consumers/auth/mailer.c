/*
 * mailer.c - the mail outbox and its sender thread.
 *
 * A handler that wants a mail sent writes it to the outbox collection
 * (auth_mail_enqueue) as part of its own work: once the command is handled,
 * the mail is durable, and nothing accepted is lost when the mail provider is
 * down. One sender thread per auth process (auth_mailer_start) claims due
 * mails one at a time and posts them to the mail API in the SendGrid v3
 * mail-send shape, with libcurl, to the mail base URL (auth_settings).
 *
 * Collection <prefix>auth.mail_outbox:
 *   {_id (UUIDv7), to, subject, text, status ("queued", "sent", "failed"),
 *    attempts, next_attempt_at, lease_until, last_status, last_error,
 *    created_at, sent_at, failed_at, expires_at}
 * A queued mail is due when next_attempt_at and lease_until have passed. A
 * sender claims it by a compare-and-set update on (_id, status, attempts,
 * lease_until) that moves lease_until MAILER_LEASE_MS ahead and counts the
 * attempt, so two senders (several auth processes) never send one mail
 * twice; a sender that dies mid-send leaves a lease that simply runs out.
 * Once sent or failed for good the text (which holds a single-use link) is
 * removed and expires_at is set: a TTL index drops the record 7 days later.
 *
 * Outcomes: 2xx sent; 4xx other than 429 failed for good (no retry); 5xx,
 * 429 and connection errors retried with exponential backoff (1 s, 2 s, 4 s
 * ... capped at 5 minutes, with jitter), for MAILER_GIVE_UP_MS at most.
 * An empty mail_api_key disables sending: mails stay queued.
 *
 * Logs name the outbox id and the HTTP status, never the API key, the text
 * or the recipient.
 */
#include <assert.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "auth_internal.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"

#define MAILER_TICK_MS 500
#define MAILER_BATCH 50       /* claims per tick */
#define MAILER_LEASE_MS 60000 /* > curl's total timeout */
#define MAILER_CONNECT_TIMEOUT_MS 2000L
#define MAILER_TIMEOUT_MS 10000L
#define MAILER_BACKOFF_BASE_MS 1000
#define MAILER_BACKOFF_CAP_MS (5 * 60 * 1000)
#define MAILER_GIVE_UP_MS (3LL * 24 * 3600 * 1000) /* then: failed */
#define MAILER_KEEP_MS (7LL * 24 * 3600 * 1000)    /* sent/failed records */
#define MAILER_URL_MAX 600
#define MAILER_COLL "mail_outbox"

struct auth_mailer {
        auth_state_t *st;
        char url[MAILER_URL_MAX];
        pthread_t thread;
        pthread_mutex_t lock; /* guards kicked and the wait on wake */
        pthread_cond_t wake;  /* signalled by stop and by enqueue */
        bool kicked;          /* a mail was queued: drain again at once */
        atomic_bool stopping;
        CURLM *multi; /* the sender thread's; keeps connections alive */
        bool indexed;
        bool store_down_logged;
};

/* ---------------------------------------------------------------------------
 * Metrics, shared by the handler path (enqueue) and the sender
 * ------------------------------------------------------------------------ */

static metrics_counter_t *mailer__sent, *mailer__failed, *mailer__queued;
static pthread_once_t mailer__metrics_once = PTHREAD_ONCE_INIT;

static void mailer__metrics_init(void) {
        mailer__sent = metrics_counter("omnify_mail_sent_total",
                                       "Mails the mail API accepted.", "");
        mailer__failed = metrics_counter(
                "omnify_mail_failed_total",
                "Mails given up for good (rejected by the mail API, or "
                "retried too long).",
                "");
        /* Per process: mails this process queued minus those it finished;
         * the sum over the auth processes is the outbox's backlog. */
        mailer__queued = metrics_gauge(
                "omnify_mail_queued",
                "Mails waiting in the outbox (sum over auth processes).", "");
}

static void mailer__metrics(void) {
        pthread_once(&mailer__metrics_once, mailer__metrics_init);
}

static pthread_once_t mailer__curl_once = PTHREAD_ONCE_INIT;
static CURLcode mailer__curl_status = CURLE_OK;

static void mailer__curl_init(void) {
        mailer__curl_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------------
 * The outbox
 * ------------------------------------------------------------------------ */

void auth_mail_id(slice_t cmd_id, const char *kind,
                  char out[AUTH_MAIL_ID_MAX]) {
        snprintf(out, AUTH_MAIL_ID_MAX, "%.*s.%s",
                 (int)(cmd_id.len > 64 ? 64 : cmd_id.len), cmd_id.ptr, kind);
}

store_err_t auth_mail_queued(auth_state_t *st, const char *mail_id,
                             char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER, found;
        store_err_t err;
        BSON_APPEND_UTF8(&filter, "_id", mail_id);
        err = store_find_one(st->store, "auth", MAILER_COLL, &filter, NULL,
                             &found, errstr, errlen);
        bson_destroy(&filter);
        if (err == STORE_OK)
                bson_destroy(&found);
        return err;
}

store_err_t auth_mail_enqueue(auth_state_t *st, const char *id, const char *to,
                              const char *subject, const char *text,
                              char *errstr, size_t errlen) {
        bson_t doc = BSON_INITIALIZER;
        int64_t now = (int64_t)clock_wall_ms();
        store_err_t err;

        assert(st && id && to && subject && text);
        mailer__metrics();
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "to", to);
        BSON_APPEND_UTF8(&doc, "subject", subject);
        BSON_APPEND_UTF8(&doc, "text", text);
        BSON_APPEND_UTF8(&doc, "status", "queued");
        BSON_APPEND_INT64(&doc, "attempts", 0);
        BSON_APPEND_DATE_TIME(&doc, "next_attempt_at", now);
        BSON_APPEND_DATE_TIME(&doc, "lease_until", 0);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        err = store_insert(st->store, "auth", MAILER_COLL, &doc, errstr,
                           errlen);
        bson_destroy(&doc);
        if (err == STORE_DUPLICATE) {
                /* An earlier run of the same command queued it. */
                log_info("mail %s was queued already", id);
                return STORE_OK;
        }
        if (err)
                return err;
        metrics_add(mailer__queued, 1);
        log_info("mail %s queued", id);
        if (st->mailer) {
                /* Send now rather than at the next tick. */
                pthread_mutex_lock(&st->mailer->lock);
                st->mailer->kicked = true;
                pthread_cond_signal(&st->mailer->wake);
                pthread_mutex_unlock(&st->mailer->lock);
        }
        return STORE_OK;
}

/* Create the outbox's indexes; true when done (or not worth retrying). */
static bool mailer__indexes(auth_mailer_t *m) {
        static const store_index_t indexes[] = {
                {MAILER_COLL, "mail_due", "status,next_attempt_at", false, -1},
                {MAILER_COLL, "mail_expiry", "expires_at", false, 0},
                {NULL},
        };
        char errstr[256];
        store_err_t err = store_ensure_indexes(m->st->store, "auth", indexes,
                                               errstr, sizeof(errstr));

        if (err && store_err_transient(err))
                return false;
        if (err)
                log_error("mail outbox indexes: %s", errstr);
        return true;
}

/* A claimed mail: what the sender needs, copied out of the document. */
typedef struct mailer_mail {
        char id[AUTH_MAIL_ID_MAX];
        bson_t doc;
        int64_t attempts; /* including this one */
        int64_t lease_until;
        int64_t created_at;
} mailer_mail_t;

typedef enum mailer_claim {
        MAILER_CLAIMED,
        MAILER_NONE,  /* nothing due */
        MAILER_RACED, /* another sender took it: look again */
        MAILER_STORE_DOWN,
} mailer_claim_t;

static void mailer__store_failed(auth_mailer_t *m, const char *what,
                                 const char *errstr) {
        if (!m->store_down_logged)
                log_warn("mail outbox: %s: %s", what, errstr);
        m->store_down_logged = true;
}

/* Find one due mail and take its lease. */
static mailer_claim_t mailer__claim(auth_mailer_t *m, mailer_mail_t *mail) {
        store_t *store = m->st->store;
        int64_t now = (int64_t)clock_wall_ms();
        bson_t filter = BSON_INITIALIZER, cond, update, set, inc, found;
        char errstr[256];
        const char *id;
        store_err_t err;

        BSON_APPEND_UTF8(&filter, "status", "queued");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "next_attempt_at", &cond);
        BSON_APPEND_DATE_TIME(&cond, "$lte", now);
        bson_append_document_end(&filter, &cond);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_until", &cond);
        BSON_APPEND_DATE_TIME(&cond, "$lte", now);
        bson_append_document_end(&filter, &cond);
        err = store_find_one(store, "auth", MAILER_COLL, &filter, NULL, &found,
                             errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err && err != STORE_NOT_FOUND) {
                mailer__store_failed(m, "looking for due mails", errstr);
                return MAILER_STORE_DOWN;
        }
        m->store_down_logged = false;
        if (err == STORE_NOT_FOUND)
                return MAILER_NONE;
        id = auth_bson_str(&found, "_id");
        if (!id || strlen(id) >= sizeof(mail->id)) {
                /* Not ours to fix; leave it and look no further this tick. */
                log_error("mail outbox: a queued record has no usable _id");
                bson_destroy(&found);
                return MAILER_NONE;
        }
        snprintf(mail->id, sizeof(mail->id), "%s", id);
        mail->attempts = auth_bson_int(&found, "attempts", 0);
        mail->created_at = auth_bson_date(&found, "created_at");

        /* Compare-and-set on what we read: one sender wins. */
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", mail->id);
        BSON_APPEND_UTF8(&filter, "status", "queued");
        BSON_APPEND_INT64(&filter, "attempts", mail->attempts);
        /* The lease must still be free when the update applies, whatever
         * the find saw: a store may show a document half-way through a
         * concurrent update, and a compare on the value read would then
         * steal a live lease. */
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_until", &cond);
        BSON_APPEND_DATE_TIME(&cond, "$lte", now);
        bson_append_document_end(&filter, &cond);
        bson_init(&update);
        mail->lease_until = now + MAILER_LEASE_MS;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "lease_until", mail->lease_until);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "attempts", 1);
        bson_append_document_end(&update, &inc);
        err = store_update_one(store, "auth", MAILER_COLL, &filter, &update,
                               false, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND) {
                bson_destroy(&found);
                return MAILER_RACED;
        }
        if (err) {
                bson_destroy(&found);
                mailer__store_failed(m, "claiming a mail", errstr);
                return MAILER_STORE_DOWN;
        }
        mail->attempts++;
        bson_copy_to(&found, &mail->doc);
        bson_destroy(&found);
        return MAILER_CLAIMED;
}

typedef enum mailer_outcome {
        MAILER_SENT,
        MAILER_REJECTED, /* for good */
        MAILER_RETRY,
} mailer_outcome_t;

/* Record the outcome; only while we still hold the lease. */
static void mailer__record(auth_mailer_t *m, const mailer_mail_t *mail,
                           mailer_outcome_t outcome, long status,
                           const char *error, int64_t retry_in_ms) {
        int64_t now = (int64_t)clock_wall_ms();
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, unset;
        char errstr[256];
        store_err_t err;

        BSON_APPEND_UTF8(&filter, "_id", mail->id);
        BSON_APPEND_DATE_TIME(&filter, "lease_until", mail->lease_until);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_INT64(&set, "last_status", status);
        if (outcome == MAILER_RETRY) {
                BSON_APPEND_UTF8(&set, "last_error", error);
                BSON_APPEND_DATE_TIME(&set, "next_attempt_at",
                                      now + retry_in_ms);
                BSON_APPEND_DATE_TIME(&set, "lease_until", now);
                bson_append_document_end(&update, &set);
        } else {
                BSON_APPEND_UTF8(&set, "status",
                                 outcome == MAILER_SENT ? "sent" : "failed");
                BSON_APPEND_DATE_TIME(
                        &set, outcome == MAILER_SENT ? "sent_at" : "failed_at",
                        now);
                BSON_APPEND_DATE_TIME(&set, "expires_at", now + MAILER_KEEP_MS);
                if (error)
                        BSON_APPEND_UTF8(&set, "last_error", error);
                bson_append_document_end(&update, &set);
                /* The text holds a single-use link: keep it no longer. */
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
                BSON_APPEND_UTF8(&unset, "text", "");
                if (outcome == MAILER_SENT)
                        BSON_APPEND_UTF8(&unset, "last_error", "");
                bson_append_document_end(&update, &unset);
        }
        err = store_update_one(m->st->store, "auth", MAILER_COLL, &filter,
                               &update, false, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND)
                log_warn("mail %s: lease lost before its outcome was recorded",
                         mail->id);
        else if (err)
                /* The lease runs out and the mail is tried again. */
                log_warn("mail %s: outcome not recorded: %s", mail->id, errstr);
        if (err || outcome == MAILER_RETRY)
                return;
        metrics_add(mailer__queued, -1);
        metrics_add(outcome == MAILER_SENT ? mailer__sent : mailer__failed, 1);
}

/* ---------------------------------------------------------------------------
 * The mail API
 * ------------------------------------------------------------------------ */

/* The SendGrid v3 mail-send body of a mail, or NULL (caller frees). */
static char *mailer__body(const auth_mailer_t *m, const bson_t *doc) {
        const char *to = auth_bson_str(doc, "to");
        const char *subject = auth_bson_str(doc, "subject");
        const char *text = auth_bson_str(doc, "text");
        json_t *root;
        char *out;

        if (!to || !subject || !text)
                return NULL;
        /* json_pack fails (NULL) on strings that are not UTF-8. */
        root = json_pack("{s:[{s:[{s:s}]}], s:{s:s}, s:s, s:[{s:s, s:s}]}",
                         "personalizations", "to", "email", to, "from", "email",
                         m->st->set->mail_from, "subject", subject, "content",
                         "type", "text/plain", "value", text);
        if (!root)
                return NULL;
        out = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return out;
}

static size_t mailer__discard(char *ptr, size_t size, size_t n, void *ud) {
        (void)ptr;
        (void)ud;
        return size * n;
}

/*
 * POST body to the mail API. Returns the transfer's CURLcode (CURLE_OK
 * and *status on an answer); CURLE_ABORTED_BY_CALLBACK when the mailer is
 * stopping. Runs the transfer on the thread's multi handle so that stop
 * (curl_multi_wakeup) interrupts it at once.
 */
static CURLcode mailer__post(auth_mailer_t *m, const char *body, long *status) {
        char auth[600];
        struct curl_slist *headers = NULL, *h;
        CURL *curl;
        CURLMsg *msg;
        CURLcode rc = CURLE_FAILED_INIT;
        int running = 1, left;

        *status = 0;
        if (!(curl = curl_easy_init()))
                return CURLE_FAILED_INIT;
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
                 m->st->set->mail_api_key);
        if (!(h = curl_slist_append(headers, auth)))
                goto done;
        headers = h;
        if (!(h = curl_slist_append(headers, "Content-Type: application/json")))
                goto done;
        headers = h;
        curl_easy_setopt(curl, CURLOPT_URL, m->url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)strlen(body));
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                         MAILER_CONNECT_TIMEOUT_MS);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, MAILER_TIMEOUT_MS);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, mailer__discard);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "omnify-auth-mailer");
        if (curl_multi_add_handle(m->multi, curl) != CURLM_OK)
                goto done;
        while (running) {
                if (curl_multi_perform(m->multi, &running) != CURLM_OK)
                        break;
                if (!running)
                        break;
                if (atomic_load(&m->stopping)) {
                        rc = CURLE_ABORTED_BY_CALLBACK;
                        break;
                }
                curl_multi_poll(m->multi, NULL, 0, 200, NULL);
        }
        while ((msg = curl_multi_info_read(m->multi, &left)))
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl)
                        rc = msg->data.result;
        if (rc == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
        curl_multi_remove_handle(m->multi, curl);
done:
        /* The header list holds the key: wipe it before it is freed. */
        for (h = headers; h; h = h->next)
                OPENSSL_cleanse(h->data, strlen(h->data));
        OPENSSL_cleanse(auth, sizeof(auth));
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        return rc;
}

/* 1 s, 2 s, 4 s ... capped at 5 minutes, each within +-25 %. */
static int64_t mailer__backoff_ms(int64_t attempts) {
        int64_t delay = MAILER_BACKOFF_BASE_MS;
        uint32_t r;
        for (int64_t i = 1; i < attempts && delay < MAILER_BACKOFF_CAP_MS; i++)
                delay *= 2;
        if (delay > MAILER_BACKOFF_CAP_MS)
                delay = MAILER_BACKOFF_CAP_MS;
        msgid_random(&r, sizeof(r));
        delay = delay * 3 / 4 + (int64_t)(r % (uint32_t)(delay / 2 + 1));
        return delay > MAILER_BACKOFF_CAP_MS ? MAILER_BACKOFF_CAP_MS : delay;
}

/* Send one claimed mail and record what happened. */
static void mailer__send(auth_mailer_t *m, const mailer_mail_t *mail) {
        char *body = mailer__body(m, &mail->doc);
        char error[128];
        long status = 0;
        CURLcode rc;
        int64_t delay;

        if (!body) {
                log_error("mail %s: cannot be encoded; given up", mail->id);
                mailer__record(m, mail, MAILER_REJECTED, 0,
                               "the record cannot be encoded", 0);
                return;
        }
        rc = mailer__post(m, body, &status);
        free(body);
        if (rc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&m->stopping))
                return; /* stopping: the lease runs out, a sender retries */
        if (rc == CURLE_OK && status >= 200 && status < 300) {
                log_info("mail %s sent (HTTP %ld, attempt %lld)", mail->id,
                         status, (long long)mail->attempts);
                mailer__record(m, mail, MAILER_SENT, status, NULL, 0);
                return;
        }
        if (rc == CURLE_OK && status >= 400 && status < 500 && status != 429) {
                snprintf(error, sizeof(error), "rejected: HTTP %ld", status);
                log_error("mail %s rejected by the mail API (HTTP %ld); "
                          "given up",
                          mail->id, status);
                mailer__record(m, mail, MAILER_REJECTED, status, error, 0);
                return;
        }
        if (rc == CURLE_OK)
                snprintf(error, sizeof(error), "HTTP %ld", status);
        else
                snprintf(error, sizeof(error), "%s", curl_easy_strerror(rc));
        if (mail->created_at &&
            (int64_t)clock_wall_ms() - mail->created_at > MAILER_GIVE_UP_MS) {
                log_error("mail %s not sent (%s) after %lld attempts; given up",
                          mail->id, error, (long long)mail->attempts);
                mailer__record(m, mail, MAILER_REJECTED, status, error, 0);
                return;
        }
        delay = mailer__backoff_ms(mail->attempts);
        log_warn("mail %s not sent (%s), attempt %lld; next in %lld ms",
                 mail->id, error, (long long)mail->attempts, (long long)delay);
        mailer__record(m, mail, MAILER_RETRY, status, error, delay);
}

/* ---------------------------------------------------------------------------
 * The sender thread
 * ------------------------------------------------------------------------ */

static void mailer__drain(auth_mailer_t *m) {
        for (int i = 0; i < MAILER_BATCH && !atomic_load(&m->stopping); i++) {
                mailer_mail_t mail;
                mailer_claim_t claim = mailer__claim(m, &mail);
                if (claim == MAILER_RACED)
                        continue;
                if (claim != MAILER_CLAIMED)
                        return;
                mailer__send(m, &mail);
                bson_destroy(&mail.doc);
        }
}

static void *mailer__main(void *arg) {
        auth_mailer_t *m = arg;
        bool disabled = !m->st->set->mail_api_key[0];

        log_set_group("auth");
        if (disabled)
                log_warn("mail is disabled (OMNIFY_MAIL_API_KEY is empty): "
                         "mails stay queued in the outbox");
        while (!atomic_load(&m->stopping)) {
                struct timespec ts;
                if (store_is_up(m->st->store)) {
                        if (!m->indexed)
                                m->indexed = mailer__indexes(m);
                        if (!disabled)
                                mailer__drain(m);
                }
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += MAILER_TICK_MS * 1000000L;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
                pthread_mutex_lock(&m->lock);
                if (!m->kicked && !atomic_load(&m->stopping))
                        pthread_cond_timedwait(&m->wake, &m->lock, &ts);
                m->kicked = false;
                pthread_mutex_unlock(&m->lock);
        }
        log_context_clear();
        return NULL;
}

static void mailer__free(auth_mailer_t *m) {
        if (m->multi)
                curl_multi_cleanup(m->multi);
        pthread_cond_destroy(&m->wake);
        pthread_mutex_destroy(&m->lock);
        free(m);
}

auth_mailer_t *auth_mailer_start(auth_state_t *st, char *errstr,
                                 size_t errlen) {
        auth_mailer_t *m;
        pthread_condattr_t attr;
        const char *base = st->set->mail_base_url;
        size_t len = strlen(base);

        mailer__metrics();
        pthread_once(&mailer__curl_once, mailer__curl_init);
        if (mailer__curl_status != CURLE_OK) {
                snprintf(errstr, errlen, "libcurl: %s",
                         curl_easy_strerror(mailer__curl_status));
                return NULL;
        }
        while (len && base[len - 1] == '/')
                len--;
        m = xcalloc(1, sizeof(*m));
        m->st = st;
        atomic_init(&m->stopping, false);
        snprintf(m->url, sizeof(m->url), "%.*s/v3/mail/send", (int)len, base);
        pthread_mutex_init(&m->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&m->wake, &attr);
        pthread_condattr_destroy(&attr);
        if (!(m->multi = curl_multi_init())) {
                snprintf(errstr, errlen, "libcurl: cannot create a handle");
                goto fail;
        }
        if (pthread_create(&m->thread, NULL, mailer__main, m)) {
                snprintf(errstr, errlen, "cannot start the mail sender");
                goto fail;
        }
        return m;
fail:
        mailer__free(m);
        return NULL;
}

void auth_mailer_stop(auth_mailer_t *m) {
        if (!m)
                return;
        pthread_mutex_lock(&m->lock);
        atomic_store(&m->stopping, true);
        pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->lock);
        curl_multi_wakeup(m->multi);
        pthread_join(m->thread, NULL);
        mailer__free(m);
}
