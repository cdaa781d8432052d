/*
 * openloop.c - a fixed-rate (open-loop) HTTP/1.1 load generator.
 *
 * wrk and h2load are closed-loop: a slow answer delays the next request, so
 * their latency figures hide queueing ("coordinated omission"). This tool
 * sends request i at t0 + i/rate whatever happened before, over N keep-alive
 * connections, and measures each latency from the request's *scheduled* send
 * time. When every connection is busy the request waits in a queue and that
 * wait counts too, as it would for a real client.
 *
 * One thread, one epoll set, a timerfd armed at the next scheduled send with
 * nanosecond precision (a millisecond epoll timeout alone would add up to a
 * millisecond of our own lateness to every figure).
 *
 *   bench-openloop -r 2000 -d 10 -w 1 -c 32 [-m POST] [-H 'K: v']... [-b BODY]
 * [-u] URL
 *
 * Prints one line of key=value pairs: target and achieved rate, counts, and
 * p50/p90/p99/p99.9/max latency in milliseconds. Only requests scheduled
 * after the warm-up are measured. Exit status 0 when it ran, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define OL_MAX_CONNS 4096
#define OL_MAX_HEADERS 16
#define OL_RBUF 65536

typedef enum ol_state { OL_CONNECTING, OL_IDLE, OL_BUSY, OL_CLOSED } ol_state_t;

typedef struct ol_conn {
        int fd;
        ol_state_t state;
        uint64_t sched_ns; /* scheduled send time of the request in flight */
        size_t woff;       /* bytes of the request written so far */
        size_t rlen;       /* bytes in rbuf */
        char rbuf[OL_RBUF];
} ol_conn_t;

typedef struct ol {
        /* options */
        double rate;
        double duration_s, warmup_s, drain_s;
        int n_conns;
        const char *method;
        const char *headers[OL_MAX_HEADERS];
        int n_headers;
        const char *body;
        char host[256], port[16], path[2048];
        /* state */
        struct addrinfo *addr;
        char *req;
        size_t req_len;
        int ep, tfd;
        ol_conn_t *conns;
        int *idle; /* stack of idle connection indexes */
        int n_idle;
        uint64_t *queue; /* scheduled times waiting for a connection */
        size_t q_head, q_tail, q_cap;
        uint64_t t0, measure_from, measure_to;
        uint64_t next_i, total;
        /* results */
        uint32_t *lat_us;
        size_t n_lat, cap_lat;
        uint64_t sent, ok, non2xx, errors, timeouts, completed_in_window;
        int first_bad_status;
} ol_t;

static uint64_t ol__now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void ol__die(const char *what) {
        fprintf(stderr, "bench-openloop: %s: %s\n", what, strerror(errno));
        exit(1);
}

static void *ol__alloc(size_t n) {
        void *p = calloc(1, n ? n : 1);
        if (!p) {
                fprintf(stderr, "bench-openloop: out of memory\n");
                exit(1);
        }
        return p;
}

static void ol__usage(void) {
        fprintf(stderr,
                "usage: bench-openloop -r RATE [-d SECS] [-w SECS] [-c CONNS] "
                "[-m METHOD]\n"
                "                      [-H 'Name: value']... [-b BODY] [-D "
                "DRAIN_SECS] [-u] URL\n"
                "  Fixed-rate HTTP/1.1 load over keep-alive connections; "
                "latency is\n"
                "  measured from each request's scheduled send time.\n");
        exit(2);
}

/* http://host[:port]/path only: the bench talks to local servers. */
static int ol__parse_url(ol_t *ol, const char *url) {
        const char *p, *slash, *colon;
        if (strncmp(url, "http://", 7) != 0)
                return -1;
        p = url + 7;
        slash = strchr(p, '/');
        if (!slash)
                slash = p + strlen(p);
        colon = memchr(p, ':', (size_t)(slash - p));
        if (colon) {
                snprintf(ol->host, sizeof(ol->host), "%.*s", (int)(colon - p),
                         p);
                snprintf(ol->port, sizeof(ol->port), "%.*s",
                         (int)(slash - colon - 1), colon + 1);
        } else {
                snprintf(ol->host, sizeof(ol->host), "%.*s", (int)(slash - p),
                         p);
                snprintf(ol->port, sizeof(ol->port), "80");
        }
        snprintf(ol->path, sizeof(ol->path), "%s", *slash ? slash : "/");
        return 0;
}

