/* SPDX-License-Identifier: MIT */
/*
 * backend-ssh.c owns a machine vigil did not start: a host reached with
 * OpenSSH. It asks the supervisor to spawn one `ssh -M` ControlMaster (so
 * nothing it starts outlives vigil), waits for the control socket that
 * appears once the master has authenticated, runs the backdoor shell as one
 * session over it (the reference's ready line and framing, so a command
 * costs one round trip), relays that session to the generic shell code,
 * feeds the session's stderr (commands' stderr) to the console, keeps the
 * master's last error line for messages, and re-establishes a connection
 * that dropped. The argv and the target come from ssh-argv.c.
 *
 * Lifecycle: start connects (retrying refused or unreachable hosts until
 * the boot deadline; a refused key or host key fails at once), shutdown
 * disconnects and leaves the host running, crash refuses: vigil cannot
 * pull the plug of a host it does not own. A dropped connection is treated
 * like a worker restart (docs/restart-semantics.md): the command in flight
 * is repeated after the reconnect if its request is idempotent and fails
 * with an error naming the drop otherwise; queued ones wait.
 *
 * The shell's one stream: every connection is a new session process,
 * whereas the generic shell code expects one stream for the machine's life,
 * so the session's socket goes through the same relay the nspawn backend
 * uses for its backdoor connections (nspawn-relay.h).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "fd-util.h"
#include "log.h"
#include "machine.h"
#include "nspawn-relay.h"
#include "ssh-argv.h"

#define MASTER_PROC        "ssh-master"
#define SESSION_PROC       "ssh-session"
#define CONTROL_POLL_USEC  (20 * USEC_PER_MSEC)
#define RETRY_USEC         (1 * USEC_PER_SEC)
#define SESSION_AGAIN_USEC (200 * USEC_PER_MSEC)
#define SESSION_QUICK_USEC (2 * USEC_PER_SEC) /* a session that ends sooner "ended at once" */
#define SESSION_QUICK_MAX  5                  /* so many in a row: the host cannot run the backdoor */
#define IO_READ_MAX        (64u * 1024u)

/* Names in the supervisor's fd store. */
#define STORE_MASTER_ERR  "ssh-master-err"
#define STORE_CONN        "ssh-conn"
#define STORE_SESSION_ERR "ssh-session-err"

enum ssh_step {
        STEP_IDLE,
        STEP_CONNECTING, /* the master runs; waiting for its control socket */
        STEP_RETRY,      /* the master failed; trying again after RETRY_USEC */
        STEP_UP,         /* the master is connected; a session runs or is being started */
        STEP_CLOSING,    /* shutdown: waiting for the master's exit */
        _STEP_MAX,
};

struct ssh {
        struct machine *m;
        enum ssh_step step;
        bool reported;               /* machine_started() was called for this start */
        bool reconnecting;           /* a connection that was up dropped */
        unsigned long long deadline; /* of the current (re)connect; 0: none */
        char control[128];
        char dest[320]; /* "user@host[:port]" for messages */
        struct ssh_target target;

        struct machine_proc *master;
        int master_err;
        struct event *master_err_ev;
        char err_line[512]; /* the master's stderr line being read */
        size_t err_len;
        char last_error[512]; /* its last complete line */

        struct machine_proc *session;
        unsigned long long session_started;
        unsigned session_quick;     /* sessions in a row that ended at once */
        struct nspawn_relay *relay; /* the shell's stream <-> the session's stdin/stdout */
        int session_err;            /* the session's stderr: commands' stderr, to the console */
        struct event *session_err_ev;
        bool relay_open;

        struct event *timer;
};

static struct ssh *S(struct machine *m) {
        return m->backend_data;
}

static int add_event(struct ssh *s, int fd, short what, event_callback_fn cb, struct event **ret) {
        return machine_event_watch(s->m->base, fd, what, cb, s, ret);
}

static void spawn_master(struct ssh *s);
static void spawn_session(struct ssh *s);

/* ---- the master's stderr: its last line says why a connection failed ---- */

