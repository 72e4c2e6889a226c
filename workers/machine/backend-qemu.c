/* SPDX-License-Identifier: MIT */
/*
 * backend-qemu.c owns everything QEMU-specific about a machine: the bounded
 * KVM probe, the listening monitor socket and stdio pipes of the reference
 * driver's layout, the guest shell's output file and input FIFO, asking the
 * supervisor to spawn QEMU (never forking it here, so nothing outlives
 * vigil), accepting QEMU's monitor connection while watching for its exit,
 * the QMP handshake that adds the shell's virtconsole and starts the paused
 * guest, and the HMP greeting, HMP/QMP
 * request queues, the serial console and stderr streams, the fd store that
 * lets a restarted worker re-attach, and turning QEMU's exit into a clear
 * error or a stopped machine.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fd-util.h"
#include "log.h"
#include "machine.h"
#include "qemu-argv.h"
#include "qemu-hmp.h"
#include "qemu-qmp.h"

#define QEMU_PROC            "qemu"
#define PROBE_PROC           "kvm-probe"
#define PROBE_MARK           "Linux version"
#define PROBE_USEC           (3 * USEC_PER_SEC) /* a working KVM prints its banner in well under 1 s */
#define PROBE_CACHE          "vigil-kvm-probe"
#define START_FLOOR_S        10  /* QEMU itself needs this much at most to connect, even on a loaded host */
#define START_DEFAULT_S      120 /* without a boot deadline */
#define MONITOR_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define CRASH_KILL_USEC      (10 * USEC_PER_SEC)
#define QMP_EVENTS_MAX       256u
#define IO_READ_MAX          (64u * 1024u)
#define ENV_ENTRIES_MAX      200u

enum start_step {
        STEP_IDLE,
        STEP_PROBING,
        STEP_SPAWNING,
        STEP_ACCEPTING,
        STEP_HANDSHAKE,
        STEP_RUNNING,
        _STEP_MAX,
};

/* What a request on QEMU's monitor (HMP) or QMP connection is for. The
 * greetings and qmp_capabilities are steps of the start-up handshake (their
 * failure fails the start); the others answer a script's request (seq). */
enum monitor_request_kind {
        REQ_HMP_GREETING,     /* wait for the first "(qemu) " prompt */
        REQ_QMP_GREETING,     /* wait for {"QMP": ...} */
        REQ_QMP_CAPABILITIES, /* leave QMP's capabilities negotiation mode */
        REQ_QMP_SETUP,        /* add the shell's chardev and virtconsole */
        REQ_QMP_CONT,         /* run the guest: the last QMP start-up step */
        REQ_TEXT,             /* MSG_M_MONITOR, MSG_M_QMP: reply with the raw answer */
        REQ_SET_LINK,         /* MSG_M_SET_LINK: reply OK */
        REQ_REBOOT,           /* MSG_M_REBOOT: connected=false, reply OK */
        _REQ_KIND_MAX,
};

struct monitor_request {
        enum monitor_request_kind kind;
        char *command; /* one line, without '\n'; NULL: send nothing, wait for what QEMU says first */
        uint32_t seq;
        TAILQ_ENTRY(monitor_request) link;
};

/* The one-line requests on one of QEMU's control connections (HMP or QMP):
 * served in order, one in flight, each answered or failed within
 * MONITOR_TIMEOUT_USEC. The connection's read callback decides when an answer
 * is complete and hands it to monitor_complete(). */
struct monitor_queue {
        struct qemu *q;
        const char *what; /* the connection, as error messages name it */
        int *fd;          /* the connection (a field of struct qemu); < 0: requests wait */
        /* Called as a request becomes the one in flight, before it is written. */
        void (*activate)(struct qemu *q, const struct monitor_request *r);
        TAILQ_HEAD(, monitor_request) pending;
        struct monitor_request *active;
        struct event *timer;
};

struct qemu {
        struct machine *m;
        enum start_step step;
        bool allow_reboot;
        struct machine_proc *proc;  /* QEMU */
        struct machine_proc *probe; /* the KVM probe */
        char accel[8];
        unsigned handshake_pending;
        int pending_error; /* start-up problem waiting for QEMU's exit */
        char pending_why[256];

        int monitor_listen;
        struct event *monitor_accept_ev;
        struct event *start_timer;

        int monitor_fd;
        int shell_fd;    /* the output file, read; until handed to machine-shell */
        int shell_in_fd; /* the input FIFO, written; until handed to machine-shell */
        int qmp_fd;
        int console_fd;
        int stdin_fd;
        int stderr_fd;
        struct event *monitor_ev;
        struct event *qmp_ev;
        struct event *console_ev;
        struct event *stderr_ev;
        struct console_splitter stderr_split;

        struct qemu_hmp_reply hmp;
        struct monitor_queue hmp_requests;

        struct qemu_qmp_reader qmp;
        struct monitor_queue qmp_requests;
        char *events[QMP_EVENTS_MAX];
        size_t n_events;

        /* KVM probe */
        int probe_fd;
        struct event *probe_ev;
        struct event *probe_timer;
        char probe_tail[64];
        bool probing;
};

/* The fds a restarted worker needs to re-attach, by their names in the
 * supervisor's fd store. */
static const struct {
        const char *name;
        size_t offset; /* of the fd in struct qemu */
} stored_fds[] = {
        {"shell", offsetof(struct qemu, shell_fd)},     {"shell-in", offsetof(struct qemu, shell_in_fd)},
        {"monitor", offsetof(struct qemu, monitor_fd)}, {"qmp", offsetof(struct qemu, qmp_fd)},
        {"console", offsetof(struct qemu, console_fd)}, {"stdin", offsetof(struct qemu, stdin_fd)},
        {"stderr", offsetof(struct qemu, stderr_fd)},
};

static int *stored_fd(struct qemu *q, size_t i) {
        return (int *) ((char *) q + stored_fds[i].offset);
}

