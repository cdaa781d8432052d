/*
 * msgid.c - UUIDv7 message ids and clocks (see msgid.h).
 *
 * Randomness: a per-thread xoshiro256** generator seeded from getrandom(2).
 * Ids need to be unique and unguessable enough to not collide, not to be
 * secrets; tokens and secrets use OpenSSL's RAND_bytes instead.
 */
#include "msgid.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

static __thread uint64_t rng_s[4];
static __thread int rng_seeded;

static inline uint64_t rotl(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void) {
        if (!rng_seeded) {
                if (getrandom(rng_s, sizeof(rng_s), 0) != sizeof(rng_s)) {
                        /* Fall back to time and address: still unique per
                         * thread, which is all ids need. */
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        rng_s[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ull;
                        rng_s[1] = (uint64_t)ts.tv_sec;
                        rng_s[2] = (uint64_t)(uintptr_t)&rng_s;
                        rng_s[3] = 0x2545f4914f6cdd1dull;
                }
                rng_seeded = 1;
        }
        uint64_t result = rotl(rng_s[1] * 5, 7) * 9;
        uint64_t t = rng_s[1] << 17;
        rng_s[2] ^= rng_s[0];
        rng_s[3] ^= rng_s[1];
        rng_s[1] ^= rng_s[2];
        rng_s[0] ^= rng_s[3];
        rng_s[2] ^= t;
        rng_s[3] = rotl(rng_s[3], 45);
        return result;
}

/* 64-bit hash of bytes under a seed: a multiply-xorshift over 8-byte words
 * (the mixing of splitmix64 / xxhash's avalanche). Two seeds give the 128
 * bits of a derived id. */
static uint64_t msgid__mix(uint64_t h) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 33;
        return h;
}

static uint64_t msgid__hash64(const uint8_t *p, size_t n, uint64_t seed) {
        uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
        while (n >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                h = msgid__mix(h ^ msgid__mix(w + 0x9e3779b97f4a7c15ull));
                h = h * 5 + 0x52dce729;
                p += 8;
                n -= 8;
        }
        if (n) {
                uint64_t w = 0;
                memcpy(&w, p, n);
                h = msgid__mix(h ^ msgid__mix(w + 0x9e3779b97f4a7c15ull + n));
        }
        return msgid__mix(h);
}

void msgid_derive(uint64_t time_ms, const void *seed, size_t len,
                  msgid_t *out) {
        uint64_t a = msgid__hash64(seed, len, 0x6f6d6e6966792d31ull);
        uint64_t b = msgid__hash64(seed, len, 0x6f6d6e6966792d32ull);
        for (int i = 0; i < 6; i++)
                out->b[i] = (uint8_t)(time_ms >> (40 - 8 * i));
        memcpy(out->b + 6, &a, 2);
        memcpy(out->b + 8, &b, 8);
        out->b[6] = (uint8_t)(0x80 | (out->b[6] & 0x0f)); /* version 8 */
        out->b[8] = (uint8_t)(0x80 | (out->b[8] & 0x3f)); /* variant 10 */
        /* 74 hash bits: a's low 12 and b's 62. */
        out->b[7] ^= (uint8_t)(a >> 16);
        out->b[6] ^= (uint8_t)((a >> 24) & 0x0f);
}

void msgid_random(void *buf, size_t n) {
        uint8_t *p = buf;
        while (n > 0) {
                uint64_t r = rng_next();
                size_t k = n < 8 ? n : 8;
                memcpy(p, &r, k);
                p += k;
                n -= k;
        }
}

uint64_t clock_wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void msgid_new(msgid_t *out) {
        uint64_t ms = clock_wall_ms();
        msgid_random(out->b + 6, 10);
        for (int i = 0; i < 6; i++)
                out->b[i] = (uint8_t)(ms >> (40 - 8 * i));
        out->b[6] = (uint8_t)(0x70 | (out->b[6] & 0x0f)); /* version 7 */
        out->b[8] = (uint8_t)(0x80 | (out->b[8] & 0x3f)); /* variant 10 */
}

void msgid_format(const msgid_t *id, char buf[MSGID_TEXT_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        size_t j = 0;
        for (int i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        buf[j++] = '-';
                buf[j++] = hex[id->b[i] >> 4];
                buf[j++] = hex[id->b[i] & 15];
        }
        buf[j] = '\0';
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

bool msgid_parse(const char *text, size_t len, msgid_t *out) {
        size_t j = 0;
        if (!text || len != MSGID_TEXT_LEN)
                return false;
        for (int i = 0; i < 16; i++) {
                if (j == 8 || j == 13 || j == 18 || j == 23) {
                        if (text[j] != '-')
                                return false;
                        j++;
                }
                int hi = hexval(text[j]), lo = hexval(text[j + 1]);
                if (hi < 0 || lo < 0)
                        return false;
                out->b[i] = (uint8_t)(hi << 4 | lo);
                j += 2;
        }
        return true;
}

uint64_t msgid_time_ms(const msgid_t *id) {
        uint64_t ms = 0;
        for (int i = 0; i < 6; i++)
                ms = ms << 8 | id->b[i];
        return ms;
}

uint64_t msgid_hash(const msgid_t *id) {
        /* FNV-1a: ids are random already, this just folds 16 bytes. */
        uint64_t h = 0xcbf29ce484222325ull;
        for (int i = 0; i < 16; i++) {
                h ^= id->b[i];
                h *= 0x100000001b3ull;
        }
        return h;
}
