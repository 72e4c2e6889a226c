/* SPDX-License-Identifier: MIT */
/*
 * machine-shell.c owns the guest shell channel of one machine: the FIFO of
 * shell jobs (connect, execute), driving guest-proto over the shell fd with
 * libevent, host-side deadlines so no wait is unbounded by accident, and the
 * nonce resync that puts the stream back in step after a protocol error, a
 * check_output=False command or a worker restart. One job at a time: the
 * backdoor protocol has no framing that would allow more.
 *
 * The guest's bytes come either from a socket (nspawn) or from a regular
 * file that QEMU appends to (the virtconsole's chardev, see backend-qemu.c),
 * watched with inotify and read from the offset the fd store keeps across
 * worker restarts; consumed blocks are punched out so the file stays small.
 * Either way reading pauses while replies wait for the supervisor's channel
 * (machine_reply_busy()), which is how a fast guest is slowed to the pace of
 * the script worker without losing a byte.
 */
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/random.h>

#include "log.h"
#include "machine.h"

#define SHELL_READ_MAX        (64u * 1024u)
#define SHELL_READS_PER_WAKE  16u                    /* then yield to the loop and come back */
#define SHELL_PUNCH_BYTES     (4ull * 1024u * 1024u) /* free consumed file blocks this often */
#define SHELL_RESYNC_USEC     (60 * USEC_PER_SEC)
#define SHELL_QUIET_LOG_USEC  (30 * USEC_PER_SEC)
#define SHELL_GRACE_MIN_S     60
#define SHELL_LOST_GRACE_USEC (2 * USEC_PER_SEC)
#define SHELL_NOCHECK_USEC    (900 * USEC_PER_SEC) /* the reference's connect wait */

static void shell_run(struct machine *m);

static struct evbuffer *out_buf(struct machine *m) {
        if (!m->shell_out)
                m->shell_out = evbuffer_new();
        return m->shell_out;
}

struct shell_job *shell_job_new(enum shell_job_kind kind, const char *command) {
        struct shell_job *j = calloc(1, sizeof *j);

        if (!j)
                return NULL;
        j->kind = kind;
        j->timeout_s = -1;
        j->connect_timeout_ms = -1;
        j->check_return = true;
        j->check_output = true;
        if (command && !(j->command = strdup(command))) {
                free(j);
                return NULL;
        }
        return j;
}

void shell_job_free(struct shell_job *j) {
        if (!j)
                return;
        free(j->command);
        free(j);
}

static void complete(struct machine *m, int error, const char *message, int status) {
        struct shell_job *j = TAKE_PTR(m->active);
        uint8_t *out = TAKE_PTR(m->active_output);
        size_t len = m->active_output_len;

        m->active_output_len = 0;
        (void) evtimer_del(m->shell_timer);
        if (!j) {
                free(out);
                return;
        }
        j->done(m, j, error, message, status, out, len);
        shell_job_free(j);
        event_active(m->shell_kick, 0, 0);
}

/* The stream is in an unknown state: the next job resyncs first. */
static void fail_desync(struct machine *m, int error, const char *message) {
        m->needs_resync = true;
        guest_proto_reset(&m->gp);
        if (m->resyncing) {
                m->resyncing = false;
                log_warning("Guest shell resync failed: %s", message);
                machine_send_ready(m);
        }
        complete(m, error, message, 0);
}

static int shell_flush(struct machine *m) {
        struct evbuffer *b = out_buf(m);

        while (evbuffer_get_length(b) > 0) {
                int n = evbuffer_write(b, m->shell_wfd >= 0 ? m->shell_wfd : m->shell_fd);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return negative_errno();
                }
        }
        if (evbuffer_get_length(b) > 0)
                (void) event_add(m->shell_wev, NULL);
        else
                (void) event_del(m->shell_wev);
        return 0;
}

