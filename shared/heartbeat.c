/*
 * heartbeat.c - a thread per group runtime that sends heartbeats (see
 * heartbeat.h).
 */
#include "heartbeat.h"

#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "envelope.h"
#include "log.h"
#include "msgid.h"

#define HEARTBEAT_MAX_GROUPS 16

struct heartbeat {
        const config_t *cfg;
        bus_t *bus;
        char topic[256];
        char *group, *instance, *host, *mode;
        char *consumer_groups[HEARTBEAT_MAX_GROUPS];
        size_t n_groups;
        int interval_ms;
        const atomic_uint_fast64_t *handled;
        uint64_t started_wall_ms, started_mono_ms;
        uint64_t last_handled, last_ms;
        pthread_t thread;
        pthread_mutex_t lock; /* stop, cond */
        pthread_cond_t cond;
        bool stop;
};

uint64_t heartbeat_rss_bytes(void) {
        unsigned long size = 0, resident = 0;
        long page = sysconf(_SC_PAGESIZE);
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f)
                return 0;
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
                resident = 0;
        fclose(f);
        return page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

static void heartbeat__str(msgpack_packer *pk, const char *key,
                           const char *value) {
        size_t n = strlen(value);
        msgpack_pack_str(pk, strlen(key));
        msgpack_pack_str_body(pk, key, strlen(key));
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, value, n);
}

static void heartbeat__key(msgpack_packer *pk, const char *key) {
        msgpack_pack_str(pk, strlen(key));
        msgpack_pack_str_body(pk, key, strlen(key));
}

/* Pack and produce one beat. */
static void heartbeat__send(heartbeat_t *hb, bool stopping) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        uint64_t now = clock_mono_ms(), handled = atomic_load(hb->handled);
        double dt = (double)(now - hb->last_ms) / 1000.0, rate = 0;
        char id[MSGID_TEXT_SIZE], created[24], key[512];
        msgid_t mid;
        env_t env;
        bus_err_t err;

        if (dt > 0.2)
                rate = (double)(handled - hb->last_handled) / dt;
        hb->last_handled = handled;
        hb->last_ms = now;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 14);
        heartbeat__str(&pk, "group", hb->group);
        heartbeat__str(&pk, "instance", hb->instance);
        heartbeat__key(&pk, "pid");
        msgpack_pack_int64(&pk, (int64_t)getpid());
        heartbeat__str(&pk, "host", hb->host);
        heartbeat__str(&pk, "mode", hb->mode);
        heartbeat__str(&pk, "version", OMNIFY_VERSION);
        heartbeat__key(&pk, "started_ms");
        msgpack_pack_uint64(&pk, hb->started_wall_ms);
        heartbeat__key(&pk, "uptime_s");
        msgpack_pack_double(&pk, (double)(now - hb->started_mono_ms) / 1000.0);
        heartbeat__key(&pk, "rss_bytes");
        msgpack_pack_uint64(&pk, heartbeat_rss_bytes());
        heartbeat__key(&pk, "handled");
        msgpack_pack_uint64(&pk, handled);
        heartbeat__key(&pk, "messages_per_s");
        msgpack_pack_double(&pk, rate);
        heartbeat__key(&pk, "interval_ms");
        msgpack_pack_int(&pk, hb->interval_ms);
        heartbeat__key(&pk, "consumer_groups");
        msgpack_pack_array(&pk, hb->n_groups);
        for (size_t i = 0; i < hb->n_groups; i++) {
                size_t n = strlen(hb->consumer_groups[i]);
                msgpack_pack_str(&pk, n);
                msgpack_pack_str_body(&pk, hb->consumer_groups[i], n);
        }
        heartbeat__key(&pk, "stopping");
        if (stopping)
                msgpack_pack_true(&pk);
        else
                msgpack_pack_false(&pk);

        msgid_new(&mid);
        msgid_format(&mid, id);
        snprintf(created, sizeof(created), "%llu",
                 (unsigned long long)clock_wall_ms());
        snprintf(key, sizeof(key), "%s|%s", hb->instance, hb->group);
        memset(&env, 0, sizeof(env));
        env.id = slice_of(id);
        env.type = slice_of(HEARTBEAT_TYPE);
        env.schema_version = 1;
        env.created_at_ms = (int64_t)clock_wall_ms();
        err = bus_produce(hb->bus, hb->topic, RD_KAFKA_PARTITION_UA,
                          slice_of(key), env_headers(&env),
                          (slice_t){sb.data, sb.size}, NULL);
        if (err != BUS_OK)
                log_debug("heartbeat not sent: %s", bus_strerror(err));
        msgpack_sbuffer_destroy(&sb);
}

static void *heartbeat__main(void *arg) {
        heartbeat_t *hb = arg;
        log_set_group(hb->group);
        pthread_mutex_lock(&hb->lock);
        while (!hb->stop) {
                struct timespec until;
                pthread_mutex_unlock(&hb->lock);
                heartbeat__send(hb, false);
                pthread_mutex_lock(&hb->lock);
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += hb->interval_ms / 1000;
                until.tv_nsec += (long)(hb->interval_ms % 1000) * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                while (!hb->stop && pthread_cond_timedwait(&hb->cond, &hb->lock,
                                                           &until) == 0)
                        ;
        }
        pthread_mutex_unlock(&hb->lock);
        heartbeat__send(hb, true);
        return NULL;
}

static void heartbeat__free(heartbeat_t *hb) {
        free(hb->group);
        free(hb->instance);
        free(hb->host);
        free(hb->mode);
        for (size_t i = 0; i < hb->n_groups; i++)
                free(hb->consumer_groups[i]);
        pthread_mutex_destroy(&hb->lock);
        pthread_cond_destroy(&hb->cond);
        free(hb);
}

heartbeat_t *heartbeat_start(const config_t *cfg, bus_t *bus,
                             const heartbeat_info_t *info,
                             const atomic_uint_fast64_t *handled) {
        heartbeat_t *hb = xcalloc(1, sizeof(*hb));
        hb->cfg = cfg;
        hb->bus = bus;
        bus_topic(cfg, HEARTBEAT_TOPIC, hb->topic, sizeof(hb->topic));
        hb->group = xstrdup(info->group);
        hb->instance = xstrdup(info->instance);
        hb->host = xstrdup(info->host);
        hb->mode = xstrdup(info->mode);
        for (const char *const *g = info->consumer_groups;
             g && *g && hb->n_groups < HEARTBEAT_MAX_GROUPS; g++)
                hb->consumer_groups[hb->n_groups++] = xstrdup(*g);
        hb->interval_ms = info->interval_ms > 0 ? info->interval_ms
                                                : HEARTBEAT_INTERVAL_MS;
        hb->handled = handled;
        hb->started_wall_ms = clock_wall_ms();
        hb->started_mono_ms = hb->last_ms = clock_mono_ms();
        hb->last_handled = atomic_load(handled);
        pthread_mutex_init(&hb->lock, NULL);
        pthread_cond_init(&hb->cond, NULL);
        if (pthread_create(&hb->thread, NULL, heartbeat__main, hb) != 0) {
                log_error("cannot start the heartbeat thread");
                heartbeat__free(hb);
                return NULL;
        }
        return hb;
}

void heartbeat_stop(heartbeat_t *hb) {
        if (!hb)
                return;
        pthread_mutex_lock(&hb->lock);
        hb->stop = true;
        pthread_cond_signal(&hb->cond);
        pthread_mutex_unlock(&hb->lock);
        pthread_join(hb->thread, NULL);
        heartbeat__free(hb);
}
