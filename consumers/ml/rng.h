/*
 * rng.h - the small random number generator of the ml numerics
 * (splitmix64): reproducible draws from a caller-held 64-bit state, for
 * simulated forecast paths and data splits. Not for anything secret.
 * Any thread, each with its own state.
 */
#ifndef OMNIFY_ML_RNG_H
#define OMNIFY_ML_RNG_H

#include <math.h>
#include <stdint.h>

/* The next 64 random bits; advances *state. */
static inline uint64_t rng_next(uint64_t *state) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* A standard normal draw (Box-Muller; the second value is dropped). */
static inline double rng_normal(uint64_t *state) {
        double u1 = ((double)(rng_next(state) >> 11) + 0.5) * 0x1.0p-53;
        double u2 = (double)(rng_next(state) >> 11) * 0x1.0p-53;
        return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

#endif
