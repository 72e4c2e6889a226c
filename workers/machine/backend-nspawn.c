/* SPDX-License-Identifier: MIT */
/*
 * backend-nspawn.c owns the life of a systemd-nspawn container: the start
 * steps (host checks in nspawn-host.c, waiting bounded for the switch's TAPs,
 * the host-wide start lock that serialises cgroup v1 set-up, asking the
 * supervisor to spawn systemd-nspawn so nothing outlives vigil), the console
 * pipe and the "init is up" mark, the backdoor socket whose connections
 * nspawn-relay.c turns into the guest shell's one stream, crash/reboot/
 * poweroff through the container's init, booting again after an in-guest
 * reboot, and turning nspawn's exit into a clear error or a stopped machine.
 *
 * A NixOS container start script (`nspawn.start_script`, run-<name>-nspawn)
 * takes the tree's place: it runs systemd-nspawn itself, in network and mount
 * namespaces of its own whose br<vlan> bridges hold the switch's TAPs, and
 * prints nspawn's pid; at its boot line the shell is `nsenter` into the
 * container's init, as the reference gets it, whose stream the relay adopts
 * as it adopts a backdoor connection (nspawn-script.c; docs/machine.md).
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "fd-util.h"
#include "log.h"
#include "machine.h"
#include "nspawn-argv.h"
#include "nspawn-host.h"
#include "nspawn-relay.h"
#include "nspawn-script.h"

#define NSPAWN_PROC        "nspawn"
#define SHELL_PROC         "nsenter-shell" /* a start script's container: the shell into it */
#define TAP_WAIT_USEC      (30 * USEC_PER_SEC)
#define TAP_POLL_USEC      (50 * USEC_PER_MSEC)
#define LOCK_POLL_USEC     (20 * USEC_PER_MSEC)
#define LOCK_WAIT_USEC     (120 * USEC_PER_SEC)
#define BOOT_LOCK_USEC     (5 * USEC_PER_SEC) /* the start lock is held at most this long after the spawn */
#define CRASH_KILL_USEC    (5 * USEC_PER_SEC)
#define IO_READ_MAX        (64u * 1024u)
#define LOCK_PATH          "/run/vigil-nspawn-start.lock"
#define INIT_UP_MARK       "Welcome to "
#define NSPAWN_PROPAGATE   "/run/systemd/nspawn/propagate"
#define NSPAWN_EXIT_REBOOT 133 /* the container rebooted (systemd-nspawn(1)) */

/* Names in the supervisor's fd store. */
#define STORE_LISTEN    "backdoor-listen"
#define STORE_CONN      "backdoor"
#define STORE_CONSOLE   "console"
#define STORE_SHELL_ERR "shell-stderr"

enum start_step {
        STEP_IDLE,
        STEP_WAIT_TAPS, /* the switch's TAPs must exist before nspawn moves them */
        STEP_LOCKING,   /* waiting for the start lock */
        STEP_SPAWNING,  /* MSG_SPAWN sent */
        STEP_BOOTING,   /* nspawn runs; holding the lock until the container's init is up */
        STEP_RUNNING,
        _STEP_MAX,
};

struct nspawn {
        struct machine *m;
        enum start_step step;
        struct machine_proc *proc; /* systemd-nspawn */
        char machine[80];
        unsigned long long step_started;
        bool allow_reboot;
        bool rebooting;     /* the container rebooted; booting it again */
        bool crash_pending; /* crashed between a reboot and the next spawn */

        int listen_fd;
        struct event *listen_ev;
        struct nspawn_relay *relay; /* the guest shell's stream over the current connection */

        int console_fd;
        struct event *console_ev;
        char mark_tail[sizeof INIT_UP_MARK]; /* for a mark split across reads */

        int lock_fd;
        struct event *step_timer;

        int udev_ifindex[64]; /* udev database entries we wrote (0: none) */

        /* Start-script mode (cfg.start_script): what the script printed, and
         * the nsenter shell whose stdin/stdout the relay adopts. */
        bool script;
        struct nspawn_script_scan scan;
        struct machine_proc *shell_proc;
        int shell_err_fd; /* the shell's stderr (its commands'), into the console */
        struct event *shell_err_ev;
};

static struct nspawn *N(struct machine *m) {
        return m->backend_data;
}

/* Every event here has @n as the callback's argument. */
static int add_event(struct nspawn *n, int fd, short what, event_callback_fn cb, struct event **ret) {
        return machine_event_watch(n->m->base, fd, what, cb, n, ret);
}

/* ---- the container's init (for crash, reboot and a shell-less poweroff) ---- */

/* The one child of @pid (0 if none or several). */
static pid_t only_child(int64_t pid) {
        char path[128], buf[256];
        _cleanup_close_ int fd = -EBADF;
        ssize_t k;
        pid_t child;

        if (pid <= 0)
                return 0;
        (void) snprintf(path, sizeof path, "/proc/%lld/task/%lld/children", (long long) pid, (long long) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (k = read(fd, buf, sizeof buf - 1)) < 0)
                return 0;
        buf[k] = 0;
        return nspawn_script_parse_children(buf, &child) < 0 ? 0 : child;
}