static void ol__build_request(ol_t *ol) {
        size_t cap =
                4096 + strlen(ol->path) + (ol->body ? strlen(ol->body) : 0);
        size_t n;
        ol->req = ol__alloc(cap);
        n = (size_t)snprintf(ol->req, cap, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n",
                             ol->method, ol->path, ol->host, ol->port);
        for (int i = 0; i < ol->n_headers; i++)
                n += (size_t)snprintf(ol->req + n, cap - n, "%s\r\n",
                                      ol->headers[i]);
        if (ol->body)
                n += (size_t)snprintf(ol->req + n, cap - n,
                                      "Content-Length: %zu\r\n\r\n%s",
                                      strlen(ol->body), ol->body);
        else
                n += (size_t)snprintf(ol->req + n, cap - n, "\r\n");
        ol->req_len = n;
}

/* ---------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static void ol__push_idle(ol_t *ol, int i) {
        ol->conns[i].state = OL_IDLE;
        ol->idle[ol->n_idle++] = i;
}

static void ol__connect(ol_t *ol, int i) {
        ol_conn_t *c = &ol->conns[i];
        struct epoll_event ev = {0};
        int one = 1;
        c->fd = socket(ol->addr->ai_family,
                       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                ol__die("socket");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->rlen = 0;
        c->woff = 0;
        c->state = OL_CONNECTING;
        /* A refusal may come at once or through SO_ERROR: both redial. */
        if (connect(c->fd, ol->addr->ai_addr, ol->addr->ai_addrlen) < 0 &&
            errno != EINPROGRESS && errno != ECONNREFUSED && errno != EAGAIN)
                ol__die("connect");
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ol->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                ol__die("epoll_ctl");
}

static void ol__record(ol_t *ol, uint64_t sched_ns, uint64_t now) {
        if (sched_ns < ol->measure_from)
                return;
        if (ol->n_lat == ol->cap_lat) {
                ol->cap_lat = ol->cap_lat ? ol->cap_lat * 2 : 65536;
                ol->lat_us =
                        realloc(ol->lat_us, ol->cap_lat * sizeof(*ol->lat_us));
                if (!ol->lat_us)
                        ol__die("realloc");
        }
        ol->lat_us[ol->n_lat++] = (uint32_t)((now - sched_ns) / 1000u);
}

