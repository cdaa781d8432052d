/*
 * integrations.c - `omnify integrations`: the integrations group's
 * maintenance (see integrations.h).
 *
 *   omnify integrations rekey [--dry-run]
 *
 * Re-encrypts every connection's credentials (and every pending OAuth
 * state's PKCE verifier) under the first key of
 * OMNIFY_INTEGRATIONS_TOKEN_KEYS, reading them with whichever configured
 * key made them. Each record is replaced only if its ciphertext is still
 * the one read (a refresh that stored new credentials meanwhile already
 * used the new key), so the tool may run while the group runs. It prints
 * how many records were re-encrypted, already current, or unreadable
 * (their key is not configured: those connections need connecting again).
 * Nothing it prints holds a secret.
 */
#include "integrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conns.h"
#include "ig.h"
#include "log.h"
#include "store.h"
#include "vault.h"

typedef struct rekey {
        store_t *store;
        ig_vault_t *vault;
        bool dry_run;
        const char *coll, *field;
        long done, current, unreadable, raced;
} rekey_t;

/* The additional data a record's sealed field was bound to. */
static bool rekey__aad(const rekey_t *r, const bson_t *doc, char *aad,
                       size_t size) {
        const char *id = ig_bson_str(doc, "_id");
        if (!id)
                return false;
        if (strcmp(r->coll, IG_COLL_CONNS) == 0) {
                const char *tenant = ig_bson_str(doc, "tenant");
                const char *prov = ig_bson_str(doc, "provider");
                if (!tenant || !prov)
                        return false;
                ig_conn_aad(id, tenant, prov, aad, size);
        } else {
                snprintf(aad, size, "oauth-state|%s", id);
        }
        return true;
}

static bool rekey__one(const bson_t *doc, void *arg) {
        rekey_t *r = arg;
        const char *kid = ig_vault_kid_of(doc, r->field);
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, old;
        bson_iter_t it;
        char aad[512], errstr[256], *plain = NULL;
        size_t len = 0;
        int64_t matched = 0;

        if (!kid)
                return true; /* nothing sealed (disconnected) */
        if (strcmp(kid, ig_vault_kid(r->vault)) == 0) {
                r->current++;
                return true;
        }
        if (!rekey__aad(r, doc, aad, sizeof(aad)) ||
            ig_vault_open(r->vault, aad, doc, r->field, &plain, &len) !=
                    IG_OK) {
                r->unreadable++;
                fprintf(stderr,
                        "%s %s: sealed under key '%s', which is not "
                        "configured (or the record is damaged)\n",
                        r->coll, ig_bson_str(doc, "_id"), kid);
                return true;
        }
        if (r->dry_run) {
                ig_vault_free(plain, len);
                r->done++;
                return true;
        }
        /* Replace only the ciphertext we read. */
        BSON_APPEND_UTF8(&filter, "_id", ig_bson_str(doc, "_id"));
        if (bson_iter_init_find(&it, doc, r->field) &&
            BSON_ITER_HOLDS_DOCUMENT(&it)) {
                const uint8_t *data;
                uint32_t n;
                char key[64];
                bson_iter_document(&it, &n, &data);
                bson_init_static(&old, data, n);
                snprintf(key, sizeof(key), "%s", r->field);
                BSON_APPEND_DOCUMENT(&filter, key, &old);
        }
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        ig_vault_seal(r->vault, aad, plain, len, &set, r->field);
        bson_append_document_end(&update, &set);
        ig_vault_free(plain, len);
        if (store_update(r->store, IG_DB, r->coll, &filter, &update, 0,
                         &matched, errstr, sizeof(errstr)) > STORE_NOT_FOUND) {
                fprintf(stderr, "%s %s: %s\n", r->coll, ig_bson_str(doc, "_id"),
                        errstr);
                r->unreadable++;
        } else if (matched) {
                r->done++;
        } else {
                r->raced++; /* renewed meanwhile: under the new key already */
        }
        bson_destroy(&filter);
        bson_destroy(&update);
        return true;
}

static int rekey(const config_t *cfg, const ig_settings_t *set, bool dry_run) {
        char errstr[512];
        rekey_t r = {0};
        static const char *const what[][2] = {{IG_COLL_CONNS, "creds"},
                                              {"oauth_states", "verifier"}};
        int status = 0;

        r.dry_run = dry_run;
        if (!(r.vault =
                      ig_vault_new(set->token_keys, errstr, sizeof(errstr)))) {
                fprintf(stderr,
                        "omnify integrations rekey: "
                        "OMNIFY_INTEGRATIONS_TOKEN_KEYS: %s\n",
                        errstr[0] ? errstr : "no key is configured");
                return 2;
        }
        if (!(r.store = store_new(cfg, "omnify-integrations-rekey", errstr,
                                  sizeof(errstr)))) {
                fprintf(stderr, "omnify integrations rekey: %s\n", errstr);
                ig_vault_destroy(r.vault);
                return 1;
        }
        for (size_t i = 0; i < 2; i++) {
                bson_t filter = BSON_INITIALIZER, ex;
                char key[64];
                snprintf(key, sizeof(key), "%s.kid", what[i][1]);
                BSON_APPEND_DOCUMENT_BEGIN(&filter, key, &ex);
                BSON_APPEND_BOOL(&ex, "$exists", true);
                bson_append_document_end(&filter, &ex);
                r.coll = what[i][0];
                r.field = what[i][1];
                if (store_find(r.store, IG_DB, r.coll, &filter, NULL,
                               rekey__one, &r, errstr, sizeof(errstr))) {
                        fprintf(stderr, "omnify integrations rekey: %s: %s\n",
                                r.coll, errstr);
                        status = 1;
                }
                bson_destroy(&filter);
        }
        printf("%s %ld record(s) under key '%s'; %ld already under it; %ld "
               "renewed meanwhile; %ld unreadable\n",
               dry_run ? "would re-encrypt" : "re-encrypted", r.done,
               ig_vault_kid(r.vault), r.current, r.raced, r.unreadable);
        store_destroy(r.store);
        ig_vault_destroy(r.vault);
        return status ? status : r.unreadable ? 3 : 0;
}

int integrations_main(int argc, char **argv) {
        static const config_table_t *const tables[] = {&ig_settings, NULL};
        config_t cfg;
        int argi = 1, status;
        bool dry_run = false;
        const char *verb;

        config_load_tables_or_exit(&cfg, CONFIG_SCOPE_TOOL, tables,
                                   "omnify integrations", argc, argv, &argi);
        log_init((log_level_t)cfg.log_level, "omnify-integrations");
        verb = argi < argc ? argv[argi] : NULL;
        for (int i = argi + 1; i < argc; i++)
                if (strcmp(argv[i], "--dry-run") == 0)
                        dry_run = true;
        if (!verb || strcmp(verb, "rekey") != 0) {
                fprintf(stderr,
                        "usage: omnify integrations rekey [--dry-run]\n");
                config_deinit(&cfg);
                return 2;
        }
        status = rekey(&cfg, config_values(&cfg, &ig_settings), dry_run);
        config_deinit(&cfg);
        return status;
}
