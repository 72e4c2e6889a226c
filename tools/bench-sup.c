/* SPDX-License-Identifier: MIT */
/*
 * bench-sup: what hub-and-spoke routing costs. It measures the round trip of
 * a T_ECHO between two test workers through `vigil supervise` (latency one at
 * a time, throughput with a window of requests in flight), the same echo over
 * a bare socketpair with the same frame codec and no supervisor in between,
 * prints the ratio, and the supervisor's resident memory with 100 children.
 *
 * Usage: bench-sup [--vigil PATH] [--count N] [--window W] [--children N]
 */
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
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

static int direct_echo(long count, int window, struct echo_result *ret) {
        static uint8_t payload[64];
        _cleanup_free_ uint64_t *sent = calloc((size_t) count, sizeof(uint64_t));
        _cleanup_free_ uint64_t *rtt = calloc((size_t) count, sizeof(uint64_t));
        int sv[2], status;
        long next = 0, done = 0;
        pid_t pid;

        if (!sent || !rtt || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid == 0) {
                close(sv[0]);
                direct_server(sv[1]);
        }
        close(sv[1]);

        uint64_t t0 = now_usec();
        while (done < count) {
                while (next < count && next - done < window) {
                        sent[next] = now_usec();
                        if (frame_write_blocking(sv[0], MSG_T_ECHO, (uint32_t) next + 1,
                                                 &(struct msg_t_echo){.target = (char *) "b",
                                                                      .payload = {payload, sizeof(payload)}},
                                                 NULL, 0) < 0)
                                return -EIO;
                        next++;
                }
                struct frame f = {};
                if (frame_read_blocking(sv[0], &f, NULL, 0, NULL, NULL) < 0)
                        return -EIO;
                if (f.seq >= 1 && f.seq <= (uint32_t) count)
                        rtt[done++] = now_usec() - sent[f.seq - 1];
                frame_done(&f);
        }
        uint64_t total = now_usec() - t0;
        close(sv[0]);
        (void) waitpid(pid, &status, 0);

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

static int routed_echo(const char *vigil, long count, int window, struct echo_result *ret) {
        char spec[1024], specpath[512], outdir[512], echo[512] = "", json[2048];
        int ready, status;

        snprintf(outdir, sizeof(outdir), "%s/echo-%d", tmpdir, window);
        snprintf(specpath, sizeof(specpath), "%s/echo-%d.json", tmpdir, window);
        snprintf(spec, sizeof(spec), "%ld", count);
        snprintf(
                json, sizeof(json),
                "{\"children\": [{\"id\": \"b\", \"kind\": \"test\"},"
                " {\"id\": \"a\", \"kind\": \"test\", \"restart\": \"transient\", \"significant\": true,"
                "  \"args\": [\"--echo-to\", \"b\", \"--count\", \"%ld\", \"--window\", \"%d\", \"--payload\", \"64\","
                "             \"--exit-when-done\"]}]}",
                count, window);
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
                {"vigil", required_argument, NULL, 'v'},
                {"count", required_argument, NULL, 'c'},
                {"window", required_argument, NULL, 'w'},
                {"children", required_argument, NULL, 'n'},
                {},
        };
        const char *vigil = getenv("VIGIL");
        char def[1024];
        long count = 5000;
        int window = 32, children = 100, c, r;

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
                default:
                        fprintf(stderr, "usage: bench-sup [--vigil PATH] [--count N] [--window W] [--children N]\n");
                        return 2;
                }
        if (!vigil)
                vigil = def;
        if (count < 10 || window < 1 || children < 1) {
                fprintf(stderr, "bench-sup: bad arguments\n");
                return 2;
        }
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/vigil-bench-XXXXXX");
        if (!mkdtemp(tmpdir))
                return 1;

        struct echo_result dl, dt, rl, rt;
        int fails = 0;
        printf("vigil supervisor benchmark (%s)\n", vigil);
        printf("echo payload 64 bytes; latency: 1 request in flight; throughput: %d in flight\n\n", window);

        if ((r = direct_echo(count, 1, &dl)) < 0 || (r = direct_echo(count * 4, window, &dt)) < 0) {
                fprintf(stderr, "bench-sup: direct echo failed: %s\n", strerror(-r));
                fails++;
        }
        if ((r = routed_echo(vigil, count, 1, &rl)) < 0 || (r = routed_echo(vigil, count * 4, window, &rt)) < 0) {
                fprintf(stderr, "bench-sup: routed echo failed: %s\n", strerror(-r));
                fails++;
        }
        if (!fails) {
                printf("%-34s %10s %10s %10s %12s\n", "", "avg us", "p50 us", "p99 us", "msgs/s");
                printf("%-34s %10.1f %10.0f %10.0f %12.0f\n", "direct socketpair, window 1", dl.avg_us, dl.p50_us,
                       dl.p99_us, dl.msgs_per_s);
                printf("%-34s %10.1f %10.0f %10.0f %12.0f\n", "via supervisor,    window 1", rl.avg_us, rl.p50_us,
                       rl.p99_us, rl.msgs_per_s);
                printf("%-34s %10.1f %10.0f %10.0f %12.0f\n", "direct socketpair, window N", dt.avg_us, dt.p50_us,
                       dt.p99_us, dt.msgs_per_s);
                printf("%-34s %10.1f %10.0f %10.0f %12.0f\n", "via supervisor,    window N", rt.avg_us, rt.p50_us,
                       rt.p99_us, rt.msgs_per_s);
                printf("\nrouting latency ratio (supervisor / direct, avg): %.2fx\n", rl.avg_us / dl.avg_us);
                printf("throughput ratio (supervisor / direct, window %d): %.2f\n", window,
                       rt.msgs_per_s / dt.msgs_per_s);
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