/* A connection broke: count its request (if any) as an error and redial. */
static void ol__reset(ol_t *ol, int i) {
        ol_conn_t *c = &ol->conns[i];
        if (c->state == OL_BUSY && c->sched_ns >= ol->measure_from)
                ol->errors++;
        if (c->state == OL_IDLE) {
                for (int k = 0; k < ol->n_idle; k++) {
                        if (ol->idle[k] == i) {
                                ol->idle[k] = ol->idle[--ol->n_idle];
                                break;
                        }
                }
        }
        epoll_ctl(ol->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        ol__connect(ol, i);
}

static void ol__send(ol_t *ol, int i, uint64_t sched_ns) {
        ol_conn_t *c = &ol->conns[i];
        ssize_t n;
        c->state = OL_BUSY;
        c->sched_ns = sched_ns;
        c->woff = 0;
        c->rlen = 0;
        ol->sent++;
        n = send(c->fd, ol->req, ol->req_len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
                ol__reset(ol, i);
                return;
        }
        c->woff = n > 0 ? (size_t)n : 0;
        /* A short write finishes on EPOLLOUT (the request is tiny: rare). */
}

/* Find the end of one response in rbuf: returns its length, 0 if incomplete,
 * -1 if malformed. Sets *status and *close_after. */
static long ol__parse_response(const char *buf, size_t len, int *status,
                               int *close_after) {
        const char *end = memmem(buf, len, "\r\n\r\n", 4);
        const char *line;
        size_t hlen;
        long clen = 0;
        if (!end)
                return len > 16384 ? -1 : 0;
        hlen = (size_t)(end - buf) + 4;
        if (hlen < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
                return -1;
        *status = atoi(buf + 9);
        *close_after = strncmp(buf, "HTTP/1.0", 8) == 0;
        for (line = memchr(buf, '\n', hlen); line && line < end;
             line = memchr(line, '\n', (size_t)(end - line))) {
                line++;
                if (strncasecmp(line, "content-length:", 15) == 0)
                        clen = strtol(line + 15, NULL, 10);
                else if (strncasecmp(line, "connection:", 11) == 0) {
                        const char *v = line + 11;
                        while (*v == ' ')
                                v++;
                        if (strncasecmp(v, "close", 5) == 0)
                                *close_after = 1;
                        else if (strncasecmp(v, "keep-alive", 10) == 0)
                                *close_after = 0;
                } else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
                        return -1; /* our servers answer with a length */
                }
        }
        if (clen < 0)
                return -1;
        if (len < hlen + (size_t)clen)
                return 0;
        return (long)(hlen + (size_t)clen);
}

/* Returns 1 when the connection was reset (its other events are stale). */
static int ol__on_readable(ol_t *ol, int i, uint64_t now) {
        ol_conn_t *c = &ol->conns[i];
        for (;;) {
                ssize_t n = recv(c->fd, c->rbuf + c->rlen,
                                 sizeof(c->rbuf) - c->rlen, 0);
                int status = 0, close_after = 0;
                long used;
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                        ol__reset(ol, i);
                        return 1;
                }
                if (n < 0)
                        return 0;
                c->rlen += (size_t)n;
                if (c->state != OL_BUSY) {
                        ol__reset(ol, i); /* bytes nobody asked for */
                        return 1;
                }
                used = ol__parse_response(c->rbuf, c->rlen, &status,
                                          &close_after);
                if (used < 0 || (used == 0 && c->rlen == sizeof(c->rbuf))) {
                        ol__reset(ol, i);
                        return 1;
                }
                if (used == 0)
                        continue;
                if (c->sched_ns >= ol->measure_from) {
                        if (status >= 200 && status < 300) {
                                ol->ok++;
                        } else {
                                ol->non2xx++;
                                if (!ol->first_bad_status)
                                        ol->first_bad_status = status;
                        }
                        ol__record(ol, c->sched_ns, now);
                }
                if (now >= ol->measure_from && now < ol->measure_to)
                        ol->completed_in_window++;
                c->rlen = 0;
                if (close_after) {
                        c->state = OL_CLOSED;
                        ol__reset(ol, i);
                        return 1;
                }
                ol__push_idle(ol, i);
                return 0;
        }
}

/* Returns 1 when the connection was reset. */
static int ol__on_writable(ol_t *ol, int i) {
        ol_conn_t *c = &ol->conns[i];
        struct epoll_event ev = {0};
        if (c->state == OL_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                        /* Server not there (yet): try again shortly. */
                        struct timespec ts = {0, 1000000L};
                        nanosleep(&ts, NULL);
                        ol__reset(ol, i);
                        return 1;
                }
                ev.events = EPOLLIN | EPOLLRDHUP;
                ev.data.u32 = (uint32_t)i;
                epoll_ctl(ol->ep, EPOLL_CTL_MOD, c->fd, &ev);
                ol__push_idle(ol, i);
                return 0;
        }
        if (c->state == OL_BUSY && c->woff < ol->req_len) {
                ssize_t n = send(c->fd, ol->req + c->woff,
                                 ol->req_len - c->woff, MSG_NOSIGNAL);
                if (n < 0 && errno != EAGAIN) {
                        ol__reset(ol, i);
                        return 1;
                }
                if (n > 0)
                        c->woff += (size_t)n;
        }
        return 0;
}

/* ---------------------------------------------------------------------------
 * Schedule
 * ------------------------------------------------------------------------ */