static int shell_send(struct machine *m, const char *text) {
        if (m->shell_fd < 0)
                return -ENOTCONN;
        if (evbuffer_add(out_buf(m), text, strlen(text)) < 0)
                return -ENOMEM;
        return shell_flush(m);
}

int machine_shell_write_raw(struct machine *m, const char *text) {
        m->needs_resync = true;
        return shell_send(m, text);
}

static void begin_resync(struct machine *m) {
        _cleanup_free_ char *cmd = NULL;
        uint8_t rnd[8];
        int r;

        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                for (size_t i = 0; i < sizeof rnd; i++)
                        rnd[i] = (uint8_t) (now_usec() >> (i * 3));
        (void) snprintf(m->nonce, sizeof m->nonce, "vigil-sync-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                        rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        m->resyncing = true;
        if (m->shell_may_be_gone)
                (void) guest_proto_expect_nonce_or_ready(&m->gp, m->nonce);
        else
                (void) guest_proto_expect_nonce(&m->gp, m->nonce);
        m->phase_started = now_usec();
        r = guest_build_nonce_command(m->nonce, &cmd);
        if (r >= 0)
                r = shell_send(m, cmd);
        if (r < 0) {
                fail_desync(m, r, "could not write the resync marker to the guest shell");
                return;
        }
        /* A shell that lives answers at once; a fresh one comes after a boot
         * stage (switch_root), so wait as long as for a connect. */
        machine_timer_set(m->shell_timer,
                          m->shell_may_be_gone
                                  ? MAX(SHELL_RESYNC_USEC,
                                        m->cfg.connect_s > 0 ? m->cfg.connect_s * USEC_PER_SEC : SHELL_NOCHECK_USEC)
                                  : SHELL_RESYNC_USEC);
}

static void begin_exec(struct machine *m) {
        struct shell_job *j = m->active;
        _cleanup_free_ char *line = NULL;
        int r;

        if (j->kind == SHELL_JOB_CONNECT) {
                complete(m, 0, NULL, 0);
                return;
        }
        m->active_fast = m->cfg.fast_path && j->check_return && j->check_output;
        if (m->active_fast)
                r = guest_build_fast_command(j->command, j->timeout_s, &line);
        else
                r = guest_build_command(j->command, j->timeout_s, &line);
        if (r < 0) {
                complete(m, r, "out of memory", 0);
                return;
        }
        if (!j->check_output) {
                /* As the reference: send and return (-2, "") without reading.
                 * Meant for commands that end the shell (switch_root), but the
                 * shell may as well live on: the next job resyncs, accepting
                 * either its nonce or a fresh shell's ready line, so it neither
                 * hangs nor reads this command's output as its own. */
                r = shell_send(m, line);
                m->needs_resync = true;
                m->shell_may_be_gone = true;
                complete(m, r < 0 ? r : 0, r < 0 ? "could not write to the guest shell" : NULL, -2);
                return;
        }
        if (m->active_fast)
                guest_proto_expect_output_fast(&m->gp);
        else
                guest_proto_expect_output(&m->gp);
        m->phase_started = now_usec();
        r = shell_send(m, line);
        if (r < 0) {
                fail_desync(m, r, "could not write the command to the guest shell");
                return;
        }
        if (j->timeout_s >= 0) {
                /* The guest's `timeout` bounds the command; this only catches a
                 * guest that stopped answering altogether. */
                unsigned long long s = (unsigned long long) j->timeout_s;
                machine_timer_set(m->shell_timer,
                                  (s + MAX(s / 2, (unsigned long long) SHELL_GRACE_MIN_S)) * USEC_PER_SEC);
        }
}

/* Time left for the ready line: the config's connect_s counts from when the
 * shell was attached (the boot), a CONNECT request's timeout from the job's
 * start. 0 = unbounded, as in the reference. */
static unsigned long long connect_left_usec(struct machine *m, bool *ret_bounded) {
        unsigned long long now = now_usec(), left = ULLONG_MAX;
        struct shell_job *j = m->active;

        if (m->cfg.connect_s > 0) {
                unsigned long long end = m->phase_started + m->cfg.connect_s * USEC_PER_SEC;
                left = end > now ? end - now : 0;
        }
        if (j && j->connect_timeout_ms >= 0) {
                unsigned long long end = j->started + (unsigned long long) j->connect_timeout_ms * USEC_PER_MSEC;
                left = MIN(left, end > now ? end - now : 0);
        }
        *ret_bounded = left != ULLONG_MAX;
        return left;
}

static void arm_connect_timer(struct machine *m) {
        bool bounded;
        unsigned long long left = connect_left_usec(m, &bounded);

        machine_timer_set(m->shell_timer, bounded ? MAX(MIN(left, SHELL_QUIET_LOG_USEC), 1ull) : SHELL_QUIET_LOG_USEC);
}

/* Scan for the ready line. It may already be under way: the shell is read
 * from the moment QEMU connects, since a guest that becomes ready before the
 * first command prints its ready line only once. */
static void begin_connect(struct machine *m) {
        if (m->gp.phase != GUEST_PHASE_READY) {
                guest_proto_expect_ready(&m->gp);
                m->phase_started = now_usec();
        }
        arm_connect_timer(m);
}

void machine_shell_disconnected(struct machine *m) {
        m->connected = false;
        machine_save_state(m);
        if (!m->resyncing && m->shell_fd >= 0 && (!m->active || m->gp.phase == GUEST_PHASE_IDLE)) {
                guest_proto_expect_ready(&m->gp);
                m->phase_started = now_usec();
        }
}

static void shell_run(struct machine *m) {
        struct shell_job *j;

        if (m->active || m->resyncing)
                return;
        j = TAILQ_FIRST(&m->jobs);
        if (!j)
                return;
        if (!m->booted) {
                /* As the reference: connect() (so every execute) starts the machine. */
                (void) machine_start(m, m->cfg.allow_reboot);
                return;
        }
        TAILQ_REMOVE(&m->jobs, j, link);
        m->active = j;
        j->started = now_usec();
        if (m->shell_fd < 0) {
                complete(m, -ENOTCONN, "Shell disconnected", 0);
                return;
        }
        if (!m->connected)
                begin_connect(m);
        else if (m->needs_resync)
                begin_resync(m);
        else
                begin_exec(m);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg) {
        shell_run(arg);
}

void machine_shell_kick(struct machine *m) {
        event_active(m->shell_kick, 0, 0);
}

void machine_shell_submit(struct machine *m, struct shell_job *j) {
        TAILQ_INSERT_TAIL(&m->jobs, j, link);
        shell_run(m);
}

void machine_shell_fail_all(struct machine *m, int error, const char *message) {
        struct shell_job *j;

        if (m->active) {
                guest_proto_reset(&m->gp);
                complete(m, error, message, 0);
        }
        while ((j = TAILQ_FIRST(&m->jobs))) {
                TAILQ_REMOVE(&m->jobs, j, link);
                j->done(m, j, error, message, 0, NULL, 0);
                shell_job_free(j);
        }
}

static void on_event(struct machine *m, enum guest_event ev) {
        char msg[MSG_STR_MAX];
        int r;

        switch (ev) {
        case GUEST_EVENT_NONE:
                return;
        case GUEST_EVENT_READY:
                if (m->resyncing) {
                        /* A fresh shell after check_output=False: the marker
                         * may reach it late and be echoed; resync once more. */
                        m->resyncing = false;
                        m->shell_may_be_gone = false;
                        m->connected = true;
                        (void) evtimer_del(m->shell_timer);
                        log_info("a fresh guest root shell announced itself");
                        begin_resync(m);
                        return;
                }
                m->connected = true;
                m->needs_resync = false;
                log_info("connected to guest root shell");
                (void) worker_send_event(m->w, "guest-ready", "connected to the guest root shell");
                log_info("(connecting took %.2f seconds)",
                         (double) (now_usec() - (m->active ? m->active->started : m->phase_started)) / USEC_PER_SEC);
                machine_save_state(m);
                (void) evtimer_del(m->shell_timer);
                if (m->active)
                        begin_exec(m);
                return;
        case GUEST_EVENT_SYNCED:
                m->needs_resync = false;
                m->resyncing = false;
                m->shell_may_be_gone = false;
                (void) evtimer_del(m->shell_timer);
                log_debug("Guest shell resynchronised (%s)", m->nonce);
                machine_send_ready(m);
                if (m->active)
                        begin_exec(m);
                else
                        machine_shell_kick(m);
                return;
        case GUEST_EVENT_OUTPUT:
                m->active_output = guest_proto_take_output(&m->gp, &m->active_output_len);
                if (!m->active_output) {
                        fail_desync(m, -ENOMEM, "out of memory");
                        return;
                }
                if (!m->active->check_return) {
                        complete(m, 0, NULL, -1);
                        return;
                }
                guest_proto_expect_status(&m->gp);
                if (m->active_fast)
                        return; /* the status line follows by itself */
                r = shell_send(m, GUEST_STATUS_COMMAND);
                if (r < 0)
                        fail_desync(m, r, "could not write to the guest shell");
                return;
        case GUEST_EVENT_STATUS:
                complete(m, 0, NULL, guest_proto_status(&m->gp));
                return;
        case GUEST_EVENT_ERROR:
                (void) snprintf(msg, sizeof msg, "%s", guest_proto_error(&m->gp));
                log_error("%s; will resynchronise the guest shell before the next command", msg);
                fail_desync(m, -EPROTO, msg);
                return;
        case _GUEST_EVENT_MAX:
                break;
        }
}

static void shell_lost(struct machine *m, const char *why) {
        log_info("Guest shell connection closed (%s)", why);
        machine_shell_detach(m);
        m->connected = false;
        guest_proto_reset(&m->gp);
        /* Usually QEMU is exiting: give its exit a moment to arrive, so the
         * error can say how it ended rather than just "Shell disconnected". */
        if (m->active)
                machine_timer_set(m->shell_timer, SHELL_LOST_GRACE_USEC);
}

static void shell_feed(struct machine *m, const uint8_t *buf, size_t n) {
        for (size_t off = 0; off < n && m->shell_fd >= 0;) {
                size_t used = 0;
                enum guest_event ev = guest_proto_feed(&m->gp, buf + off, n - off, &used);
                off += used;
                on_event(m, ev);
        }
}

/* Give the blocks already read back to the file system; the file's size and
 * everyone's offsets stay as they are. Best effort: without hole punching
 * the file just keeps what the guest printed. */
static void shell_punch(struct machine *m) {
        off_t at = lseek(m->shell_fd, 0, SEEK_CUR);

        if (at < 0 || (unsigned long long) at < m->shell_punched + SHELL_PUNCH_BYTES)
                return;
        at &= ~(off_t) 0xfff;
        if (fallocate(m->shell_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, at) < 0)
                log_debug_errno(negative_errno(), "Could not free the consumed part of the shell output file");
        m->shell_punched = (unsigned long long) at;
}

/* Read what the guest sent, unless replies are waiting for the channel (then
 * machine_shell_resume() comes back). A regular file at its end just has
 * nothing more yet; a socket at its end is closed. */
static void shell_read(struct machine *m) {
        static uint8_t buf[SHELL_READ_MAX];

        for (unsigned i = 0; i < SHELL_READS_PER_WAKE && m->shell_fd >= 0; i++) {
                ssize_t n;

                if (machine_reply_busy(m)) {
                        m->shell_paused = true;
                        if (m->shell_ev && m->shell_notify < 0)
                                (void) event_del(m->shell_ev);
                        return;
                }
                n = read(m->shell_fd, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        shell_lost(m, strerror(errno));
                        return;
                }
                if (n == 0) {
                        if (m->shell_notify >= 0) {
                                shell_punch(m);
                                return;
                        }
                        shell_lost(m, "end of file");
                        return;
                }
                shell_feed(m, buf, (size_t) n);
        }
        /* More may be there: come back after the loop has served the others. */
        if (m->shell_fd >= 0)
                event_active(m->shell_more, 0, 0);
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine *m = arg;

        if (m->shell_notify >= 0) {
                /* Drain the notifications before reading, so a write after our
                 * read always leaves one behind. */
                char ev[4096];
                while (read(fd, ev, sizeof ev) > 0)
                        ;
        }
        if (!m->shell_paused)
                shell_read(m);
}

static void more_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine *m = arg;

        if (!m->shell_paused)
                shell_read(m);
}

