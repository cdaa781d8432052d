/*
 * test_stream.c - unit tests of the SSE hub (edge/stream.c): framing, type
 * patterns, fan-out by topic, tenant and match values, history then live
 * without gaps or repeats, Last-Event-ID, until and done, the per-client
 * byte bound, sleeping and waking, the stream bound, heartbeats.
 *
 * Sleep and wake are counters here; the edge's are libmicrohttpd's suspend
 * and resume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgid.h"
#include "stream.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct client {
        int wakes, sleeps;
        bool gone; /* the client closed its connection */
} client_t;

static void on_wake(void *owner) {
        ((client_t *)owner)->wakes++;
}

static void on_sleep(void *owner) {
        ((client_t *)owner)->sleeps++;
}

static bool on_gone(void *owner) {
        return ((client_t *)owner)->gone;
}

static stream_hub_t *hub_with(size_t max_streams, size_t max_queue) {
        stream_hub_opts_t o = {max_streams, max_queue, 15000,
                               on_wake,     on_sleep,  on_gone};
        return stream_hub_new(&o);
}

/* An event body {"run_id": run, "n": n} and its envelope fields. */
typedef struct test_event {
        msgpack_sbuffer mp;
        msgpack_zone zone;
        msgpack_object obj;
        stream_event_t ev;
} test_event_t;

static void event_init(test_event_t *t, const char *id, const char *type,
                       const char *tenant, const char *run, int n) {
        msgpack_packer pk;
        size_t off = 0;
        msgpack_sbuffer_init(&t->mp);
        msgpack_packer_init(&pk, &t->mp, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "run_id", 6);
        msgpack_pack_str_with_body(&pk, run, strlen(run));
        msgpack_pack_str_with_body(&pk, "n", 1);
        msgpack_pack_int(&pk, n);
        msgpack_zone_init(&t->zone, 256);
        assert_int_equal(
                msgpack_unpack(t->mp.data, t->mp.size, &off, &t->zone, &t->obj),
                MSGPACK_UNPACK_SUCCESS);
        t->ev.id = slice_of(id);
        t->ev.type = slice_of(type);
        t->ev.tenant = slice_of(tenant);
        t->ev.body = &t->obj;
        t->ev.body_mp = (slice_t){t->mp.data, t->mp.size};
}

static void event_deinit(test_event_t *t) {
        msgpack_zone_destroy(&t->zone);
        msgpack_sbuffer_destroy(&t->mp);
}

static size_t publish(stream_hub_t *hub, size_t topic, const char *id,
                      const char *type, const char *tenant, const char *run,
                      int n) {
        test_event_t t;
        size_t sent;
        event_init(&t, id, type, tenant, run, n);
        sent = stream_hub_publish(hub, topic, &t.ev);
        event_deinit(&t);
        return sent;
}

static const char *const all_types[] = {"agentkit.step.*", "agentkit.run.*"};
static const char *const until_types[] = {"agentkit.run.completed",
                                          "agentkit.run.failed"};
static const char *const match_fields[] = {"run_id"};

/* A subscriber of topic 0 for tenant t1 and run `run`. */
static stream_sub_t *open_run(stream_hub_t *hub, client_t *c, const char *run,
                              bool history, const char *last_id) {
        msgpack_object v = {.type = MSGPACK_OBJECT_STR};
        stream_filter_t f = {0};
        v.via.str.ptr = run;
        v.via.str.size = (uint32_t)strlen(run);
        f.topic = 0;
        f.tenant = "t1";
        f.n_match = 1;
        f.match_fields = match_fields;
        f.match_values = &v;
        f.n_types = 2;
        f.types = all_types;
        f.n_until = 2;
        f.until = until_types;
        f.last_event_id = slice_of(last_id);
        return stream_sub_open(hub, &f, history, c);
}

/* Everything queued for sub as text; *end tells whether it is over. */
static char *drain(stream_hub_t *hub, stream_sub_t *sub, bool *end) {
        static char text[1 << 16];
        size_t len = 0, n;
        char buf[7]; /* small reads: frames are cut anywhere */
        while ((n = stream_sub_read(hub, sub, buf, sizeof(buf), end)) > 0) {
                assert_true(len + n < sizeof(text));
                memcpy(text + len, buf, n);
                len += n;
        }
        text[len] = '\0';
        return text;
}