static void ol__enqueue_due(ol_t *ol, uint64_t now) {
        while (ol->next_i < ol->total) {
                uint64_t t = ol->t0 +
                             (uint64_t)((double)ol->next_i * 1e9 / ol->rate);
                if (t > now)
                        break;
                if (ol->q_tail == ol->q_cap) {
                        /* Compact, then grow. */
                        memmove(ol->queue, ol->queue + ol->q_head,
                                (ol->q_tail - ol->q_head) * sizeof(*ol->queue));
                        ol->q_tail -= ol->q_head;
                        ol->q_head = 0;
                        if (ol->q_tail == ol->q_cap) {
                                ol->q_cap *= 2;
                                ol->queue =
                                        realloc(ol->queue,
                                                ol->q_cap * sizeof(*ol->queue));
                                if (!ol->queue)
                                        ol__die("realloc");
                        }
                }
                ol->queue[ol->q_tail++] = t;
                ol->next_i++;
        }
        while (ol->q_head < ol->q_tail && ol->n_idle > 0) {
                int i = ol->idle[--ol->n_idle];
                ol__send(ol, i, ol->queue[ol->q_head++]);
        }
}

static void ol__arm(ol_t *ol, uint64_t at_ns) {
        struct itimerspec its = {0};
        if (at_ns == 0)
                at_ns = 1; /* 0 would disarm */
        its.it_value.tv_sec = (time_t)(at_ns / 1000000000u);
        its.it_value.tv_nsec = (long)(at_ns % 1000000000u);
        if (timerfd_settime(ol->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
                ol__die("timerfd_settime");
}

static int ol__cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

static double ol__pct_ms(const ol_t *ol, double p) {
        size_t k;
        if (!ol->n_lat)
                return 0;
        k = (size_t)(p * (double)(ol->n_lat - 1) + 0.5);
        return ol->lat_us[k] / 1000.0;
}

int main(int argc, char **argv) {
        ol_t ol = {0};
        struct addrinfo hints = {0};
        struct epoll_event ev = {0}, events[256];
        const char *url = NULL;
        int opt, rc;
        uint64_t hard_end;

        ol.duration_s = 10;
        ol.warmup_s = 1;
        ol.drain_s = 5;
        ol.n_conns = 32;
        ol.method = "GET";
        while ((opt = getopt(argc, argv, "r:d:w:c:m:H:b:D:u:h")) != -1) {
                switch (opt) {
                case 'r':
                        ol.rate = atof(optarg);
                        break;
                case 'd':
                        ol.duration_s = atof(optarg);
                        break;
                case 'w':
                        ol.warmup_s = atof(optarg);
                        break;
                case 'c':
                        ol.n_conns = atoi(optarg);
                        break;
                case 'm':
                        ol.method = optarg;
                        break;
                case 'H':
                        if (ol.n_headers == OL_MAX_HEADERS)
                                ol__usage();
                        ol.headers[ol.n_headers++] = optarg;
                        break;
                case 'b':
                        ol.body = optarg;
                        break;
                case 'D':
                        ol.drain_s = atof(optarg);
                        break;
                case 'u':
                        url = optarg;
                        break;
                default:
                        ol__usage();
                }
        }
        if (!url && optind == argc - 1)
                url = argv[optind++];
        if (!url || optind != argc || ol.rate <= 0 || ol.duration_s <= 0 ||
            ol.warmup_s < 0 || ol.n_conns < 1 || ol.n_conns > OL_MAX_CONNS)
                ol__usage();
        if (ol__parse_url(&ol, url))
                ol__usage();
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        if ((rc = getaddrinfo(ol.host, ol.port, &hints, &ol.addr)) != 0) {
                fprintf(stderr, "bench-openloop: %s: %s\n", ol.host,
                        gai_strerror(rc));
                return 1;
        }
        ol__build_request(&ol);
        /* Our own timer slack would show up as latency. */
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

        ol.ep = epoll_create1(EPOLL_CLOEXEC);
        ol.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (ol.ep < 0 || ol.tfd < 0)
                ol__die("epoll/timerfd");
        ev.events = EPOLLIN;
        ev.data.u32 = UINT32_MAX;
        epoll_ctl(ol.ep, EPOLL_CTL_ADD, ol.tfd, &ev);

        ol.conns = ol__alloc((size_t)ol.n_conns * sizeof(*ol.conns));
        ol.idle = ol__alloc((size_t)ol.n_conns * sizeof(*ol.idle));
        ol.q_cap = 65536;
        ol.queue = ol__alloc(ol.q_cap * sizeof(*ol.queue));
        for (int i = 0; i < ol.n_conns; i++)
                ol__connect(&ol, i);
        /* Open every connection before the clock starts. */
        for (uint64_t until = ol__now() + 5000000000u;
             ol.n_idle < ol.n_conns && ol__now() < until;) {
                int n = epoll_wait(ol.ep, events, 256, 10);
                for (int k = 0; k < n; k++) {
                        uint32_t i = events[k].data.u32;
                        if (i == UINT32_MAX)
                                continue;
                        if (events[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                                ol__on_writable(&ol, (int)i);
                }
        }
        if (ol.n_idle < ol.n_conns) {
                fprintf(stderr,
                        "bench-openloop: only %d of %d connections opened to "
                        "%s\n",
                        ol.n_idle, ol.n_conns, url);
                return 1;
        }

        ol.t0 = ol__now() + 1000000u;
        ol.measure_from = ol.t0 + (uint64_t)(ol.warmup_s * 1e9);
        ol.measure_to = ol.measure_from + (uint64_t)(ol.duration_s * 1e9);
        ol.total = (uint64_t)((ol.warmup_s + ol.duration_s) * ol.rate);
        hard_end = ol.measure_to + (uint64_t)(ol.drain_s * 1e9);

        for (;;) {
                uint64_t now = ol__now();
                int busy, n;
                ol__enqueue_due(&ol, now);
                busy = ol.n_conns - ol.n_idle;
                if (ol.next_i >= ol.total && ol.q_head == ol.q_tail &&
                    busy == 0)
                        break;
                if (now >= hard_end)
                        break;
                if (ol.next_i < ol.total)
                        ol__arm(&ol, ol.t0 + (uint64_t)((double)ol.next_i *
                                                        1e9 / ol.rate));
                else
                        ol__arm(&ol, hard_end);
                n = epoll_wait(ol.ep, events, 256, -1);
                if (n < 0 && errno != EINTR)
                        ol__die("epoll_wait");
                now = ol__now();
                for (int k = 0; k < n; k++) {
                        uint32_t i = events[k].data.u32;
                        if (i == UINT32_MAX) {
                                uint64_t exp;
                                ssize_t r = read(ol.tfd, &exp, sizeof(exp));
                                (void)r;
                                continue;
                        }
                        if ((events[k].events & EPOLLOUT) &&
                            ol__on_writable(&ol, (int)i))
                                continue;
                        if ((events[k].events & EPOLLIN) &&
                            ol__on_readable(&ol, (int)i, now))
                                continue;
                        if ((events[k].events &
                             (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) &&
                            ol.conns[i].state != OL_CONNECTING)
                                ol__reset(&ol, (int)i);
                }
        }

        /* Whatever is still unanswered after the drain counts at its age. */
        {
                uint64_t now = ol__now();
                for (int i = 0; i < ol.n_conns; i++) {
                        if (ol.conns[i].state == OL_BUSY &&
                            ol.conns[i].sched_ns >= ol.measure_from) {
                                ol.timeouts++;
                                ol__record(&ol, ol.conns[i].sched_ns, now);
                        }
                }
                for (size_t q = ol.q_head; q < ol.q_tail; q++) {
                        if (ol.queue[q] >= ol.measure_from) {
                                ol.timeouts++;
                                ol__record(&ol, ol.queue[q], now);
                        }
                }
        }
        qsort(ol.lat_us, ol.n_lat, sizeof(*ol.lat_us), ol__cmp_u32);
        printf("openloop target_rps=%.0f achieved_rps=%.1f sent=%llu ok=%llu "
               "non2xx=%llu "
               "errors=%llu timeouts=%llu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
               "p999_ms=%.3f "
               "max_ms=%.3f conns=%d first_bad_status=%d\n",
               ol.rate, (double)ol.completed_in_window / ol.duration_s,
               (unsigned long long)ol.sent, (unsigned long long)ol.ok,
               (unsigned long long)ol.non2xx, (unsigned long long)ol.errors,
               (unsigned long long)ol.timeouts, ol__pct_ms(&ol, 0.50),
               ol__pct_ms(&ol, 0.90), ol__pct_ms(&ol, 0.99),
               ol__pct_ms(&ol, 0.999),
               ol.n_lat ? ol.lat_us[ol.n_lat - 1] / 1000.0 : 0.0, ol.n_conns,
               ol.first_bad_status);
        freeaddrinfo(ol.addr);
        return 0;
}
