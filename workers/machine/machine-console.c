/* SPDX-License-Identifier: MIT */
/*
 * machine-console.c owns the console of one machine: it splits the bytes a
 * backend feeds into lines (console-log.c, the pure part), writes them to
 * <out_dir>/<machine>-console.log (capped at 256 MiB, after which only the
 * tail of each read is parsed), sends them rate-limited to the journal,
 * keeps the ring of recent lines that console reads (wait_for_console_text)
 * are served from, holds the reads that wait for lines not printed yet, and
 * keeps the hypervisor's last stderr lines for error messages. After a
 * worker restart it refills the ring from the log file so line numbers and
 * recent lines survive. Answers go up only through machine_console_ops.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include "console-log.h"
#include "log.h"
#include "machine-console.h"
#include "machine-util.h"

#define CONSOLE_READ_MAX              (1024u * 1024u)
#define CONSOLE_LOG_FILE_MAX          (256ull * 1024ull * 1024ull)
#define CONSOLE_CAPPED_PARSE          4096u
#define CONSOLE_JOURNAL_BURST         200u
#define CONSOLE_JOURNAL_INTERVAL_USEC USEC_PER_SEC
#define CONSOLE_STDERR_TAIL           4u

/* A console read waiting for lines, its timeout or the machine's end. */
struct console_waiter {
        struct machine_console *c;
        uint32_t seq;
        uint64_t from;
        struct event *timer;
        LIST_ENTRY(console_waiter) link;
};

struct machine_console {
        struct event_base *base;
        const struct machine_console_ops *ops;
        void *userdata;
        char *machine;

        struct console_splitter splitter;
        struct console_ring ring;
        struct console_ratelimit ratelimit;
        int log_fd;
        uint64_t file_bytes;
        bool file_capped;
        char stderr_tail[CONSOLE_STDERR_TAIL][256]; /* last hypervisor stderr lines, for error messages */
        unsigned stderr_n;
        LIST_HEAD(, console_waiter) waiters;
};

/* The lines of one feed, written to the file in one go. */
struct console_batch {
        struct machine_console *c;
        char *buf;
        size_t len;
        size_t alloc;
        bool any;
};

static int console_line(const char *line, size_t len, void *userdata) {
        struct console_batch *b = userdata;
        struct machine_console *c = b->c;
        uint64_t suppressed = 0;

        b->any = true;
        (void) console_ring_push(&c->ring, line, len);
        /* Journal only: on stderr the lines would double the script worker's own
         * "name # line" output. */
        if (log_to_journal() && console_ratelimit_allow(&c->ratelimit, now_usec(), &suppressed)) {
                if (suppressed > 0)
                        log_event(LOG_WARNING, LOG_EVENT_CONSOLE, NULL, "%s # [vigil: %llu console lines suppressed]",
                                  c->machine, (unsigned long long) suppressed);
                log_event(LOG_INFO, LOG_EVENT_CONSOLE, NULL, "%s # %s", c->machine, line);
        }
        if (b->len + len + 1 > b->alloc) {
                size_t a = MAX(b->alloc * 2, b->len + len + 1 + 4096);
                char *p = realloc(b->buf, a);
                if (!p)
                        return 0; /* the file misses this batch; memory is not worth more */
                b->buf = p;
                b->alloc = a;
        }
        memcpy(b->buf + b->len, line, len);
        b->buf[b->len + len] = '\n';
        b->len += len + 1;
        return 0;
}

static void console_write_file(struct machine_console *c, const char *buf, size_t len) {
        static const char capped[] = "[vigil: console log truncated here; the limit is 256 MiB]\n";

        if (c->log_fd < 0 || c->file_capped || len == 0)
                return;
        if (c->file_bytes + len > CONSOLE_LOG_FILE_MAX) {
                c->file_capped = true;
                buf = capped;
                len = sizeof capped - 1;
                log_warning("Console log reached %llu bytes; further console output is not written to the file",
                            CONSOLE_LOG_FILE_MAX);
        }
        while (len > 0) {
                ssize_t n = write(c->log_fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_warning_errno(negative_errno(), "Failed to write the console log");
                        return;
                }
                buf += n;
                len -= (size_t) n;
                c->file_bytes += (size_t) n;
        }
}

/* ---- reads ---- */

static void console_waiter_free(struct console_waiter *cw) {
        LIST_REMOVE(cw, link);
        if (cw->timer)
                event_free(cw->timer);
        free(cw);
}

static void console_answer(struct machine_console *c, uint32_t seq, uint64_t from) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        uint64_t first, next;
        int r;

        r = console_ring_read(&c->ring, from, CONSOLE_READ_MAX, &text, &len, &first, &next);
        if (r < 0) {
                c->ops->answer_error(c->userdata, seq, r, "out of memory reading the console");
                return;
        }
        c->ops->answer(c->userdata, seq, text, len, next);
}

static void console_wake(struct machine_console *c, bool all) {
        struct console_waiter *cw, *next;

        for (cw = LIST_FIRST(&c->waiters); cw; cw = next) {
                next = LIST_NEXT(cw, link);
                if (!all && cw->from >= console_ring_end(&c->ring))
                        continue;
                console_answer(c, cw->seq, cw->from);
                console_waiter_free(cw);
        }
}

static void console_timer(evutil_socket_t fd, short what, void *arg) {
        struct console_waiter *cw = arg;

        console_answer(cw->c, cw->seq, cw->from);
        console_waiter_free(cw);
}

