/* SPDX-License-Identifier: MIT */
/*
 * sup-timeline.c owns <outdir>/timeline.jsonl: one JSON object per lifecycle
 * event, in the order the supervisor decided them, with the time since the
 * run began. It is the run's machine-readable story; tests assert on it.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <sys/stat.h>
#include <time.h>

#include "fs-util.h"
#include "sup-records.h"
#include "sup-timeline.h"

int timeline_open(struct sup *s) {
        char path[4096];
        int r;

        if (!s->outdir)
                return 0;
        r = mkdir_p(s->outdir, 0755);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "%s/timeline.jsonl", s->outdir);
        s->timeline_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        return s->timeline_fd < 0 ? negative_errno() : 0;
}

static json_object *value_of(const char *v) {
        char *end;
        long long n;

        /* Numbers stay numbers, so readers can compare pids and codes. */
        errno = 0;
        n = strtoll(v, &end, 10);
        if (v[0] && !*end && errno == 0 && (v[0] != '0' || !v[1]))
                return json_object_new_int64(n);
        return json_object_new_string(v);
}

static void timeline_emit(int fd, json_object *o) {
        const char *line = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        size_t n;
        char *buf;

        if (!line)
                return;
        n = strlen(line);
        buf = malloc(n + 1);
        if (!buf)
                return;
        memcpy(buf, line, n);
        buf[n] = '\n';
        /* One write per line: O_APPEND keeps lines whole. */
        (void) !write(fd, buf, n + 1);
        free(buf);
}

void timeline_write(struct sup *s, const char *event, struct child *c, const char *const *kv, const char *message) {
        json_object *o;
        struct timespec ts;

        if (s->timeline_fd < 0 || !event)
                return;
        o = json_object_new_object();
        if (!o)
                return;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        double t = (double) (now_usec() - s->started_usec) / 1e6, wall = (double) ts.tv_sec + ts.tv_nsec / 1e9;
        char tb[32], wb[32];
        snprintf(tb, sizeof(tb), "%.6f", t);
        snprintf(wb, sizeof(wb), "%.6f", wall);
        json_object_object_add(o, "t", json_object_new_double_s(t, tb));
        json_object_object_add(o, "ts", json_object_new_double_s(wall, wb));
        json_object_object_add(o, "event", json_object_new_string(event));
        if (c) {
                json_object_object_add(o, "child", json_object_new_string(c->spec.id));
                json_object_object_add(o, "kind", json_object_new_string(worker_kind_to_string(c->spec.kind)));
                json_object_object_add(o, "restarts", json_object_new_int64((int64_t) c->restarts));
        }
        for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
                json_object_object_add(o, kv[i], value_of(kv[i + 1]));
        if (message)
                json_object_object_add(o, "message", json_object_new_string(message));

        timeline_emit(s->timeline_fd, o);
        json_object_put(o);
}

void timeline_write_run_end(const char *outdir, const char *run_id, int exit_code, const char *message) {
        char path[4096];
        _cleanup_close_ int fd = -EBADF;
        json_object *o;
        struct timespec ts;
        char wb[32];

        if (!outdir)
                return;
        snprintf(path, sizeof(path), "%s/timeline.jsonl", outdir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        o = fd >= 0 ? json_object_new_object() : NULL;
        if (!o)
                return;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(wb, sizeof(wb), "%.6f", (double) ts.tv_sec + ts.tv_nsec / 1e9);
        json_object_object_add(o, "t", json_object_new_double_s(0, "0.000000"));
        json_object_object_add(o, "ts", json_object_new_double_s((double) ts.tv_sec + ts.tv_nsec / 1e9, wb));
        json_object_object_add(o, "event", json_object_new_string("run_end"));
        if (run_id)
                json_object_object_add(o, "run", json_object_new_string(run_id));
        json_object_object_add(o, "exit_code", json_object_new_int(exit_code));
        if (message)
                json_object_object_add(o, "message", json_object_new_string(message));
        timeline_emit(fd, o);
        json_object_put(o);
}