static void master_err_line(struct ssh *s) {
        s->err_line[s->err_len] = 0;
        if (s->err_len > 0) {
                log_debug("ssh: %s", s->err_line);
                (void) snprintf(s->last_error, sizeof s->last_error, "%s", s->err_line);
        }
        s->err_len = 0;
}

static void master_err_read(struct ssh *s) {
        char buf[4096];
        ssize_t k;

        while (s->master_err >= 0 && (k = read(s->master_err, buf, sizeof buf)) != 0) {
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        break;
                }
                for (ssize_t i = 0; i < k; i++) {
                        if (buf[i] == '\n' || buf[i] == '\r')
                                master_err_line(s);
                        else if (s->err_len + 1 < sizeof s->err_line)
                                s->err_line[s->err_len++] = buf[i];
                }
        }
        master_err_line(s);
        machine_event_free(&s->master_err_ev);
        s->master_err = safe_close(s->master_err);
}

static void master_err_cb(evutil_socket_t fd, short what, void *arg) {
        master_err_read(arg);
}

/* ---- the session's stderr: to the console, as a VM's commands' stderr ---- */

static void session_err_cb(evutil_socket_t fd, short what, void *arg) {
        struct ssh *s = arg;
        uint8_t buf[IO_READ_MAX];
        ssize_t k = read(fd, buf, sizeof buf);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                machine_event_free(&s->session_err_ev);
                s->session_err = safe_close(s->session_err);
                return;
        }
        machine_console_feed(s->m->console, buf, (size_t) k);
}

/* ---- the session's stream ---- */

static void conn_lost(struct ssh *s, const char *why);

static void relay_lost(void *userdata, const char *why) {
        conn_lost(userdata, why);
}

static const struct nspawn_relay_ops relay_ops = {
        .lost = relay_lost,
};

static int relay_open(struct ssh *s) {
        int r;

        if (s->relay_open)
                return 0;
        r = nspawn_relay_open(s->relay, s->m->shell);
        if (r >= 0)
                s->relay_open = true;
        return r;
}

/* ---- connection state ---- */

static void close_session(struct ssh *s) {
        nspawn_relay_drop(s->relay);
        machine_event_free(&s->session_err_ev);
        s->session_err = safe_close(s->session_err);
        machine_proc_forget_fds(s->session);
}

static void close_all(struct ssh *s) {
        close_session(s);
        machine_event_free(&s->master_err_ev);
        s->master_err = safe_close(s->master_err);
        machine_proc_forget_fds(s->master);
        (void) evtimer_del(s->timer);
        if (s->control[0])
                (void) unlink(s->control);
}

