/*
 * facts.c - the table of edge facts (see facts.h).
 *
 * One slot per declared fact, each under its own lock. A deny slot is a
 * chained hash table of claim values with the time they stop being
 * refused; entries past that time are swept when the table grows past
 * FACTS_SWEEP_AT, so it holds about what one token lifetime of events
 * denies. A version slot is one integer that only goes up. Reading events
 * and query replies is the schema's job (schema_fact_read): this file only
 * keeps what they say.
 */
#include "facts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hash.h"

#define FACTS_BUCKETS 4096
#define FACTS_SWEEP_AT 20000
#define FACTS_DEFAULT_DENY_S 86400

typedef struct facts_entry {
        struct facts_entry *next;
        uint64_t hash;
        uint64_t until_ms;
        size_t len;
        char key[]; /* len bytes */
} facts_entry_t;

typedef struct facts_slot {
        const schema_fact_t *fact;
        pthread_mutex_t lock;    /* guards buckets, n_entries, version */
        facts_entry_t **buckets; /* deny */
        size_t n_entries;
        int64_t version; /* version: -1 unknown */
        size_t query;    /* version: index in queries, or SIZE_MAX */
} facts_slot_t;

struct facts {
        facts_slot_t *slots;
        size_t n_slots;
        char **groups;
        size_t n_groups;
        const schema_fact_t **queries; /* one fact per distinct query type */
        size_t n_queries;
};

static const char *const facts__text_claims[] = {"sid", "sub", "tid"};
static const char *const facts__int_claims[] = {"tv"};

slice_t facts_claim_text(const token_claims_t *claims, const char *name) {
        if (strcmp(name, "sid") == 0)
                return slice_of(claims->sid);
        if (strcmp(name, "sub") == 0)
                return slice_of(claims->sub);
        if (strcmp(name, "tid") == 0)
                return slice_of(claims->tid);
        return SLICE_NULL;
}

static bool facts__int_claim(const token_claims_t *claims, const char *name,
                             int64_t *out) {
        if (strcmp(name, "tv") == 0) {
                *out = claims->tv;
                return true;
        }
        return false;
}

static bool facts__known(const char *claim, const char *const *names,
                         size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(claim, names[i]) == 0)
                        return true;
        return false;
}

/* ---------------------------------------------------------------------------
 * Life
 * ------------------------------------------------------------------------ */

static void facts__add_group(facts_t *facts, const char *group) {
        for (size_t i = 0; i < facts->n_groups; i++)
                if (strcmp(facts->groups[i], group) == 0)
                        return;
        facts->groups =
                xrealloc(facts->groups, (facts->n_groups + 1) * sizeof(char *));
        facts->groups[facts->n_groups++] = xstrdup(group);
}

/* The index of fact's query among the distinct ones, added if new. */
static size_t facts__add_query(facts_t *facts, const schema_fact_t *fact) {
        for (size_t i = 0; i < facts->n_queries; i++)
                if (strcmp(facts->queries[i]->query_type, fact->query_type) ==
                    0)
                        return i;
        facts->queries =
                xrealloc(facts->queries,
                         (facts->n_queries + 1) * sizeof(*facts->queries));
        facts->queries[facts->n_queries] = fact;
        return facts->n_queries++;
}