/* systemd-nspawn clones the container's PID 1 as its own child. A start
 * script's nspawn is the one whose pid it printed. */
static pid_t container_init_pid(struct nspawn *n) {
        return only_child(n->script ? n->scan.nspawn_pid : machine_proc_pid(n->proc));
}

static int signal_init(struct nspawn *n, int sig) {
        pid_t init = container_init_pid(n);

        if (init <= 0)
                return -ESRCH;
        if (kill(init, sig) < 0)
                return negative_errno();
        return 0;
}

/* ---- teardown ---- */

static void release_lock(struct nspawn *n) {
        if (n->lock_fd >= 0)
                log_debug("Releasing the container start lock");
        n->lock_fd = safe_close(n->lock_fd);
}

static void shell_stop(struct nspawn *n) {
        machine_event_free(&n->shell_err_ev);
        n->shell_err_fd = safe_close(n->shell_err_fd);
        if (n->shell_proc && machine_proc_pid(n->shell_proc) > 0)
                machine_proc_kill(n->shell_proc);
}

static void close_all(struct nspawn *n, bool forget) {
        char path[256];

        nspawn_relay_close(n->relay);
        shell_stop(n);
        machine_event_free(&n->listen_ev);
        machine_event_free(&n->console_ev);
        (void) evtimer_del(n->step_timer);
        machine_proc_cancel_kill(n->proc);
        n->listen_fd = safe_close(n->listen_fd);
        n->console_fd = safe_close(n->console_fd);
        release_lock(n);
        machine_shell_detach(n->m->shell);
        if (forget) {
                machine_proc_forget_fds(n->proc);
                if (n->shell_proc)
                        machine_proc_forget_fds(n->shell_proc);
                nspawn_udev_forget(n->udev_ifindex, ELEMENTSOF(n->udev_ifindex));
                /* nspawn leaves this behind when /run is not a tmpfs ("we can't allow that");
                 * a start script's nspawn has a /run/systemd/nspawn of its own. */
                if (n->machine[0] && !n->script) {
                        (void) snprintf(path, sizeof path, NSPAWN_PROPAGATE "/%s", n->machine);
                        (void) rmdir(path);
                }
        }
}

static void start_failed(struct nspawn *n, int r, const char *fmt, ...) _printf_(3, 4);
static void start_failed(struct nspawn *n, int r, const char *fmt, ...) {
        char msg[MSG_STR_MAX];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (machine_proc_pid(n->proc) > 0) {
                /* nspawn is up but unusable: do not leave the container running. */
                (void) signal_init(n, SIGKILL);
                machine_proc_abandon(n->proc);
        }
        close_all(n, true);
        n->step = STEP_IDLE;
        if (n->rebooting) {
                /* The machine was up: it is down now, and says why. */
                n->rebooting = false;
                log_error("Booting the container again after its reboot failed: %s", msg);
                machine_stopped(n->m, msg);
                return;
        }
        machine_started(n->m, r, msg);
}

/* The backdoor connection ended (the relay dropped it). */
static void relay_lost(void *userdata, const char *why) {
        struct nspawn *n = userdata;
        struct machine *m = n->m;

        machine_proc_forget_fd(n->proc, STORE_CONN);
        if (!m->booted)
                return;
        log_info("Backdoor connection closed (%s); waiting for the guest's next one", why);
        machine_shell_transport_lost(m->shell, n->script ? "the shell in the container ended (did the command end "
                                                           "the shell, or the container stop?)"
                                                         : "the guest's backdoor shell closed its connection (did the "
                                                           "command end the shell or stop vigil-backdoor.service?)");
}

static const struct nspawn_relay_ops relay_ops = {
        .lost = relay_lost,
};

static void boot_up(struct nspawn *n, const char *why);

static void accept_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(negative_errno(), "accept() on the backdoor socket failed");
                return;
        }
        if (nspawn_relay_connected(n->relay))
                nspawn_relay_end(n->relay, "a new backdoor connection replaces it");
        if (nspawn_relay_adopt(n->relay, c) < 0) {
                nspawn_relay_drop(n->relay);
                return;
        }
        log_debug("Backdoor connected");
        machine_proc_store_fd(n->proc, STORE_CONN);
        if (n->step == STEP_BOOTING)
                boot_up(n, "the backdoor connected");
}

/* ---- console ---- */