void machine_shell_resume(struct machine *m) {
        if (!m->shell_paused)
                return;
        m->shell_paused = false;
        if (m->shell_ev && m->shell_notify < 0)
                (void) event_add(m->shell_ev, NULL);
        if (m->shell_fd >= 0)
                event_active(m->shell_more, 0, 0);
}

void machine_shell_drain(struct machine *m) {
        static uint8_t buf[SHELL_READ_MAX];
        ssize_t n;

        /* The writer is gone: what it left in the file is all there is. */
        while (m->shell_notify >= 0 && m->shell_fd >= 0 && (n = read(m->shell_fd, buf, sizeof buf)) > 0)
                shell_feed(m, buf, (size_t) n);
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine *m = arg;
        int r = shell_flush(m);

        if (r < 0)
                shell_lost(m, strerror(-r));
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine *m = arg;
        char msg[MSG_STR_MAX], tail[2048];
        unsigned long long used = now_usec() - m->phase_started;

        if (m->resyncing) {
                (void) snprintf(msg, sizeof msg,
                                "guest shell did not answer the resync marker within %llu s (a command from before "
                                "may still be running in the guest)",
                                SHELL_RESYNC_USEC / USEC_PER_SEC);
                fail_desync(m, -ETIMEDOUT, msg);
                return;
        }
        if (!m->active)
                return;
        if (m->shell_fd < 0) {
                complete(m, -ECONNRESET, "Shell disconnected", 0);
                return;
        }
        if (m->gp.phase == GUEST_PHASE_READY) {
                bool bounded;
                if (connect_left_usec(m, &bounded) == 0 && bounded) {
                        /* The config's connect_s (counted from boot) is final:
                         * -EHOSTDOWN; a request's own timeout is a poll that may
                         * be repeated: -ETIMEDOUT. Either way the scan for the
                         * ready line goes on. */
                        bool final = m->cfg.connect_s > 0 &&
                                     now_usec() >= m->phase_started + m->cfg.connect_s * USEC_PER_SEC;
                        machine_tail_describe(m, tail, sizeof tail);
                        (void) snprintf(
                                msg, sizeof msg,
                                "machine '%s' did not boot: no backdoor ready line (\"%s\") %.0f s after "
                                "%s%s; %s",
                                m->cfg.name, GUEST_READY_LINE,
                                (double) (now_usec() - (final ? m->phase_started : m->active->started)) / USEC_PER_SEC,
                                final ? "its start" : "the request",
                                final ? " (the boot timeout: vigil run --boot-timeout, spec \"boot_timeout\")" : "",
                                tail);
                        if (final)
                                log_error("%s", msg);
                        else
                                log_debug("%s", msg);
                        complete(m, final ? -EHOSTDOWN : -ETIMEDOUT, msg, 0);
                        return;
                }
                log_debug("Guest root shell did not produce any data yet...");
                arm_connect_timer(m);
                return;
        }
        (void) snprintf(msg, sizeof msg,
                        "guest shell gave no answer %.0f s after a command with timeout %lld s (is the guest hung?)",
                        (double) used / USEC_PER_SEC, (long long) m->active->timeout_s);
        log_error("%s", msg);
        fail_desync(m, -ETIMEDOUT, msg);
}

