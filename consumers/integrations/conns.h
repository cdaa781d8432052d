/*
 * conns.h - connections in the store: read with their credentials
 * decrypted, made or renewed from a grant, credentials kept fresh under a
 * per-connection lock, and marked when the provider refuses them.
 *
 * The refresh lock is a lease in the connection's own record
 * (lease_until, lease_owner) taken with one find-and-modify: of two syncs
 * (two workers or two processes) that both find a token near its expiry,
 * one refreshes and stores the result while the other waits and then reads
 * the new token, so a rotating refresh token is never used twice.
 *
 * Thread-safety: any thread.
 */
#ifndef OMNIFY_IG_CONNS_H
#define OMNIFY_IG_CONNS_H

#include "connector.h"

#define IG_COLL_CONNS "connections"

typedef struct ig_conn {
        bson_t doc; /* the record as read */
        char id[IG_ID_TEXT];
        char tenant[128];
        ig_provider_t provider;
        const ig_connector_t *c;
        char account_id[256];
        char account_name[256];
        char shop[256];
        char currency[8];
        char status[24];
        json_t *extra;
        ig_creds_t creds;
        bool has_creds;
} ig_conn_t;

/* The connection id of tenant (NULL: any tenant; internal commands) into
 * *out; with_creds decrypts its credentials. IG_GONE when there is no such
 * connection for that tenant. */
ig_err_t ig_conn_load(ig_state_t *st, const char *id, const char *tenant,
                      bool with_creds, ig_conn_t *out);
void ig_conn_clear(ig_conn_t *c);

/* The reply for a connection ig_conn_load did not give: 404 when it is not
 * the tenant's, else the error's. */
handler_result_t ig_conn_missing(rt_ctx_t *ctx, ig_err_t err);

/* A job over the connection (pointers into c; valid while c is). */
void ig_conn_job(ig_state_t *st, ig_conn_t *c, ig_job_t *job);

/* The additional data that binds a connection's sealed credentials. */
void ig_conn_aad(const char *id, const char *tenant, const char *provider,
                 char *out, size_t size);

/*
 * Make sure job->creds (c's) are good to use: when they expire within the
 * margin, or when force (the provider just refused them), refresh them
 * under the lease and store them. *refreshed says whether this call did.
 * IG_OK; IG_AUTH when they cannot be renewed (then the caller marks the
 * connection); IG_TRANSIENT and friends from the provider.
 */
ig_err_t ig_conn_fresh(ig_state_t *st, ig_conn_t *c, ig_job_t *job, bool force,
                       bool *refreshed);

/*
 * Connect: make or renew the connection of (tenant, provider, account) with
 * the grant's credentials; status connected. *id receives its id, *created
 * whether it is new. grant_id groups the connections one consent made (a
 * revocation at the provider revokes them all).
 */
ig_err_t ig_conn_put(ig_state_t *st, const char *tenant, const char *user,
                     ig_provider_t provider, const ig_account_t *acct,
                     const ig_creds_t *creds, const char *auth,
                     const char *shop, const char *grant_id,
                     char id[IG_ID_TEXT], bool *created);

/* Mark a connected connection needs_reauth with a reason. true when this
 * call changed it (so the caller publishes once). */
bool ig_conn_invalidate(ig_state_t *st, const ig_conn_t *c, const char *reason);

/* An integrations.connection.* event of c into out: connection_id,
 * provider, account_id, and one more string field when extra_name is set;
 * its id derives from (type, c, at), at being the time that makes the
 * fact (when it connected, when the new token expires...). */
void ig_conn_event(ig_records_t *out, const ig_conn_t *c, const char *type,
                   const char *extra_name, const char *extra_value, int64_t at);

/* $set extra fields of a connection (bson built by the caller). */
ig_err_t ig_conn_update(ig_state_t *st, const char *id, const bson_t *set);

/* Pack a connection record as its reply shape (the schema's connection);
 * st as void * so it serves ig_reply_list. */
void ig_conn_pack(msgpack_packer *pk, const bson_t *doc, void *st);

#endif