static int count_of(const char *hay, const char *needle) {
        int n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

/* A history reply {"events": [{id, type, data: {"k": id}}...], "done"}. */
static void history_reply(msgpack_sbuffer *mp, const char *const *ids, size_t n,
                          const char *type, int done) {
        msgpack_packer pk;
        msgpack_sbuffer_init(mp);
        msgpack_packer_init(&pk, mp, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, done >= 0 ? 2 : 1);
        msgpack_pack_str_with_body(&pk, "events", 6);
        msgpack_pack_array(&pk, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
                msgpack_pack_map(&pk, 3);
                msgpack_pack_str_with_body(&pk, "id", 2);
                msgpack_pack_str_with_body(&pk, ids[i], strlen(ids[i]));
                msgpack_pack_str_with_body(&pk, "type", 4);
                msgpack_pack_str_with_body(&pk, type, strlen(type));
                msgpack_pack_str_with_body(&pk, "data", 4);
                msgpack_pack_map(&pk, 1);
                msgpack_pack_str_with_body(&pk, "k", 1);
                msgpack_pack_str_with_body(&pk, ids[i], strlen(ids[i]));
        }
        if (done >= 0) {
                msgpack_pack_str_with_body(&pk, "done", 4);
                if (done)
                        msgpack_pack_true(&pk);
                else
                        msgpack_pack_false(&pk);
        }
}

static bool apply_history(stream_hub_t *hub, stream_sub_t *sub,
                          msgpack_sbuffer *mp);

/* Give sub the history reply of these ids (history_reply's arguments). */
static bool give_history(stream_hub_t *hub, stream_sub_t *sub,
                         const char *const *ids, size_t n, const char *type,
                         int done) {
        msgpack_sbuffer mp;
        history_reply(&mp, ids, n, type, done);
        return apply_history(hub, sub, &mp);
}

/* Close the subscribers (NULL-terminated) and the hub. */
static void close_all(stream_hub_t *hub, ...) {
        va_list ap;
        stream_sub_t *sub;
        va_start(ap, hub);
        while ((sub = va_arg(ap, stream_sub_t *)))
                stream_sub_close(hub, sub);
        va_end(ap);
        stream_hub_destroy(hub);
}

static bool apply_history(stream_hub_t *hub, stream_sub_t *sub,
                          msgpack_sbuffer *mp) {
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        bool ok;
        msgpack_zone_init(&zone, 1024);
        assert_int_equal(msgpack_unpack(mp->data, mp->size, &off, &zone, &obj),
                         MSGPACK_UNPACK_SUCCESS);
        ok = stream_sub_history(hub, sub, &obj);
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(mp);
        return ok;
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                   */
/* ------------------------------------------------------------------------ */

static void test_frame(void **state) {
        msgpack_sbuffer b;
        (void)state;
        msgpack_sbuffer_init(&b);
        assert_true(stream_frame(&b, slice_of("01"), slice_of("a.b.c"),
                                 slice_of("{\"x\":1}")));
        msgpack_sbuffer_write(&b, "", 1);
        assert_string_equal(b.data,
                            "id: 01\nevent: a.b.c\ndata: {\"x\":1}\n\n");
        msgpack_sbuffer_clear(&b);
        /* Every line of the data on a data: line; CR LF, CR and LF. */
        assert_true(stream_frame(&b, SLICE_NULL, SLICE_NULL,
                                 slice_of("one\ntwo\r\nthree\rfour")));
        msgpack_sbuffer_write(&b, "", 1);
        assert_string_equal(
                b.data, "data: one\ndata: two\ndata: three\ndata: four\n\n");
        msgpack_sbuffer_clear(&b);
        /* A newline in the id or the type would forge fields. */
        assert_false(stream_frame(&b, slice_of("1\nevent: x"), SLICE_NULL,
                                  slice_of("{}")));
        assert_false(
                stream_frame(&b, SLICE_NULL, slice_of("a\r"), slice_of("{}")));
        assert_int_equal(b.size, 0);
        msgpack_sbuffer_destroy(&b);
}

static void test_type_patterns(void **state) {
        static const char *const p[] = {"agentkit.step.*", "x.y"};
        (void)state;
        assert_true(
                stream_type_matches(slice_of("agentkit.step.started"), p, 2));
        assert_true(stream_type_matches(slice_of("x.y"), p, 2));
        assert_false(stream_type_matches(slice_of("x.yz"), p, 2));
        assert_false(stream_type_matches(slice_of("agentkit.stepx"), p, 2));
        assert_false(
                stream_type_matches(slice_of("agentkit.run.failed"), p, 2));
        assert_false(stream_type_matches(slice_of("x.y"), p, 0));
}

/* ------------------------------------------------------------------------ */
/* Fan-out                                                                   */
/* ------------------------------------------------------------------------ */

static void test_fan_out_by_match_tenant_topic(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0}, b = {0}, c = {0};
        stream_sub_t *sa, *sb, *sc;
        stream_filter_t any = {0};
        char *text;
        bool end;
        (void)state;
        sa = open_run(hub, &a, "r1", false, NULL);
        sb = open_run(hub, &b, "r2", false, NULL);
        any.topic = 0; /* every event of every tenant on topic 0 */
        sc = stream_sub_open(hub, &any, false, &c);
        assert_int_equal(stream_hub_count(hub), 3);

        assert_int_equal(
                publish(hub, 0, "e1", "agentkit.step.started", "t1", "r1", 1),
                2); /* a and c */
        assert_int_equal(
                publish(hub, 0, "e2", "agentkit.step.started", "t2", "r1", 2),
                1); /* another tenant: c only */
        assert_int_equal(
                publish(hub, 0, "e3", "other.thing.done", "t1", "r1", 3),
                1); /* a type a does not follow: c only */
        assert_int_equal(
                publish(hub, 1, "e4", "agentkit.step.started", "t1", "r1", 4),
                0); /* another topic */
        assert_int_equal(
                publish(hub, 0, "e5", "agentkit.step.started", "t1", "r2", 5),
                2); /* b and c */

        text = drain(hub, sa, &end);
        assert_false(end);
        assert_string_equal(text, "id: e1\nevent: agentkit.step.started\n"
                                  "data: {\"run_id\":\"r1\",\"n\":1}\n\n");
        text = drain(hub, sb, &end);
        assert_non_null(strstr(text, "id: e5\n"));
        assert_int_equal(count_of(text, "id: "), 1);
        text = drain(hub, sc, &end);
        assert_int_equal(count_of(text, "id: "), 4);
        stream_sub_close(hub, sa);
        stream_sub_close(hub, sb);
        stream_sub_close(hub, sc);
        assert_int_equal(stream_hub_count(hub), 0);
        stream_hub_destroy(hub);
}

/* The same event read twice (a reader that re-reads) goes out once. */
static void test_live_duplicate_sent_once(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", false, NULL);
        bool end;
        (void)state;
        publish(hub, 0, "e1", "agentkit.step.started", "t1", "r1", 1);
        publish(hub, 0, "e1", "agentkit.step.started", "t1", "r1", 1);
        assert_int_equal(count_of(drain(hub, sa, &end), "id: e1\n"), 1);
        close_all(hub, sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* History                                                                   */
/* ------------------------------------------------------------------------ */

/* Live events that come while the history is asked wait for it; those the
 * history has go out once, in the history's place. */
static void test_history_then_held_live(void **state) {
        static const char *const ids[] = {"h1", "h2", "e2"};
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", true, NULL);
        char *text;
        bool end;
        (void)state;
        publish(hub, 0, "e2", "agentkit.step.started", "t1", "r1", 2);
        publish(hub, 0, "e3", "agentkit.step.started", "t1", "r1", 3);
        assert_int_equal(a.wakes, 0);
        assert_true(give_history(hub, sa, ids, 3, "agentkit.step.finished", 0));
        text = drain(hub, sa, &end);
        assert_false(end);
        assert_int_equal(count_of(text, "id: "), 4);
        assert_true(strstr(text, "id: h1") < strstr(text, "id: h2"));
        assert_true(strstr(text, "id: h2") < strstr(text, "id: e2"));
        assert_true(strstr(text, "id: e2") < strstr(text, "id: e3"));
        assert_int_equal(count_of(text, "id: e2"), 1);
        assert_non_null(strstr(text, "data: {\"k\":\"h1\"}\n"));
        /* Live again: a repeat of a history event is dropped. */
        publish(hub, 0, "h2", "agentkit.step.started", "t1", "r1", 9);
        publish(hub, 0, "e4", "agentkit.step.started", "t1", "r1", 4);
        text = drain(hub, sa, &end);
        assert_int_equal(count_of(text, "id: "), 1);
        assert_non_null(strstr(text, "id: e4"));
        close_all(hub, sa, NULL);
}

static void test_last_event_id_skipped(void **state) {
        static const char *const ids[] = {"h1", "h2", "h3"};
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", true, "h2");
        char *text;
        bool end;
        (void)state;
        /* A history that still holds the client's last event. */
        assert_true(
                give_history(hub, sa, ids, 3, "agentkit.step.finished", -1));
        text = drain(hub, sa, &end);
        assert_int_equal(count_of(text, "id: "), 2);
        assert_null(strstr(text, "id: h2"));
        close_all(hub, sa, NULL);
}

static void test_history_done_ends(void **state) {
        static const char *const ids[] = {"h1"};
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", true, NULL);
        bool end;
        (void)state;
        publish(hub, 0, "e9", "agentkit.step.started", "t1", "r1", 9);
        assert_true(give_history(hub, sa, ids, 1, "agentkit.step.finished", 1));
        assert_int_equal(count_of(drain(hub, sa, &end), "id: "), 1);
        assert_true(end);
        close_all(hub, sa, NULL);
}

static void test_history_until_type_ends(void **state) {
        static const char *const ids[] = {"h1", "h2"};
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", true, NULL);
        bool end;
        (void)state;
        assert_true(give_history(hub, sa, ids, 2, "agentkit.run.failed", 0));
        assert_int_equal(count_of(drain(hub, sa, &end), "id: "), 1);
        assert_true(end);
        close_all(hub, sa, NULL);
}

static void test_history_bad_shape(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", true, NULL);
        msgpack_sbuffer mp;
        msgpack_packer pk;
        (void)state;
        msgpack_sbuffer_init(&mp);
        msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "events", 6);
        msgpack_pack_str_with_body(&pk, "no", 2);
        assert_false(apply_history(hub, sa, &mp));
        close_all(hub, sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* End, bounds, sleeping                                                     */
/* ------------------------------------------------------------------------ */

static void test_until_live_ends(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", false, NULL);
        char *text;
        bool end;
        (void)state;
        publish(hub, 0, "e1", "agentkit.step.started", "t1", "r1", 1);
        publish(hub, 0, "e2", "agentkit.run.completed", "t1", "r1", 2);
        publish(hub, 0, "e3", "agentkit.step.started", "t1", "r1", 3);
        text = drain(hub, sa, &end);
        assert_true(end);
        assert_int_equal(count_of(text, "id: "), 2);
        assert_null(strstr(text, "id: e3"));
        close_all(hub, sa, NULL);
}

/* A client that reads nothing holds at most the bound plus the error. */
static void test_slow_client_dropped(void **state) {
        stream_hub_t *hub = hub_with(10, 1000);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", false, NULL);
        char *text, id[16];
        bool end;
        (void)state;
        for (int i = 0; i < 1000; i++) {
                snprintf(id, sizeof(id), "e%d", i);
                publish(hub, 0, id, "agentkit.step.started", "t1", "r1", i);
        }
        text = drain(hub, sa, &end);
        assert_true(end);
        assert_true(strlen(text) < 1000 + 200);
        assert_non_null(strstr(text, "event: error\ndata: "));
        assert_non_null(strstr(text, "too_slow"));
        /* The error is a whole frame after whole frames. */
        assert_int_equal(count_of(text, "\n\n"), count_of(text, "id: ") + 1);
        close_all(hub, sa, NULL);
}

static void test_sleep_and_wake(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", false, NULL);
        char buf[256];
        bool end;
        (void)state;
        assert_int_equal(stream_sub_read(hub, sa, buf, sizeof(buf), &end), 0);
        assert_false(end);
        assert_int_equal(a.sleeps, 1);
        publish(hub, 0, "e1", "agentkit.step.started", "t1", "r1", 1);
        assert_int_equal(a.wakes, 1);
        /* Awake already: no second wake. */
        publish(hub, 0, "e2", "agentkit.step.started", "t1", "r1", 2);
        assert_int_equal(a.wakes, 1);
        assert_true(stream_sub_read(hub, sa, buf, sizeof(buf), &end) > 0);
        stream_hub_close_all(hub);
        drain(hub, sa, &end);
        assert_true(end);
        close_all(hub, sa, NULL);
}

static void test_max_streams(void **state) {
        stream_hub_t *hub = hub_with(2, 1 << 16);
        client_t a = {0};
        stream_sub_t *s1, *s2, *s3;
        (void)state;
        s1 = open_run(hub, &a, "r1", false, NULL);
        s2 = open_run(hub, &a, "r2", false, NULL);
        s3 = open_run(hub, &a, "r3", false, NULL);
        assert_non_null(s1);
        assert_non_null(s2);
        assert_null(s3);
        stream_sub_close(hub, s1);
        s3 = open_run(hub, &a, "r3", false, NULL);
        assert_non_null(s3);
        stream_sub_close(hub, s2);
        close_all(hub, s3, NULL);
}

static void test_heartbeat(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", false, NULL),
                     *sp = open_run(hub, &a, "r2", true, NULL);
        char buf[64];
        bool end;
        uint64_t now = clock_mono_ms();
        (void)state;
        assert_int_equal(stream_sub_read(hub, sa, buf, sizeof(buf), &end), 0);
        stream_hub_tick(hub, 0, now + 1000);
        assert_int_equal(a.wakes, 0);
        stream_hub_tick(hub, 0, now + 16000);
        assert_int_equal(a.wakes, 1);
        assert_string_equal(drain(hub, sa, &end), ": keep-alive\n\n");
        /* A stream still waiting for its history gets none. */
        assert_string_equal(drain(hub, sp, &end), "");
        stream_sub_close(hub, sa);
        close_all(hub, sp, NULL);
}

/* A sleeping stream whose client left ends at the next tick, long before
 * a heartbeat; one still there is left alone. */
static void test_gone_client_ends(void **state) {
        stream_hub_t *hub = hub_with(10, 1 << 16);
        client_t a = {0}, b = {0};
        stream_sub_t *sa = open_run(hub, &a, "r1", false, NULL),
                     *sb = open_run(hub, &b, "r2", false, NULL);
        char buf[64];
        bool end;
        uint64_t now = clock_mono_ms();
        (void)state;
        assert_int_equal(stream_sub_read(hub, sa, buf, sizeof(buf), &end), 0);
        assert_int_equal(stream_sub_read(hub, sb, buf, sizeof(buf), &end), 0);
        a.gone = true;
        stream_hub_tick(hub, 0, now + 1000);
        assert_int_equal(a.wakes, 1);
        assert_int_equal(b.wakes, 0);
        assert_int_equal(stream_sub_read(hub, sa, buf, sizeof(buf), &end), 0);
        assert_true(end);
        assert_int_equal(stream_sub_read(hub, sb, buf, sizeof(buf), &end), 0);
        assert_false(end);
        stream_sub_close(hub, sa);
        close_all(hub, sb, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_frame),
                cmocka_unit_test(test_type_patterns),
                cmocka_unit_test(test_fan_out_by_match_tenant_topic),
                cmocka_unit_test(test_live_duplicate_sent_once),
                cmocka_unit_test(test_history_then_held_live),
                cmocka_unit_test(test_last_event_id_skipped),
                cmocka_unit_test(test_history_done_ends),
                cmocka_unit_test(test_history_until_type_ends),
                cmocka_unit_test(test_history_bad_shape),
                cmocka_unit_test(test_until_live_ends),
                cmocka_unit_test(test_slow_client_dropped),
                cmocka_unit_test(test_sleep_and_wake),
                cmocka_unit_test(test_max_streams),
                cmocka_unit_test(test_heartbeat),
                cmocka_unit_test(test_gone_client_ends),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