int machine_shell_init(struct machine *m) {
        m->shell_fd = m->shell_notify = -EBADF;
        TAILQ_INIT(&m->jobs);
        guest_proto_init(&m->gp, m->cfg.output_max);
        m->shell_wfd = -EBADF;
        m->shell_timer = evtimer_new(m->base, timer_cb, m);
        m->shell_kick = event_new(m->base, -1, 0, kick_cb, m);
        m->shell_more = event_new(m->base, -1, 0, more_cb, m);
        if (!m->shell_timer || !m->shell_kick || !m->shell_more || !out_buf(m))
                return -ENOMEM;
        return 0;
}

void machine_shell_free(struct machine *m) {
        machine_shell_detach(m);
        if (m->shell_timer)
                event_free(m->shell_timer);
        if (m->shell_kick)
                event_free(m->shell_kick);
        if (m->shell_more)
                event_free(m->shell_more);
        m->shell_timer = m->shell_kick = m->shell_more = NULL;
        shell_job_free(m->active);
        m->active = NULL;
        free(m->active_output);
        for (struct shell_job *j; (j = TAILQ_FIRST(&m->jobs));) {
                TAILQ_REMOVE(&m->jobs, j, link);
                shell_job_free(j);
        }
        guest_proto_done(&m->gp);
        if (m->shell_out)
                evbuffer_free(m->shell_out);
        m->shell_out = NULL;
}