_printf_(3, 4) static void start_failed(struct ssh *s, int r, const char *fmt, ...) {
        char why[MSG_STR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        if (machine_proc_pid(s->session) > 0)
                machine_proc_abandon(s->session);
        if (machine_proc_pid(s->master) > 0)
                machine_proc_abandon(s->master);
        close_all(s);
        s->step = STEP_IDLE;
        if (!s->reported) {
                machine_started(s->m, r, why);
                return;
        }
        /* It was up: a connection that cannot come back is a machine that stopped. */
        s->reconnecting = false;
        machine_stopped(s->m, why);
}

/* The error lines after which trying again cannot help. */
static bool error_is_permanent(const char *line) {
        static const char *const permanent[] = {
                "Permission denied",
                "Host key verification failed",
                "REMOTE HOST IDENTIFICATION HAS CHANGED",
                "No ED25519 host key is known",
                "No RSA host key is known",
                "No ECDSA host key is known",
                "Could not resolve hostname",
                "Too many authentication failures",
                "no such identity",
                "Load key",
                "Bad configuration option",
                "bad port",
                "Unsupported option",
                NULL,
        };
        for (size_t i = 0; permanent[i]; i++)
                if (strstr(line, permanent[i]))
                        return true;
        return false;
}

static unsigned long long connect_budget_usec(struct ssh *s) {
        return s->m->cfg.connect_s > 0 ? s->m->cfg.connect_s * USEC_PER_SEC : 0;
}

/* The master is connected: run the backdoor shell as a session over it. */
static void master_up(struct ssh *s) {
        struct machine *m = s->m;

        log_event(LOG_INFO, LOG_EVENT_READY, NULL, "SSH connection to %s up (ssh pid %lld)%s", s->dest,
                  (long long) machine_proc_pid(s->master), s->reconnecting ? ", re-established" : "");
        s->step = STEP_UP;
        s->deadline = 0;
        machine_proc_store_fds(s->master);
        spawn_session(s);
        if (!s->reported) {
                s->reported = true;
                m->allow_reboot = false;
                machine_started(m, 0, NULL);
        }
        s->reconnecting = false;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct ssh *s = arg;
        struct stat st;

        switch (s->step) {
        case STEP_CONNECTING:
                if (stat(s->control, &st) == 0 && S_ISSOCK(st.st_mode)) {
                        master_up(s);
                        return;
                }
                if (s->deadline > 0 && now_usec() >= s->deadline) {
                        master_err_read(s);
                        start_failed(s, -ETIMEDOUT, "could not connect to %s within %llu s%s%s", s->dest,
                                     (unsigned long long) s->m->cfg.connect_s, s->last_error[0] ? ": " : "",
                                     s->last_error);
                        return;
                }
                machine_timer_set(s->timer, CONTROL_POLL_USEC);
                return;
        case STEP_RETRY:
                spawn_master(s);
                return;
        case STEP_UP:
                /* A session ended while the master lives on: start the next one. */
                if (!nspawn_relay_connected(s->relay) && machine_proc_pid(s->master) > 0 &&
                    machine_proc_pid(s->session) <= 0)
                        spawn_session(s);
                return;
        case STEP_IDLE:
        case STEP_CLOSING:
        case _STEP_MAX:
                return;
        }
}

/* The environment of every ssh process: VIGIL_STATE_DIR lets a ProxyCommand
 * reach a socket of this run (docs/machine.md, "ssh"); SSH_ASKPASS_REQUIRE
 * keeps ssh (and ProxyJump's inner ssh, which BatchMode does not reach)
 * from ever asking anyone for anything. */
static int build_env(struct ssh *s, char ***ret) {
        const char *keep[] = {"HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK", NULL};
        char **env = calloc(ELEMENTSOF(keep) + 5, sizeof *env);
        size_t n = 0;

        if (!env)
                return -ENOMEM;
        if (asprintf(&env[n++], "PATH=%s", getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin") < 0 ||
            asprintf(&env[n++], "VIGIL_STATE_DIR=%s", s->m->cfg.state_dir) < 0 ||
            !(env[n++] = strdup("SSH_ASKPASS_REQUIRE=never")) || !(env[n++] = strdup("LANG=C.UTF-8"))) {
                env[n - 1] = NULL;
                strv_free(env);
                return -ENOMEM;
        }
        for (size_t i = 0; keep[i]; i++)
                if (getenv(keep[i]) && asprintf(&env[n++], "%s=%s", keep[i], getenv(keep[i])) < 0) {
                        env[n - 1] = NULL;
                        strv_free(env);
                        return -ENOMEM;
                }
        *ret = env;
        return 0;
}

static void spawn_master(struct ssh *s) {
        _cleanup_strv_free_ char **argv = NULL, **env = NULL;
        _cleanup_close_ int err_w = -EBADF;
        int p[2], r;

        r = ssh_build_argv(&s->target, s->m->cfg.state_dir, SSH_ROLE_MASTER, NULL, &argv);
        if (r >= 0)
                r = build_env(s, &env);
        if (r < 0) {
                start_failed(s, r, "could not build the ssh command line: %s", strerror(-r));
                return;
        }
        /* A master killed earlier left its socket behind: the new one's
         * appearing is how we know it connected. */
        (void) unlink(s->control);
        if (pipe2(p, O_CLOEXEC) < 0) {
                start_failed(s, negative_errno(), "pipe: %s", strerror(errno));
                return;
        }
        machine_event_free(&s->master_err_ev);
        safe_close(s->master_err);
        s->master_err = p[0];
        err_w = p[1];
        s->err_len = 0;
        s->last_error[0] = 0;
        (void) fd_set_nonblock(s->master_err, 1);
        if ((r = add_event(s, s->master_err, EV_READ | EV_PERSIST, master_err_cb, &s->master_err_ev)) < 0) {
                start_failed(s, r, "out of memory");
                return;
        }
        const int fds[] = {err_w, err_w};
        r = machine_proc_spawn(s->master, argv, env, s->m->cfg.state_dir, 2 | 4, fds, 2);
        if (r < 0) {
                start_failed(s, r, "could not ask the supervisor to spawn ssh: %s", strerror(-r));
                return;
        }
        log_info("connecting to %s", s->dest);
        s->step = STEP_CONNECTING;
        machine_timer_set(s->timer, CONTROL_POLL_USEC);
}

static void spawn_session(struct ssh *s) {
        _cleanup_strv_free_ char **argv = NULL, **env = NULL;
        _cleanup_close_ int sock = -EBADF, err_w = -EBADF;
        int sp[2], p[2], r;

        r = ssh_build_argv(&s->target, s->m->cfg.state_dir, SSH_ROLE_SESSION, ssh_backdoor_command, &argv);
        if (r >= 0)
                r = build_env(s, &env);
        if (r < 0) {
                log_error_errno(r, "Could not build the ssh session command line");
                return;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                log_error_errno(negative_errno(), "socketpair for the SSH session");
                return;
        }
        sock = sp[1];
        if (pipe2(p, O_CLOEXEC) < 0) {
                safe_close(sp[0]);
                log_error_errno(negative_errno(), "pipe for the SSH session");
                return;
        }
        close_session(s);
        s->session_err = p[0];
        err_w = p[1];
        (void) fd_set_nonblock(sp[0], 1);
        (void) fd_set_nonblock(s->session_err, 1);
        if (nspawn_relay_adopt(s->relay, sp[0]) < 0 ||
            add_event(s, s->session_err, EV_READ | EV_PERSIST, session_err_cb, &s->session_err_ev) < 0) {
                close_session(s);
                log_error("Out of memory setting up the SSH session");
                return;
        }
        const int fds[] = {sock, sock, err_w};
        r = machine_proc_spawn(s->session, argv, env, s->m->cfg.state_dir, 1 | 2 | 4, fds, 3);
        if (r < 0) {
                close_session(s);
                log_error_errno(r, "Could not ask the supervisor to spawn the SSH session");
                return;
        }
        machine_proc_store_fds(s->session);
        s->session_started = now_usec();
}

/* The session's stream ended: the connection dropped, or the shell exited.
 * What was in flight follows the rules of a worker restart. */
static void conn_lost(struct ssh *s, const char *why) {
        char msg[MSG_STR_MAX];
        close_session(s);
        if (s->step != STEP_UP)
                return;
        log_info("SSH session to %s ended (%s)", s->dest, why);
        (void) snprintf(msg, sizeof msg,
                        "the SSH connection to %s was lost while executing; the request is not repeated (it is "
                        "not idempotent)",
                        s->dest);
        machine_shell_transport_reset(s->m->shell, msg);
        /* The session ends by itself once its socket is closed (no kill by
         * name here: it could reach the next session). If the master lives on, a new session follows; if it died, its
         * exit reconnects. */
        machine_timer_set(s->timer, SESSION_AGAIN_USEC);
}

static void master_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        struct ssh *s = userdata;
        char how[96];
        bool permanent;

        master_err_read(s);
        machine_proc_describe_exit(e, how, sizeof how);
        machine_proc_forget_fds(s->master);
        permanent = error_is_permanent(s->last_error);
        switch (s->step) {
        case STEP_CLOSING:
                close_all(s);
                s->step = STEP_IDLE;
                machine_stopped(s->m, "disconnected (the host keeps running: vigil does not power off a host it "
                                      "did not start)");
                return;
        case STEP_UP:
                log_event(LOG_WARNING, LOG_EVENT_EXITED, NULL, "SSH connection to %s lost (ssh %s%s%s); reconnecting",
                          s->dest, how, s->last_error[0] ? ": " : "", s->last_error);
                if (nspawn_relay_connected(s->relay))
                        nspawn_relay_end(s->relay, "the connection dropped");
                s->reconnecting = true;
                s->deadline = connect_budget_usec(s) ? now_usec() + connect_budget_usec(s) : 0;
                spawn_master(s);
                return;
        case STEP_CONNECTING:
                if (permanent) {
                        start_failed(s, -EACCES, "could not connect to %s (ssh %s): %s", s->dest, how, s->last_error);
                        return;
                }
                if (s->deadline > 0 && now_usec() + RETRY_USEC >= s->deadline) {
                        start_failed(s, -ETIMEDOUT, "could not connect to %s within %llu s (ssh %s)%s%s", s->dest,
                                     (unsigned long long) s->m->cfg.connect_s, how, s->last_error[0] ? ": " : "",
                                     s->last_error);
                        return;
                }
                log_info("SSH connection to %s failed (ssh %s%s%s); trying again", s->dest, how,
                         s->last_error[0] ? ": " : "", s->last_error);
                s->step = STEP_RETRY;
                machine_timer_set(s->timer, RETRY_USEC);
                return;
        case STEP_IDLE:
        case STEP_RETRY:
        case _STEP_MAX:
                return;
        }
}

static void master_spawn_failed(struct machine_proc *p, int error, const char *message, void *userdata) {
        start_failed(userdata, error, "the supervisor could not spawn ssh: %s", message);
}

static void session_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        struct ssh *s = userdata;
        char how[96];

        machine_proc_describe_exit(e, how, sizeof how);
        log_debug("SSH session (pid %lld) ended: %s", (long long) e->pid, how);
        if (s->step == STEP_UP && machine_proc_pid(s->master) > 0 &&
            now_usec() < s->session_started + SESSION_QUICK_USEC) {
                if (++s->session_quick >= SESSION_QUICK_MAX) {
                        s->session_quick = 0;
                        start_failed(s, -EPROTO,
                                     "the SSH session to %s ended at once %d times in a row (%s; its stderr is in "
                                     "the console log): can the login shell run the backdoor, and is bash installed "
                                     "there?",
                                     s->dest, SESSION_QUICK_MAX, how);
                        return;
                }
        } else
                s->session_quick = 0;
        if (nspawn_relay_connected(s->relay))
                nspawn_relay_end(s->relay, how);
        else if (s->step == STEP_UP)
                machine_timer_set(s->timer, SESSION_AGAIN_USEC);
}