facts_t *facts_new(const schema_set_t *set, char *errstr, size_t errlen) {
        facts_t *facts = xcalloc(1, sizeof(*facts));
        size_t n = schema_fact_count(set);

        facts->slots = n ? xcalloc(n, sizeof(*facts->slots)) : NULL;
        for (size_t i = 0; i < n; i++) {
                const schema_fact_t *fact = schema_fact_at(set, i);
                facts_slot_t *slot = &facts->slots[facts->n_slots];
                bool deny = fact->kind == SCHEMA_FACT_DENY;
                if (deny ? !facts__known(fact->claim, facts__text_claims, 3)
                         : !facts__known(fact->claim, facts__int_claims, 1)) {
                        snprintf(errstr, errlen,
                                 "%s: fact '%s' compares the claim '%s', "
                                 "which tokens do not carry (%s)",
                                 fact->file, fact->name, fact->claim,
                                 deny ? "deny facts: sid, sub, tid"
                                      : "version facts: tv");
                        facts_destroy(facts);
                        return NULL;
                }
                slot->fact = fact;
                pthread_mutex_init(&slot->lock, NULL);
                slot->version = -1;
                slot->query = SIZE_MAX;
                if (deny)
                        slot->buckets =
                                xcalloc(FACTS_BUCKETS, sizeof(*slot->buckets));
                else if (fact->query_type)
                        slot->query = facts__add_query(facts, fact);
                facts->n_slots++;
                facts__add_group(facts, fact->group);
        }
        return facts;
}

static void facts__clear(facts_slot_t *slot) {
        for (size_t b = 0; slot->buckets && b < FACTS_BUCKETS; b++) {
                for (facts_entry_t *e = slot->buckets[b], *next; e; e = next) {
                        next = e->next;
                        free(e);
                }
        }
        free(slot->buckets);
}

void facts_destroy(facts_t *facts) {
        if (!facts)
                return;
        for (size_t i = 0; i < facts->n_slots; i++) {
                facts__clear(&facts->slots[i]);
                pthread_mutex_destroy(&facts->slots[i].lock);
        }
        for (size_t i = 0; i < facts->n_groups; i++)
                free(facts->groups[i]);
        free(facts->groups);
        free(facts->queries);
        free(facts->slots);
        free(facts);
}

size_t facts_group_count(const facts_t *facts) {
        return facts->n_groups;
}

const char *facts_group_at(const facts_t *facts, size_t i) {
        return i < facts->n_groups ? facts->groups[i] : NULL;
}

/* ---------------------------------------------------------------------------
 * Deny lists
 * ------------------------------------------------------------------------ */

/* Drop the entries no longer refused. Lock held. */
static void facts__sweep(facts_slot_t *slot, uint64_t now_ms) {
        for (size_t b = 0; b < FACTS_BUCKETS; b++) {
                facts_entry_t **pp = &slot->buckets[b];
                while (*pp) {
                        facts_entry_t *e = *pp;
                        if (e->until_ms <= now_ms) {
                                *pp = e->next;
                                free(e);
                                slot->n_entries--;
                        } else {
                                pp = &e->next;
                        }
                }
        }
}

static facts_entry_t *facts__find(facts_slot_t *slot, slice_t key,
                                  uint64_t hash) {
        for (facts_entry_t *e = slot->buckets[hash % FACTS_BUCKETS]; e;
             e = e->next)
                if (e->hash == hash && e->len == key.len &&
                    memcmp(e->key, key.ptr, key.len) == 0)
                        return e;
        return NULL;
}

static bool facts__deny(facts_slot_t *slot, slice_t key, uint64_t until_ms,
                        uint64_t now_ms) {
        uint64_t hash = edge_hash(key);
        facts_entry_t *e;
        bool changed = false;
        if (key.len == 0 || until_ms <= now_ms)
                return false;
        pthread_mutex_lock(&slot->lock);
        e = facts__find(slot, key, hash);
        if (!e) {
                if (slot->n_entries >= FACTS_SWEEP_AT)
                        facts__sweep(slot, now_ms);
                e = xcalloc(1, sizeof(*e) + key.len);
                e->hash = hash;
                e->len = key.len;
                memcpy(e->key, key.ptr, key.len);
                e->next = slot->buckets[hash % FACTS_BUCKETS];
                slot->buckets[hash % FACTS_BUCKETS] = e;
                slot->n_entries++;
        }
        if (until_ms > e->until_ms) {
                e->until_ms = until_ms;
                changed = true;
        }
        pthread_mutex_unlock(&slot->lock);
        return changed;
}