int machine_shell_attach(struct machine *m, int rfd, int wfd, const char *watch) {
        _cleanup_close_ int notify = -EBADF;
        int ev_fd = rfd;

        machine_shell_detach(m);
        if (watch) {
                notify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                if (notify < 0 || inotify_add_watch(notify, watch, IN_MODIFY) < 0)
                        return negative_errno();
                ev_fd = notify;
        }
        m->shell_ev = event_new(m->base, ev_fd, EV_READ | EV_PERSIST, read_cb, m);
        m->shell_wev = event_new(m->base, wfd >= 0 ? wfd : rfd, EV_WRITE, write_cb, m);
        if (!m->shell_ev || !m->shell_wev || event_add(m->shell_ev, NULL) < 0) {
                machine_shell_detach(m);
                return -ENOMEM;
        }
        m->shell_fd = rfd;
        m->shell_wfd = wfd;
        m->shell_notify = TAKE_FD(notify);
        m->shell_paused = false;
        m->shell_punched = 0;
        if (!m->connected) {
                guest_proto_expect_ready(&m->gp);
                m->phase_started = now_usec();
        }
        /* A file may already hold bytes (the ready line, after a restart). */
        if (m->shell_notify >= 0)
                event_active(m->shell_more, 0, 0);
        return 0;
}

void machine_shell_detach(struct machine *m) {
        /* A resync cannot finish without the shell; do not let it hold the queue. */
        if (m->resyncing) {
                m->resyncing = false;
                m->needs_resync = true;
                (void) evtimer_del(m->shell_timer);
                machine_send_ready(m);
        }
        if (m->shell_ev)
                event_free(m->shell_ev);
        if (m->shell_wev)
                event_free(m->shell_wev);
        m->shell_ev = NULL;
        m->shell_wev = NULL;
        if (m->shell_more)
                (void) event_del(m->shell_more);
        m->shell_fd = safe_close(m->shell_fd);
        m->shell_wfd = safe_close(m->shell_wfd);
        m->shell_notify = safe_close(m->shell_notify);
        m->shell_paused = false;
        if (m->shell_out)
                (void) evbuffer_drain(m->shell_out, evbuffer_get_length(m->shell_out));
}

void machine_shell_resync_then_ready(struct machine *m) {
        if (m->shell_fd < 0 || !m->connected || m->active) {
                machine_send_ready(m);
                return;
        }
        begin_resync(m);
}