static void scan_init_mark(struct nspawn *n, const uint8_t *buf, size_t len) {
        char win[2 * sizeof INIT_UP_MARK];
        size_t keep = strlen(n->mark_tail);

        if (n->step != STEP_BOOTING || n->script)
                return;
        /* Look at the bytes in slices small enough to join with the tail. */
        for (size_t off = 0; off < len;) {
                size_t take = MIN(len - off, sizeof win - 1 - keep);
                memcpy(win, n->mark_tail, keep);
                memcpy(win + keep, buf + off, take);
                win[keep + take] = 0;
                for (size_t i = 0; i < keep + take; i++)
                        if (!win[i])
                                win[i] = ' ';
                if (strstr(win, INIT_UP_MARK)) {
                        n->mark_tail[0] = 0;
                        boot_up(n, "the container's init is up");
                        return;
                }
                keep = MIN(keep + take, sizeof n->mark_tail - 1);
                memmove(n->mark_tail, win + strlen(win) - keep, keep);
                n->mark_tail[keep] = 0;
                off += take;
        }
}

/* ---- start-script mode: the script's lines and the nsenter shell ---- */

static void shell_err_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        uint8_t buf[IO_READ_MAX];
        ssize_t k = read(fd, buf, sizeof buf);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                machine_event_free(&n->shell_err_ev);
                n->shell_err_fd = safe_close(n->shell_err_fd);
                machine_proc_forget_fd(n->shell_proc, STORE_SHELL_ERR);
                return;
        }
        machine_console_feed(n->m->console, buf, (size_t) k);
}

/* The reference's shell, nsenter into the container's init with /bin/sh and
 * an empty environment, made a backdoor shell (nspawn-script.c). Its stdin and
 * stdout are one end of a socketpair whose other end the relay adopts; its
 * stderr (the commands') goes to the console, as a VM's goes to the serial port. */
static void shell_spawn(struct nspawn *n) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_close_ int ours = -EBADF, theirs = -EBADF, err_w = -EBADF;
        char *env[] = {NULL};
        pid_t init = container_init_pid(n);
        int sp[2], ep[2], r;

        if (init <= 0) {
                log_error(
                        "The container is up but systemd-nspawn (pid %d) has not exactly one child to enter: no shell",
                        (int) n->scan.nspawn_pid);
                return;
        }
        if ((r = nspawn_script_shell_argv(init, &argv)) < 0) {
                log_error_errno(r, "Could not build the nsenter command line");
                return;
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                log_error_errno(negative_errno(), "Could not make the shell's socketpair");
                return;
        }
        ours = sp[0];
        theirs = sp[1];
        if (pipe2(ep, O_CLOEXEC) < 0) {
                log_error_errno(negative_errno(), "Could not make the shell's stderr pipe");
                return;
        }
        shell_stop(n);
        n->shell_err_fd = ep[0];
        err_w = ep[1];
        (void) fd_set_nonblock(n->shell_err_fd, 1);
        (void) fd_set_nonblock(ours, 1);
        const int fds[] = {theirs, theirs, err_w};
        if ((r = add_event(n, n->shell_err_fd, EV_READ | EV_PERSIST, shell_err_cb, &n->shell_err_ev)) < 0 ||
            (r = machine_proc_spawn(n->shell_proc, argv, env, "/", 1 | 2 | 4, fds, 3)) < 0) {
                log_error_errno(r, "Could not ask the supervisor for the shell into the container");
                shell_stop(n);
                return;
        }
        if (nspawn_relay_connected(n->relay))
                nspawn_relay_end(n->relay, "a new shell replaces it");
        if (nspawn_relay_adopt(n->relay, TAKE_FD(ours)) < 0) {
                nspawn_relay_drop(n->relay);
                return;
        }
        machine_proc_store_fd(n->proc, STORE_CONN);
        machine_proc_store_fd(n->shell_proc, STORE_SHELL_ERR);
        log_info("Shell into the container: nsenter --target %d (systemd-nspawn pid %d)", (int) init,
                 (int) n->scan.nspawn_pid);
}

static void scan_script_lines(struct nspawn *n, const uint8_t *buf, size_t len) {
        const char *script = n->m->cfg.start_script;
        pid_t had = n->scan.nspawn_pid;
        char why[MSG_STR_MAX];
        int r;

        if (!n->script || n->scan.booted)
                return;
        r = nspawn_script_feed(&n->scan, buf, len);
        if (r < 0) {
                (void) snprintf(why, sizeof why, "%s: %s", script,
                                r == -EPROTO
                                        ? "the container booted before the script printed \"" NSPAWN_SCRIPT_PID_PREFIX
                                          "<pid>\" (is it a NixOS run-<name>-nspawn script?)"
                                        : "a \"" NSPAWN_SCRIPT_PID_PREFIX "\" line without a pid");
                if (n->step != STEP_RUNNING) {
                        start_failed(n, r, "%s", why);
                        return;
                }
                log_error("%s; stopping the container", why);
                (void) signal_init(n, SIGKILL);
                machine_proc_kill(n->proc);
                return;
        }
        if (n->scan.nspawn_pid != had)
                log_info("systemd-nspawn's PID is %d (from %s)", (int) n->scan.nspawn_pid, script);
        if (n->scan.booted) {
                shell_spawn(n);
                boot_up(n, "the container's boot line showed");
        }
}

static void shell_spawned(struct machine_proc *p, int64_t pid, void *userdata) {
        log_debug("nsenter shell spawned (pid %lld)", (long long) pid);
}