const schema_fact_t *facts_denied(facts_t *facts, const token_claims_t *claims,
                                  uint64_t now_ms) {
        for (size_t i = 0; i < facts->n_slots; i++) {
                facts_slot_t *slot = &facts->slots[i];
                slice_t value;
                facts_entry_t *e;
                bool denied;
                if (!slot->buckets)
                        continue;
                value = facts_claim_text(claims, slot->fact->claim);
                if (value.len == 0)
                        continue;
                pthread_mutex_lock(&slot->lock);
                e = facts__find(slot, value, edge_hash(value));
                denied = e && e->until_ms > now_ms;
                pthread_mutex_unlock(&slot->lock);
                if (denied)
                        return slot->fact;
        }
        return NULL;
}

/* ---------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------ */

static bool facts__raise(facts_slot_t *slot, int64_t version) {
        bool changed = false;
        if (version < 0)
                return false;
        pthread_mutex_lock(&slot->lock);
        if (version > slot->version) {
                slot->version = version;
                changed = true;
        }
        pthread_mutex_unlock(&slot->lock);
        return changed;
}

static facts_slot_t *facts__slot(facts_t *facts, const schema_fact_t *fact) {
        for (size_t i = 0; i < facts->n_slots; i++)
                if (facts->slots[i].fact == fact)
                        return &facts->slots[i];
        return NULL;
}

int64_t facts_version(facts_t *facts, const schema_fact_t *fact) {
        facts_slot_t *slot = facts__slot(facts, fact);
        int64_t v = -1;
        if (!slot)
                return -1;
        pthread_mutex_lock(&slot->lock);
        v = slot->version;
        pthread_mutex_unlock(&slot->lock);
        return v;
}

facts_verdict_t facts_check(facts_t *facts, const schema_fact_t *fact,
                            const token_claims_t *claims, int64_t *value) {
        int64_t current = facts_version(facts, fact), claim = 0;
        if (value)
                *value = current;
        if (current < 0)
                return FACTS_UNKNOWN;
        /* A token without the claim holds version 0. */
        if (!facts__int_claim(claims, fact->claim, &claim))
                claim = 0;
        return claim < current ? FACTS_BELOW : FACTS_HOLD;
}

size_t facts_query_count(const facts_t *facts) {
        return facts->n_queries;
}

const schema_fact_t *facts_query_at(const facts_t *facts, size_t i) {
        return i < facts->n_queries ? facts->queries[i] : NULL;
}

bool facts_query_done(facts_t *facts, size_t i) {
        for (size_t s = 0; s < facts->n_slots; s++)
                if (facts->slots[s].query == i &&
                    facts_version(facts, facts->slots[s].fact) < 0)
                        return false;
        return true;
}

size_t facts_apply_query(facts_t *facts, size_t i,
                         const msgpack_object *reply) {
        size_t changed = 0;
        for (size_t s = 0; s < facts->n_slots; s++) {
                int64_t v;
                if (facts->slots[s].query == i &&
                    schema_fact_read_query(facts->slots[s].fact, reply, &v) &&
                    facts__raise(&facts->slots[s], v))
                        changed++;
        }
        return changed;
}

/* ---------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

size_t facts_apply_event(facts_t *facts, slice_t type,
                         const msgpack_object *body, int64_t now_s) {
        size_t changed = 0;
        for (size_t i = 0; i < facts->n_slots; i++) {
                facts_slot_t *slot = &facts->slots[i];
                schema_fact_update_t u;
                if (!slice_eq(type, slot->fact->event) ||
                    !schema_fact_read(slot->fact, body, now_s, &u))
                        continue;
                if (slot->buckets) {
                        int64_t until = u.until_s > 0
                                                ? u.until_s
                                                : now_s + FACTS_DEFAULT_DENY_S;
                        changed += facts__deny(slot, u.key,
                                               (uint64_t)until * 1000u,
                                               (uint64_t)now_s * 1000u);
                } else {
                        changed += facts__raise(slot, u.version);
                }
        }
        return changed;
}
