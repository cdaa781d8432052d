/*
 * hash.h - the one string hash of the edge's tables (FNV-1a, 64 bits): rate
 * limit buckets, deny lists, seen event ids. Not for anything an attacker
 * must not be able to collide on purpose: every table using it bounds its
 * chains by other means (sizes, sweeps) or tolerates a collision.
 */
#ifndef OMNIFY_EDGE_HASH_H
#define OMNIFY_EDGE_HASH_H

#include <stdint.h>

#include "slice.h"

static inline uint64_t edge_hash(slice_t s) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < s.len; i++) {
                h ^= (unsigned char)s.ptr[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

#endif
