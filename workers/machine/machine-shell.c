/* SPDX-License-Identifier: MIT */
/*
 * machine-shell.c owns the guest shell channel of one machine: the FIFO of
 * shell jobs (connect, execute), driving guest-proto over the shell fd with
 * libevent, host-side deadlines so no wait is unbounded by accident, and the
 * nonce resync that puts the stream back in step after a protocol error, a
 * check_output=False command or a worker restart. One job at a time: the
 * backdoor protocol has no framing that would allow more. It reports to
 * its owner only through struct machine_shell_ops and never calls up.
 *
 * The guest's bytes come either from a socket (nspawn) or from a regular
 * file that QEMU appends to (the virtconsole's chardev, see backend-qemu.c),
 * watched with inotify and read from the offset the fd store keeps across
 * worker restarts; consumed blocks are punched out so the file stays small.
 * Either way reading pauses while replies wait for the supervisor's channel
 * (ops->busy()), which is how a fast guest is slowed to the pace of
 * the script worker without losing a byte.
 */
#include <event2/buffer.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/inotify.h>
#include <sys/random.h>

#include "guest-proto.h"
#include "log.h"
#include "machine-shell.h"
#include "machine-util.h"
#include "msg.h"

#define SHELL_READ_MAX        (64u * 1024u)
#define SHELL_READS_PER_WAKE  16u                    /* then yield to the loop and come back */
#define SHELL_PUNCH_BYTES     (4ull * 1024u * 1024u) /* free consumed file blocks this often */
#define SHELL_RESYNC_USEC     (60 * USEC_PER_SEC)
#define SHELL_QUIET_LOG_USEC  (30 * USEC_PER_SEC)
#define SHELL_GRACE_MIN_S     60
#define SHELL_LOST_GRACE_USEC (2 * USEC_PER_SEC)
#define SHELL_NOCHECK_USEC    (900 * USEC_PER_SEC) /* the reference's connect wait */

struct machine_shell {
        struct event_base *base;
        const struct machine_shell_ops *ops;
        void *userdata;
        char *machine;
        uint64_t connect_s;
        bool fast_path;

        bool connected;
        bool held;                  /* the backend holds the queue (a snapshot is being taken) */
        int fd;                     /* guest -> host: a socket, or the file QEMU appends to */
        int wfd;                    /* host -> guest when not fd (QEMU's input FIFO), else -EBADF */
        int notify;                 /* inotify on the file, or -EBADF for a socket */
        bool paused;                /* replies wait for the owner's channel: not reading */
        unsigned long long punched; /* file offset up to which blocks were freed */
        struct event *more;
        struct event *ev;
        struct event *timer;
        struct event *kick;
        struct event *wev;
        struct evbuffer *out;
        struct guest_proto gp;
        bool needs_resync; /* stream position unknown: resync with a nonce first */
        bool resyncing;
        bool may_be_gone; /* after check_output=False: a fresh ready line ends a resync too */
        char nonce[40];
        struct shell_job *active;
        bool active_fast; /* the active job uses the fast framing */
        /* The guest shell has the fast framing's reader function (sent with
         * the first fast command of each shell; guest-proto.h). */
        bool fast_reader;
        uint8_t *active_output;
        size_t active_output_len;
        unsigned long long phase_started;
        TAILQ_HEAD(, shell_job) jobs;
};

static void shell_run(struct machine_shell *s);

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

struct shell_job *shell_job_free(struct shell_job *j) {
        if (j) {
                free(j->command);
                free(j);
        }
        return NULL;
}

static void complete(struct machine_shell *s, int error, const char *message, int status) {
        struct shell_job *j = TAKE_PTR(s->active);
        uint8_t *out = TAKE_PTR(s->active_output);
        size_t len = s->active_output_len;

        s->active_output_len = 0;
        (void) evtimer_del(s->timer);
        if (!j) {
                free(out);
                return;
        }
        j->done(j, error, message, status, out, len);
        shell_job_free(j);
        event_active(s->kick, 0, 0);
}