static struct qemu *Q(struct machine *m) {
        return m->backend_data;
}

static void monitor_request_free(struct monitor_request *r) {
        if (r) {
                free(r->command);
                free(r);
        }
}

static bool monitor_request_is_startup(enum monitor_request_kind kind) {
        return kind == REQ_HMP_GREETING || kind == REQ_QMP_GREETING || kind == REQ_QMP_CAPABILITIES ||
               kind == REQ_QMP_SETUP || kind == REQ_QMP_CONT;
}

/* ---- teardown ---- */

/* Every request of @mq fails with @why; the start-up ones have nobody to tell. */
static void monitor_fail_all(struct monitor_queue *mq, const char *why) {
        struct monitor_request *r;

        (void) evtimer_del(mq->timer);
        if (mq->active)
                TAILQ_INSERT_HEAD(&mq->pending, mq->active, link);
        mq->active = NULL;
        while ((r = TAILQ_FIRST(&mq->pending))) {
                TAILQ_REMOVE(&mq->pending, r, link);
                if (!monitor_request_is_startup(r->kind))
                        (void) machine_reply_error(mq->q->m, r->seq, -ECONNRESET, "%s", why);
                monitor_request_free(r);
        }
}

static void fail_monitor_requests(struct qemu *q, const char *why) {
        monitor_fail_all(&q->hmp_requests, why);
        monitor_fail_all(&q->qmp_requests, why);
        qemu_hmp_reply_done(&q->hmp);
        qemu_qmp_reader_done(&q->qmp);
}

static void close_all(struct qemu *q, bool forget) {
        machine_event_free(&q->monitor_accept_ev);
        machine_event_free(&q->monitor_ev);
        machine_event_free(&q->qmp_ev);
        machine_event_free(&q->console_ev);
        machine_event_free(&q->stderr_ev);
        (void) evtimer_del(q->start_timer);
        machine_proc_cancel_kill(q->proc);
        q->monitor_listen = safe_close(q->monitor_listen);
        q->monitor_fd = safe_close(q->monitor_fd);
        q->shell_fd = safe_close(q->shell_fd);
        q->shell_in_fd = safe_close(q->shell_in_fd);
        q->qmp_fd = safe_close(q->qmp_fd);
        q->console_fd = safe_close(q->console_fd);
        q->stdin_fd = safe_close(q->stdin_fd);
        q->stderr_fd = safe_close(q->stderr_fd);
        machine_shell_detach(q->m->shell);
        if (forget)
                machine_proc_forget_fds(q->proc);
}

/* ---- streams ---- */

static int stderr_line(const char *line, size_t len, void *userdata) {
        struct qemu *q = userdata;
        if (len > 0)
                machine_stderr_line(q->m, line);
        return 0;
}

/* One read from a non-blocking pipe or socket: the number of bytes read, 0
 * when there are none yet (EAGAIN, EINTR), or < 0 once the stream has ended
 * (-EPIPE at its end, -errno on an error). */
static ssize_t stream_read(int fd, void *buf, size_t size) {
        ssize_t n = read(fd, buf, size);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0)
                return negative_errno();
        return n > 0 ? n : -EPIPE;
}

static void stream_stop(struct event **ev, int *fd) {
        machine_event_free(ev);
        *fd = safe_close(*fd);
}

/* One read of the serial console (QEMU's stdout); its end flushes the last line. */
static ssize_t console_read(struct qemu *q) {
        uint8_t buf[IO_READ_MAX];
        ssize_t n = stream_read(q->console_fd, buf, sizeof buf);

        if (n > 0)
                machine_console_feed(q->m, buf, (size_t) n);
        else if (n < 0) {
                machine_console_eof(q->m);
                stream_stop(&q->console_ev, &q->console_fd);
        }
        return n;
}

/* One read of QEMU's stderr, logged line by line. */
static ssize_t stderr_read(struct qemu *q) {
        uint8_t buf[IO_READ_MAX];
        ssize_t n = stream_read(q->stderr_fd, buf, sizeof buf);

        if (n > 0)
                (void) console_splitter_feed(&q->stderr_split, buf, (size_t) n, stderr_line, q);
        else if (n < 0) {
                (void) console_splitter_finish(&q->stderr_split, stderr_line, q);
                stream_stop(&q->stderr_ev, &q->stderr_fd);
        }
        return n;
}

static void console_cb(evutil_socket_t fd, short what, void *arg) {
        (void) console_read(arg);
}

static void stderr_cb(evutil_socket_t fd, short what, void *arg) {
        (void) stderr_read(arg);
}

/* QEMU is gone: read what it left in its stdout and stderr pipes (bounded,
 * though with no writer left they end). */
static void drain_streams(struct qemu *q) {
        for (unsigned i = 0; q->console_fd >= 0 && i < 1024 && console_read(q) > 0; i++)
                ;
        for (unsigned i = 0; q->stderr_fd >= 0 && i < 64 && stderr_read(q) > 0; i++)
                ;
        (void) console_splitter_finish(&q->stderr_split, stderr_line, q);
}

/* ---- HMP and QMP requests ---- */

static void start_step_done(struct qemu *q);
static void start_problem(struct qemu *q, int r, const char *why);