static const struct machine_proc_ops master_ops = {
        .spawn_failed = master_spawn_failed,
        .exited = master_exited,
};

static const struct machine_proc_ops session_ops = {
        .exited = session_exited,
};

/* ---- vtable ---- */

static int ssh_start(struct machine *m, bool allow_reboot) {
        struct ssh *s = S(m);
        int r;

        if (s->step != STEP_IDLE)
                return -EBUSY;
        if ((r = relay_open(s)) < 0) {
                start_failed(s, r, "could not set up the shell relay: %s", strerror(-r));
                return 0;
        }
        s->reported = false;
        s->reconnecting = false;
        s->deadline = connect_budget_usec(s) ? now_usec() + connect_budget_usec(s) : 0;
        spawn_master(s);
        return 0;
}

/* No power button on a host vigil does not own: disconnect, and say so. */
static int ssh_shutdown(struct machine *m) {
        struct ssh *s = S(m);

        if (machine_proc_pid(s->master) <= 0) {
                close_all(s);
                s->step = STEP_IDLE;
                machine_stopped(m, "disconnected");
                return 0;
        }
        s->step = STEP_CLOSING;
        if (machine_proc_pid(s->session) > 0)
                machine_proc_kill(s->session);
        machine_proc_kill(s->master);
        return 0;
}

