/*
 * startup.c - time from exec to a first 200 from a health endpoint.
 *
 *   bench-startup -p PORT [-u /health] [-x MAX_SECONDS] [-k] -- CMD...
 *
 * Forks and execs CMD, then every millisecond opens a raw TCP connection to
 * 127.0.0.1:PORT and sends GET PATH; the first "HTTP/1.x 200" answer stops
 * the clock. Prints "startup health_ms=T pid=P". With -k the process is left
 * running (its pid printed) instead of being stopped with SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t su__now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One attempt: 1 on a 200, 0 otherwise. */
static int su__probe(int port, const char *path) {
        struct sockaddr_in sa = {0};
        struct timeval tv = {0, 200000};
        char req[256], buf[64];
        ssize_t n;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;
        if (fd < 0)
                return 0;
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                         "close\r\n\r\n",
                         path);
                if (send(fd, req, strlen(req), MSG_NOSIGNAL) > 0 &&
                    (n = recv(fd, buf, sizeof(buf) - 1, 0)) >= 12) {
                        buf[n] = '\0';
                        ok = strncmp(buf, "HTTP/1.", 7) == 0 &&
                             strncmp(buf + 9, "200", 3) == 0;
                }
        }
        close(fd);
        return ok;
}

int main(int argc, char **argv) {
        const char *path = "/health";
        int port = 0, opt, keep = 0, status;
        double max_s = 30;
        uint64_t t0, t_ok = 0;
        pid_t pid;

        while ((opt = getopt(argc, argv, "+p:u:x:k")) != -1) {
                switch (opt) {
                case 'p':
                        port = atoi(optarg);
                        break;
                case 'u':
                        path = optarg;
                        break;
                case 'x':
                        max_s = atof(optarg);
                        break;
                case 'k':
                        keep = 1;
                        break;
                default:
                        port = 0;
                        break;
                }
        }
        if (port <= 0 || port > 65535 || optind >= argc) {
                fprintf(stderr, "usage: bench-startup -p PORT [-u PATH] [-x "
                                "SECS] [-k] -- CMD...\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        /* Someone already answering would make the figure meaningless. */
        if (su__probe(port, path)) {
                fprintf(stderr,
                        "bench-startup: port %d answers before the exec\n",
                        port);
                return 1;
        }
        t0 = su__now();
        pid = fork();
        if (pid < 0) {
                perror("fork");
                return 1;
        }
        if (pid == 0) {
                execvp(argv[optind], argv + optind);
                fprintf(stderr, "bench-startup: exec %s: %s\n", argv[optind],
                        strerror(errno));
                _exit(127);
        }
        while ((double)(su__now() - t0) / 1e9 < max_s) {
                struct timespec ts = {0, 1000000L};
                if (su__probe(port, path)) {
                        t_ok = su__now();
                        break;
                }
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        fprintf(stderr, "bench-startup: %s exited early\n",
                                argv[optind]);
                        return 1;
                }
                nanosleep(&ts, NULL);
        }
        printf("startup health_ms=%.1f pid=%ld\n",
               t_ok ? (double)(t_ok - t0) / 1e6 : -1.0, (long)pid);
        fflush(stdout);
        if (!keep) {
                kill(pid, SIGTERM);
                for (int i = 0;
                     i < 1500 && waitpid(pid, &status, WNOHANG) != pid; i++)
                        usleep(10000);
                if (kill(pid, 0) == 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                }
        }
        return t_ok ? 0 : 1;
}
