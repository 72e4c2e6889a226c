/* SPDX-License-Identifier: MIT */
/*
 * sup-stderr.c owns the children's stderr while the supervisor writes its own
 * through the bounded queue of proto/log-stderr.c. The children (but an
 * interactive one, whose REPL needs the terminal itself) get the write end of
 * one pipe instead of vigil's stderr: a child blocks only as long as the
 * supervisor takes to read it, never on vigil's reader (sup_stderr_bound()
 * puts the supervisor's own stderr in bounded mode, from sup_new() on). The
 * supervisor cuts what it reads into lines and queues each as a record of its
 * own, so a line is shown or dropped whole. While the queue is congested (a
 * slow reader that still reads) it stops reading, so the children wait for
 * that reader as they would on a terminal; a reader that has stopped leaves the
 * queue uncongested, and lines are dropped instead of the run stalling. It
 * also drives the queue from the event loop: a write event when stderr was
 * full, a short timer when a pipe had room, but not for the next record and
 * the reserve.
 */
#include <fcntl.h>

#include "log-stderr.h"
#include "log.h"
#include "sup-stderr.h"
#include "time-util.h"

#define SUP_STDERR_LINE_MAX  (16u * 1024u) /* longer lines are relayed in pieces of this size */
#define SUP_STDERR_READS     16            /* reads per wakeup, so one child cannot starve the loop */
#define SUP_STDERR_RETRY_MS  20
#define SUP_STDERR_RESUME_MS 50 /* while congested: how often to look again */

struct sup_stderr {
        struct event_base *base;
        int read_fd, write_fd;
        struct event *ev_read, *ev_out, *ev_retry, *ev_resume;
        bool paused; /* not reading: the queue is congested */
        size_t n_partial;
        char partial[SUP_STDERR_LINE_MAX]; /* a line begun, not yet ended */
};

static void arm(struct event *ev, uint64_t msec) {
        struct timeval tv = timeval_from_msec(msec);
        (void) event_add(ev, &tv);
}

/* Queue every whole line of @buf; keep the last, unfinished one for later. */
static void relay(struct sup_stderr *e, const char *buf, size_t len) {
        while (len > 0) {
                const char *nl = memchr(buf, '\n', len);
                size_t take = nl ? (size_t) (nl - buf) + 1 : len;

                take = MIN(take, sizeof(e->partial) - e->n_partial);
                memcpy(e->partial + e->n_partial, buf, take);
                e->n_partial += take;
                buf += take;
                len -= take;
                if (e->partial[e->n_partial - 1] == '\n' || e->n_partial == sizeof(e->partial)) {
                        log_stderr_write(e->partial, e->n_partial);
                        e->n_partial = 0;
                }
        }
}

/* Read and relay; true if there may be more. @wait: stop while the queue is congested. */
static bool pump_some(struct sup_stderr *e, bool wait) {
        char buf[65536];

        for (unsigned i = 0; i < SUP_STDERR_READS; i++) {
                if (wait && log_stderr_congested()) {
                        if (!e->paused && event_del(e->ev_read) >= 0)
                                e->paused = true;
                        arm(e->ev_resume, SUP_STDERR_RESUME_MS);
                        return false;
                }
                ssize_t n = read(e->read_fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return false;
                relay(e, buf, (size_t) n);
        }
        return true;
}

void sup_stderr_pump(struct sup_stderr *e) {
        if (e && !e->paused)
                (void) pump_some(e, true);
}

static void on_read(evutil_socket_t fd, short what, void *userdata) {
        (void) pump_some(userdata, true);
}

static void on_resume(evutil_socket_t fd, short what, void *userdata) {
        struct sup_stderr *e = userdata;

        if (log_stderr_congested()) {
                arm(e->ev_resume, SUP_STDERR_RESUME_MS);
                return;
        }
        if (event_add(e->ev_read, NULL) >= 0)
                e->paused = false;
        (void) pump_some(e, true);
}

static void on_writable(evutil_socket_t fd, short what, void *userdata) {
        (void) log_stderr_flush();
}

/* log-stderr.c's waiter; runs under its lock: no logging here. */
static void on_wait(int fd, bool writable, void *userdata) {
        struct sup_stderr *e = userdata;

        if (!writable) {
                arm(e->ev_retry, SUP_STDERR_RETRY_MS);
                return;
        }
        if (!e->ev_out)
                e->ev_out = event_new(e->base, fd, EV_WRITE, on_writable, e);
        if (e->ev_out)
                (void) event_add(e->ev_out, NULL);
        else
                arm(e->ev_retry, SUP_STDERR_RETRY_MS);
}

void sup_stderr_bound(const char *run_id, const char *outdir) {
        char record[512];

        if (log_to_journal())
                snprintf(record, sizeof(record), "the full record is in the journal (journalctl VIGIL_RUN=%s)%s%s",
                         run_id, outdir ? " and in " : "", outdir ?: "");
        else if (outdir)
                snprintf(record, sizeof(record), "the timeline and consoles are in %s (no journal here)", outdir);
        else
                snprintf(record, sizeof(record), "no journal here keeps them");
        if (log_stderr_bounded(record) < 0)
                log_warning("Cannot make stderr non-blocking: a reader that stops reading will stall the run");
}

int sup_stderr_new(struct event_base *base, struct sup_stderr **ret) {
        struct sup_stderr *e;
        int p[2];

        *ret = NULL;
        if (!log_stderr_is_bounded())
                return 0;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->base = base;
        e->read_fd = e->write_fd = -EBADF;
        if (pipe2(p, O_CLOEXEC) < 0) {
                free(e);
                return negative_errno();
        }
        e->read_fd = p[0];
        e->write_fd = p[1];
        (void) fcntl(e->read_fd, F_SETFL, O_NONBLOCK); /* the read end's own description: children keep blocking */
        e->ev_read = event_new(base, e->read_fd, EV_READ | EV_PERSIST, on_read, e);
        e->ev_retry = evtimer_new(base, on_writable, e);
        e->ev_resume = evtimer_new(base, on_resume, e);
        if (!e->ev_read || !e->ev_retry || !e->ev_resume || event_add(e->ev_read, NULL) < 0) {
                sup_stderr_free(e);
                return -ENOMEM;
        }
        log_stderr_set_waiter(on_wait, e);
        *ret = e;
        return 0;
}

int sup_stderr_child_fd(const struct sup_stderr *e) {
        return e ? e->write_fd : STDERR_FILENO;
}

struct sup_stderr *sup_stderr_free(struct sup_stderr *e) {
        if (!e)
                return NULL;
        /* Our write end first: a child that is gone cannot add to what is read here. */
        e->write_fd = safe_close(e->write_fd);
        for (unsigned i = 0; i < 64 && pump_some(e, false); i++) /* bounded: an orphan may still write */
                ;
        if (e->n_partial > 0)
                log_stderr_write(e->partial, e->n_partial);
        log_stderr_set_waiter(NULL, NULL);
        struct event **evs[] = {&e->ev_read, &e->ev_out, &e->ev_retry, &e->ev_resume};
        for (size_t i = 0; i < ELEMENTSOF(evs); i++)
                if (*evs[i])
                        event_free(*evs[i]);
        safe_close(e->read_fd);
        free(e);
        return NULL;
}