static void shell_spawn_failed(struct machine_proc *p, int error, const char *message, void *userdata) {
        struct nspawn *n = userdata;

        log_error("The supervisor could not spawn the shell into the container: %s", message);
        if (nspawn_relay_connected(n->relay))
                nspawn_relay_end(n->relay, "nsenter could not be spawned");
}

/* nsenter leaves at once: the shell it started lives on as the container init's child. */
static void shell_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        char how[96];

        machine_proc_describe_exit(e, how, sizeof how);
        log_debug("nsenter (pid %lld) exited: %s", (long long) e->pid, how);
}

static const struct machine_proc_ops shell_proc_ops = {
        .spawned = shell_spawned,
        .spawn_failed = shell_spawn_failed,
        .exited = shell_exited,
};

static void console_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        uint8_t buf[IO_READ_MAX];
        ssize_t k = read(fd, buf, sizeof buf);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                machine_console_eof(n->m->console);
                machine_event_free(&n->console_ev);
                n->console_fd = safe_close(n->console_fd);
                return;
        }
        machine_console_feed(n->m->console, buf, (size_t) k);
        scan_init_mark(n, buf, (size_t) k);
        scan_script_lines(n, buf, (size_t) k);
}

static void drain_console(struct nspawn *n) {
        uint8_t buf[IO_READ_MAX];

        for (unsigned i = 0; n->console_fd >= 0 && i < 1024; i++) {
                ssize_t k = read(n->console_fd, buf, sizeof buf);
                if (k <= 0)
                        break;
                machine_console_feed(n->m->console, buf, (size_t) k);
        }
        if (n->console_fd >= 0)
                machine_console_eof(n->m->console);
}

/* ---- start ---- */

static int listen_backdoor(struct nspawn *n) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;

        if ((size_t) snprintf(sa.sun_path, sizeof sa.sun_path, "%s/" NSPAWN_HOST_DIR "/" NSPAWN_BACKDOOR_NAME,
                              n->m->cfg.state_dir) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        /* The container's root connects; nobody else needs to. */
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || chmod(sa.sun_path, 0600) < 0 || listen(fd, 4) < 0)
                return negative_errno();
        n->listen_fd = TAKE_FD(fd);
        return add_event(n, n->listen_fd, EV_READ | EV_PERSIST, accept_cb, &n->listen_ev);
}

static void spawn_nspawn(struct nspawn *n);
static void lock_try(struct nspawn *n);

static void taps_check(struct nspawn *n) {
        const struct machine_config *c = &n->m->cfg;
        char path[128];

        for (size_t i = 0; i < c->n_vlans; i++) {
                if (!c->vlans[i].tap)
                        continue;
                (void) snprintf(path, sizeof path, "/sys/class/net/%s", c->vlans[i].tap);
                if (access(path, F_OK) == 0)
                        continue;
                if (now_usec() - n->step_started >= TAP_WAIT_USEC) {
                        start_failed(n, -ETIMEDOUT,
                                     "TAP %s (vlans[%zu], VLAN %llu) did not appear in the host network namespace "
                                     "within %llu s (the VLAN's vigil-switch creates it; was the switch started with "
                                     "this machine's TAP port?)",
                                     c->vlans[i].tap, i, (unsigned long long) c->vlans[i].nr,
                                     TAP_WAIT_USEC / USEC_PER_SEC);
                        return;
                }
                machine_timer_set(n->step_timer, TAP_POLL_USEC);
                return;
        }
        /* A start script bridges the TAPs; nspawn never takes them. */
        for (size_t i = 0; i < c->n_vlans && !n->script; i++)
                if (c->vlans[i].tap && i < ELEMENTSOF(n->udev_ifindex))
                        nspawn_udev_mark(c->vlans[i].tap, &n->udev_ifindex[i]);
        n->step = STEP_LOCKING;
        n->step_started = now_usec();
        lock_try(n);
}

/* Containers started at the same instant race on the cgroup v1 set-up here
 * ("Failed to create symlink /sys/fs/cgroup/cpu: File exists"); one host-wide
 * lock, held from the spawn until the container's init is up, serialises
 * that part of every start (of this run and of any other). */
