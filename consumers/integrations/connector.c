/*
 * connector.c - what connectors share that is not a call: grants, webhook
 * items and the callback's parameters (see connector.h).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "connector.h"

void ig_grant_add(ig_grant_t *g, const char *id, const char *name,
                  const char *currency, json_t *extra) {
        ig_account_t *a;
        g->accounts = xrealloc(g->accounts,
                               (g->n_accounts + 1) * sizeof(*g->accounts));
        a = &g->accounts[g->n_accounts++];
        a->id = xstrdup(id);
        a->name = xstrdup(name && *name ? name : id);
        a->currency = currency && *currency ? xstrdup(currency) : NULL;
        a->extra = extra;
}

void ig_grant_clear(ig_grant_t *g) {
        for (size_t i = 0; i < g->n_accounts; i++) {
                free(g->accounts[i].id);
                free(g->accounts[i].name);
                free(g->accounts[i].currency);
                json_decref(g->accounts[i].extra);
        }
        free(g->accounts);
        ig_creds_clear(&g->creds);
        memset(g, 0, sizeof(*g));
}

void ig_hook_add(ig_hook_t *h, const char *event_id, const char *account_id,
                 ig_hook_action_t action, json_t *payload) {
        ig_hook_item_t *it;
        h->items = xrealloc(h->items, (h->n_items + 1) * sizeof(*h->items));
        it = &h->items[h->n_items++];
        it->event_id = xstrdup(event_id ? event_id : "");
        it->account_id = xstrdup(account_id ? account_id : "");
        it->action = action;
        it->payload = payload;
}

void ig_hook_clear(ig_hook_t *h) {
        for (size_t i = 0; i < h->n_items; i++) {
                free(h->items[i].event_id);
                free(h->items[i].account_id);
                json_decref(h->items[i].payload);
        }
        free(h->items);
        h->items = NULL;
        h->n_items = 0;
}

slice_t ig_hook_field(const ig_hook_t *h, const char *name) {
        return codec_map_str(h->fields, name);
}

const char *ig_cb_get(const ig_callback_t *cb, const char *name, char *buf,
                      size_t size) {
        slice_t v = codec_map_str(cb->fields, name);
        if (!v.ptr)
                return NULL;
        ig_copy_slice(buf, size, v);
        return buf;
}
