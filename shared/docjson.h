/*
 * docjson.h - store documents and replies as jansson values.
 *
 * Groups whose documents are read mostly to be answered (views, lists)
 * can hold them as json_t: BSON from the store becomes relaxed extended
 * JSON (numbers stay numbers; dates become {"$date": ...}), JSON becomes
 * BSON with extended JSON understood ({"$date": {"$numberLong": "..."}}
 * makes a date, for TTL fields), and a json_t is packed as a reply.
 *
 * Thread-safety: pure functions.
 */
#ifndef OMNIFY_DOCJSON_H
#define OMNIFY_DOCJSON_H

#include <bson/bson.h>
#include <jansson.h>
#include <stdint.h>

#include "runtime.h"

/* doc as a new JSON value, or NULL. */
json_t *docjson_from_bson(const bson_t *doc);

/* json as a new BSON document (caller bson_destroy()s), or NULL (logged). */
bson_t *docjson_to_bson(const json_t *json);

/* {"$date": {"$numberLong": "<ms>"}}: a BSON date once converted. */
json_t *docjson_date(int64_t ms);

/* Reply status with json (taken over: decref'd); a 500 problem when it
 * cannot be packed. */
handler_result_t docjson_reply(rt_ctx_t *ctx, int status, json_t *json);

/* As docjson_reply, with the null members of the object json left out (not
 * those nested deeper): the schemas have no null type, so a reply says
 * "unknown" or "none" by an absent field. */
handler_result_t docjson_reply_present(rt_ctx_t *ctx, int status, json_t *json);

/* Every document of db.coll matching filter (NULL: all) in opts' order and
 * number (NULL: any), as a new JSON array; NULL and *err when the store
 * failed. Fields named in drop (NULL-terminated; may be NULL) are left
 * out. */
json_t *docjson_find(store_t *store, const char *db, const char *coll,
                     const bson_t *filter, const bson_t *opts,
                     const char *const *drop, store_err_t *err);

#endif