static void lock_try(struct nspawn *n) {
        if (n->lock_fd < 0) {
                n->lock_fd = open(LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                if (n->lock_fd < 0) {
                        log_warning_errno(negative_errno(), "Could not open %s; starting without the start lock",
                                          LOCK_PATH);
                        spawn_nspawn(n);
                        return;
                }
        }
        if (flock(n->lock_fd, LOCK_EX | LOCK_NB) == 0) {
                log_debug("Took the container start lock after %.2f s",
                          (double) (now_usec() - n->step_started) / USEC_PER_SEC);
                spawn_nspawn(n);
                return;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
                log_warning_errno(negative_errno(), "flock(%s) failed; starting without the start lock", LOCK_PATH);
                release_lock(n);
                spawn_nspawn(n);
                return;
        }
        if (now_usec() - n->step_started >= LOCK_WAIT_USEC) {
                start_failed(n, -ETIMEDOUT,
                             "another container start has held %s for %llu s (a systemd-nspawn stuck before its "
                             "container's init came up?)",
                             LOCK_PATH, LOCK_WAIT_USEC / USEC_PER_SEC);
                return;
        }
        machine_timer_set(n->step_timer, LOCK_POLL_USEC);
}

static void step_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;

        if (n->crash_pending && (n->step == STEP_WAIT_TAPS || n->step == STEP_LOCKING)) {
                n->crash_pending = false;
                start_failed(n, -ECANCELED, "forced crash while the container was booting again after a reboot");
                return;
        }
        n->crash_pending = false;
        switch (n->step) {
        case STEP_WAIT_TAPS:
                taps_check(n);
                return;
        case STEP_LOCKING:
                lock_try(n);
                return;
        case STEP_BOOTING:
                boot_up(n, "no \"" INIT_UP_MARK "\" console line yet");
                return;
        case STEP_SPAWNING:
                start_failed(n, -ETIMEDOUT, "the supervisor did not answer the spawn request for systemd-nspawn");
                return;
        case STEP_IDLE:
        case STEP_RUNNING:
        case _STEP_MAX:
                return;
        }
}

static void spawn_nspawn(struct nspawn *n) {
        struct machine *m = n->m;
        _cleanup_strv_free_ char **argv = NULL;
        char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", NULL};
        _cleanup_close_ int out_w = -EBADF;
        int p[2], r;

        _cleanup_strv_free_ char **script_env = NULL;
        if (n->script) {
                struct nspawn_script_tap taps[64];
                size_t n_taps = 0;
                char netns[64];

                for (size_t i = 0; i < m->cfg.n_vlans && n_taps < ELEMENTSOF(taps); i++)
                        if (m->cfg.vlans[i].tap)
                                taps[n_taps++] =
                                        (struct nspawn_script_tap){m->cfg.vlans[i].tap, (unsigned) m->cfg.vlans[i].nr};
                /* The switch made the TAPs in the host's network namespace, which is this worker's. */
                (void) snprintf(netns, sizeof netns, "/proc/%d/ns/net", (int) getpid());
                n->scan = (struct nspawn_script_scan){};
                r = nspawn_script_argv(m->cfg.start_script, netns, taps, n_taps, &argv);
                if (r >= 0)
                        r = nspawn_script_env(m->cfg.state_dir, m->cfg.shared_dir, &script_env);
        } else
                r = nspawn_build_argv(&m->cfg, n->machine, &argv);
        if (r < 0) {
                start_failed(n, r, "could not build the %s command line: %s",
                             n->script ? "start script's" : "systemd-nspawn", strerror(-r));
                return;
        }
        if (strv_length(argv) > MSG_STRV_MAX) {
                start_failed(n, -E2BIG, "the systemd-nspawn command line has more than %u arguments", MSG_STRV_MAX);
                return;
        }
        if (pipe2(p, O_CLOEXEC) < 0) {
                start_failed(n, negative_errno(), "pipe: %m");
                return;
        }
        n->console_fd = p[0];
        out_w = p[1];
        (void) fd_set_nonblock(n->console_fd, 1);
        (void) fcntl(n->console_fd, F_SETPIPE_SZ, 1024 * 1024);
        n->mark_tail[0] = 0;
        if ((r = add_event(n, n->console_fd, EV_READ | EV_PERSIST, console_cb, &n->console_ev)) < 0) {
                start_failed(n, r, "out of memory");
                return;
        }
        log_info("starting container %s", n->machine);
        if (n->script)
                log_debug("start script %s with RUN_NSPAWN_ROOT_DIR=%s", m->cfg.start_script, m->cfg.state_dir);
        else
                log_debug("systemd-nspawn command: %s ... --directory=%s", argv[0], m->cfg.tree);
        /* nspawn's own stdout and stderr both carry the console (a start
         * script's: its PID line, then nspawn's). */
        const int fds[] = {out_w, out_w};
        r = machine_proc_spawn(n->proc, argv, n->script ? script_env : env, m->cfg.state_dir, 2 | 4, fds, 2);
        if (r < 0) {
                start_failed(n, r, "could not ask the supervisor to spawn systemd-nspawn: %s", strerror(-r));
                return;
        }
        /* Stored now, so a worker killed during the boot can still re-attach. */
        machine_proc_store_fds(n->proc);
        n->step = STEP_SPAWNING;
        n->step_started = now_usec();
        machine_timer_set(n->step_timer, 30 * USEC_PER_SEC);
}

/* The container's init is up (or the start lock has been held long enough):
 * let the next container start, and report the machine started. */