/* The stream is in an unknown state: the next job resyncs first. */
static void fail_desync(struct machine_shell *s, int error, const char *message) {
        s->needs_resync = true;
        s->fast_reader = false; /* whatever happened, the next fast command defines it again */
        guest_proto_reset(&s->gp);
        if (s->resyncing) {
                s->resyncing = false;
                log_warning("Guest shell resync failed: %s", message);
                s->ops->resynced(s->userdata);
        }
        complete(s, error, message, 0);
}

static int shell_flush(struct machine_shell *s) {
        struct evbuffer *b = s->out;

        while (evbuffer_get_length(b) > 0) {
                int n = evbuffer_write(b, s->wfd >= 0 ? s->wfd : s->fd);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return negative_errno();
                }
        }
        if (evbuffer_get_length(b) > 0)
                (void) event_add(s->wev, NULL);
        else
                (void) event_del(s->wev);
        return 0;
}

static int shell_send(struct machine_shell *s, const char *text) {
        if (s->fd < 0)
                return -ENOTCONN;
        if (evbuffer_add(s->out, text, strlen(text)) < 0)
                return -ENOMEM;
        return shell_flush(s);
}

int machine_shell_write_raw(struct machine_shell *s, const char *text) {
        s->needs_resync = true;
        return shell_send(s, text);
}

