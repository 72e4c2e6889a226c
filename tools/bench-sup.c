/* SPDX-License-Identifier: MIT */
/*
 * bench-sup: what hub-and-spoke routing costs. It measures the round trip of
 * a T_ECHO between two test workers through `vigil supervise` (latency one at
 * a time, throughput with a window of requests in flight), the same echo over
 * a bare socketpair with the same frame codec and no supervisor in between,
 * over a channel the supervisor brokered (what the script worker's requests
 * to machines take), and through a bare relay process that only moves
 * datagrams (the floor of any hub: two more process wakeups per round trip),
 * rounds interleaved,
 * and the supervisor's resident memory with 100 children.
 *
 * Usage: bench-sup [--vigil PATH] [--count N] [--window W] [--children N] [--rounds R]
 */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "config.h"
#include "macro.h"
#include "peer.h"

struct echo_result {
        double avg_us, p50_us, p99_us, msgs_per_s;
        long ok;
};

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

#define ROUNDS_MAX 15

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median_of(double *v, int n) {
        qsort(v, (size_t) n, sizeof(double), cmp_double);
        return v[n / 2];
}

/* Each figure the median of its rounds (not one round's row). */
static struct echo_result echo_median(const struct echo_result *rs, int n) {
        double avg[ROUNDS_MAX], p50[ROUNDS_MAX], p99[ROUNDS_MAX], rate[ROUNDS_MAX];
        for (int i = 0; i < n; i++) {
                avg[i] = rs[i].avg_us;
                p50[i] = rs[i].p50_us;
                p99[i] = rs[i].p99_us;
                rate[i] = rs[i].msgs_per_s;
        }
        return (struct echo_result){.avg_us = median_of(avg, n),
                                    .p50_us = median_of(p50, n),
                                    .p99_us = median_of(p99, n),
                                    .msgs_per_s = median_of(rate, n),
                                    .ok = rs[0].ok};
}

/* ---- the baseline: echo over one socketpair, no supervisor ---- */

_noreturn_ static void direct_server(int fd) {
        for (;;) {
                struct frame f = {};
                if (frame_read_blocking(fd, &f, NULL, 0, NULL, NULL) < 0)
                        _exit(0);
                const struct msg_t_echo *m = f.body;
                if (f.type == MSG_T_ECHO &&
                    frame_write_blocking(fd, MSG_T_ECHO_REPLY, f.seq,
                                         &(struct msg_t_echo){.target = (char *) "b", .payload = m->payload}, NULL,
                                         0) < 0)
                        _exit(1);
                frame_done(&f);
        }
}

/* The requesting side: @window requests in flight on @fd until @count answered. */
static int echo_client(int fd, long count, int window, struct echo_result *ret) {
        static uint8_t payload[64];
        _cleanup_free_ uint64_t *sent = calloc((size_t) count, sizeof(uint64_t));
        _cleanup_free_ uint64_t *rtt = calloc((size_t) count, sizeof(uint64_t));
        long next = 0, done = 0;

        if (!sent || !rtt)
                return -ENOMEM;
        uint64_t t0 = now_usec();
        while (done < count) {
                while (next < count && next - done < window) {
                        sent[next] = now_usec();
                        if (frame_write_blocking(fd, MSG_T_ECHO, (uint32_t) next + 1,
                                                 &(struct msg_t_echo){.target = (char *) "b",
                                                                      .payload = {payload, sizeof(payload)}},
                                                 NULL, 0) < 0)
                                return -EIO;
                        next++;
                }
                struct frame f = {};
                if (frame_read_blocking(fd, &f, NULL, 0, NULL, NULL) < 0)
                        return -EIO;
                if (f.seq >= 1 && f.seq <= (uint32_t) count)
                        rtt[done++] = now_usec() - sent[f.seq - 1];
                frame_done(&f);
        }
        uint64_t total = now_usec() - t0;

        qsort(rtt, (size_t) count, sizeof(uint64_t), cmp_u64);
        double sum = 0;
        for (long i = 0; i < count; i++)
                sum += (double) rtt[i];
        *ret = (struct echo_result){
                .avg_us = sum / (double) count,
                .p50_us = (double) rtt[count / 2],
                .p99_us = (double) rtt[MIN(count - 1, count * 99 / 100)],
                .msgs_per_s = (double) count * 1e6 / (double) total,
                .ok = count,
        };
        return 0;
}