static void boot_up(struct nspawn *n, const char *why) {
        struct machine *m = n->m;

        if (n->step != STEP_BOOTING)
                return;
        (void) evtimer_del(n->step_timer);
        release_lock(n);
        log_debug("Container booting (%s) %.2f s after the spawn", why,
                  (double) (now_usec() - n->step_started) / USEC_PER_SEC);
        n->step = STEP_RUNNING;
        n->rebooting = false;
        m->allow_reboot = n->allow_reboot;
        log_event(LOG_INFO, LOG_EVENT_READY, NULL, "container %s running (systemd-nspawn pid %lld)", n->machine,
                  (long long) machine_pid(m));
        machine_started(m, 0, NULL);
}

static int nspawn_start(struct machine *m, bool allow_reboot) {
        struct nspawn *n = N(m);
        char why[MSG_STR_MAX];
        int r;

        if (n->step != STEP_IDLE)
                return -EBUSY;
        n->script = m->cfg.start_script != NULL;
        r = nspawn_preflight(&m->cfg, why, sizeof why);
        if (r >= 0 && n->script) {
                /* The state dir is the container's root (RUN_NSPAWN_ROOT_DIR): nothing of ours goes in it. */
                (void) snprintf(n->machine, sizeof n->machine, "%s", m->cfg.name);
                if (mkdir(m->cfg.state_dir, 0700) < 0 && errno != EEXIST) {
                        r = negative_errno();
                        (void) snprintf(why, sizeof why, "could not create %s: %s", m->cfg.state_dir, strerror(-r));
                }
                (void) mkdir(m->cfg.shared_dir, 0700);
        } else if (r >= 0) {
                r = nspawn_machine_name(m->cfg.state_dir, m->cfg.name, n->machine, sizeof n->machine);
                if (r >= 0)
                        r = nspawn_prepare_host_dir(&m->cfg, why, sizeof why);
        }
        if (r < 0) {
                start_failed(n, r, "%s", why);
                return 0;
        }
        nspawn_raise_inotify_limits();
        if (!n->script && (r = listen_backdoor(n)) < 0) {
                start_failed(n, r, "could not listen on %s/" NSPAWN_HOST_DIR "/" NSPAWN_BACKDOOR_NAME ": %s",
                             m->cfg.state_dir, strerror(-r));
                return 0;
        }
        if ((r = nspawn_relay_open(n->relay, m->shell)) < 0) {
                start_failed(n, r, "could not set up the guest shell relay: %s", strerror(-r));
                return 0;
        }
        n->allow_reboot = allow_reboot;
        n->step = STEP_WAIT_TAPS;
        n->step_started = now_usec();
        taps_check(n);
        return 0;
}

/* ---- vtable ---- */

static int nspawn_shutdown(struct machine *m) {
        struct nspawn *n = N(m);

        /* As the reference: raw `poweroff` on the shell. Without a shell,
         * systemd's own poweroff signal to the container's init. */
        if (nspawn_relay_connected(n->relay))
                return machine_shell_write_raw(m->shell, "poweroff\n");
        return signal_init(n, SIGRTMIN + 4);
}

/* Pulling the plug: SIGKILL the container's init, which takes its whole PID
 * namespace down; nspawn then exits by itself. SIGKILLing nspawn first would
 * leave the container running, orphaned. */
static int nspawn_crash(struct machine *m) {
        struct nspawn *n = N(m);
        char why[128];
        int r;

        if (n->step == STEP_WAIT_TAPS || n->step == STEP_LOCKING) {
                /* Between a reboot and the next spawn nothing runs to kill: stop
                 * from the step timer, once the caller waits for the stop. */
                n->crash_pending = true;
                machine_timer_set(n->step_timer, 0);
                return 0;
        }
        r = signal_init(n, SIGKILL);
        if (r < 0) {
                log_warning_errno(r, "Could not SIGKILL the container's init; killing systemd-nspawn");
                machine_proc_kill(n->proc);
        }
        (void) snprintf(why, sizeof why,
                        "systemd-nspawn did not exit within %llu s of its container's init being killed; killing it",
                        CRASH_KILL_USEC / USEC_PER_SEC);
        machine_proc_kill_after(n->proc, CRASH_KILL_USEC, why);
        return 0;
}

/* Ctrl-Alt-Del, as QEMU's sendkey: SIGINT makes systemd start
 * ctrl-alt-del.target (a reboot); nspawn boots the container again. */
static int nspawn_reboot(struct machine *m, uint32_t seq) {
        int r = signal_init(N(m), SIGINT);

        if (r < 0)
                return machine_reply_error(m, seq, r, "could not signal the container's init: %s", strerror(-r));
        machine_shell_disconnected(m->shell);
        return machine_reply_ok(m, seq);
}

static void set_link_done(struct shell_job *j, int error, const char *message, int status, uint8_t *output,
                          size_t len) {
        struct machine *m = j->userdata;

        free(output);
        if (error < 0)
                (void) machine_reply_error(m, j->seq, error, "%s", message ?: "set_link failed");
        else if (status != 0)
                (void) machine_reply_error(m, j->seq, -EIO, "`%s` failed in the container (exit status %d)",
                                           j->command, status);
        else
                (void) machine_reply_ok(m, j->seq);
}