static void begin_resync(struct machine_shell *s) {
        _cleanup_free_ char *cmd = NULL;
        uint8_t rnd[8];
        int r;

        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                for (size_t i = 0; i < sizeof rnd; i++)
                        rnd[i] = (uint8_t) (now_usec() >> (i * 3));
        (void) snprintf(s->nonce, sizeof s->nonce, "vigil-sync-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                        rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        s->resyncing = true;
        if (s->may_be_gone)
                (void) guest_proto_expect_nonce_or_ready(&s->gp, s->nonce);
        else
                (void) guest_proto_expect_nonce(&s->gp, s->nonce);
        s->phase_started = now_usec();
        r = guest_build_nonce_command(s->nonce, &cmd);
        if (r >= 0)
                r = shell_send(s, cmd);
        if (r < 0) {
                fail_desync(s, r, "could not write the resync marker to the guest shell");
                return;
        }
        /* A shell that lives answers at once; a fresh one comes after a boot
         * stage (switch_root), so wait as long as for a connect. */
        machine_timer_set(s->timer, s->may_be_gone
                                            ? MAX(SHELL_RESYNC_USEC,
                                                  s->connect_s > 0 ? s->connect_s * USEC_PER_SEC : SHELL_NOCHECK_USEC)
                                            : SHELL_RESYNC_USEC);
}

static void begin_exec(struct machine_shell *s) {
        struct shell_job *j = s->active;
        _cleanup_free_ char *line = NULL;
        int r;

        if (j->kind == SHELL_JOB_CONNECT) {
                complete(s, 0, NULL, 0);
                return;
        }
        if (j->begin)
                j->begin(j);
        s->active_fast = s->fast_path && j->check_return && j->check_output;
        if (s->active_fast)
                r = guest_build_fast_call(j->command, j->timeout_s, !s->fast_reader, &line);
        else
                r = guest_build_command(j->command, j->timeout_s, &line);
        if (r < 0) {
                complete(s, r, "out of memory", 0);
                return;
        }
        if (!j->check_output) {
                /* As the reference: send and return (-2, "") without reading.
                 * Meant for commands that end the shell (switch_root), but the
                 * shell may as well live on: the next job resyncs, accepting
                 * either its nonce or a fresh shell's ready line, so it neither
                 * hangs nor reads this command's output as its own. */
                r = shell_send(s, line);
                s->needs_resync = true;
                s->may_be_gone = true;
                s->fast_reader = false;
                complete(s, r < 0 ? r : 0, r < 0 ? "could not write to the guest shell" : NULL, -2);
                return;
        }
        if (s->active_fast)
                guest_proto_expect_output_fast(&s->gp);
        else
                guest_proto_expect_output(&s->gp);
        s->phase_started = now_usec();
        r = shell_send(s, line);
        if (r < 0) {
                fail_desync(s, r, "could not write the command to the guest shell");
                return;
        }
        if (j->timeout_s >= 0) {
                /* The guest's `timeout` bounds the command; this only catches a
                 * guest that stopped answering altogether. */
                unsigned long long secs = (unsigned long long) j->timeout_s;
                machine_timer_set(s->timer,
                                  (secs + MAX(secs / 2, (unsigned long long) SHELL_GRACE_MIN_S)) * USEC_PER_SEC);
        }
}

/* Time left for the ready line: the config's connect_s counts from when the
 * shell was attached (the boot), a CONNECT request's timeout from the job's
 * start. 0 = unbounded, as in the reference. */
static unsigned long long connect_left_usec(struct machine_shell *s, bool *ret_bounded) {
        unsigned long long now = now_usec(), left = ULLONG_MAX;
        struct shell_job *j = s->active;

        if (s->connect_s > 0) {
                unsigned long long end = s->phase_started + s->connect_s * USEC_PER_SEC;
                left = end > now ? end - now : 0;
        }
        if (j && j->connect_timeout_ms >= 0) {
                unsigned long long end = j->started + (unsigned long long) j->connect_timeout_ms * USEC_PER_MSEC;
                left = MIN(left, end > now ? end - now : 0);
        }
        *ret_bounded = left != ULLONG_MAX;
        return left;
}

static void arm_connect_timer(struct machine_shell *s) {
        bool bounded;
        unsigned long long left = connect_left_usec(s, &bounded);

        machine_timer_set(s->timer, bounded ? MAX(MIN(left, SHELL_QUIET_LOG_USEC), 1ull) : SHELL_QUIET_LOG_USEC);
}

/* Scan for the ready line. It may already be under way: the shell is read
 * from the moment QEMU connects, since a guest that becomes ready before the
 * first command prints its ready line only once. */
static void begin_connect(struct machine_shell *s) {
        if (s->gp.phase != GUEST_PHASE_READY) {
                guest_proto_expect_ready(&s->gp);
                s->phase_started = now_usec();
        }
        arm_connect_timer(s);
}

void machine_shell_disconnected(struct machine_shell *s) {
        s->connected = false;
        s->ops->state_changed(s->userdata);
        if (!s->resyncing && s->fd >= 0 && (!s->active || s->gp.phase == GUEST_PHASE_IDLE)) {
                guest_proto_expect_ready(&s->gp);
                s->phase_started = now_usec();
        }
}

static void shell_run(struct machine_shell *s) {
        struct shell_job *j;

        if (s->active || s->resyncing || s->held)
                return;
        j = TAILQ_FIRST(&s->jobs);
        if (!j)
                return;
        /* As the reference: connect() (so every execute) starts the machine. */
        if (!s->ops->ensure_started(s->userdata))
                return;
        TAILQ_REMOVE(&s->jobs, j, link);
        s->active = j;
        j->started = now_usec();
        if (s->fd < 0) {
                complete(s, -ENOTCONN, "Shell disconnected", 0);
                return;
        }
        if (!s->connected)
                begin_connect(s);
        else if (s->needs_resync)
                begin_resync(s);
        else
                begin_exec(s);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg) {
        shell_run(arg);
}

void machine_shell_kick(struct machine_shell *s) {
        event_active(s->kick, 0, 0);
}

void machine_shell_submit(struct machine_shell *s, struct shell_job *j) {
        TAILQ_INSERT_TAIL(&s->jobs, j, link);
        shell_run(s);
}

void machine_shell_submit_first(struct machine_shell *s, struct shell_job *j) {
        /* From the loop, not now: the caller may be inside an event of the
         * job that is about to become active (the ready line). */
        TAILQ_INSERT_HEAD(&s->jobs, j, link);
        machine_shell_kick(s);
}

void machine_shell_hold(struct machine_shell *s, bool hold) {
        s->held = hold;
        if (!hold)
                machine_shell_kick(s);
}

void machine_shell_restored(struct machine_shell *s) {
        /* The guest's shell lives on from the snapshot: no ready line will
         * come. It stands idle at its prompt (a snapshot is taken between
         * jobs, with the queue held) and its output goes to a new, empty file:
         * no resync needed. Its fast reader may be defined; the first fast
         * command defines it again. */
        s->connected = true;
        s->needs_resync = false;
        s->fast_reader = false;
        guest_proto_reset(&s->gp);
        s->ops->state_changed(s->userdata);
}

void machine_shell_fail_all(struct machine_shell *s, int error, const char *message) {
        struct shell_job *j;

        if (s->active) {
                guest_proto_reset(&s->gp);
                complete(s, error, message, 0);
        }
        while ((j = TAILQ_FIRST(&s->jobs))) {
                TAILQ_REMOVE(&s->jobs, j, link);
                j->done(j, error, message, 0, NULL, 0);
                shell_job_free(j);
        }
}

static void on_event(struct machine_shell *s, enum guest_event ev) {
        char msg[MSG_STR_MAX];
        int r;

        switch (ev) {
        case GUEST_EVENT_NONE:
                return;
        case GUEST_EVENT_READY:
                s->fast_reader = false; /* a fresh shell */
                if (s->resyncing) {
                        /* A fresh shell after check_output=False: the marker
                         * may reach it late and be echoed; resync once more. */
                        s->resyncing = false;
                        s->may_be_gone = false;
                        s->connected = true;
                        (void) evtimer_del(s->timer);
                        log_info("a fresh guest root shell announced itself");
                        begin_resync(s);
                        return;
                }
                s->connected = true;
                s->needs_resync = false;
                log_info("connected to guest root shell");
                log_info("(connecting took %.2f seconds)",
                         (double) (now_usec() - (s->active ? s->active->started : s->phase_started)) / USEC_PER_SEC);
                s->ops->state_changed(s->userdata);
                s->ops->guest_ready(s->userdata);
                (void) evtimer_del(s->timer);
                if (s->active)
                        begin_exec(s);
                return;
        case GUEST_EVENT_SYNCED:
                s->needs_resync = false;
                s->resyncing = false;
                s->may_be_gone = false;
                (void) evtimer_del(s->timer);
                log_debug("Guest shell resynchronised (%s)", s->nonce);
                s->ops->resynced(s->userdata);
                if (s->active)
                        begin_exec(s);
                else
                        machine_shell_kick(s);
                return;
        case GUEST_EVENT_OUTPUT:
                s->active_output = guest_proto_take_output(&s->gp, &s->active_output_len);
                if (!s->active_output) {
                        fail_desync(s, -ENOMEM, "out of memory");
                        return;
                }
                if (!s->active->check_return) {
                        complete(s, 0, NULL, -1);
                        return;
                }
                guest_proto_expect_status(&s->gp);
                if (s->active_fast) {
                        s->fast_reader = true;
                        return; /* the status line follows by itself */
                }
                r = shell_send(s, GUEST_STATUS_COMMAND);
                if (r < 0)
                        fail_desync(s, r, "could not write to the guest shell");
                return;
        case GUEST_EVENT_STATUS:
                complete(s, 0, NULL, guest_proto_status(&s->gp));
                return;
        case GUEST_EVENT_ERROR:
                (void) snprintf(msg, sizeof msg, "%s", guest_proto_error(&s->gp));
                log_error("%s; will resynchronise the guest shell before the next command", msg);
                fail_desync(s, -EPROTO, msg);
                return;
        case _GUEST_EVENT_MAX:
                break;
        }
}

static void shell_lost(struct machine_shell *s, const char *why) {
        log_info("Guest shell connection closed (%s)", why);
        machine_shell_detach(s);
        s->connected = false;
        guest_proto_reset(&s->gp);
        /* Usually QEMU is exiting: give its exit a moment to arrive, so the
         * error can say how it ended rather than just "Shell disconnected". */
        if (s->active)
                machine_timer_set(s->timer, SHELL_LOST_GRACE_USEC);
}

static void shell_feed(struct machine_shell *s, const uint8_t *buf, size_t n) {
        for (size_t off = 0; off < n && s->fd >= 0;) {
                size_t used = 0;
                enum guest_event ev = guest_proto_feed(&s->gp, buf + off, n - off, &used);
                off += used;
                on_event(s, ev);
        }
}

/* Give the blocks already read back to the file system; the file's size and
 * everyone's offsets stay as they are. Best effort: without hole punching
 * the file just keeps what the guest printed. */
static void shell_punch(struct machine_shell *s) {
        off_t at = lseek(s->fd, 0, SEEK_CUR);

        if (at < 0 || (unsigned long long) at < s->punched + SHELL_PUNCH_BYTES)
                return;
        at &= ~(off_t) 0xfff;
        if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, at) < 0)
                log_debug_errno(negative_errno(), "Could not free the consumed part of the shell output file");
        s->punched = (unsigned long long) at;
}

