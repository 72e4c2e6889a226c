/* SPDX-License-Identifier: MIT */
/*
 * backend-qemu.c owns the life of a QEMU machine: the start steps (the
 * acceleration choice with qemu-probe.c, the shell's output file and input
 * FIFO, the listening monitor socket and stdio pipes of the reference
 * driver's layout, asking the supervisor to spawn QEMU so nothing outlives
 * vigil, accepting QEMU's monitor connection while watching for its exit,
 * the QMP handshake that adds the shell's virtconsole and starts the paused
 * guest), what each HMP/QMP request was for (qemu-control.c carries them),
 * the serial console and stderr streams, re-attaching after a worker
 * restart, and turning QEMU's exit into a clear error or a stopped machine.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "console-log.h"
#include "fd-util.h"
#include "log.h"
#include "machine.h"
#include "qemu-argv.h"
#include "qemu-probe.h"
#include "qemu-bootcache.h"
#include "qemu-debugshell.h"
#include "qemu-control.h"

#define QEMU_PROC "qemu"

#define START_FLOOR_S   10  /* QEMU itself needs this much at most to connect, even on a loaded host */
#define START_DEFAULT_S 120 /* without a boot deadline */
#define CRASH_KILL_USEC (10 * USEC_PER_SEC)
#define IO_READ_MAX     (64u * 1024u)
#define ENV_ENTRIES_MAX 200u

enum start_step {
        STEP_IDLE,
        STEP_PROBING,
        STEP_SPAWNING,
        STEP_ACCEPTING,
        STEP_HANDSHAKE,
        STEP_RUNNING,
        STEP_DROPPING, /* a start waits for the exit of the QEMU prepared ahead for another policy */
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

struct qemu {
        struct machine *m;
        enum start_step step;
        bool allow_reboot;
        struct machine_proc *proc; /* QEMU */
        struct qemu_probe *probe;
        char accel[8];
        char accel_said[160];
        unsigned handshake_pending;
        int pending_error; /* start-up problem waiting for QEMU's exit */
        char pending_why[256];
        /* A restore prepared ahead of start() (qemu_prepare()): QEMU loads
         * the snapshot and the guest waits paused for start(), which sends
         * cont. Nothing of it is reported as the machine's until then. */
        bool standby;
        bool standby_loaded;
        bool redo_allow_reboot; /* STEP_DROPPING: the start that follows */

        int monitor_listen;
        struct event *monitor_accept_ev;
        struct event *start_timer;

        int shell_fd;    /* the output file, read; until handed to machine-shell */
        int shell_in_fd; /* the input FIFO, written; until handed to machine-shell */
        int console_fd;
        int stdin_fd;
        int stderr_fd;
        struct event *console_ev;
        struct event *stderr_ev;
        struct console_splitter stderr_split;

        struct qemu_control *ctl; /* the HMP and QMP connections */

