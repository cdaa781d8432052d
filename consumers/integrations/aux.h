/*
 * aux.h - what a connector keeps between the pages of a sync: campaign
 * names for analytics that only give ids (LinkedIn, TikTok), when Stripe
 * customers were created (a charge's customer is new when it was created
 * with it), engagement per Klaviyo profile. Records {_id:
 * "<connection>|<kind>|<key>", i (an integer), s (a string), expires_at}
 * in the collection aux, written in bulk (idempotent upserts: a page read
 * twice writes the same) and read back a page at a time.
 */
#ifndef OMNIFY_IG_AUX_H
#define OMNIFY_IG_AUX_H

#include "ig.h"

#define IG_AUX_KEEP_MS (8LL * 86400 * 1000)

typedef struct ig_aux_item {
        const char *key;
        int64_t i;
        const char *s; /* may be NULL */
} ig_aux_item_t;

/* Upsert the n items of kind for the connection. */
ig_err_t ig_aux_put(ig_state_t *st, const char *conn, const char *kind,
                    const ig_aux_item_t *items, size_t n);

/* For each of the n keys: found[k] tells whether it is there; ints[k] and
 * strs[k] (new strings, caller frees; may be NULL arrays) its values. */
ig_err_t ig_aux_get(ig_state_t *st, const char *conn, const char *kind,
                    const char *const *keys, size_t n, bool *found,
                    int64_t *ints, char **strs);

#endif