/* Read what the guest sent, unless replies are waiting for the channel (then
 * machine_shell_resume() comes back). A regular file at its end just has
 * nothing more yet; a socket at its end is closed. */
static void shell_read(struct machine_shell *s) {
        static uint8_t buf[SHELL_READ_MAX];

        for (unsigned i = 0; i < SHELL_READS_PER_WAKE && s->fd >= 0; i++) {
                ssize_t n;

                if (s->ops->busy(s->userdata)) {
                        s->paused = true;
                        if (s->ev && s->notify < 0)
                                (void) event_del(s->ev);
                        return;
                }
                n = read(s->fd, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        shell_lost(s, strerror(errno));
                        return;
                }
                if (n == 0) {
                        if (s->notify >= 0) {
                                shell_punch(s);
                                return;
                        }
                        shell_lost(s, "end of file");
                        return;
                }
                shell_feed(s, buf, (size_t) n);
        }
        /* More may be there: come back after the loop has served the others. */
        if (s->fd >= 0)
                event_active(s->more, 0, 0);
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine_shell *s = arg;

        if (s->notify >= 0) {
                /* Drain the notifications before reading, so a write after our
                 * read always leaves one behind. */
                char ev[4096];
                while (read(fd, ev, sizeof ev) > 0)
                        ;
        }
        if (!s->paused)
                shell_read(s);
}