static int direct_echo(long count, int window, struct echo_result *ret) {
        int sv[2], status, r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid == 0) {
                close(sv[0]);
                direct_server(sv[1]);
        }
        close(sv[1]);
        r = echo_client(sv[0], count, window, ret);
        close(sv[0]);
        (void) waitpid(pid, &status, 0);
        return r;
}

/* The least any hub can cost: a process that only moves datagrams between two
 * sockets (poll, recv, send; no decoding, no event library, no bookkeeping). */
_noreturn_ static void relay_server(int a, int b) {
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        uint8_t buf[FRAME_MAX + 1];

        for (;;) {
                if (poll(p, 2, -1) < 0)
                        _exit(1);
                for (int i = 0; i < 2; i++) {
                        if (!(p[i].revents & (POLLIN | POLLHUP)))
                                continue;
                        ssize_t n = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (n == 0 || (n < 0 && errno != EAGAIN))
                                _exit(0);
                        if (n > 0 && send(p[1 - i].fd, buf, (size_t) n, MSG_NOSIGNAL) < 0)
                                _exit(1);
                }
        }
}

static int relay_echo(long count, int window, struct echo_result *ret) {
        int a[2], b[2], status, r;
        pid_t server, relay;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a) < 0)
                return -errno;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b) < 0)
                return safe_close(a[0]), safe_close(a[1]), -errno;
        server = fork();
        if (server == 0) {
                close(a[0]), close(a[1]), close(b[0]);
                direct_server(b[1]);
        }
        relay = fork();
        if (relay == 0) {
                close(a[0]), close(b[1]);
                relay_server(a[1], b[0]);
        }
        close(a[1]), close(b[0]), close(b[1]);
        r = echo_client(a[0], count, window, ret);
        close(a[0]);
        (void) waitpid(relay, &status, 0);
        (void) waitpid(server, &status, 0);
        return r;
}

/* ---- through vigil supervise ---- */

static char tmpdir[256];

static int write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        fputs(text, f);
        return fclose(f) == 0 ? 0 : -errno;
}

static pid_t start_vigil(const char *vigil, const char *spec, const char *outdir) {
        pid_t pid = fork();
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null >= 0)
                        dup2(null, STDERR_FILENO), dup2(null, STDOUT_FILENO);
                execl(vigil, vigil, "supervise", spec, "-o", outdir, "--no-pidns", "--log-target", "stderr",
                      "--global-timeout", "120", (char *) NULL);
                _exit(127);
        }
        return pid;
}

/* Read the timeline; return the number of "ready" events and, if found, the
 * echo_done message of child "a". */
static int scan_timeline(const char *outdir, int *ret_ready, char *echo, size_t echo_size) {
        char path[512], line[8192];
        int ready = 0;

        snprintf(path, sizeof(path), "%s/timeline.jsonl", outdir);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                json_object *o = json_tokener_parse(line), *v, *n;
                if (!o)
                        continue;
                const char *ev = json_object_object_get_ex(o, "event", &v) ? json_object_get_string(v) : "";
                if (streq(ev, "ready"))
                        ready++;
                if (echo && streq(ev, "worker_event") && json_object_object_get_ex(o, "name", &n) &&
                    streq(json_object_get_string(n), "echo_done") && json_object_object_get_ex(o, "message", &v))
                        snprintf(echo, echo_size, "%s", json_object_get_string(v));
                json_object_put(o);
        }
        fclose(f);
        *ret_ready = ready;
        return 0;
}

/* @direct: the echoing worker asks the supervisor for a brokered channel to
 * "b" first and echoes over it (the path script -> machine requests take). */