        struct qemu_bootcache *bootcache;   /* boot snapshots (qemu-bootcache.c) */
        struct qemu_debugshell *debugshell; /* vigil shell's requests (qemu-debugshell.c) */
};

/* The fds a restarted worker needs to re-attach, by their names in the
 * supervisor's fd store. */
static const struct {
        const char *name;
        size_t offset; /* of the fd in struct qemu */
} stored_fds[] = {
        {"shell", offsetof(struct qemu, shell_fd)},     {"shell-in", offsetof(struct qemu, shell_in_fd)},
        {"console", offsetof(struct qemu, console_fd)}, {"stdin", offsetof(struct qemu, stdin_fd)},
        {"stderr", offsetof(struct qemu, stderr_fd)},
};

static int *stored_fd(struct qemu *q, size_t i) {
        return (int *) ((char *) q + stored_fds[i].offset);
}

static struct qemu *Q(struct machine *m) {
        return m->backend_data;
}

/* ---- teardown ---- */

static void fail_monitor_requests(struct qemu *q, const char *why) {
        qemu_control_fail_all(q->ctl, why);
}

static void close_all(struct qemu *q, bool forget) {
        machine_event_free(&q->monitor_accept_ev);
        machine_event_free(&q->console_ev);
        machine_event_free(&q->stderr_ev);
        (void) evtimer_del(q->start_timer);
        machine_proc_cancel_kill(q->proc);
        qemu_bootcache_reset(q->bootcache);
        q->monitor_listen = safe_close(q->monitor_listen);
        qemu_control_close(q->ctl);
        q->shell_fd = safe_close(q->shell_fd);
        q->shell_in_fd = safe_close(q->shell_in_fd);
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
                machine_console_stderr_line(q->m->console, line);
        return 0;
}

static void stream_stop(struct event **ev, int *fd) {
        machine_event_free(ev);
        *fd = safe_close(*fd);
}

/* One read of the serial console (QEMU's stdout); its end flushes the last line. */
static ssize_t console_read(struct qemu *q) {
        uint8_t buf[IO_READ_MAX];
        ssize_t n = machine_read_some(q->console_fd, buf, sizeof buf);

        if (n > 0)
                machine_console_feed(q->m->console, buf, (size_t) n);
        else if (n < 0) {
                machine_console_eof(q->m->console);
                stream_stop(&q->console_ev, &q->console_fd);
        }
        return n;
}

/* One read of QEMU's stderr, logged line by line. */
static ssize_t stderr_read(struct qemu *q) {
        uint8_t buf[IO_READ_MAX];
        ssize_t n = machine_read_some(q->stderr_fd, buf, sizeof buf);

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

/* @r's answer arrived: finish what it was for. */
static void monitor_answered(void *userdata, const struct qemu_request *r, const char *reply, size_t len) {
        struct qemu *q = userdata;

        if (qemu_bootcache_answered(q->bootcache, r, reply))
                return;
        switch ((enum monitor_request_kind) r->kind) {
        case REQ_QMP_CONT:
                qemu_bootcache_continued(q->bootcache);
                start_step_done(q);
                break;
        case REQ_HMP_GREETING:
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

/* A request failed: a start-up step fails the start (and ends the queue's
 * work), a script's request gets the error. */
static bool monitor_failed(void *userdata, const struct qemu_request *r, int error, const char *why) {
        struct qemu *q = userdata;

        if (r->startup) {
                start_problem(q, error, why);
                return false;
        }
        if (qemu_bootcache_failed(q->bootcache, r, why))
                return true;
        (void) machine_reply_error(q->m, r->seq, error, "%s", why);
        return true;
}

/* Dropped unanswered (QEMU went away); the start-up ones have nobody to tell. */
static void monitor_dropped(void *userdata, const struct qemu_request *r, const char *why) {
        struct qemu *q = userdata;

        if (!r->startup)
                (void) machine_reply_error(q->m, r->seq, -ECONNRESET, "%s", why);
}

/* ---- start ---- */

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
static const struct qemu_requests_ops control_ops = {
        .answered = monitor_answered,
        .failed = monitor_failed,
        .dropped = monitor_dropped,
};

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

/* The restore prepared ahead is not kept: stop its QEMU and forget it.
 * @step STEP_IDLE: it failed; start() boots as if none was (its exit is a
 * stale process's). STEP_DROPPING: a start() with another policy waits for
 * its exit (qemu_exited()) and starts afresh. */
static void standby_drop(struct qemu *q, const char *why, enum start_step step) {
        log_info("Boot cache: not keeping the restore prepared ahead of start(): %s", why);
        if (step == STEP_DROPPING)
                machine_proc_abandon(q->proc);
        else if (machine_pid(q->m) > 0)
                machine_proc_kill_stale(q->proc);
        fail_monitor_requests(q, why);
        close_all(q, true);
        (void) evtimer_del(q->start_timer);
        q->step = step;
        q->standby = q->standby_loaded = false;
}

static void start_failed(struct qemu *q, int r, const char *fmt, ...) _printf_(3, 4);
static void start_failed(struct qemu *q, int r, const char *fmt, ...) {
        char msg[MSG_STR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (q->standby) {
                standby_drop(q, msg, STEP_IDLE);
                return;
        }
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
        r = qemu_control_connect_qmp(q->ctl, q->m->cfg.state_dir, QEMU_QMP_NAME);
        if (r < 0) {
                start_failed(q, r, "could not connect to QMP at %s/" QEMU_QMP_NAME ": %s", q->m->cfg.state_dir,
                             strerror(-r));
                return;
        }
        if (qemu_control_watch(q->ctl, false) < 0 ||
            qemu_control_submit(q->ctl, QEMU_QMP, REQ_QMP_GREETING, true, NULL, 0) < 0 ||
            qemu_control_submit(q->ctl, QEMU_QMP, REQ_QMP_CAPABILITIES, true, "{\"execute\": \"qmp_capabilities\"}",
                                0) < 0 ||
            qemu_shell_setup_commands(q->m->cfg.state_dir, &setup) < 0) {
                start_failed(q, -ENOMEM, "out of memory");
                return;
        }
        for (size_t i = 0; setup[i]; i++) {
                if (!setup[i + 1] && qemu_bootcache_restoring(q->bootcache)) {
                        /* Load the snapshot instead of the last step (cont),
                         * which follows once it is loaded. */
                        r = qemu_bootcache_load(q->bootcache);
                        if (r < 0) {
                                start_failed(q, r, "out of memory");
                                return;
                        }
                        break;
                }
                if (qemu_control_submit(q->ctl, QEMU_QMP, setup[i + 1] ? REQ_QMP_SETUP : REQ_QMP_CONT, true, setup[i],
                                        0) < 0) {
                        start_failed(q, -ENOMEM, "out of memory");
                        return;
                }
        }
        if (qemu_control_submit(q->ctl, QEMU_HMP, REQ_HMP_GREETING, true, NULL, 0) < 0)
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
        if (qemu_bootcache_restoring(q->bootcache))
                qemu_bootcache_restored(q->bootcache);
}

static void accept_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu *q = arg;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        start_failed(q, negative_errno(), "accept() on the monitor socket failed: %m");
                return;
        }
        qemu_control_adopt_monitor(q->ctl, c);
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

        machine_console_describe_tail(q->m->console, tail, sizeof tail);
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

static void continue_start(struct qemu *q);

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
        r = qemu_bootcache_plan(q->bootcache, &cmd, q->standby);
        if (r < 0 || (q->standby && !qemu_bootcache_restoring(q->bootcache))) {
                /* Nothing to prepare ahead: start() will boot. */
                qemu_cmd_done(&cmd);
                q->standby = false;
                q->step = STEP_IDLE;
                return MIN(r, 0);
        }
        if (strv_length(cmd.env) > MSG_STRV_MAX || strv_length(cmd.argv) > MSG_STRV_MAX) {
                qemu_cmd_done(&cmd);
                return -E2BIG;
        }
        r = machine_listen_unix(m->cfg.state_dir, QEMU_MONITOR_NAME, &q->monitor_listen);
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

        if (!q->standby)
                log_info("starting vm");
        else /* before the spawn: the supervisor reads the proc_spawned that follows as not booting */
                (void) worker_send_event(m->w, "boot-standby",
                                         "loading the boot snapshot ahead of start(); the guest waits paused");
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

/* ---- vtable ---- */

/* ---- boot cache ---- */

/* The snapshot is loaded: the last start step (cont) may go. */
static void bootcache_loaded(void *userdata) {
        struct qemu *q = userdata;

        if (q->standby) {
                log_info("Boot cache: snapshot loaded ahead of start() in %.2f s; the guest waits paused",
                         qemu_bootcache_restore_clock(q->bootcache, false));
                q->standby_loaded = true;
                (void) evtimer_del(q->start_timer); /* start() may come much later */
                return;
        }
        if (qemu_control_submit(q->ctl, QEMU_QMP, REQ_QMP_CONT, true, "{\"execute\": \"cont\"}", 0) < 0)
                start_problem(q, -ENOMEM, "out of memory");
}

static const struct qemu_bootcache_ops bootcache_ops = {
        .loaded = bootcache_loaded,
};

static void qemu_guest_ready(struct machine *m) {
        qemu_bootcache_guest_ready(Q(m)->bootcache);
}

/* ---- acceleration ---- */

static void accel_chosen(struct qemu *q, enum qemu_kvm_probe p) {
        const char *why;
        const char *accel = qemu_accel_decide(q->m->cfg.accel, p, &why);

        (void) snprintf(q->accel, sizeof q->accel, "%s", accel);
        (void) snprintf(q->accel_said, sizeof q->accel_said, "Using %s acceleration: %s",
                        streq(accel, "kvm") ? "KVM" : "TCG (software)", why);
        if (!q->standby) /* else said by the start() that takes it */
                log_notice("%s", q->accel_said);
}

static void probe_done(void *userdata, enum qemu_kvm_probe result) {
        struct qemu *q = userdata;

        accel_chosen(q, result);
        if (q->step == STEP_PROBING)
                continue_start(q);
}

static const struct qemu_probe_ops probe_ops = {
        .done = probe_done,
};

static int start_boot(struct qemu *q, bool allow_reboot) {
        struct machine *m = q->m;
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
        machine_console_stderr_forget(m->console);
        console_splitter_done(&q->stderr_split);
        (void) console_splitter_init(&q->stderr_split, 0);

        if (!m->cfg.start_script) {
                if (qemu_accel_needs_probe(m->cfg.accel)) {
                        enum qemu_kvm_probe p = qemu_probe_cached(q->probe, m->cfg.binary);
                        if (p == QEMU_KVM_UNTESTED) {
                                q->step = STEP_PROBING;
                                r = qemu_probe_start(q->probe, m->cfg.binary, m->cfg.kernel);
                                if (r > 0)
                                        return 0;
                                p = r == 0 ? QEMU_KVM_MISSING : QEMU_KVM_FAILED;
                                qemu_probe_cache(q->probe, p);
                        } else
                                log_debug("KVM probe result from this run's cache: %s", qemu_kvm_probe_to_string(p));
                        accel_chosen(q, p);
                } else
                        accel_chosen(q, QEMU_KVM_UNTESTED);
        }
        continue_start(q);
        return 0;
}

static int qemu_start(struct machine *m, bool allow_reboot) {
        struct qemu *q = Q(m);

        if (q->standby && q->step == STEP_PROBING) {
                /* No QEMU yet (the KVM probe runs): this start goes on from
                 * the probe with its own policy, as any start. */
                q->standby = false;
                q->allow_reboot = allow_reboot;
                return 0;
        }
        if (q->standby && q->allow_reboot != allow_reboot) {
                /* Its QEMU line (-no-reboot) and so its snapshot key are
                 * another: stop it, start as if none was once it is gone. */
                q->redo_allow_reboot = allow_reboot;
                standby_drop(q, "start() asks for another reboot policy", STEP_DROPPING);
                machine_timer_set(q->start_timer, start_bound_s(m) * USEC_PER_SEC);
                return 0;
        }
        if (!q->standby)
                return start_boot(q, allow_reboot);
        /* The restore prepared ahead goes on as this start. */
        if (!m->cfg.start_script)
                log_notice("%s", q->accel_said);
        log_info("starting vm (its boot snapshot %s)", q->standby_loaded ? "is loaded" : "is loading");
        q->standby = false;
        (void) qemu_bootcache_restore_clock(q->bootcache, true);
        machine_timer_set(q->start_timer, start_bound_s(m) * USEC_PER_SEC);
        if (q->standby_loaded) {
                q->standby_loaded = false;
                bootcache_loaded(q);
        }
        return 0;
}

/* A machine with a boot snapshot to restore: let QEMU start and load it
 * now, paused, so start() only lets the guest run (QEMU's own start-up and
 * the load, ~0.3 s under TCG, leave the path from start() to the first
 * command). As the reference's start(allow_reboot=False) would. Off with
 * VIGIL_BOOT_STANDBY=0. */
static void qemu_prepare(struct machine *m) {
        struct qemu *q = Q(m);
        const char *env = getenv("VIGIL_BOOT_STANDBY");

        /* After a worker restart the QEMU it left may still be dying: its
         * name is taken until then, and start() has time to restore anyway. */
        if (q->step != STEP_IDLE || !m->cfg.boot_cache || !*m->cfg.boot_cache || (env && streq(env, "0")) ||
            machine_proc_stale_alive(q->proc))
                return;
        q->standby = true;
        (void) start_boot(q, false);
}

static int qemu_shutdown(struct machine *m) {
        /* The reference writes the raw bytes, not an execute(). */
        return machine_shell_write_raw(m->shell, "poweroff\n");
}

static int qemu_crash(struct machine *m) {
        struct qemu *q = Q(m);
        char why[96];
        int r;

        r = qemu_control_quit(q->ctl);
        if (r < 0)
                machine_proc_kill(q->proc);
        (void) snprintf(why, sizeof why, "QEMU did not quit within %llu s of HMP quit; killing it",
                        CRASH_KILL_USEC / USEC_PER_SEC);
        machine_proc_kill_after(q->proc, CRASH_KILL_USEC, why);
        return 0;
}

static int qemu_reboot(struct machine *m, uint32_t seq) {
        int r = qemu_control_submit(Q(m)->ctl, QEMU_HMP, REQ_REBOOT, false, "sendkey ctrl-alt-delete", seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_monitor(struct machine *m, const char *command, uint32_t seq) {
        int r = qemu_control_submit(Q(m)->ctl, QEMU_HMP, REQ_TEXT, false, command, seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_set_link(struct machine *m, const char *nic, bool up, uint32_t seq) {
        _cleanup_free_ char *cmd = NULL;

        if (asprintf(&cmd, "set_link %s %s", *nic ? nic : qemu_default_nic(&m->cfg), up ? "on" : "off") < 0)
                return machine_reply_error(m, seq, -ENOMEM, "out of memory");
        int r = qemu_control_submit(Q(m)->ctl, QEMU_HMP, REQ_SET_LINK, false, cmd, seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_qmp(struct machine *m, const char *json, uint32_t seq) {
        struct qemu *q = Q(m);

        if (!*json) {
                /* "" asks for the events seen since the last such call. */
                size_t len = 0;
                _cleanup_free_ char *text = qemu_control_take_events(q->ctl, &len);
                if (!text)
                        return machine_reply_error(m, seq, -ENOMEM, "out of memory");
                return machine_reply_text(m, seq, text, len, 0);
        }
        if (strchr(json, '\n'))
                return machine_reply_error(m, seq, -EINVAL, "a QMP command must be one line of JSON");
        int r = qemu_control_submit(q->ctl, QEMU_QMP, REQ_TEXT, false, json, seq);
        return r < 0 ? machine_reply_error(m, seq, r, "out of memory") : 0;
}

static int qemu_send_console(struct machine *m, const char *text, size_t len) {
        struct qemu *q = Q(m);

        if (q->stdin_fd < 0)
                return -ENOTCONN;
        return machine_write_all(q->stdin_fd, text);
}

static void qemu_exited(struct qemu *q, const struct msg_proc_exit *e) {
        struct machine *m = q->m;
        char how[96], tail[2048], why[MSG_STR_MAX];

        machine_proc_describe_exit(e, how, sizeof how);
        drain_streams(q);
        machine_shell_drain(m->shell);
        if (q->console_fd >= 0)
                machine_console_eof(m->console);
        log_event(LOG_INFO, LOG_EVENT_EXITED, NULL, "QEMU (pid %lld) exited: %s", (long long) e->pid, how);
        if (q->step == STEP_DROPPING) {
                q->step = STEP_IDLE;
                (void) evtimer_del(q->start_timer);
                (void) start_boot(q, q->redo_allow_reboot);
                return;
        }
        if (qemu_bootcache_restoring(q->bootcache) && q->step != STEP_RUNNING && q->step != STEP_IDLE) {
                /* QEMU exits when a snapshot does not load: boot cold instead
                 * (prepared ahead: once start() comes). */
                qemu_bootcache_discard(q->bootcache, how);
                fail_monitor_requests(q, "restoring the boot snapshot failed");
                close_all(q, true);
                q->step = STEP_IDLE;
                if (q->standby) {
                        (void) evtimer_del(q->start_timer);
                        q->standby = q->standby_loaded = false;
                        return;
                }
                continue_start(q);
                return;
        }
        if (q->step != STEP_RUNNING && q->step != STEP_IDLE) {
                machine_console_describe_tail(m->console, tail, sizeof tail);
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

static int qemu_attach(struct machine *m) {
        struct qemu *q = Q(m);
        int64_t pid;
        int r;

        pid = machine_proc_restore(q->proc);
        if (pid <= 0 || q->shell_fd < 0 || q->shell_in_fd < 0 || *qemu_control_monitor_fd(q->ctl) < 0 ||
            q->console_fd < 0) {
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
        if ((r = add_read_event(q, q->console_fd, console_cb, &q->console_ev)) < 0 ||
            (q->stderr_fd >= 0 && (r = add_read_event(q, q->stderr_fd, stderr_cb, &q->stderr_ev)) < 0) ||
            (r = qemu_control_watch(q->ctl, true)) < 0)
                return r;
        r = shell_attach(q);
        if (r < 0)
                return r;
        q->step = STEP_RUNNING;
        qemu_bootcache_attached(q->bootcache);
        return 1;
}

static int qemu_init(struct machine *m) {
        struct qemu *q = calloc(1, sizeof *q);
        int r;

        if (!q)
                return -ENOMEM;
        q->m = m;
        q->monitor_listen = q->shell_fd = q->shell_in_fd = -EBADF;
        q->console_fd = q->stdin_fd = q->stderr_fd = -EBADF;
        m->backend_data = q;
        if ((r = qemu_control_new(m->base, &control_ops, q, &q->ctl)) < 0 ||
            (r = qemu_bootcache_new(m, q->ctl, &bootcache_ops, q, &q->bootcache)) < 0 ||
            (r = qemu_debugshell_new(m, &q->debugshell)) < 0)
                return r;
        q->start_timer = evtimer_new(m->base, start_timer_cb, q);

        if (!q->start_timer)
                return -ENOMEM;
        if ((r = machine_proc_new(m->w, QEMU_PROC, &qemu_proc_ops, q, &q->proc)) < 0 ||
            (r = qemu_probe_new(m->w, m->cfg.state_dir, &probe_ops, q, &q->probe)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(stored_fds); i++)
                if ((r = machine_proc_add_fd(q->proc, stored_fds[i].name, stored_fd(q, i))) < 0)
                        return r;
        if ((r = machine_proc_add_fd(q->proc, "monitor", qemu_control_monitor_fd(q->ctl))) < 0 ||
            (r = machine_proc_add_fd(q->proc, "qmp", qemu_control_qmp_fd(q->ctl))) < 0)
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
        machine_event_free(&q->start_timer);
        q->bootcache = qemu_bootcache_free(q->bootcache);
        q->debugshell = qemu_debugshell_free(q->debugshell);
        q->ctl = qemu_control_free(q->ctl);
        m->proc = NULL;
        q->proc = machine_proc_free(q->proc);
        q->probe = qemu_probe_free(q->probe);
        console_splitter_done(&q->stderr_split);
        free(q);
        m->backend_data = NULL;
}

const struct machine_backend backend_qemu = {
        .name = "qemu",
        .init = qemu_init,
        .free = qemu_free,
        .start = qemu_start,
        .prepare = qemu_prepare,
        .attach = qemu_attach,
        .shutdown = qemu_shutdown,
        .crash = qemu_crash,
        .guest_ready = qemu_guest_ready,
        .reboot = qemu_reboot,
        .monitor = qemu_monitor,
        .qmp = qemu_qmp,
        .send_console = qemu_send_console,
        .set_link = qemu_set_link,
};
