/* SPDX-License-Identifier: MIT */
/*
 * run-progress.c owns the live progress of `vigil run` on stderr, fed with
 * the tree's lifecycle events (sup_hooks.event, folded by run-status.c). On a terminal it is one
 * status line (elapsed, machines standby/booting/ready, current subtest, last
 * command) pinned to the bottom row: the rows above become a scroll region,
 * so whatever the workers print scrolls past it without tearing it, and a
 * one-second timer redraws it. Elsewhere (CI, nix builds) it is a plain line
 * per milestone (a machine ready or down, a restart, a subtest), no escapes.
 */
#include <event2/event.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "log-stderr.h"
#include "log.h"
#include "macro.h"
#include "run-progress.h"
#include "run-status.h"

#define PROGRESS_TEXT_MAX 512

struct run_progress {
        int fd;
        bool tty;
        bool drawn; /* the scroll region is set */
        unsigned rows;
        uint64_t started;
        struct event *timer;
        struct run_status status;
};

/* One record per update: a worker's line never lands inside ours, and a reader
 * that stops reading drops whole updates (log-stderr.c), never stalls the run. */
static void progress_write(struct run_progress *p, const char *text, size_t len) {
        log_stderr_write(text, len);
}

/* "12 s | machines 2/4 ready, 1 standby, 1 booting | subtest: x | b: echo (exit 0, 75 ms)" */
static void progress_text(struct run_progress *p, char *buf, size_t size) {
        const struct run_status *st = &p->status;
        size_t n[_RUN_MACHINE_STATE_MAX] = {};
        size_t len;

        for (size_t i = 0; i < st->n_machines; i++)
                n[st->machines[i].state]++;
        len = (size_t) snprintf(buf, size, "vigil %llus | machines %zu/%zu ready",
                                (unsigned long long) ((now_usec() - p->started) / USEC_PER_SEC), n[RUN_MACHINE_READY],
                                st->n_machines);
        if (len < size && n[RUN_MACHINE_STANDBY])
                len += (size_t) snprintf(buf + len, size - len, ", %zu standby", n[RUN_MACHINE_STANDBY]);
        if (len < size && n[RUN_MACHINE_BOOTING])
                len += (size_t) snprintf(buf + len, size - len, ", %zu booting", n[RUN_MACHINE_BOOTING]);
        if (len < size && n[RUN_MACHINE_DOWN])
                len += (size_t) snprintf(buf + len, size - len, ", %zu down", n[RUN_MACHINE_DOWN]);
        if (len < size && st->restarts)
                len += (size_t) snprintf(buf + len, size - len, " | %u restart(s)", st->restarts);
        if (len < size && st->subtest[0])
                len += (size_t) snprintf(buf + len, size - len, " | subtest: %s", st->subtest);
        if (len < size && st->last[0])
                (void) snprintf(buf + len, size - len, " | %s", st->last);
}

static unsigned progress_rows(struct run_progress *p, unsigned *ret_cols) {
        struct winsize ws = {};

        if (ioctl(p->fd, TIOCGWINSZ, &ws) < 0 || ws.ws_row < 3 || ws.ws_col < 20)
                return 0;
        *ret_cols = ws.ws_col;
        return ws.ws_row;
}

/* Draw the status line on the bottom row, outside the scroll region (the
 * way apt's progress bar does): save the cursor, write, restore it. */
static void progress_draw(struct run_progress *p) {
        char text[PROGRESS_TEXT_MAX], out[PROGRESS_TEXT_MAX + 128];
        unsigned cols = 0, rows = progress_rows(p, &cols);
        size_t len = 0;

        if (!rows)
                return;
        progress_text(p, text, sizeof(text));
        if (strlen(text) > cols - 1)
                text[cols - 1] = 0;
        if (!p->drawn || rows != p->rows) {
                /* A fresh line for the status, then rows 1..N-1 scroll. */
                len += (size_t) snprintf(out + len, sizeof(out) - len, "%s\0337\033[1;%ur\0338%s",
                                         p->drawn ? "" : "\n", rows - 1, p->drawn ? "" : "\033[1A");
                p->drawn = true;
                p->rows = rows;
        }
        len += (size_t) snprintf(out + len, sizeof(out) - len, "\0337\033[%u;1H\033[2K\033[7m%s\033[0m\0338", rows,
                                 text);
        progress_write(p, out, MIN(len, sizeof(out) - 1));
}

static void progress_plain(struct run_progress *p, const char *fmt, ...) _printf_(2, 3);
static void progress_plain(struct run_progress *p, const char *fmt, ...) {
        char what[256], text[PROGRESS_TEXT_MAX], line[PROGRESS_TEXT_MAX + 300];
        va_list ap;
        int n;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        progress_text(p, text, sizeof(text));
        n = snprintf(line, sizeof(line), "vigil: progress: %s (%s)\n", what, text);
        progress_write(p, line, (size_t) MIN(n, (int) sizeof(line) - 1));
}

static void progress_tick(evutil_socket_t fd, short what, void *userdata) {
        progress_draw(userdata);
}

int run_progress_new(int fd, bool tty, struct run_progress **ret) {
        struct run_progress *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->fd = fd;
        p->tty = tty;
        p->started = now_usec();
        *ret = p;
        return 0;
}

int run_progress_attach(struct run_progress *p, struct event_base *base) {
        if (!p->tty)
                return 0;
        p->timer = event_new(base, -1, EV_PERSIST, progress_tick, p);
        if (!p->timer || event_add(p->timer, &(struct timeval){.tv_sec = 1}) < 0)
                return -ENOMEM;
        progress_draw(p);
        return 0;
}

void run_progress_event(struct run_progress *p, const char *name, const char *child, const char *kind,
                        const char *const *kv, const char *message) {
        const char *milestone = run_status_feed(&p->status, name, child, kind, kv, message);

        if (p->tty)
                progress_draw(p);
        else if (milestone)
                progress_plain(p, "%s %s", child ?: "run", milestone);
}

void run_progress_finish(struct run_progress *p) {
        char out[64];
        int n;

        if (!p)
                return;
        if (p->timer)
                event_free(p->timer);
        p->timer = NULL;
        if (!p->drawn)
                return;
        /* Whole screen scrolls again; the status row is cleared. */
        n = snprintf(out, sizeof(out), "\0337\033[r\033[%u;1H\033[2K\0338", p->rows);
        progress_write(p, out, (size_t) n);
        p->drawn = false;
}

struct run_progress *run_progress_free(struct run_progress *p) {
        run_progress_finish(p);
        free(p);
        return NULL;
}