static int write_all(int fd, const char *text) {
        size_t len = strlen(text);

        while (len > 0) {
                ssize_t n = write(fd, text, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                text += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Bytes nobody asked for (a reply to a request of a worker that died) must
 * not be taken for the next reply. */
static void drain_stale(int fd) {
        char buf[4096];
        for (unsigned i = 0; i < 256 && read(fd, buf, sizeof buf) > 0; i++)
                ;
}

/* @r's answer arrived: finish what it was for. */
static void monitor_request_answered(struct qemu *q, const struct monitor_request *r, const char *reply, size_t len) {
        switch (r->kind) {
        case REQ_HMP_GREETING:
        case REQ_QMP_CONT:
                start_step_done(q);
                break;
        case REQ_QMP_GREETING:
        case REQ_QMP_CAPABILITIES:
        case REQ_QMP_SETUP:
                break;
        case REQ_TEXT:
                (void) machine_reply_text(q->m, r->seq, reply ?: "", reply ? len : 0, 0);
                break;
        case REQ_SET_LINK:
                if (reply && strstr(reply, "Error"))
                        log_warning("HMP %s answered: %s", r->command, reply);
                (void) machine_reply_ok(q->m, r->seq);
                break;
        case REQ_REBOOT:
                machine_shell_disconnected(q->m->shell);
                (void) machine_reply_ok(q->m, r->seq);
                break;
        case _REQ_KIND_MAX:
                break;
        }
}

static void monitor_run(struct monitor_queue *mq);

/* The request in flight is answered (@error 0, @reply) or failed (@error < 0,
 * @why); a failed start-up step fails the start and ends the queue's work. */
static void monitor_complete(struct monitor_queue *mq, int error, const char *why, const char *reply, size_t len) {
        struct monitor_request *r = TAKE_PTR(mq->active);

        (void) evtimer_del(mq->timer);
        if (!r)
                return;
        if (error < 0 && monitor_request_is_startup(r->kind)) {
                monitor_request_free(r);
                start_problem(mq->q, error, why);
                return;
        }
        if (error < 0)
                (void) machine_reply_error(mq->q->m, r->seq, error, "%s", why);
        else
                monitor_request_answered(mq->q, r, reply, len);
        monitor_request_free(r);
        monitor_run(mq);
}

static void monitor_run(struct monitor_queue *mq) {
        struct monitor_request *r;
        char why[128];
        int fd = *mq->fd, k;

        if (mq->active || fd < 0 || !(r = TAILQ_FIRST(&mq->pending)))
                return;
        TAILQ_REMOVE(&mq->pending, r, link);
        mq->active = r;
        machine_timer_set(mq->timer, MONITOR_TIMEOUT_USEC);
        if (mq->activate)
                mq->activate(mq->q, r);
        if (!r->command)
                return;
        k = write_all(fd, r->command);
        if (k >= 0)
                k = write_all(fd, "\n");
        if (k < 0) {
                (void) snprintf(why, sizeof why, "could not write to %s", mq->what);
                monitor_complete(mq, k, why, NULL, 0);
        }
}

static int monitor_submit(struct monitor_queue *mq, enum monitor_request_kind kind, const char *command,
                          uint32_t seq) {
        struct monitor_request *r = calloc(1, sizeof *r);

        if (!r || (command && !(r->command = strdup(command)))) {
                monitor_request_free(r);
                return -ENOMEM;
        }
        r->kind = kind;
        r->seq = seq;
        TAILQ_INSERT_TAIL(&mq->pending, r, link);
        monitor_run(mq);
        return 0;
}

static void monitor_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct monitor_queue *mq = arg;
        char why[128];

        (void) snprintf(why, sizeof why, "%s did not answer within %llu s", mq->what,
                        MONITOR_TIMEOUT_USEC / USEC_PER_SEC);
        monitor_complete(mq, -ETIMEDOUT, why, NULL, 0);
}

/* One read of @mq's connection (watched by @ev), as stream_read(). When QEMU
 * closed it, the request in flight fails and the others wait (QEMU is
 * exiting, and its exit fails them). */
static ssize_t monitor_read(struct monitor_queue *mq, struct event **ev, void *buf, size_t size) {
        ssize_t n = stream_read(*mq->fd, buf, size);
        char why[128];

        if (n >= 0)
                return n;
        stream_stop(ev, mq->fd);
        if (mq->active) {
                (void) snprintf(why, sizeof why, "%s closed its connection", mq->what);
                monitor_complete(mq, -ECONNRESET, why, NULL, 0);
        }
        return n;
}

static int monitor_queue_init(struct monitor_queue *mq, struct qemu *q, const char *what, int *fd,
                              void (*activate)(struct qemu *q, const struct monitor_request *r)) {
        *mq = (struct monitor_queue){.q = q, .what = what, .fd = fd, .activate = activate};
        TAILQ_INIT(&mq->pending);
        mq->timer = evtimer_new(q->m->base, monitor_timer_cb, mq);
        return mq->timer ? 0 : -ENOMEM;
}

/* HMP: each request starts with an empty reply, and without what a reply to
 * nobody left in the socket. */
static void hmp_activate(struct qemu *q, const struct monitor_request *r) {
        qemu_hmp_reply_done(&q->hmp);
        if (r->command)
                drain_stale(q->monitor_fd);
}

static void monitor_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu *q = arg;
        char buf[IO_READ_MAX];
        ssize_t n = monitor_read(&q->hmp_requests, &q->monitor_ev, buf, sizeof buf);

        if (n <= 0)
                return;
        if (!q->hmp_requests.active)
                return; /* stray output */
        if (qemu_hmp_reply_append(&q->hmp, buf, (size_t) n) < 0) {
                qemu_hmp_reply_done(&q->hmp);
                monitor_complete(&q->hmp_requests, -E2BIG, "QEMU monitor reply too large", NULL, 0);
                return;
        }
        if (qemu_hmp_reply_complete(&q->hmp)) {
                size_t len = 0;
                _cleanup_free_ char *text = qemu_hmp_reply_take(&q->hmp, &len);
                monitor_complete(&q->hmp_requests, 0, NULL, text, len);
        }
}

static void qmp_event_push(struct qemu *q, const char *line) {
        if (q->n_events == QMP_EVENTS_MAX) {
                free(q->events[0]);
                memmove(q->events, q->events + 1, (QMP_EVENTS_MAX - 1) * sizeof q->events[0]);
                q->n_events--;
        }
        q->events[q->n_events] = strdup(line);
        if (q->events[q->n_events])
                q->n_events++;
}

static void qmp_line(struct qemu *q, char *line) {
        struct monitor_queue *mq = &q->qmp_requests;
        enum qemu_qmp_kind kind;
        json_object *obj = NULL;

        if (qemu_qmp_classify(line, &kind, &obj) < 0) {
                log_warning("Ignoring a QMP line that is not a JSON object: %.200s", line);
                return;
        }
        if (kind == QEMU_QMP_EVENT) {
                qmp_event_push(q, line);
        } else if (mq->active) {
                if (mq->active->kind == REQ_QMP_GREETING && !json_object_object_get_ex(obj, "QMP", NULL))
                        monitor_complete(mq, -EPROTO, "QMP greeting lacks \"QMP\"", NULL, 0);
                else if (monitor_request_is_startup(mq->active->kind) && kind == QEMU_QMP_ERROR) {
                        char why[512];
                        (void) snprintf(why, sizeof why, "QMP refused %.200s: %.200s", mq->active->command, line);
                        monitor_complete(mq, -EPROTO, why, NULL, 0);
                } else
                        monitor_complete(mq, 0, NULL, line, strlen(line));
        }
        json_object_put(obj);
}

static void qmp_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu *q = arg;
        uint8_t buf[IO_READ_MAX];
        ssize_t n = monitor_read(&q->qmp_requests, &q->qmp_ev, buf, sizeof buf);

        if (n <= 0)
                return;
        for (size_t off = 0; off < (size_t) n;) {
                size_t used = 0;
                char *line = NULL;
                int r = qemu_qmp_reader_feed(&q->qmp, buf + off, (size_t) n - off, &used, &line);
                off += used;
                if (r == -E2BIG)
                        log_warning("Dropped a QMP line longer than %u bytes", QEMU_QMP_LINE_MAX);
                if (r == 1) {
                        qmp_line(q, line);
                        free(line);
                }
                if (q->qmp_fd < 0)
                        break;
        }
}