static int routed_echo(const char *vigil, long count, int window, bool direct, struct echo_result *ret) {
        char spec[1024], specpath[512], outdir[512], echo[512] = "", json[2048];
        int ready, status;

        snprintf(outdir, sizeof(outdir), "%s/echo-%d%s", tmpdir, window, direct ? "-direct" : "");
        snprintf(specpath, sizeof(specpath), "%s/echo-%d%s.json", tmpdir, window, direct ? "-direct" : "");
        snprintf(spec, sizeof(spec), "%ld", count);
        snprintf(
                json, sizeof(json),
                "{\"children\": [{\"id\": \"b\", \"kind\": \"test\"},"
                " {\"id\": \"a\", \"kind\": \"test\", \"restart\": \"transient\", \"significant\": true,"
                "  \"args\": [\"--echo-to\", \"b\", \"--count\", \"%ld\", \"--window\", \"%d\", \"--payload\", \"64\","
                "             \"--exit-when-done\"%s]}]}",
                count, window, direct ? ", \"--direct\"" : "");
        if (write_text(specpath, json) < 0)
                return -EIO;
        pid_t pid = start_vigil(vigil, specpath, outdir);
        if (pid < 0)
                return -errno;
        (void) waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "bench-sup: vigil exited with status %d\n", status);
        if (scan_timeline(outdir, &ready, echo, sizeof(echo)) < 0 || !echo[0])
                return -ENODATA;
        long ok = 0;
        if (sscanf(strstr(echo, "ok=") ?: "", "ok=%ld", &ok) != 1 ||
            sscanf(strstr(echo, "avg_us=") ?: "", "avg_us=%lf", &ret->avg_us) != 1 ||
            sscanf(strstr(echo, "p50_us=") ?: "", "p50_us=%lf", &ret->p50_us) != 1 ||
            sscanf(strstr(echo, "p99_us=") ?: "", "p99_us=%lf", &ret->p99_us) != 1 ||
            sscanf(strstr(echo, "msgs_per_s=") ?: "", "msgs_per_s=%lf", &ret->msgs_per_s) != 1)
                return -EBADMSG;
        ret->ok = ok;
        return ok == count ? 0 : -EIO;
}

static long status_kb(pid_t pid, const char *key) {
        char path[64], line[256];
        long v = -1;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':')
                        v = strtol(line + strlen(key) + 1, NULL, 10);
        fclose(f);
        return v;
}

static int rss_with_children(const char *vigil, int n, long *ret_rss, long *ret_hwm, double *ret_start_s) {
        char specpath[512], outdir[512];
        size_t cap = 64 + (size_t) n * 64, len = 0;
        _cleanup_free_ char *json = malloc(cap);
        int ready = 0, status;

        if (!json)
                return -ENOMEM;
        len += (size_t) snprintf(json + len, cap - len, "{\"children\": [");
        for (int i = 0; i < n; i++)
                len += (size_t) snprintf(json + len, cap - len, "%s{\"id\": \"w%d\", \"kind\": \"test\"}",
                                         i ? "," : "", i);
        snprintf(json + len, cap - len, "]}");
        snprintf(specpath, sizeof(specpath), "%s/many.json", tmpdir);
        snprintf(outdir, sizeof(outdir), "%s/many", tmpdir);
        if (write_text(specpath, json) < 0)
                return -EIO;

        uint64_t t0 = now_usec();
        pid_t pid = start_vigil(vigil, specpath, outdir);
        while (now_usec() - t0 < 60 * USEC_PER_SEC) {
                if (scan_timeline(outdir, &ready, NULL, 0) == 0 && ready >= n)
                        break;
                usleep(20 * 1000);
        }
        *ret_start_s = (double) (now_usec() - t0) / 1e6;
        usleep(200 * 1000);
        *ret_rss = status_kb(pid, "VmRSS");
        *ret_hwm = status_kb(pid, "VmHWM");
        kill(pid, SIGTERM);
        (void) waitpid(pid, &status, 0);
        return ready >= n ? 0 : -ETIMEDOUT;
}