static int ssh_crash(struct machine *m) {
        log_warning("crash() refused: %s is a host reached over SSH, which vigil cannot pull the plug of", S(m)->dest);
        return -EOPNOTSUPP;
}

static int ssh_attach(struct machine *m) {
        struct ssh *s = S(m);
        int64_t master = machine_proc_restore(s->master), session = machine_proc_restore(s->session);
        _cleanup_close_ int conn = TAKE_FD(*nspawn_relay_conn_fd(s->relay)); /* adopted once the rest is watched */
        int r;

        if (master <= 0 || s->master_err < 0) {
                if (session > 0)
                        machine_proc_kill_stale(s->session);
                if (master > 0)
                        machine_proc_kill_stale(s->master);
                close_all(s);
                return 0;
        }
        (void) fd_set_nonblock(s->master_err, 1);
        if ((r = add_event(s, s->master_err, EV_READ | EV_PERSIST, master_err_cb, &s->master_err_ev)) < 0 ||
            (r = relay_open(s)) < 0)
                return r;
        s->step = STEP_UP;
        s->reported = true;
        if (session > 0 && conn >= 0 && s->session_err >= 0) {
                (void) fd_set_nonblock(conn, 1);
                (void) fd_set_nonblock(s->session_err, 1);
                if ((r = nspawn_relay_adopt(s->relay, TAKE_FD(conn))) < 0 ||
                    (r = add_event(s, s->session_err, EV_READ | EV_PERSIST, session_err_cb, &s->session_err_ev)) < 0)
                        return r;
                return 1;
        }
        log_info("No SSH session to re-attach to; starting a new one over the connection");
        if (session > 0)
                machine_proc_kill_stale(s->session);
        close_session(s);
        spawn_session(s);
        return 1;
}