/* ---- start ---- */

/* The address of the unix socket @dir/@name; -ENAMETOOLONG if it does not fit. */
static int unix_address(const char *dir, const char *name, struct sockaddr_un *ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};

        if ((size_t) snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        *ret = sa;
        return 0;
}

static int listen_unix(const char *dir, const char *name, int *ret) {
        struct sockaddr_un sa;
        _cleanup_close_ int fd = -EBADF;
        int r = unix_address(dir, name, &sa);

        if (r < 0)
                return r;
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 1) < 0)
                return negative_errno();
        *ret = TAKE_FD(fd);
        return 0;
}

static int connect_unix(const char *dir, const char *name, int *ret) {
        struct sockaddr_un sa;
        _cleanup_close_ int fd = -EBADF;
        int r = unix_address(dir, name, &sa);

        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return negative_errno();
        (void) fd_set_nonblock(fd, 1);
        *ret = TAKE_FD(fd);
        return 0;
}

/* The guest shell's files for a new QEMU: the output file (created empty,
 * opened for reading at offset 0) and the input FIFO (opened read-write, so
 * QEMU's open for reading does not wait and never sees its end while the fd
 * store holds our copy). */
static int shell_files_create(const char *dir, int *ret_out, int *ret_in) {
        _cleanup_close_ int out = -EBADF, in = -EBADF;
        char path[PATH_MAX];

        (void) snprintf(path, sizeof path, "%s/" QEMU_SHELL_NAME, dir);
        (void) unlink(path);
        out = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return negative_errno();
        (void) snprintf(path, sizeof path, "%s/" QEMU_SHELL_IN, dir);
        (void) unlink(path);
        if (mkfifo(path, 0600) < 0)
                return negative_errno();
        in = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (in < 0)
                return negative_errno();
        *ret_out = TAKE_FD(out);
        *ret_in = TAKE_FD(in);
        return 0;
}

/* Hand the shell's fds to machine-shell (the store keeps its own copies,
 * sharing the output file's offset, so a restarted worker reads on from
 * where this one stopped). */
static int shell_attach(struct qemu *q) {
        char path[PATH_MAX];
        int r;

        (void) snprintf(path, sizeof path, "%s/" QEMU_SHELL_NAME, q->m->cfg.state_dir);
        r = machine_shell_attach(q->m->shell, q->shell_fd, q->shell_in_fd, path);
        if (r < 0)
                return r;
        q->shell_fd = q->shell_in_fd = -EBADF; /* machine-shell owns them now */
        return 0;
}