int machine_console_read(struct machine_console *c, uint32_t seq, uint64_t from_line, int64_t timeout_ms, bool ended) {
        struct console_waiter *cw;

        if (from_line < console_ring_end(&c->ring) || timeout_ms == 0 || ended) {
                console_answer(c, seq, from_line);
                return 0;
        }
        cw = calloc(1, sizeof *cw);
        if (!cw)
                return -ENOMEM;
        cw->c = c;
        cw->seq = seq;
        cw->from = from_line;
        LIST_INSERT_HEAD(&c->waiters, cw, link);
        if (timeout_ms > 0) {
                cw->timer = evtimer_new(c->base, console_timer, cw);
                if (cw->timer)
                        machine_timer_set(cw->timer, (unsigned long long) timeout_ms * USEC_PER_MSEC);
        }
        return 0;
}

void machine_console_answer_all(struct machine_console *c) {
        console_wake(c, true);
}

/* ---- streams ---- */

void machine_console_feed(struct machine_console *c, const uint8_t *buf, size_t len) {
        struct console_batch b = {.c = c};

        /* Past the log's cap the console is a flood: parse only the tail of
         * each read, so the last lines (for errors, waiters) stay current
         * without spending a core on lines nobody keeps. */
        if (c->file_capped && len > CONSOLE_CAPPED_PARSE) {
                buf += len - CONSOLE_CAPPED_PARSE;
                len = CONSOLE_CAPPED_PARSE;
        }
        (void) console_splitter_feed(&c->splitter, buf, len, console_line, &b);
        console_write_file(c, b.buf, b.len);
        free(b.buf);
        if (b.any)
                console_wake(c, false);
}

void machine_console_eof(struct machine_console *c) {
        struct console_batch b = {.c = c};

        (void) console_splitter_finish(&c->splitter, console_line, &b);
        console_write_file(c, b.buf, b.len);
        free(b.buf);
        if (b.any)
                console_wake(c, false);
}

void machine_console_stderr_line(struct machine_console *c, const char *line) {
        log_warning("qemu: %s", line);
        (void) snprintf(c->stderr_tail[c->stderr_n % CONSOLE_STDERR_TAIL], sizeof c->stderr_tail[0], "%s", line);
        c->stderr_n++;
}

void machine_console_stderr_forget(struct machine_console *c) {
        c->stderr_n = 0;
}

void machine_console_describe_tail(struct machine_console *c, char *buf, size_t size) {
        _cleanup_free_ char *text = NULL;
        size_t len, o = 0;
        uint64_t first, next, end = console_ring_end(&c->ring);
        unsigned n_err = MIN(c->stderr_n, CONSOLE_STDERR_TAIL);

        buf[0] = 0;
        if (console_ring_read(&c->ring, end > 5 ? end - 5 : 0, 1024, &text, &len, &first, &next) >= 0 && len > 0) {
                for (char *p = text; *p; p++)
                        if (*p == '\n')
                                *p = '|';
                o += (size_t) snprintf(buf + o, size - o, "last console lines: %s", text);
        } else
                o += (size_t) snprintf(buf + o, size - o, "no console output");
        for (unsigned i = c->stderr_n - n_err; i < c->stderr_n && o < size; i++)
                o += (size_t) snprintf(buf + o, size - o, "%sqemu stderr: %s", o ? "; " : "",
                                       c->stderr_tail[i % CONSOLE_STDERR_TAIL]);
}

/* ---- the log file ---- */

static int console_open(struct machine_console *c, const char *out_dir, bool truncate) {
        char path[512];
        struct stat st;

        (void) mkdir(out_dir, 0755);
        (void) snprintf(path, sizeof path, "%s/%s-console.log", out_dir, c->machine);
        c->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
        if (c->log_fd < 0)
                return log_error_errno(negative_errno(), "Failed to open the console log %s", path);
        if (fstat(c->log_fd, &st) == 0)
                c->file_bytes = (uint64_t) st.st_size;
        return 0;
}

/* After a restart: continue the line numbering where the log file ends, and
 * refill the ring from it so wait_for_console_text still sees recent lines. */
static void console_reload(struct machine_console *c, const char *out_dir) {
        char path[512];
        _cleanup_fclose_ FILE *f = NULL;
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        (void) snprintf(path, sizeof path, "%s/%s-console.log", out_dir, c->machine);
        f = fopen(path, "re");
        if (!f)
                return;
        while ((n = getline(&line, &cap, f)) > 0) {
                if (line[n - 1] == '\n')
                        line[--n] = 0;
                (void) console_ring_push(&c->ring, line, (size_t) n);
        }
        free(line);
        log_info("Console log has %llu lines; numbering continues from there",
                 (unsigned long long) console_ring_end(&c->ring));
}

int machine_console_new(struct event_base *base, const struct machine_console_params *p,
                        const struct machine_console_ops *ops, void *userdata, struct machine_console **ret) {
        struct machine_console *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->base = base;
        c->ops = ops;
        c->userdata = userdata;
        c->log_fd = -EBADF;
        LIST_INIT(&c->waiters);
        console_ratelimit_init(&c->ratelimit, CONSOLE_JOURNAL_INTERVAL_USEC, CONSOLE_JOURNAL_BURST);
        c->machine = strdup(p->machine);
        r = c->machine ? 0 : -ENOMEM;
        if (r >= 0 && (r = console_splitter_init(&c->splitter, 0)) >= 0 &&
            (r = console_ring_init(&c->ring, 0, 0)) >= 0) {
                if (p->restarted)
                        console_reload(c, p->out_dir);
                r = console_open(c, p->out_dir, !p->restarted);
        }
        if (r < 0) {
                machine_console_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

struct machine_console *machine_console_free(struct machine_console *c) {
        struct console_waiter *cw;

        if (!c)
                return NULL;
        while ((cw = LIST_FIRST(&c->waiters)))
                console_waiter_free(cw);
        console_splitter_done(&c->splitter);
        console_ring_done(&c->ring);
        c->log_fd = safe_close(c->log_fd);
        free(c->machine);
        free(c);
        return NULL;
}