/* The TAP lives inside the container's network namespace, so the link is
 * switched from inside (administratively down/up) through the guest shell.
 * QEMU instead drops the NIC's carrier from outside; the switch's cut/
 * partition rules act outside for both backends. */
static int nspawn_set_link(struct machine *m, const char *nic, bool up, uint32_t seq) {
        _cleanup_free_ char *cmd = NULL;
        struct shell_job *j;
        const char *dev = *nic ? nic : "eth1";

        for (const char *p = dev; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("._-", *p))
                        return machine_reply_error(m, seq, -EINVAL, "\"%s\" is not an interface name", dev);
        if (asprintf(&cmd, "ip link set dev %s %s", dev, up ? "up" : "down") < 0 ||
            !(j = shell_job_new(SHELL_JOB_EXEC, cmd))) {
                cmd = NULL;
                return machine_reply_error(m, seq, -ENOMEM, "out of memory");
        }
        j->timeout_s = 30;
        j->done = set_link_done;
        j->userdata = m;
        j->seq = seq;
        machine_shell_submit(m->shell, j);
        return 0;
}

/* systemd-nspawn returns 133 when the container asked for a reboot (and
 * leaves booting it again to its caller). Boot it again in place: the
 * machine stays booted, the backdoor socket and the shell relay stay, the
 * connection goes (the generic code waits for the next ready line), and the
 * TAPs are waited for again (the switch re-creates them). */
static void reboot_again(struct nspawn *n) {
        log_info("The container rebooted; booting it again");
        if (nspawn_relay_connected(n->relay))
                nspawn_relay_end(n->relay, "the container rebooted");
        machine_event_free(&n->console_ev);
        n->console_fd = safe_close(n->console_fd);
        machine_proc_forget_fd(n->proc, STORE_CONSOLE);
        nspawn_udev_forget(n->udev_ifindex, ELEMENTSOF(n->udev_ifindex));
        shell_stop(n);
        n->scan = (struct nspawn_script_scan){};
        n->rebooting = true;
        n->step = STEP_WAIT_TAPS;
        n->step_started = now_usec();
        taps_check(n);
}

static void nspawn_exited(struct nspawn *n, const struct msg_proc_exit *e) {
        struct machine *m = n->m;
        char how[96], tail[2048], why[MSG_STR_MAX], hint[256] = "";
        long inst;

        machine_proc_describe_exit(e, how, sizeof how);
        drain_console(n);
        log_event(LOG_INFO, LOG_EVENT_EXITED, NULL, "%s (pid %lld) exited: %s",
                  n->script ? "the container's start script" : "systemd-nspawn", (long long) e->pid, how);
        if (n->step != STEP_RUNNING && n->step != STEP_IDLE) {
                machine_console_describe_tail(m->console, tail, sizeof tail);
                inst = nspawn_read_long("/proc/sys/fs/inotify/max_user_instances");
                if (inst >= 0 && inst < NSPAWN_INOTIFY_INSTANCES)
                        (void) snprintf(hint, sizeof hint,
                                        " (fs.inotify.max_user_instances is %ld: containers past about %ld exit at "
                                        "once)",
                                        inst, inst / 6);
                start_failed(n, -ECHILD, "%s exited before the container was up (%s)%s; %s",
                             n->script ? m->cfg.start_script : "systemd-nspawn", how, hint, tail);
                return;
        }
        if (e->signal == 0 && e->code == NSPAWN_EXIT_REBOOT && n->allow_reboot) {
                reboot_again(n);
                return;
        }
        if (e->signal == 0 && e->code == NSPAWN_EXIT_REBOOT)
                (void) snprintf(why, sizeof why,
                                "the container rebooted and allow_reboot is off, so it stays down (as QEMU's "
                                "-no-reboot)");
        else
                (void) snprintf(why, sizeof why, "%s exited (%s)",
                                n->script ? "the container's start script" : "systemd-nspawn", how);
        close_all(n, true);
        n->step = STEP_IDLE;
        machine_stopped(m, why);
}

/* ---- the process ---- */

static void nspawn_spawned(struct machine_proc *p, int64_t pid, void *userdata) {
        struct nspawn *n = userdata;

        if (n->step != STEP_SPAWNING) {
                /* The start was given up meanwhile: this container is nobody's. */
                (void) signal_init(n, SIGKILL);
                machine_proc_abandon(p);
                return;
        }
        n->step = STEP_BOOTING;
        machine_timer_set(n->step_timer, BOOT_LOCK_USEC);
        log_event(LOG_INFO, LOG_EVENT_SPAWNED, NULL, "systemd-nspawn spawned (pid %lld)", (long long) pid);
}

static void nspawn_spawn_failed(struct machine_proc *p, int error, const char *message, void *userdata) {
        struct nspawn *n = userdata;

        if (n->step == STEP_SPAWNING)
                start_failed(n, error, "the supervisor could not spawn systemd-nspawn: %s", message);
}

