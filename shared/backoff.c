/*
 * backoff.c - retry delays with jitter (see backoff.h).
 */
#include "backoff.h"

#include <time.h>

#include "msgid.h"

int64_t backoff_delay_ms(backoff_policy_t p, int attempt) {
        int64_t ms = p.base_ms > 0 ? p.base_ms : 1;
        uint32_t jitter;
        for (int i = 0; i < attempt && ms < p.cap_ms; i++)
                ms *= 2;
        if (ms > p.cap_ms)
                ms = p.cap_ms;
        if (ms < 2)
                return ms;
        msgid_random(&jitter, sizeof(jitter));
        return ms / 2 + (int64_t)(jitter % (uint32_t)(ms / 2 + 1));
}

bool backoff_sleep(const atomic_bool *stop, int64_t ms) {
        while (ms > 0 && !(stop && atomic_load(stop))) {
                int64_t step = ms > 50 ? 50 : ms;
                struct timespec ts = {0, (long)step * 1000000L};
                nanosleep(&ts, NULL);
                ms -= step;
        }
        return stop && atomic_load(stop);
}

bool backoff_wait(const atomic_bool *stop, backoff_policy_t p, int attempt) {
        return backoff_sleep(stop, backoff_delay_ms(p, attempt));
}