static void more_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine_shell *s = arg;

        if (!s->paused)
                shell_read(s);
}

void machine_shell_resume(struct machine_shell *s) {
        if (!s->paused)
                return;
        s->paused = false;
        if (s->ev && s->notify < 0)
                (void) event_add(s->ev, NULL);
        if (s->fd >= 0)
                event_active(s->more, 0, 0);
}

void machine_shell_drain(struct machine_shell *s) {
        static uint8_t buf[SHELL_READ_MAX];
        ssize_t n;

        /* The writer is gone: what it left in the file is all there is. */
        while (s->notify >= 0 && s->fd >= 0 && (n = read(s->fd, buf, sizeof buf)) > 0)
                shell_feed(s, buf, (size_t) n);
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine_shell *s = arg;
        int r = shell_flush(s);

        if (r < 0)
                shell_lost(s, strerror(-r));
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine_shell *s = arg;
        char msg[MSG_STR_MAX], tail[2048];
        unsigned long long used = now_usec() - s->phase_started;

        if (s->resyncing) {
                (void) snprintf(msg, sizeof msg,
                                "guest shell did not answer the resync marker within %llu s (a command from before "
                                "may still be running in the guest)",
                                SHELL_RESYNC_USEC / USEC_PER_SEC);
                fail_desync(s, -ETIMEDOUT, msg);
                return;
        }
        if (!s->active)
                return;
        if (s->fd < 0) {
                complete(s, -ECONNRESET, "Shell disconnected", 0);
                return;
        }
        if (s->gp.phase == GUEST_PHASE_READY) {
                bool bounded;
                if (connect_left_usec(s, &bounded) == 0 && bounded) {
                        /* The config's connect_s (counted from boot) is final:
                         * -EHOSTDOWN; a request's own timeout is a poll that may
                         * be repeated: -ETIMEDOUT. Either way the scan for the
                         * ready line goes on. */
                        bool final = s->connect_s > 0 && now_usec() >= s->phase_started + s->connect_s * USEC_PER_SEC;
                        s->ops->describe_tail(s->userdata, tail, sizeof tail);
                        (void) snprintf(
                                msg, sizeof msg,
                                "machine '%s' did not boot: no backdoor ready line (\"%s\") %.0f s after "
                                "%s%s; %s",
                                s->machine, GUEST_READY_LINE,
                                (double) (now_usec() - (final ? s->phase_started : s->active->started)) / USEC_PER_SEC,
                                final ? "its start" : "the request",
                                final ? " (the boot timeout: vigil run --boot-timeout, spec \"boot_timeout\")" : "",
                                tail);
                        if (final)
                                log_error("%s", msg);
                        else
                                log_debug("%s", msg);
                        complete(s, final ? -EHOSTDOWN : -ETIMEDOUT, msg, 0);
                        return;
                }
                log_debug("Guest root shell did not produce any data yet...");
                arm_connect_timer(s);
                return;
        }
        (void) snprintf(msg, sizeof msg,
                        "guest shell gave no answer %.0f s after a command with timeout %lld s (is the guest hung?)",
                        (double) used / USEC_PER_SEC, (long long) s->active->timeout_s);
        log_error("%s", msg);
        fail_desync(s, -ETIMEDOUT, msg);
}

