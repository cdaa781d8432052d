/*
 * mail.h - mail through the outbox, in the SendGrid v3 mail-send shape.
 *
 * A group that sends mail (auth's verification links, onboarding's
 * reminders, analytics' scheduled reports) adds the "mail" kind to its
 * outbox and queues mails with mail_enqueue. The request is built here
 * once: POST <base_url>/v3/mail/send with {personalizations: [{to:
 * [{email}]}], from: {email}, subject, content: [{type: "text/plain",
 * value}]}; the API key is added only at send time (never stored), and the
 * mail's text (which may hold a single-use link) is dropped from the record
 * once the outcome is final. Records carry the recipient as a top-level
 * field "to" for the group's own lookups.
 *
 * Settings: a group that sends mail lists mail_settings among its tables
 * (group_def_t.settings) and reads them with runtime_settings(): the base
 * URL, the API key (an empty key holds mail in the outbox) and the sender
 * address. Several groups of one process share the one table.
 *
 * Metrics, labelled by group: omnify_mail_sent_total,
 * omnify_mail_failed_total, omnify_mail_queued (this process's queued minus
 * finished; the sum over processes is the backlog).
 *
 * Thread-safety: mail_enqueue may be called from any thread.
 */
#ifndef OMNIFY_MAIL_H
#define OMNIFY_MAIL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "outbox.h"

#define MAIL_KIND "mail"

/* The values of mail_settings. */
typedef struct mail_settings {
        char *base_url; /* OMNIFY_MAIL_BASE_URL */
        char *api_key;  /* OMNIFY_MAIL_API_KEY (secret) */
        char *from;     /* OMNIFY_MAIL_FROM */
} mail_settings_t;

/* The mail settings' table (owner "mail"). */
extern const config_table_t mail_settings;

typedef struct mail_opts {
        const char *base_url; /* e.g. "https://api.sendgrid.com" */
        const char *api_key;  /* Bearer key; "": nothing is sent */
        const char *from;     /* the sender address */
        const char *group;    /* metrics label */
} mail_opts_t;

typedef struct mail mail_t;

/* opts is copied. NULL and errstr on a bad base URL. */
mail_t *mail_new(const mail_opts_t *opts, char *errstr, size_t errlen);

/* Wipe the key and free. NULL ok. Destroy the outbox using it first. */
void mail_destroy(mail_t *m);

/* The outbox kind "mail", for the outbox's kinds table (which must
 * outlive the outbox; m too). */
outbox_kind_t mail_kind(mail_t *m);

/* An API key is configured; without one, make the outbox hold (mails wait
 * in it until a process with a key sends them). */
bool mail_enabled(const mail_t *m);

typedef struct mail_message {
        const char *to;      /* one recipient address */
        const char *subject; /* UTF-8 */
        const char *text;    /* plain text, UTF-8 */
} mail_message_t;

/*
 * Queue msg under id (e.g. "<command id>.<what>": one mail per command and
 * purpose) in ob, whose kinds include mail_kind(m). OUTBOX_EXISTS when a
 * mail was queued under id already (kept as it was). report may be NULL.
 */
outbox_err_t mail_enqueue(const mail_t *m, outbox_t *ob, const char *id,
                          const mail_message_t *msg,
                          const outbox_report_t *report, char *errstr,
                          size_t errlen);

#endif
