/*
 * msgid.h - sortable message ids (UUIDv7, RFC 9562) and clocks.
 *
 * 48 bits of Unix milliseconds, then random bits from a per-thread generator
 * seeded from the OS. Text form is the canonical 36-character lowercase
 * 8-4-4-4-12. Thread-safe.
 */
#ifndef OMNIFY_MSGID_H
#define OMNIFY_MSGID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSGID_TEXT_LEN 36
#define MSGID_TEXT_SIZE 37

typedef struct msgid {
        uint8_t b[16];
} msgid_t;

/* A new UUIDv7. */
void msgid_new(msgid_t *out);

/*
 * A deterministic id: the same (time_ms, seed) always gives the same id, and
 * different seeds give different ids (128-bit hash; not a secret). Laid out
 * like a UUIDv7 (time_ms in the first 48 bits, so ids still sort by time)
 * but with version 8 (RFC 9562 "custom"). Used where a redelivery or a
 * re-sync must publish the same message again under the same id.
 */
void msgid_derive(uint64_t time_ms, const void *seed, size_t len, msgid_t *out);

/* Canonical text form, NUL-terminated, into buf. */
void msgid_format(const msgid_t *id, char buf[MSGID_TEXT_SIZE]);

/* Parse canonical text (exactly 36 chars, hex any case). False if malformed. */
bool msgid_parse(const char *text, size_t len, msgid_t *out);

/* Milliseconds since the epoch carried by a UUIDv7. */
uint64_t msgid_time_ms(const msgid_t *id);

/* 64-bit hash of an id, for hash tables. */
uint64_t msgid_hash(const msgid_t *id);

/* Fill buf with n random bytes from the per-thread generator. */
void msgid_random(void *buf, size_t n);

/* Wall-clock milliseconds since the epoch; monotonic milliseconds. */
uint64_t clock_wall_ms(void);
uint64_t clock_mono_ms(void);

#endif