int machine_shell_new(struct event_base *base, const struct machine_shell_params *params,
                      const struct machine_shell_ops *ops, void *userdata, struct machine_shell **ret) {
        _cleanup_(machine_shell_freep) struct machine_shell *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
        s->base = base;
        s->ops = ops;
        s->userdata = userdata;
        s->connect_s = params->connect_s;
        s->fast_path = params->fast_path;
        s->fd = s->wfd = s->notify = -EBADF;
        TAILQ_INIT(&s->jobs);
        guest_proto_init(&s->gp, params->output_max);
        s->machine = strdup(params->machine ?: "");
        s->timer = evtimer_new(base, timer_cb, s);
        s->kick = event_new(base, -1, 0, kick_cb, s);
        s->more = event_new(base, -1, 0, more_cb, s);
        s->out = evbuffer_new();
        if (!s->machine || !s->timer || !s->kick || !s->more || !s->out)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

struct machine_shell *machine_shell_free(struct machine_shell *s) {
        if (!s)
                return NULL;
        machine_shell_detach(s);
        machine_event_free(&s->timer);
        machine_event_free(&s->kick);
        machine_event_free(&s->more);
        shell_job_free(s->active);
        free(s->active_output);
        for (struct shell_job *j; (j = TAILQ_FIRST(&s->jobs));) {
                TAILQ_REMOVE(&s->jobs, j, link);
                shell_job_free(j);
        }
        guest_proto_done(&s->gp);
        if (s->out)
                evbuffer_free(s->out);
        free(s->machine);
        free(s);
        return NULL;
}

int machine_shell_attach(struct machine_shell *s, int rfd, int wfd, const char *watch) {
        _cleanup_close_ int notify = -EBADF;
        int ev_fd = rfd;

        machine_shell_detach(s);
        if (watch) {
                notify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
                if (notify < 0 || inotify_add_watch(notify, watch, IN_MODIFY) < 0)
                        return negative_errno();
                ev_fd = notify;
        }
        s->ev = event_new(s->base, ev_fd, EV_READ | EV_PERSIST, read_cb, s);
        s->wev = event_new(s->base, wfd >= 0 ? wfd : rfd, EV_WRITE, write_cb, s);
        if (!s->ev || !s->wev || event_add(s->ev, NULL) < 0) {
                machine_shell_detach(s);
                return -ENOMEM;
        }
        s->fd = rfd;
        s->wfd = wfd;
        s->notify = TAKE_FD(notify);
        s->paused = false;
        s->punched = 0;
        if (!s->connected) {
                guest_proto_expect_ready(&s->gp);
                s->phase_started = now_usec();
        }
        /* A file may already hold bytes (the ready line, after a restart). */
        if (s->notify >= 0)
                event_active(s->more, 0, 0);
        return 0;
}

void machine_shell_detach(struct machine_shell *s) {
        /* A resync cannot finish without the shell; do not let it hold the queue. */
        if (s->resyncing) {
                s->resyncing = false;
                s->needs_resync = true;
                (void) evtimer_del(s->timer);
                s->ops->resynced(s->userdata);
        }
        if (s->ev)
                event_free(s->ev);
        if (s->wev)
                event_free(s->wev);
        s->ev = NULL;
        s->wev = NULL;
        if (s->more)
                (void) event_del(s->more);
        s->fd = safe_close(s->fd);
        s->wfd = safe_close(s->wfd);
        s->notify = safe_close(s->notify);
        s->paused = false;
        if (s->out)
                (void) evbuffer_drain(s->out, evbuffer_get_length(s->out));
}

void machine_shell_resync(struct machine_shell *s) {
        if (s->fd < 0 || !s->connected || s->active) {
                s->ops->resynced(s->userdata);
                return;
        }
        begin_resync(s);
}

bool machine_shell_connected(const struct machine_shell *s) {
        return s->connected;
}

void machine_shell_set_connected(struct machine_shell *s, bool connected) {
        s->connected = connected;
}

bool machine_shell_idle(const struct machine_shell *s) {
        return s->connected && !s->active && TAILQ_EMPTY(&s->jobs);
}

void machine_shell_transport_reset(struct machine_shell *s, const char *why) {
        struct shell_job *j = s->active;

        /* The rule of a worker restart (docs/restart-semantics.md): the job in
         * flight runs again on the next shell if it is idempotent, and fails
         * with @why otherwise; a connect just keeps waiting. */
        if (j && s->gp.phase != GUEST_PHASE_READY && s->gp.phase != GUEST_PHASE_IDLE &&
            s->gp.phase != GUEST_PHASE_NONCE) {
                guest_proto_reset(&s->gp);
                if (j->idempotent) {
                        s->active = NULL;
                        free(TAKE_PTR(s->active_output));
                        s->active_output_len = 0;
                        (void) evtimer_del(s->timer);
                        log_info("The command in flight runs again once the shell is back (it is idempotent)");
                        TAILQ_INSERT_HEAD(&s->jobs, j, link);
                        machine_shell_kick(s);
                } else
                        complete(s, -ECONNRESET, why, 0);
        }
        machine_shell_disconnected(s);
}

void machine_shell_transport_lost(struct machine_shell *s, const char *why) {
        /* A command in flight has lost its shell: fail it now rather than at
         * its deadline. A connect keeps waiting for the next ready line, and
         * a resync ends by its own deadline. */
        if (s->active && s->gp.phase != GUEST_PHASE_READY && s->gp.phase != GUEST_PHASE_IDLE &&
            s->gp.phase != GUEST_PHASE_NONCE)
                machine_shell_fail_all(s, -ECONNRESET, why);
        machine_shell_disconnected(s);
}