static void nspawn_proc_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        nspawn_exited(userdata, e);
}

static const struct machine_proc_ops nspawn_proc_ops = {
        .spawned = nspawn_spawned,
        .spawn_failed = nspawn_spawn_failed,
        .exited = nspawn_proc_exited,
};

static int nspawn_attach(struct machine *m) {
        struct nspawn *n = N(m);
        int64_t pid;
        int r, conn;

        pid = machine_proc_restore(n->proc);
        conn = TAKE_FD(*nspawn_relay_conn_fd(n->relay)); /* adopted below, once the rest is watched */
        n->script = m->cfg.start_script != NULL;
        if (n->script) {
                (void) snprintf(n->machine, sizeof n->machine, "%s", m->cfg.name);
                (void) machine_proc_restore(n->shell_proc);
                /* The script's one child is the systemd-nspawn whose pid it printed. */
                n->scan.nspawn_pid = only_child(pid);
                n->scan.booted = container_init_pid(n) > 0;
        } else
                (void) nspawn_machine_name(m->cfg.state_dir, m->cfg.name, n->machine, sizeof n->machine);
        if (pid <= 0 || (!n->script && n->listen_fd < 0) || n->console_fd < 0) {
                if (pid > 0) {
                        log_warning("systemd-nspawn (pid %lld) still runs but its fds are lost; stopping it",
                                    (long long) pid);
                        (void) signal_init(n, SIGKILL);
                        machine_proc_kill_stale(n->proc);
                }
                safe_close(conn);
                close_all(n, true);
                return 0;
        }
        if (!n->script)
                (void) fd_set_nonblock(n->listen_fd, 1);
        (void) fd_set_nonblock(n->console_fd, 1);
        if ((!n->script && (r = add_event(n, n->listen_fd, EV_READ | EV_PERSIST, accept_cb, &n->listen_ev)) < 0) ||
            (r = add_event(n, n->console_fd, EV_READ | EV_PERSIST, console_cb, &n->console_ev)) < 0 ||
            (n->shell_err_fd >= 0 &&
             (r = add_event(n, n->shell_err_fd, EV_READ | EV_PERSIST, shell_err_cb, &n->shell_err_ev)) < 0) ||
            (r = nspawn_relay_open(n->relay, m->shell)) < 0) {
                safe_close(conn);
                return r;
        }
        n->step = STEP_RUNNING;
        if (conn >= 0) {
                (void) fd_set_nonblock(conn, 1);
                if ((r = nspawn_relay_adopt(n->relay, conn)) < 0)
                        return r;
        } else if (n->script && n->scan.booted) {
                log_info("No shell to re-attach to; entering the container again");
                shell_spawn(n);
        } else
                log_info("No backdoor connection to re-attach to; waiting for the guest's next one");
        return 1;
}

static int nspawn_init(struct machine *m) {
        struct nspawn *n = calloc(1, sizeof *n);
        int r;

        if (!n)
                return -ENOMEM;
        n->m = m;
        n->listen_fd = n->console_fd = n->lock_fd = n->shell_err_fd = -EBADF;
        m->backend_data = n;
        n->step_timer = evtimer_new(m->base, step_timer_cb, n);
        if (!n->step_timer)
                return -ENOMEM;
        if ((r = nspawn_relay_new(m->base, &relay_ops, n, &n->relay)) < 0 ||
            (r = machine_proc_new(m->w, NSPAWN_PROC, &nspawn_proc_ops, n, &n->proc)) < 0 ||
            (r = machine_proc_add_fd(n->proc, STORE_LISTEN, &n->listen_fd)) < 0 ||
            (r = machine_proc_add_fd(n->proc, STORE_CONN, nspawn_relay_conn_fd(n->relay))) < 0 ||
            (r = machine_proc_add_fd(n->proc, STORE_CONSOLE, &n->console_fd)) < 0 ||
            (r = machine_proc_new(m->w, SHELL_PROC, &shell_proc_ops, n, &n->shell_proc)) < 0 ||
            (r = machine_proc_add_fd(n->shell_proc, STORE_SHELL_ERR, &n->shell_err_fd)) < 0)
                return r;
        m->proc = n->proc;
        return 0;
}

static void nspawn_free(struct machine *m) {
        struct nspawn *n = N(m);

        if (!n)
                return;
        close_all(n, false);
        machine_event_free(&n->step_timer);
        m->proc = NULL;
        n->proc = machine_proc_free(n->proc);
        n->shell_proc = machine_proc_free(n->shell_proc);
        n->relay = nspawn_relay_free(n->relay);
        free(n);
        m->backend_data = NULL;
}

const struct machine_backend backend_nspawn = {
        .name = "nspawn",
        .init = nspawn_init,
        .free = nspawn_free,
        .start = nspawn_start,
        .attach = nspawn_attach,
        .shutdown = nspawn_shutdown,
        .crash = nspawn_crash,
        .reboot = nspawn_reboot,
        .set_link = nspawn_set_link,
};
