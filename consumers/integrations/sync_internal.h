/*
 * sync_internal.h - what the files of the sync engine share: sync.c
 * (sync records, schedules, requests, ticks, reads), sync_page.c (pages)
 * and sync_cmd.c (the page command and sending as a tenant).
 */
#ifndef OMNIFY_IG_SYNC_INTERNAL_H
#define OMNIFY_IG_SYNC_INTERNAL_H

#include "cmdsend.h"
#include "sync.h"

#define SYNC_KEEP_MS (30LL * 86400 * 1000)

/* The body of integrations.sync.page. */
typedef struct page_cmd {
        char sync_id[IG_ID_TEXT];
        char connection_id[IG_ID_TEXT];
        int stream;
        int64_t page;
        char *cursor; /* JSON text */
        ig_day_t since, until;
        char kind[16];
        bool first_sync;
        int64_t records;
        json_t *counts; /* {stream: n} */
        int attempt;
} page_cmd_t;

/* sync_cmd.c */
void sync__cmd_clear(page_cmd_t *p);
/* false when the window does not read (the schema checked the rest). */
bool sync__cmd_read(const msgpack_object *body, page_cmd_t *p);
void sync__cmd_pack(const page_cmd_t *p, msgpack_sbuffer *sb);
void sync__pack_counts(msgpack_packer *pk, const json_t *counts);
/* The message's caller, for timers and commands set up on its behalf. */
cmd_caller_t sync__caller(const rt_ctx_t *ctx);

/* sync.c */
bool sync__is_backfill(const char *kind);
/* $set on a sync (only while its status is only_status, when given). */
ig_err_t sync__update(ig_state_t *st, const char *sync_id, const bson_t *set,
                      const char *only_status);
/* The sync id (of tenant, when given) into *out. IG_GONE when none. */
ig_err_t sync__find(ig_state_t *st, const char *id, const char *tenant,
                    bson_t *out);
/* The first five fields of a sync event (sync_id, connection_id, provider,
 * account_id, kind) under a map header of n. */
void sync__event_head(msgpack_packer *pk, uint32_t n, const char *sync_id,
                      const ig_conn_t *c, const char *kind);

#endif