static void start_failed(struct qemu *q, int r, const char *fmt, ...) _printf_(3, 4);
static void start_failed(struct qemu *q, int r, const char *fmt, ...) {
        char msg[MSG_STR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        /* QEMU is up but unusable: do not leave it running. */
        machine_proc_abandon(q->proc);
        /* Nothing of this boot may reach the next one: no queued start-up step, no half-read reply. */
        fail_monitor_requests(q, msg);
        close_all(q, true);
        q->step = STEP_IDLE;
        machine_started(q->m, r, msg);
}

/* Every fd QEMU gives us is read as it comes, with @q as the callback's argument. */
static int add_read_event(struct qemu *q, int fd, event_callback_fn cb, struct event **ret) {
        return machine_event_watch(q->m->base, fd, EV_READ | EV_PERSIST, cb, q, ret);
}

/* The monitor connected: over QMP add the guest shell and let the paused
 * guest run, then wait for the HMP greeting. */
static void handshake(struct qemu *q) {
        _cleanup_strv_free_ char **setup = NULL;
        int r;

        q->step = STEP_HANDSHAKE;
        q->handshake_pending = 0;
        machine_event_free(&q->monitor_accept_ev);
        q->monitor_listen = safe_close(q->monitor_listen);
        r = connect_unix(q->m->cfg.state_dir, QEMU_QMP_NAME, &q->qmp_fd);
        if (r < 0) {
                start_failed(q, r, "could not connect to QMP at %s/" QEMU_QMP_NAME ": %s", q->m->cfg.state_dir,
                             strerror(-r));
                return;
        }
        if (add_read_event(q, q->qmp_fd, qmp_cb, &q->qmp_ev) < 0 ||
            add_read_event(q, q->monitor_fd, monitor_cb, &q->monitor_ev) < 0 ||
            monitor_submit(&q->qmp_requests, REQ_QMP_GREETING, NULL, 0) < 0 ||
            monitor_submit(&q->qmp_requests, REQ_QMP_CAPABILITIES, "{\"execute\": \"qmp_capabilities\"}", 0) < 0 ||
            qemu_shell_setup_commands(q->m->cfg.state_dir, &setup) < 0) {
                start_failed(q, -ENOMEM, "out of memory");
                return;
        }
        for (size_t i = 0; setup[i]; i++)
                if (monitor_submit(&q->qmp_requests, setup[i + 1] ? REQ_QMP_SETUP : REQ_QMP_CONT, setup[i], 0) < 0) {
                        start_failed(q, -ENOMEM, "out of memory");
                        return;
                }
        if (monitor_submit(&q->hmp_requests, REQ_HMP_GREETING, NULL, 0) < 0)
                start_failed(q, -ENOMEM, "out of memory");
}

static void start_step_done(struct qemu *q) {
        struct machine *m = q->m;
        int r;

        /* Called twice: QMP set-up done (the guest runs), HMP greeting done. */
        if (q->step != STEP_HANDSHAKE || ++q->handshake_pending < 2)
                return;
        q->handshake_pending = 0;
        evtimer_del(q->start_timer);
        machine_proc_store_fds(q->proc);
        r = shell_attach(q);
        if (r < 0) {
                start_failed(q, r, "could not watch the guest shell's output file: %s", strerror(-r));
                return;
        }
        q->step = STEP_RUNNING;
        m->allow_reboot = q->allow_reboot;
        log_event(LOG_INFO, LOG_EVENT_READY, NULL, "QEMU running (pid %lld)", (long long) machine_pid(m));
        machine_started(m, 0, NULL);
}

static void accept_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu *q = arg;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        start_failed(q, negative_errno(), "accept() on the monitor socket failed: %m");
                return;
        }
        safe_close(q->monitor_fd);
        q->monitor_fd = c;
        machine_event_free(&q->monitor_accept_ev);
        handshake(q);
}

/* A connection to QEMU closed during start-up: QEMU is most likely exiting.
 * Wait a moment for its exit, whose status and stderr make the better error. */
static void start_problem(struct qemu *q, int r, const char *why) {
        if (r != -ECONNRESET) {
                start_failed(q, r, "%s", why);
                return;
        }
        q->pending_error = r;
        (void) snprintf(q->pending_why, sizeof q->pending_why, "%s", why);
        machine_timer_set(q->start_timer, 2 * USEC_PER_SEC);
}

/* How long QEMU may take to connect its monitor: the boot deadline (a start
 * script that never starts QEMU is a boot that never ends), never less than
 * QEMU needs. */
static uint64_t start_bound_s(const struct machine *m) {
        return m->cfg.connect_s > 0 ? MAX(m->cfg.connect_s, (uint64_t) START_FLOOR_S) : START_DEFAULT_S;
}

static void start_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu *q = arg;
        char tail[2048];

        machine_tail_describe(q->m, tail, sizeof tail);
        if (q->pending_error < 0) {
                start_failed(q, q->pending_error, "%s; %s", q->pending_why, tail);
                return;
        }
        start_failed(q, -ETIMEDOUT,
                     "machine '%s' did not start: QEMU did not connect its monitor socket within %llu s (a start "
                     "script that never runs QEMU?); %s",
                     q->m->cfg.name, (unsigned long long) start_bound_s(q->m), tail);
}

/* The host environment, minus what the spawn message cannot carry. */
static char **host_env_filtered(void) {
        extern char **environ;
        size_t n = 0;
        char **v = calloc(ENV_ENTRIES_MAX + 1, sizeof *v);

        if (!v)
                return NULL;
        for (char **e = environ; e && *e && n < ENV_ENTRIES_MAX; e++) {
                if (strlen(*e) >= MSG_STR_MAX) {
                        log_warning("Not passing an environment variable longer than %u bytes to QEMU: %.40s...",
                                    MSG_STR_MAX, *e);
                        continue;
                }
                v[n++] = *e;
        }
        return v;
}

static int spawn_qemu(struct qemu *q) {
        struct machine *m = q->m;
        struct qemu_cmd cmd = {};
        _cleanup_free_ char **env = NULL;
        _cleanup_close_ int in_r = -EBADF, out_w = -EBADF, err_w = -EBADF;
        int p[2], r;

        env = host_env_filtered();
        if (!env)
                return -ENOMEM;
        if (m->cfg.start_script)
                r = qemu_build_start_script(&m->cfg, q->allow_reboot, env, &cmd);
        else
                r = qemu_build_direct(&m->cfg, q->accel, q->allow_reboot, env, &cmd);
        if (r < 0)
                return r;
        if (strv_length(cmd.env) > MSG_STRV_MAX || strv_length(cmd.argv) > MSG_STRV_MAX) {
                qemu_cmd_done(&cmd);
                return -E2BIG;
        }
        r = listen_unix(m->cfg.state_dir, QEMU_MONITOR_NAME, &q->monitor_listen);
        if (r >= 0)
                r = shell_files_create(m->cfg.state_dir, &q->shell_fd, &q->shell_in_fd);
        if (r < 0)
                goto out;
        if (pipe2(p, O_CLOEXEC) < 0)
                goto errno_out;
        in_r = p[0];
        q->stdin_fd = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                goto errno_out;
        q->console_fd = p[0];
        out_w = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                goto errno_out;
        q->stderr_fd = p[0];
        err_w = p[1];
        (void) fd_set_nonblock(q->console_fd, 1);
        (void) fd_set_nonblock(q->stderr_fd, 1);
        (void) fd_set_nonblock(q->stdin_fd, 1);
        (void) fcntl(q->console_fd, F_SETPIPE_SZ, 1024 * 1024);

        if ((r = add_read_event(q, q->console_fd, console_cb, &q->console_ev)) < 0 ||
            (r = add_read_event(q, q->stderr_fd, stderr_cb, &q->stderr_ev)) < 0 ||
            (r = add_read_event(q, q->monitor_listen, accept_cb, &q->monitor_accept_ev)) < 0)
                goto out;

        log_info("starting vm");
        log_debug("QEMU command: %s ...", cmd.argv[0]);
        const int fds[] = {in_r, out_w, err_w};
        r = machine_proc_spawn(q->proc, cmd.argv, cmd.env, cmd.cwd, 7, fds, 3);
        if (r < 0)
                goto out;
        q->step = STEP_SPAWNING;
        machine_timer_set(q->start_timer, start_bound_s(m) * USEC_PER_SEC);
        r = 0;
        goto out;
errno_out:
        r = negative_errno();
out:
        qemu_cmd_done(&cmd);
        return r;
}