static int ssh_init(struct machine *m) {
        struct ssh *s = calloc(1, sizeof *s);
        char error[MSG_STR_MAX];
        int r;

        if (!s)
                return -ENOMEM;
        s->m = m;
        s->master_err = s->session_err = -EBADF;
        m->backend_data = s;
        /* machine-config checked it already; a refusal here is a bug. */
        if ((r = machine_config_ssh_target(&m->cfg, &s->target, error, sizeof error)) < 0) {
                log_error("%s", error);
                return r;
        }
        if (s->target.port > 0)
                (void) snprintf(s->dest, sizeof s->dest, "%s@%s:%u", s->target.user ?: "root", s->target.host,
                                s->target.port);
        else
                (void) snprintf(s->dest, sizeof s->dest, "%s@%s", s->target.user ?: "root", s->target.host);
        if ((r = ssh_control_path(m->cfg.state_dir, s->control, sizeof s->control)) < 0)
                return r;
        s->timer = evtimer_new(m->base, timer_cb, s);
        if (!s->timer)
                return -ENOMEM;
        if ((r = nspawn_relay_new(m->base, &relay_ops, s, &s->relay)) < 0 ||
            (r = machine_proc_new(m->w, MASTER_PROC, &master_ops, s, &s->master)) < 0 ||
            (r = machine_proc_new(m->w, SESSION_PROC, &session_ops, s, &s->session)) < 0 ||
            (r = machine_proc_add_fd(s->master, STORE_MASTER_ERR, &s->master_err)) < 0 ||
            (r = machine_proc_add_fd(s->session, STORE_CONN, nspawn_relay_conn_fd(s->relay))) < 0 ||
            (r = machine_proc_add_fd(s->session, STORE_SESSION_ERR, &s->session_err)) < 0)
                return r;
        /* The host is not vigil's, but the master is its hold on it: connecting
         * is booting, its exit is the machine gone (a session is a helper). */
        m->proc = s->master;
        return 0;
}

static void ssh_free(struct machine *m) {
        struct ssh *s = S(m);

        if (!s)
                return;
        close_session(s);
        machine_event_free(&s->master_err_ev);
        s->master_err = safe_close(s->master_err);
        s->relay = nspawn_relay_free(s->relay);
        machine_event_free(&s->timer);
        s->master = machine_proc_free(s->master);
        s->session = machine_proc_free(s->session);
        ssh_target_done(&s->target);
        m->proc = NULL;
        free(s);
        m->backend_data = NULL;
}

const struct machine_backend backend_ssh = {
        .name = "ssh",
        .init = ssh_init,
        .free = ssh_free,
        .start = ssh_start,
        .attach = ssh_attach,
        .shutdown = ssh_shutdown,
        .crash = ssh_crash,
};
