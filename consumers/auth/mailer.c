/*
 * mailer.c - auth's mail: its outbox of mails and what auth asks of it.
 *
 * A handler that wants a mail sent queues it (auth_mail_enqueue) as part of
 * its own work: once the command is handled the mail is durable, and
 * nothing accepted is lost when the mail provider is down. The outbox
 * (shared/outbox.h) and its mail kind (shared/mail.h, the SendGrid v3
 * mail-send shape) do the rest: a sender thread per auth process claims due
 * mails under a lease, posts them to the mail base URL, retries with
 * backoff (5xx, 429, 408, 425 and connection errors; 1 s doubling to 5
 * minutes, for 3 days at most), gives up on other 4xx answers, and drops
 * the text (a single-use link) once a mail is sent or failed. An empty
 * mail_api_key holds the mails in the outbox.
 *
 * What is auth's here: the collection (<prefix>auth.mail_outbox, indexes
 * mail_due and mail_expiry), the outbox ids (<command id>.<kind>), and the
 * choice of the mail settings (shared/mail.h's table: OMNIFY_MAIL_BASE_URL,
 * OMNIFY_MAIL_API_KEY, OMNIFY_MAIL_FROM, listed in auth's group_def_t).
 */
#include <stdio.h>
#include <stdlib.h>

#include "auth_internal.h"
#include "mail.h"
#include "outbox.h"

void auth_mail_id(slice_t cmd_id, const char *kind,
                  char out[AUTH_MAIL_ID_MAX]) {
        snprintf(out, AUTH_MAIL_ID_MAX, "%.*s.%s",
                 (int)(cmd_id.len > 64 ? 64 : cmd_id.len), cmd_id.ptr, kind);
}

/* Outbox results as the store errors auth's handlers speak. */
static store_err_t mailer__err(outbox_err_t err) {
        switch (err) {
        case OUTBOX_OK:
        case OUTBOX_EXISTS:
                return STORE_OK;
        case OUTBOX_NOT_FOUND:
                return STORE_NOT_FOUND;
        case OUTBOX_STORE_DOWN:
                return STORE_UNAVAILABLE;
        default:
                return STORE_ERROR;
        }
}

store_err_t auth_mail_queued(auth_state_t *st, const char *mail_id,
                             char *errstr, size_t errlen) {
        bson_t found;
        outbox_err_t err = outbox_find(st->mailer->outbox, mail_id, &found,
                                       errstr, errlen);
        if (err == OUTBOX_OK)
                bson_destroy(&found);
        return mailer__err(err);
}

store_err_t auth_mail_enqueue(auth_state_t *st, const char *id, const char *to,
                              const char *subject, const char *text,
                              char *errstr, size_t errlen) {
        mail_message_t msg = {to, subject, text};
        return mailer__err(mail_enqueue(st->mailer->mail, st->mailer->outbox,
                                        id, &msg, NULL, errstr, errlen));
}

auth_mailer_t *auth_mailer_start(auth_state_t *st, runtime_t *rt, char *errstr,
                                 size_t errlen) {
        (void)st;
        /* The runtime sends through the process's client and stops the
         * outbox before auth_mailer_stop frees the mail kind's state. */
        return runtime_mailbox_new(rt, "mail", errstr, errlen);
}

void auth_mailer_stop(auth_mailer_t *m) {
        runtime_mailbox_free(m);
}
