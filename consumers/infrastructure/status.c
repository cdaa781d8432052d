/*
 * status.c - the Burrow-style evaluation of a consumer group's partitions
 * over a sliding window of samples (see infra.h for the rules).
 *
 * Burrow (LinkedIn's lag checker) reads commit times from
 * __consumer_offsets; we have samples of committed offsets and end
 * offsets every few seconds, and the group's members from the broker, so
 * "stopped" is "no member and messages waiting" rather than "no commit for
 * a while".
 */
#include <stddef.h>

#include "infra.h"

const char *infra_status_name(infra_status_t s) {
        switch (s) {
        case INFRA_OK:
                return "OK";
        case INFRA_WARN:
                return "WARN";
        case INFRA_STALL:
                return "STALL";
        case INFRA_STOP:
                return "STOP";
        case INFRA_ERR:
                return "ERR";
        }
        return "ERR";
}

infra_status_t infra_worse(infra_status_t a, infra_status_t b) {
        return a > b ? a : b;
}

infra_status_t infra_partition_status(const infra_point_t *w, size_t n,
                                      size_t full, bool has_members,
                                      const char **why) {
        const char *dummy;
        bool moved = false, grew = true, any_zero = false;
        if (!why)
                why = &dummy;
        *why = "";
        if (n == 0) {
                *why = "not sampled yet";
                return INFRA_OK;
        }
        if (!has_members && w[n - 1].lag > 0) {
                *why = "no consumer, messages waiting";
                return INFRA_STOP;
        }
        for (size_t i = 0; i < n; i++) {
                if (w[i].lag <= 0)
                        any_zero = true;
                if (i == 0)
                        continue;
                if (w[i].committed < w[i - 1].committed) {
                        *why = "committed offset went backwards";
                        return INFRA_ERR;
                }
                if (w[i].committed != w[i - 1].committed)
                        moved = true;
                if (w[i].lag <= w[i - 1].lag)
                        grew = false;
        }
        if (any_zero) {
                *why = "caught up within the window";
                return INFRA_OK;
        }
        if (n < full || full < 2) {
                *why = "window not full yet";
                return INFRA_OK;
        }
        if (!moved) {
                *why = "committed offset not moving, lag above zero";
                return INFRA_STALL;
        }
        if (grew) {
                *why = "lag grew at every sample";
                return INFRA_WARN;
        }
        *why = "consuming";
        return INFRA_OK;
}