static void continue_start(struct qemu *q) {
        int r = spawn_qemu(q);
        if (r < 0)
                start_failed(q, r, "could not start QEMU: %s", strerror(-r));
}

/* ---- KVM probe ---- */

static void probe_cache_path(struct qemu *q, char *buf, size_t size) {
        _cleanup_free_ char *copy = strdup(q->m->cfg.state_dir);
        (void) snprintf(buf, size, "%s/" PROBE_CACHE, copy ? dirname(copy) : "/tmp");
}

static enum qemu_kvm_probe probe_cache_read(struct qemu *q) {
        char path[512], text[32] = "";
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        probe_cache_path(q, path, sizeof path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (n = read(fd, text, sizeof text - 1)) <= 0)
                return QEMU_KVM_UNTESTED;
        text[n] = 0;
        text[strcspn(text, "\n")] = 0;
        enum qemu_kvm_probe p = qemu_kvm_probe_from_string(text);
        return p < 0 ? QEMU_KVM_UNTESTED : p;
}

static void probe_cache_write(struct qemu *q, enum qemu_kvm_probe p) {
        char path[512], tmp[520];
        _cleanup_close_ int fd = -EBADF;
        const char *s = qemu_kvm_probe_to_string(p);

        probe_cache_path(q, path, sizeof path);
        (void) snprintf(tmp, sizeof tmp, "%s.%d", path, (int) getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, s, strlen(s)) < 0 || write(fd, "\n", 1) < 0 || rename(tmp, path) < 0)
                (void) unlink(tmp);
}

static void accel_chosen(struct qemu *q, enum qemu_kvm_probe p) {
        const char *why;
        const char *accel = qemu_accel_decide(q->m->cfg.accel, p, &why);

        (void) snprintf(q->accel, sizeof q->accel, "%s", accel);
        log_notice("Using %s acceleration: %s", streq(accel, "kvm") ? "KVM" : "TCG (software)", why);
}

static void probe_finish(struct qemu *q, enum qemu_kvm_probe p) {
        if (!q->probing)
                return;
        q->probing = false;
        machine_event_free(&q->probe_ev);
        (void) evtimer_del(q->probe_timer);
        q->probe_fd = safe_close(q->probe_fd);
        machine_proc_kill(q->probe);
        probe_cache_write(q, p);
        accel_chosen(q, p);
        if (q->step == STEP_PROBING)
                continue_start(q);
}

static void probe_read_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu *q = arg;
        char buf[4096 + sizeof q->probe_tail];
        size_t keep = strlen(q->probe_tail);
        ssize_t n;

        memcpy(buf, q->probe_tail, keep);
        n = stream_read(fd, buf + keep, 4096);
        if (n == 0)
                return;
        if (n < 0) {
                machine_event_free(&q->probe_ev);
                return; /* wait for PROC_EXIT or the timer */
        }
        buf[keep + (size_t) n] = 0;
        for (size_t i = 0; i < keep + (size_t) n; i++)
                if (!buf[i])
                        buf[i] = ' ';
        if (strstr(buf, PROBE_MARK)) {
                probe_finish(q, QEMU_KVM_WORKS);
                return;
        }
        size_t total = keep + (size_t) n, t = MIN(total, sizeof q->probe_tail - 1);
        memcpy(q->probe_tail, buf + total - t, t);
        q->probe_tail[t] = 0;
}

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg) {
        probe_finish(arg, QEMU_KVM_HANGS);
}

static int probe_start(struct qemu *q) {
        struct machine *m = q->m;
        _cleanup_close_ int kvm = -EBADF, out_w = -EBADF;
        char mem[] = "128";
        char *argv[] = {m->cfg.binary, "-accel",      "kvm",      "-nodefaults",
                        "-nographic",  "-no-reboot",  "-m",       mem,
                        "-kernel",     m->cfg.kernel, "-append",  "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1",
                        "-serial",     "stdio",       "-monitor", "none",
                        NULL};
        char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        int p[2], r;

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return 0; /* caller sees !probing: missing */
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        q->probe_fd = p[0];
        out_w = p[1];
        (void) fd_set_nonblock(q->probe_fd, 1);
        q->probe_tail[0] = 0;
        r = add_read_event(q, q->probe_fd, probe_read_cb, &q->probe_ev);
        if (r < 0)
                return r;
        r = machine_proc_spawn(q->probe, argv, env, "", 2, &out_w, 1);
        if (r < 0)
                return r;
        q->probing = true;
        machine_timer_set(q->probe_timer, PROBE_USEC);
        log_info("/dev/kvm exists; probing whether a KVM guest makes progress (at most %llu s)",
                 PROBE_USEC / USEC_PER_SEC);
        return 1;
}

/* ---- vtable ---- */

