/*
 * facts.h - edge facts: what the edge learns from the groups' events to
 * judge tokens, as the schemas declare it (SCHEMA-EXT.md, "Edge facts").
 *
 * A group's schema file may declare facts fed by its own event types:
 *   deny     every event adds body[key] to a deny list until body[until]
 *            (Unix seconds; a day when absent); a token whose claim is in
 *            the list is refused (401) on every route that needs a token;
 *   version  the highest body[value] seen (on events whose "where" fields
 *            all hold); a route that requires the fact refuses (403) a
 *            token whose claim is below it, and answers 503 while the value
 *            is not known. At start the edge asks the fact's query command
 *            until it has an answer.
 * The edge knows no fact by name: which events, fields, claims and words
 * are all in the declaration. The table here holds the values; follower.c
 * feeds it from <group>.events and the query replies, access.c asks it.
 *
 * Claims a fact may compare: deny: sid, sub, tid (text); version: tv.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_FACTS_H
#define OMNIFY_FACTS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema.h"
#include "slice.h"
#include "token.h"

typedef struct facts facts_t;

/*
 * The facts of a schema set. NULL and errstr when a fact compares a claim
 * tokens do not carry (the error names the fact and its file).
 */
facts_t *facts_new(const schema_set_t *set, char *errstr, size_t errlen);
void facts_destroy(facts_t *facts);

/* The groups whose events feed facts (each <group>.events is followed). */
size_t facts_group_count(const facts_t *facts);
const char *facts_group_at(const facts_t *facts, size_t i);

/*
 * An event of type `type` with body `body` (a map) read at now_s (Unix
 * seconds): every fact fed by that type takes what it says. Returns how
 * many facts changed.
 */
size_t facts_apply_event(facts_t *facts, slice_t type,
                         const msgpack_object *body, int64_t now_s);

/* The commands to ask at start, one per distinct query type: the command
 * type and its group; done once every fact it feeds is known. */
size_t facts_query_count(const facts_t *facts);
const schema_fact_t *facts_query_at(const facts_t *facts, size_t i);
bool facts_query_done(facts_t *facts, size_t i);

/* The reply (status 200, a map) to query i: every version fact fed by that
 * command takes its field. Returns how many became known or changed. */
size_t facts_apply_query(facts_t *facts, size_t i, const msgpack_object *reply);

/* The version a fact holds now; -1 while unknown. */
int64_t facts_version(facts_t *facts, const schema_fact_t *fact);

/* The first deny fact that refuses these claims at now_ms (wall clock), or
 * NULL when none does. */
const schema_fact_t *facts_denied(facts_t *facts, const token_claims_t *claims,
                                  uint64_t now_ms);

typedef enum facts_verdict {
        FACTS_HOLD,    /* the claim is at or above the value */
        FACTS_UNKNOWN, /* the value is not known yet: 503 */
        FACTS_BELOW,   /* the claim is below: 403 with the detail */
} facts_verdict_t;

/* Does a required version fact hold for these claims? *value (if not
 * NULL) receives the fact's value (for the detail). */
facts_verdict_t facts_check(facts_t *facts, const schema_fact_t *fact,
                            const token_claims_t *claims, int64_t *value);

/* A text claim by name ("sid", "sub", "tid"): SLICE_NULL when unknown or
 * empty. */
slice_t facts_claim_text(const token_claims_t *claims, const char *name);

#endif
