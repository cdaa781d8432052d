/*
 * settings.c - the auth group's own settings (see auth_internal.h): token
 * and link lifetimes, lock-out, MFA, links in mails, argon2. The mail API's
 * rows are the mail sender's (shared/mail.h: mail_settings), which auth
 * lists beside these.
 * The shared table keeps only what the edge shares with auth (the JWT
 * rows).
 */
#include <stddef.h>

#include "auth_internal.h"

#define AOFF(f) offsetof(auth_settings_t, f)

static const config_row_t auth_rows[] = {
        {"OMNIFY_REFRESH_TTL_S", CONFIG_INT, AOFF(refresh_ttl_s), 0, 300,
         31536000, "2592000", NULL, 0,
         "Lifetime of a session without use (refresh tokens)."},
        {"OMNIFY_VERIFY_TTL_S", CONFIG_INT, AOFF(verify_ttl_s), 0, 300, 2592000,
         "86400", NULL, 0, "Lifetime of email verification links."},
        {"OMNIFY_RESET_TTL_S", CONFIG_INT, AOFF(reset_ttl_s), 0, 300, 86400,
         "3600", NULL, 0, "Lifetime of password reset links."},
        {"OMNIFY_INVITE_TTL_S", CONFIG_INT, AOFF(invite_ttl_s), 0, 3600,
         2592000, "604800", NULL, 0,
         "Lifetime of invitations to an organisation."},
        {"OMNIFY_MFA_CHALLENGE_TTL_S", CONFIG_INT, AOFF(mfa_challenge_ttl_s), 0,
         30, 1800, "300", NULL, 0,
         "Lifetime of the challenge between password and second factor."},
        {"OMNIFY_LOGIN_MAX_FAILURES", CONFIG_INT, AOFF(login_max_failures), 0,
         1, 1000, "5", NULL, 0, "Failed logins in a row that lock an account."},
        {"OMNIFY_LOGIN_LOCK_S", CONFIG_INT, AOFF(login_lock_s), 0, 1, 86400,
         "900", NULL, 0, "How long a locked account stays locked."},
        {"OMNIFY_MFA_ISSUER", CONFIG_STRING, AOFF(mfa_issuer), 0, 1, 64,
         "Omnify", NULL, 0, "Issuer shown by authenticator apps."},
        {"OMNIFY_PUBLIC_URL", CONFIG_STRING, AOFF(public_url), 0, 1, 512,
         "http://localhost:8000", NULL, 0, "Base URL of links in mails."},
        {"OMNIFY_ARGON2_T_COST", CONFIG_INT, AOFF(argon2_t_cost), 0, 1, 64, "3",
         NULL, 0, "argon2id passes over memory."},
        {"OMNIFY_ARGON2_M_COST_KIB", CONFIG_INT, AOFF(argon2_m_cost_kib), 0, 8,
         4194304, "65536", NULL, 0, "argon2id memory in KiB."},
        {"OMNIFY_ARGON2_PARALLELISM", CONFIG_INT, AOFF(argon2_parallelism), 0,
         1, 16, "1", NULL, 0, "argon2id lanes."},
};

const config_table_t auth_settings = {
        "auth",
        auth_rows,
        sizeof(auth_rows) / sizeof(auth_rows[0]),
        sizeof(auth_settings_t),
};