static int qemu_start(struct machine *m, bool allow_reboot) {
        struct qemu *q = Q(m);
        const char *need = m->cfg.start_script ?: m->cfg.kernel;
        char xchg[512];
        int r;

        if (q->step != STEP_IDLE)
                return -EBUSY;
        /* Refuse early and clearly what QEMU would only complain about later. */
        if (access(need, m->cfg.start_script ? X_OK : R_OK) < 0) {
                r = negative_errno();
                start_failed(q, r, "%s %s is not %s: %s", m->cfg.start_script ? "start script" : "kernel", need,
                             m->cfg.start_script ? "executable" : "readable", strerror(-r));
                return 0;
        }
        if (m->cfg.initrd && access(m->cfg.initrd, R_OK) < 0) {
                r = negative_errno();
                start_failed(q, r, "initrd %s is not readable: %s", m->cfg.initrd, strerror(-r));
                return 0;
        }
        (void) mkdir(m->cfg.state_dir, 0700);
        (void) snprintf(xchg, sizeof xchg, "%s/xchg", m->cfg.state_dir);
        (void) mkdir(xchg, 0755);
        (void) mkdir(m->cfg.shared_dir, 0755);
        q->allow_reboot = allow_reboot;
        q->pending_error = 0;
        m->stderr_n = 0;
        console_splitter_done(&q->stderr_split);
        (void) console_splitter_init(&q->stderr_split, 0);

        if (!m->cfg.start_script) {
                if (qemu_accel_needs_probe(m->cfg.accel)) {
                        enum qemu_kvm_probe p = probe_cache_read(q);
                        if (p == QEMU_KVM_UNTESTED) {
                                q->step = STEP_PROBING;
                                r = probe_start(q);
                                if (r > 0)
                                        return 0;
                                p = r == 0 ? QEMU_KVM_MISSING : QEMU_KVM_FAILED;
                                probe_cache_write(q, p);
                        } else
                                log_debug("KVM probe result from this run's cache: %s", qemu_kvm_probe_to_string(p));
                        accel_chosen(q, p);
                } else
                        accel_chosen(q, QEMU_KVM_UNTESTED);
        }
        continue_start(q);
        return 0;
}

static int qemu_shutdown(struct machine *m) {
        /* The reference writes the raw bytes, not an execute(). */
        return machine_shell_write_raw(m->shell, "poweroff\n");
}

static int qemu_crash(struct machine *m) {
        struct qemu *q = Q(m);
        char why[96];
        int r = -ENOTCONN;

        if (q->monitor_fd >= 0)
                r = write_all(q->monitor_fd, "quit\n");
        if (r < 0)
                machine_proc_kill(q->proc);
        (void) snprintf(why, sizeof why, "QEMU did not quit within %llu s of HMP quit; killing it",
                        CRASH_KILL_USEC / USEC_PER_SEC);
        machine_proc_kill_after(q->proc, CRASH_KILL_USEC, why);
        return 0;
}