static int rm_rf(const char *path) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
        return system(cmd);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                {"vigil", required_argument, NULL, 'v'},  {"count", required_argument, NULL, 'c'},
                {"window", required_argument, NULL, 'w'}, {"children", required_argument, NULL, 'n'},
                {"rounds", required_argument, NULL, 'r'}, {},
        };
        const char *vigil = getenv("VIGIL");
        char def[1024];
        long count = 5000;
        int window = 32, children = 100, rounds = 3, c, r;

        snprintf(def, sizeof(def), "%s/supervisor/vigil", VIGIL_BUILD_ROOT);
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'v':
                        vigil = optarg;
                        break;
                case 'c':
                        count = atol(optarg);
                        break;
                case 'w':
                        window = atoi(optarg);
                        break;
                case 'n':
                        children = atoi(optarg);
                        break;
                case 'r':
                        rounds = atoi(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench-sup [--vigil PATH] [--count N] [--window W] [--children N] "
                                        "[--rounds R]\n");
                        return 2;
                }
        if (!vigil)
                vigil = def;
        if (count < 10 || window < 1 || children < 1 || rounds < 1 || rounds > ROUNDS_MAX) {
                fprintf(stderr, "bench-sup: bad arguments\n");
                return 2;
        }
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-bench-XXXXXX");
        if (!mkdtemp(tmpdir))
                return 1;

        /* Rounds interleave the three paths so that load from elsewhere on the
         * machine falls on all of them alike; each figure is the median of its rounds. */
        enum { PATH_DIRECT, PATH_RELAY, PATH_ROUTED, PATH_BROKERED, _PATH_MAX };
        static const char *const path_names[_PATH_MAX] = {
                [PATH_DIRECT] = "direct socketpair",
                [PATH_RELAY] = "bare relay process (hub floor)",
                [PATH_ROUTED] = "via the vigil supervisor",
                [PATH_BROKERED] = "brokered channel (vigil)",
        };
        struct echo_result lat[_PATH_MAX][ROUNDS_MAX], thr[_PATH_MAX][ROUNDS_MAX];
        int fails = 0;

        printf("vigil supervisor benchmark (%s)\n", vigil);
        printf("echo payload 64 bytes; latency: 1 request in flight; throughput: %d in flight; median of %d "
               "rounds\n\n",
               window, rounds);
        for (int i = 0; i < rounds && !fails; i++)
                for (int k = 0; k < _PATH_MAX && !fails; k++) {
                        bool brokered = k == PATH_BROKERED;
                        r = k == PATH_DIRECT  ? direct_echo(count, 1, &lat[k][i])
                            : k == PATH_RELAY ? relay_echo(count, 1, &lat[k][i])
                                              : routed_echo(vigil, count, 1, brokered, &lat[k][i]);
                        if (r >= 0)
                                r = k == PATH_DIRECT  ? direct_echo(count * 4, window, &thr[k][i])
                                    : k == PATH_RELAY ? relay_echo(count * 4, window, &thr[k][i])
                                                      : routed_echo(vigil, count * 4, window, brokered, &thr[k][i]);
                        if (r < 0) {
                                fprintf(stderr, "bench-sup: %s echo failed: %s\n", path_names[k], strerror(-r));
                                fails++;
                        }
                }
        if (!fails) {
                struct echo_result ml[_PATH_MAX], mt[_PATH_MAX];
                for (int k = 0; k < _PATH_MAX; k++) {
                        ml[k] = echo_median(lat[k], rounds);
                        mt[k] = echo_median(thr[k], rounds);
                }
                printf("%-40s %10s %10s %10s %12s\n", "", "avg us", "p50 us", "p99 us", "msgs/s");
                for (int k = 0; k < _PATH_MAX; k++)
                        printf("%-30s window 1 %10.1f %10.0f %10.0f %12.0f\n", path_names[k], ml[k].avg_us,
                               ml[k].p50_us, ml[k].p99_us, ml[k].msgs_per_s);
                for (int k = 0; k < _PATH_MAX; k++)
                        printf("%-30s window N %10.1f %10.0f %10.0f %12.0f\n", path_names[k], mt[k].avg_us,
                               mt[k].p50_us, mt[k].p99_us, mt[k].msgs_per_s);
                printf("\nper request over direct (p50): brokered channel %+.0f us, supervisor hop %+.0f us, bare "
                       "relay "
                       "%+.0f us (goal: <= +20 us)\n",
                       ml[PATH_BROKERED].p50_us - ml[PATH_DIRECT].p50_us,
                       ml[PATH_ROUTED].p50_us - ml[PATH_DIRECT].p50_us,
                       ml[PATH_RELAY].p50_us - ml[PATH_DIRECT].p50_us);
                printf("routing latency ratio (supervisor / direct, avg): %.2fx\n",
                       ml[PATH_ROUTED].avg_us / ml[PATH_DIRECT].avg_us);
                printf("throughput ratio (supervisor / direct, window %d): %.2f; brokered / direct: %.2f\n", window,
                       mt[PATH_ROUTED].msgs_per_s / mt[PATH_DIRECT].msgs_per_s,
                       mt[PATH_BROKERED].msgs_per_s / mt[PATH_DIRECT].msgs_per_s);
        }

        long rss = -1, hwm = -1;
        double start_s = 0;
        r = rss_with_children(vigil, children, &rss, &hwm, &start_s);
        if (r < 0) {
                fprintf(stderr, "bench-sup: %d children did not all become ready: %s\n", children, strerror(-r));
                fails++;
        } else
                printf("\nsupervisor with %d test-worker children: RSS %ld KiB (peak %ld KiB), all ready after %.2f "
                       "s\n",
                       children, rss, hwm, start_s);

        rm_rf(tmpdir);
        return fails ? 1 : 0;
}