static int qemu_reboot(struct machine *m, uint32_t seq) {
        int r = monitor_submit(&Q(m)->hmp_requests, REQ_REBOOT, "sendkey ctrl-alt-delete", seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_monitor(struct machine *m, const char *command, uint32_t seq) {
        int r = monitor_submit(&Q(m)->hmp_requests, REQ_TEXT, command, seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_set_link(struct machine *m, const char *nic, bool up, uint32_t seq) {
        _cleanup_free_ char *cmd = NULL;

        if (asprintf(&cmd, "set_link %s %s", *nic ? nic : qemu_default_nic(&m->cfg), up ? "on" : "off") < 0)
                return machine_reply_error(m, seq, -ENOMEM, "out of memory");
        int r = monitor_submit(&Q(m)->hmp_requests, REQ_SET_LINK, cmd, seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_qmp(struct machine *m, const char *json, uint32_t seq) {
        struct qemu *q = Q(m);

        if (!*json) {
                /* "" asks for the events seen since the last such call. */
                size_t len = 0;
                for (size_t i = 0; i < q->n_events; i++)
                        len += strlen(q->events[i]) + 1;
                _cleanup_free_ char *text = malloc(len + 1);
                if (!text)
                        return machine_reply_error(m, seq, -ENOMEM, "out of memory");
                char *p = text;
                for (size_t i = 0; i < q->n_events; i++) {
                        p = stpcpy(p, q->events[i]);
                        *p++ = '\n';
                        free(q->events[i]);
                }
                *p = 0;
                q->n_events = 0;
                return machine_reply_text(m, seq, text, len, 0);
        }
        if (strchr(json, '\n'))
                return machine_reply_error(m, seq, -EINVAL, "a QMP command must be one line of JSON");
        int r = monitor_submit(&q->qmp_requests, REQ_TEXT, json, seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_send_console(struct machine *m, const char *text, size_t len) {
        struct qemu *q = Q(m);

        if (q->stdin_fd < 0)
                return -ENOTCONN;
        return write_all(q->stdin_fd, text);
}

static void qemu_exited(struct qemu *q, const struct msg_proc_exit *e) {
        struct machine *m = q->m;
        char how[96], tail[2048], why[MSG_STR_MAX];

        machine_proc_describe_exit(e, how, sizeof how);
        drain_streams(q);
        machine_shell_drain(m->shell);
        if (q->console_fd >= 0)
                machine_console_eof(m);
        log_event(LOG_INFO, LOG_EVENT_EXITED, NULL, "QEMU (pid %lld) exited: %s", (long long) e->pid, how);
        if (q->step != STEP_RUNNING && q->step != STEP_IDLE) {
                machine_tail_describe(m, tail, sizeof tail);
                start_failed(q, -ECHILD, "QEMU exited before the machine was up (%s); %s", how, tail);
                return;
        }
        (void) snprintf(why, sizeof why, "QEMU exited (%s)", how);
        fail_monitor_requests(q, why);
        close_all(q, true);
        q->step = STEP_IDLE;
        machine_stopped(m, why);
}

/* ---- the processes ---- */

static void qemu_spawned(struct machine_proc *p, int64_t pid, void *userdata) {
        struct qemu *q = userdata;

        if (q->step != STEP_SPAWNING) {
                /* The start was given up meanwhile: this QEMU is nobody's. */
                machine_proc_abandon(p);
                return;
        }
        q->step = STEP_ACCEPTING;
        log_event(LOG_INFO, LOG_EVENT_SPAWNED, NULL, "QEMU spawned (pid %lld)", (long long) pid);
}

static void qemu_spawn_failed(struct machine_proc *p, int error, const char *message, void *userdata) {
        struct qemu *q = userdata;

        if (q->step == STEP_SPAWNING)
                start_failed(q, error, "the supervisor could not spawn QEMU: %s", message);
}

static void qemu_proc_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        qemu_exited(userdata, e);
}

static const struct machine_proc_ops qemu_proc_ops = {
        .spawned = qemu_spawned,
        .spawn_failed = qemu_spawn_failed,
        .exited = qemu_proc_exited,
};

static void probe_spawn_failed(struct machine_proc *p, int error, const char *message, void *userdata) {
        probe_finish(userdata, QEMU_KVM_FAILED);
}

static void probe_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        probe_finish(userdata, QEMU_KVM_FAILED);
}

static const struct machine_proc_ops probe_proc_ops = {
        .spawn_failed = probe_spawn_failed,
        .exited = probe_exited,
};

static int qemu_attach(struct machine *m) {
        struct qemu *q = Q(m);
        int64_t pid;
        int r;

        pid = machine_proc_restore(q->proc);
        if (pid <= 0 || q->shell_fd < 0 || q->shell_in_fd < 0 || q->monitor_fd < 0 || q->console_fd < 0) {
                if (pid > 0) {
                        log_warning("QEMU (pid %lld) still runs but its fds are lost; stopping it", (long long) pid);
                        machine_proc_kill_stale(q->proc);
                }
                close_all(q, true);
                return 0;
        }
        (void) console_splitter_init(&q->stderr_split, 0);
        for (size_t i = 0; i < ELEMENTSOF(stored_fds); i++)
                if (*stored_fd(q, i) >= 0 && stored_fd(q, i) != &q->shell_fd)
                        (void) fd_set_nonblock(*stored_fd(q, i), 1);
        drain_stale(q->monitor_fd);
        if (q->qmp_fd >= 0)
                drain_stale(q->qmp_fd);
        if ((r = add_read_event(q, q->console_fd, console_cb, &q->console_ev)) < 0 ||
            (q->stderr_fd >= 0 && (r = add_read_event(q, q->stderr_fd, stderr_cb, &q->stderr_ev)) < 0) ||
            (r = add_read_event(q, q->monitor_fd, monitor_cb, &q->monitor_ev)) < 0 ||
            (q->qmp_fd >= 0 && (r = add_read_event(q, q->qmp_fd, qmp_cb, &q->qmp_ev)) < 0))
                return r;
        r = shell_attach(q);
        if (r < 0)
                return r;
        q->step = STEP_RUNNING;
        return 1;
}

static int qemu_init(struct machine *m) {
        struct qemu *q = calloc(1, sizeof *q);
        int r;

        if (!q)
                return -ENOMEM;
        q->m = m;
        q->monitor_listen = q->monitor_fd = q->shell_fd = q->shell_in_fd = q->qmp_fd = -EBADF;
        q->console_fd = q->stdin_fd = q->stderr_fd = q->probe_fd = -EBADF;
        qemu_hmp_reply_init(&q->hmp, 0);
        qemu_qmp_reader_init(&q->qmp, 0);
        m->backend_data = q;
        if (monitor_queue_init(&q->hmp_requests, q, "the QEMU monitor", &q->monitor_fd, hmp_activate) < 0 ||
            monitor_queue_init(&q->qmp_requests, q, "QMP", &q->qmp_fd, NULL) < 0)
                return -ENOMEM;
        q->start_timer = evtimer_new(m->base, start_timer_cb, q);
        q->probe_timer = evtimer_new(m->base, probe_timer_cb, q);
        if (!q->start_timer || !q->probe_timer)
                return -ENOMEM;
        if ((r = machine_proc_new(m->w, QEMU_PROC, &qemu_proc_ops, q, &q->proc)) < 0 ||
            (r = machine_proc_new(m->w, PROBE_PROC, &probe_proc_ops, q, &q->probe)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(stored_fds); i++)
                if ((r = machine_proc_add_fd(q->proc, stored_fds[i].name, stored_fd(q, i))) < 0)
                        return r;
        m->proc = q->proc;
        return 0;
}

static void qemu_free(struct machine *m) {
        struct qemu *q = Q(m);

        if (!q)
                return;
        fail_monitor_requests(q, "worker exiting");
        close_all(q, false);
        machine_event_free(&q->probe_ev);
        q->probe_fd = safe_close(q->probe_fd);
        machine_event_free(&q->start_timer);
        machine_event_free(&q->hmp_requests.timer);
        machine_event_free(&q->qmp_requests.timer);
        machine_event_free(&q->probe_timer);
        m->proc = NULL;
        q->proc = machine_proc_free(q->proc);
        q->probe = machine_proc_free(q->probe);
        for (size_t i = 0; i < q->n_events; i++)
                free(q->events[i]);
        console_splitter_done(&q->stderr_split);
        free(q);
        m->backend_data = NULL;
}

const struct machine_backend backend_qemu = {
        .name = "qemu",
        .init = qemu_init,
        .free = qemu_free,
        .start = qemu_start,
        .attach = qemu_attach,
        .shutdown = qemu_shutdown,
        .crash = qemu_crash,
        .reboot = qemu_reboot,
        .monitor = qemu_monitor,
        .qmp = qemu_qmp,
        .send_console = qemu_send_console,
        .set_link = qemu_set_link,
};
