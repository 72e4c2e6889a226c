/* SPDX-License-Identifier: MIT */
/*
 * backend-nspawn.c owns everything systemd-nspawn-specific about a machine:
 * refusing a tree that cannot boot, raising the inotify limits that stop
 * containers past ~21, waiting (bounded) for the switch's TAPs, serialising
 * container starts across workers (cgroup v1 set-up races here), asking the
 * supervisor to spawn systemd-nspawn (never forking it here, so nothing
 * outlives vigil), the console pipe, the backdoor socket the container's
 * vigil-backdoor.service connects to, the fd store that lets a restarted
 * worker re-attach, and turning nspawn's exit into a clear error or a
 * stopped machine.
 *
 * The guest shell: every boot of the container (and every restart of its
 * backdoor service) makes a new connection to the listening socket, whereas
 * the generic shell code expects one stream for the machine's life, like
 * QEMU's virtconsole chardev. So the generic code gets one end of a
 * socketpair, and this file relays bytes between the other end and whichever
 * backdoor connection is current. Bytes sent while no backdoor is connected
 * are dropped, as a tty drops them with no reader.
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

#define NSPAWN_PROC        "nspawn"
#define TAP_WAIT_USEC      (30 * USEC_PER_SEC)
#define TAP_POLL_USEC      (50 * USEC_PER_MSEC)
#define LOCK_POLL_USEC     (20 * USEC_PER_MSEC)
#define LOCK_WAIT_USEC     (120 * USEC_PER_SEC)
#define BOOT_LOCK_USEC     (5 * USEC_PER_SEC) /* the start lock is held at most this long after the spawn */
#define CRASH_KILL_USEC    (5 * USEC_PER_SEC)
#define RELAY_MAX          (1024u * 1024u)
#define IO_READ_MAX        (64u * 1024u)
#define LOCK_PATH          "/run/vigil-nspawn-start.lock"
#define INIT_UP_MARK       "Welcome to "
#define INOTIFY_INSTANCES  4096
#define INOTIFY_WATCHES    1048576
#define UDEV_DATA_DIR      "/run/udev/data"
#define UDEV_CONTROL       "/run/udev/control"
#define NSPAWN_PROPAGATE   "/run/systemd/nspawn/propagate"
#define NSPAWN_EXIT_REBOOT 133 /* the container rebooted (systemd-nspawn(1)) */

/* Names in the supervisor's fd store. */
#define STORE_LISTEN  "backdoor-listen"
#define STORE_CONN    "backdoor"
#define STORE_CONSOLE "console"

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
        int conn_fd; /* the current backdoor connection */
        struct event *conn_ev;
        struct event *conn_wev;
        int relay_fd; /* our end of the socketpair whose other end machine-shell reads */
        struct event *relay_ev;
        struct event *relay_wev;
        struct evbuffer *to_guest;
        struct evbuffer *to_shell;

        int console_fd;
        struct event *console_ev;
        char mark_tail[sizeof INIT_UP_MARK]; /* for a mark split across reads */

        int lock_fd;
        struct event *step_timer;

        int udev_ifindex[64]; /* udev database entries we wrote (0: none) */
};

static struct nspawn *N(struct machine *m) {
        return m->backend_data;
}

/* Every event here has @n as the callback's argument. */
static int add_event(struct nspawn *n, int fd, short what, event_callback_fn cb, struct event **ret) {
        return machine_event_watch(n->m->base, fd, what, cb, n, ret);
}

static void host_path(struct nspawn *n, const char *name, char *buf, size_t size) {
        (void) snprintf(buf, size, "%s/" NSPAWN_HOST_DIR "%s%s", n->m->cfg.state_dir, name ? "/" : "", name ?: "");
}

/* ---- the container's init (for crash, reboot and a shell-less poweroff) ---- */

/* systemd-nspawn clones the container's PID 1 as its own child. */
static pid_t container_init_pid(struct nspawn *n) {
        int64_t pid = machine_proc_pid(n->proc);
        char path[128], buf[256];
        _cleanup_close_ int fd = -EBADF;
        ssize_t k;

        if (pid <= 0)
                return 0;
        (void) snprintf(path, sizeof path, "/proc/%lld/task/%lld/children", (long long) pid, (long long) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (k = read(fd, buf, sizeof buf - 1)) <= 0)
                return 0;
        buf[k] = 0;
        return (pid_t) strtol(buf, NULL, 10);
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

static void udev_forget(struct nspawn *n) {
        char path[128];

        for (size_t i = 0; i < ELEMENTSOF(n->udev_ifindex); i++)
                if (n->udev_ifindex[i] > 0) {
                        (void) snprintf(path, sizeof path, UDEV_DATA_DIR "/n%d", n->udev_ifindex[i]);
                        (void) unlink(path);
                        n->udev_ifindex[i] = 0;
                }
}

static void release_lock(struct nspawn *n) {
        if (n->lock_fd >= 0)
                log_debug("Releasing the container start lock");
        n->lock_fd = safe_close(n->lock_fd);
}

static void conn_close(struct nspawn *n) {
        machine_event_free(&n->conn_ev);
        machine_event_free(&n->conn_wev);
        n->conn_fd = safe_close(n->conn_fd);
        if (n->to_guest)
                (void) evbuffer_drain(n->to_guest, evbuffer_get_length(n->to_guest));
}

static void close_all(struct nspawn *n, bool forget) {
        char path[256];

        conn_close(n);
        machine_event_free(&n->listen_ev);
        machine_event_free(&n->relay_ev);
        machine_event_free(&n->relay_wev);
        machine_event_free(&n->console_ev);
        (void) evtimer_del(n->step_timer);
        machine_proc_cancel_kill(n->proc);
        n->listen_fd = safe_close(n->listen_fd);
        n->relay_fd = safe_close(n->relay_fd);
        n->console_fd = safe_close(n->console_fd);
        if (n->to_shell)
                (void) evbuffer_drain(n->to_shell, evbuffer_get_length(n->to_shell));
        release_lock(n);
        machine_shell_detach(n->m->shell);
        if (forget) {
                machine_proc_forget_fds(n->proc);
                udev_forget(n);
                /* nspawn leaves this behind when /run is not a tmpfs ("we can't allow that"). */
                if (n->machine[0]) {
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

/* ---- relay between machine-shell and the current backdoor connection ---- */

static void conn_lost(struct nspawn *n, const char *why);

static void relay_flush(struct nspawn *n, int fd, struct evbuffer *b, struct event *wev, struct event *src_ev) {
        while (evbuffer_get_length(b) > 0) {
                int k = evbuffer_write(b, fd);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                if (k <= 0) {
                        (void) evbuffer_drain(b, evbuffer_get_length(b));
                        break;
                }
        }
        if (evbuffer_get_length(b) > 0) {
                (void) event_add(wev, NULL);
                /* Back-pressure: stop reading the source until this drains. */
                if (src_ev && evbuffer_get_length(b) >= RELAY_MAX)
                        (void) event_del(src_ev);
        } else {
                (void) event_del(wev);
                if (src_ev)
                        (void) event_add(src_ev, NULL);
        }
}

static void to_shell_flush(struct nspawn *n) {
        if (n->relay_fd >= 0)
                relay_flush(n, n->relay_fd, n->to_shell, n->relay_wev, n->conn_ev);
}

static void to_guest_flush(struct nspawn *n) {
        if (n->conn_fd >= 0)
                relay_flush(n, n->conn_fd, n->to_guest, n->conn_wev, n->relay_ev);
        else
                (void) evbuffer_drain(n->to_guest, evbuffer_get_length(n->to_guest));
}

/* machine-shell -> guest */
static void relay_read_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        int k = evbuffer_read(n->to_guest, fd, IO_READ_MAX);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                /* machine-shell detached its end. */
                machine_event_free(&n->relay_ev);
                machine_event_free(&n->relay_wev);
                n->relay_fd = safe_close(n->relay_fd);
                return;
        }
        if (n->conn_fd < 0) {
                log_debug("Dropping %d bytes for the guest shell: no backdoor connection", k);
                (void) evbuffer_drain(n->to_guest, evbuffer_get_length(n->to_guest));
                return;
        }
        to_guest_flush(n);
}

static void relay_write_cb(evutil_socket_t fd, short what, void *arg) {
        to_shell_flush(arg);
}

/* guest -> machine-shell */
static void conn_read_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        int k = evbuffer_read(n->to_shell, fd, IO_READ_MAX);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k < 0) {
                conn_lost(n, strerror(errno));
                return;
        }
        if (k == 0) {
                conn_lost(n, "end of file");
                return;
        }
        to_shell_flush(n);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg) {
        to_guest_flush(arg);
}

static void conn_lost(struct nspawn *n, const char *why) {
        struct machine *m = n->m;

        to_shell_flush(n);
        conn_close(n);
        machine_proc_forget_fd(n->proc, STORE_CONN);
        if (!m->booted)
                return;
        log_info("Backdoor connection closed (%s); waiting for the guest's next one", why);
        machine_shell_transport_lost(m->shell,
                                     "the guest's backdoor shell closed its connection (did the command end the "
                                     "shell or stop vigil-backdoor.service?)");
}

static int conn_adopt(struct nspawn *n, int fd) {
        int r;

        conn_close(n);
        n->conn_fd = fd;
        if ((r = add_event(n, fd, EV_READ | EV_PERSIST, conn_read_cb, &n->conn_ev)) < 0 ||
            (r = add_event(n, fd, EV_WRITE, conn_write_cb, &n->conn_wev)) < 0)
                return r;
        return 0;
}

static int relay_open(struct nspawn *n) {
        int sp[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0)
                return negative_errno();
        n->relay_fd = sp[0];
        r = machine_shell_attach(n->m->shell, sp[1], -EBADF, NULL); /* the shell owns sp[1] now */
        if (r < 0) {
                safe_close(sp[1]);
                return r;
        }
        if ((r = add_event(n, n->relay_fd, EV_READ | EV_PERSIST, relay_read_cb, &n->relay_ev)) < 0 ||
            (r = add_event(n, n->relay_fd, EV_WRITE, relay_write_cb, &n->relay_wev)) < 0)
                return r;
        return 0;
}

static void boot_up(struct nspawn *n, const char *why);

static void accept_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (c < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(negative_errno(), "accept() on the backdoor socket failed");
                return;
        }
        if (n->conn_fd >= 0)
                conn_lost(n, "a new backdoor connection replaces it");
        if (conn_adopt(n, c) < 0) {
                conn_close(n);
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

        if (n->step != STEP_BOOTING)
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

static void console_cb(evutil_socket_t fd, short what, void *arg) {
        struct nspawn *n = arg;
        uint8_t buf[IO_READ_MAX];
        ssize_t k = read(fd, buf, sizeof buf);

        if (k < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (k <= 0) {
                machine_console_eof(n->m);
                machine_event_free(&n->console_ev);
                n->console_fd = safe_close(n->console_fd);
                return;
        }
        machine_console_feed(n->m, buf, (size_t) k);
        scan_init_mark(n, buf, (size_t) k);
}

static void drain_console(struct nspawn *n) {
        uint8_t buf[IO_READ_MAX];

        for (unsigned i = 0; n->console_fd >= 0 && i < 1024; i++) {
                ssize_t k = read(n->console_fd, buf, sizeof buf);
                if (k <= 0)
                        break;
                machine_console_feed(n->m, buf, (size_t) k);
        }
        if (n->console_fd >= 0)
                machine_console_eof(n->m);
}

/* ---- host limits ---- */

static long read_long_file(const char *path) {
        char buf[32] = "";
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t k;

        if (fd < 0 || (k = read(fd, buf, sizeof buf - 1)) <= 0)
                return -1;
        buf[k] = 0;
        return strtol(buf, NULL, 10);
}

/* Every booted systemd takes several inotify instances; at the default 128
 * per user, containers past about 21 exit at once. Raise the limits when
 * they are lower (a sysctl file is writable by uid 0 without capabilities),
 * or say exactly which one will stop us. */
static void raise_inotify_limits(void) {
        static bool done;
        static const struct {
                const char *name;
                long want;
        } limits[] = {
                {"fs.inotify.max_user_instances", INOTIFY_INSTANCES},
                {"fs.inotify.max_user_watches", INOTIFY_WATCHES},
        };

        if (done)
                return;
        done = true;
        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                char path[128], text[32];
                _cleanup_close_ int fd = -EBADF;
                long have;
                int len;

                (void) snprintf(path, sizeof path, "/proc/sys/%s", limits[i].name);
                for (char *p = path + strlen("/proc/sys/"); *p; p++)
                        if (*p == '.')
                                *p = '/';
                have = read_long_file(path);
                if (have < 0 || have >= limits[i].want)
                        continue;
                len = snprintf(text, sizeof text, "%ld\n", limits[i].want);
                fd = open(path, O_WRONLY | O_CLOEXEC);
                if (fd < 0 || write(fd, text, (size_t) len) != len) {
                        log_warning("%s is %ld and could not be raised to %ld (%m): every container's systemd takes "
                                    "several inotify instances, so containers past about %ld exit at once; run "
                                    "`sysctl -w %s=%ld` as root",
                                    limits[i].name, have, limits[i].want, have / 6, limits[i].name, limits[i].want);
                        continue;
                }
                log_info("Raised %s from %ld to %ld (every container's systemd takes several inotify instances)",
                         limits[i].name, have, limits[i].want);
        }
}

/* ---- start ---- */

static int find_in_path(const char *bin) {
        const char *path = getenv("PATH") ?: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

        if (strchr(bin, '/'))
                return access(bin, X_OK) < 0 ? negative_errno() : 0;
        for (const char *p = path; *p;) {
                size_t len = strcspn(p, ":");
                char full[512];
                if ((size_t) snprintf(full, sizeof full, "%.*s/%s", (int) len, p, bin) < sizeof full &&
                    access(full, X_OK) == 0)
                        return 0;
                p += len;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

static bool tree_has(const char *tree, const char *rel) {
        char path[1024];
        struct stat st;

        /* lstat: /sbin/init is usually an absolute symlink, meaningful only inside. */
        return (size_t) snprintf(path, sizeof path, "%s/%s", tree, rel) < sizeof path && lstat(path, &st) == 0;
}

/* Refuse at once, naming the field, what nspawn would only fail on later. */
static int preflight(struct nspawn *n, char *why, size_t size) {
        const struct machine_config *c = &n->m->cfg;
        struct stat st;
        int r;

        if (geteuid() != 0) {
                (void) snprintf(why, size,
                                "backend nspawn needs root: systemd-nspawn creates namespaces and mounts (run vigil "
                                "as root, or use backend qemu)");
                return -EPERM;
        }
        r = find_in_path(c->binary);
        if (r < 0) {
                (void) snprintf(why, size, "nspawn.binary %s: %s (Debian package systemd-container)", c->binary,
                                r == -ENOENT ? "not found in PATH" : strerror(-r));
                return r;
        }
        if (stat(c->tree, &st) < 0) {
                r = negative_errno();
                (void) snprintf(why, size, "nspawn.tree %s: %s (build a tree with tools/mkdebian)", c->tree,
                                strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                (void) snprintf(why, size, "nspawn.tree %s is not a directory", c->tree);
                return -ENOTDIR;
        }
        if (!tree_has(c->tree, "sbin/init") && !tree_has(c->tree, "lib/systemd/systemd") &&
            !tree_has(c->tree, "usr/lib/systemd/systemd")) {
                (void) snprintf(why, size,
                                "nspawn.tree %s has neither /sbin/init nor /lib/systemd/systemd: nothing to boot",
                                c->tree);
                return -ENOEXEC;
        }
        if (!tree_has(c->tree, "etc/systemd/system/vigil-backdoor.service") &&
            !tree_has(c->tree, "lib/systemd/system/vigil-backdoor.service") &&
            !tree_has(c->tree, "usr/lib/systemd/system/vigil-backdoor.service")) {
                (void) snprintf(why, size,
                                "nspawn.tree %s lacks vigil-backdoor.service, so vigil could never reach its shell "
                                "(tools/debian/overlay; build trees with tools/mkdebian)",
                                c->tree);
                return -ENOENT;
        }
        return 0;
}

static int write_file_atomic(const char *path, const char *text, mode_t mode) {
        char tmp[512];
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(text);

        if ((size_t) snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return negative_errno();
        if (write(fd, text, len) != (ssize_t) len || rename(tmp, path) < 0) {
                int r = negative_errno();
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

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

/* Host files the container sees under /run/vigil-host. */
static int prepare_host_dir(struct nspawn *n, char *why, size_t size) {
        struct machine *m = n->m;
        _cleanup_free_ char *setup = NULL;
        char path[512], host[80];
        int r;

        (void) mkdir(m->cfg.state_dir, 0700);
        host_path(n, NULL, path, sizeof path);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                r = negative_errno();
                (void) snprintf(why, size, "could not create %s: %s", path, strerror(-r));
                return r;
        }
        (void) snprintf(path, sizeof path, "%s/xchg", m->cfg.state_dir);
        (void) mkdir(path, 0755);
        if (m->cfg.shared_dir)
                (void) mkdir(m->cfg.shared_dir, 0755);
        if ((r = nspawn_build_setup(&m->cfg, &setup)) < 0 ||
            (r = nspawn_hostname(m->cfg.name, host, sizeof host - 1)) < 0)
                goto fail;
        strcat(host, "\n");
        host_path(n, NSPAWN_SETUP_NAME, path, sizeof path);
        if ((r = write_file_atomic(path, setup, 0644)) < 0)
                goto fail;
        host_path(n, NSPAWN_HOSTNAME_NAME, path, sizeof path);
        if ((r = write_file_atomic(path, host, 0644)) < 0)
                goto fail;
        return 0;
fail:
        (void) snprintf(why, size, "could not write the container's files under %s/" NSPAWN_HOST_DIR ": %s",
                        m->cfg.state_dir, strerror(-r));
        return r;
}

static bool ifindex_exists(long ifindex) {
        DIR *d = opendir("/sys/class/net");
        struct dirent *e;
        bool found = false;

        if (!d)
                return true; /* cannot tell: keep the entry */
        while (!found && (e = readdir(d))) {
                char path[320];
                if (e->d_name[0] == '.')
                        continue;
                (void) snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", e->d_name);
                found = read_long_file(path) == ifindex;
        }
        closedir(d);
        return found;
}

/* Entries like ours (one "I:" line, udevd writes more) left by workers that
 * were killed, for interfaces that no longer exist here. A TAP inside a
 * running container is not visible here either: its entry goes too, which is
 * harmless, nspawn reads it only when it starts. Once per worker. */
static void udev_collect_stale(void) {
        static bool done;
        DIR *d;
        struct dirent *e;

        if (done || !(d = opendir(UDEV_DATA_DIR)))
                return;
        done = true;
        while ((e = readdir(d))) {
                char path[320], text[64] = "";
                _cleanup_close_ int fd = -EBADF;
                unsigned long long usec;
                long ifindex;
                char tail;
                ssize_t k;

                if (e->d_name[0] != 'n' || (ifindex = strtol(e->d_name + 1, NULL, 10)) <= 0)
                        continue;
                (void) snprintf(path, sizeof path, UDEV_DATA_DIR "/%s", e->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || (k = read(fd, text, sizeof text - 1)) <= 0)
                        continue;
                text[k] = 0;
                if (sscanf(text, "I:%llu%c", &usec, &tail) != 2 || tail != '\n' || strchr(text, '\n')[1] != 0)
                        continue;
                if (!ifindex_exists(ifindex))
                        (void) unlink(path);
        }
        closedir(d);
}

/* No udevd on this kind of host: nspawn refuses an interface udev has not
 * initialised ("Network interface X is not initialized yet"). With no udevd
 * running, mark the TAP initialised in udev's database as udevd would. */
static void udev_mark(struct nspawn *n, size_t slot, const char *tap) {
        char path[128], text[64];
        long ifindex;
        int len;
        _cleanup_close_ int fd = -EBADF;

        if (access(UDEV_CONTROL, F_OK) == 0 || slot >= ELEMENTSOF(n->udev_ifindex))
                return;
        udev_collect_stale();
        (void) snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", tap);
        ifindex = read_long_file(path);
        if (ifindex <= 0)
                return;
        (void) mkdir("/run/udev", 0755);
        (void) mkdir(UDEV_DATA_DIR, 0755);
        (void) snprintf(path, sizeof path, UDEV_DATA_DIR "/n%ld", ifindex);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return; /* already there (ours from before, or udev's) */
        len = snprintf(text, sizeof text, "I:%llu\n", now_usec());
        if (write(fd, text, (size_t) len) == len)
                n->udev_ifindex[slot] = (int) ifindex;
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
        for (size_t i = 0; i < c->n_vlans; i++)
                if (c->vlans[i].tap)
                        udev_mark(n, i, c->vlans[i].tap);
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

        r = nspawn_build_argv(&m->cfg, n->machine, &argv);
        if (r < 0) {
                start_failed(n, r, "could not build the systemd-nspawn command line: %s", strerror(-r));
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
        log_debug("systemd-nspawn command: %s ... --directory=%s", argv[0], m->cfg.tree);
        /* nspawn's own stdout and stderr both carry the console. */
        const int fds[] = {out_w, out_w};
        r = machine_proc_spawn(n->proc, argv, env, m->cfg.state_dir, 2 | 4, fds, 2);
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
        r = preflight(n, why, sizeof why);
        if (r >= 0)
                r = nspawn_machine_name(m->cfg.state_dir, m->cfg.name, n->machine, sizeof n->machine);
        if (r >= 0)
                r = prepare_host_dir(n, why, sizeof why);
        if (r < 0) {
                start_failed(n, r, "%s", why);
                return 0;
        }
        raise_inotify_limits();
        if ((r = listen_backdoor(n)) < 0) {
                start_failed(n, r, "could not listen on %s/" NSPAWN_HOST_DIR "/" NSPAWN_BACKDOOR_NAME ": %s",
                             m->cfg.state_dir, strerror(-r));
                return 0;
        }
        if ((r = relay_open(n)) < 0) {
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
        if (n->conn_fd >= 0)
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
        if (n->conn_fd >= 0)
                conn_lost(n, "the container rebooted");
        machine_event_free(&n->console_ev);
        n->console_fd = safe_close(n->console_fd);
        machine_proc_forget_fd(n->proc, STORE_CONSOLE);
        udev_forget(n);
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
        log_event(LOG_INFO, LOG_EVENT_EXITED, NULL, "systemd-nspawn (pid %lld) exited: %s", (long long) e->pid, how);
        if (n->step != STEP_RUNNING && n->step != STEP_IDLE) {
                machine_tail_describe(m, tail, sizeof tail);
                inst = read_long_file("/proc/sys/fs/inotify/max_user_instances");
                if (inst >= 0 && inst < INOTIFY_INSTANCES)
                        (void) snprintf(hint, sizeof hint,
                                        " (fs.inotify.max_user_instances is %ld: containers past about %ld exit at "
                                        "once)",
                                        inst, inst / 6);
                start_failed(n, -ECHILD, "systemd-nspawn exited before the container was up (%s)%s; %s", how, hint,
                             tail);
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
                (void) snprintf(why, sizeof why, "systemd-nspawn exited (%s)", how);
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
        conn = TAKE_FD(n->conn_fd); /* adopted below, once the rest is watched */
        (void) nspawn_machine_name(m->cfg.state_dir, m->cfg.name, n->machine, sizeof n->machine);
        if (pid <= 0 || n->listen_fd < 0 || n->console_fd < 0) {
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
        (void) fd_set_nonblock(n->listen_fd, 1);
        (void) fd_set_nonblock(n->console_fd, 1);
        if ((r = add_event(n, n->listen_fd, EV_READ | EV_PERSIST, accept_cb, &n->listen_ev)) < 0 ||
            (r = add_event(n, n->console_fd, EV_READ | EV_PERSIST, console_cb, &n->console_ev)) < 0 ||
            (r = relay_open(n)) < 0) {
                safe_close(conn);
                return r;
        }
        if (conn >= 0) {
                (void) fd_set_nonblock(conn, 1);
                if ((r = conn_adopt(n, conn)) < 0)
                        return r;
        } else
                log_info("No backdoor connection to re-attach to; waiting for the guest's next one");
        n->step = STEP_RUNNING;
        return 1;
}

static int nspawn_init(struct machine *m) {
        struct nspawn *n = calloc(1, sizeof *n);
        int r;

        if (!n)
                return -ENOMEM;
        n->m = m;
        n->listen_fd = n->conn_fd = n->relay_fd = n->console_fd = n->lock_fd = -EBADF;
        m->backend_data = n;
        n->to_guest = evbuffer_new();
        n->to_shell = evbuffer_new();
        n->step_timer = evtimer_new(m->base, step_timer_cb, n);
        if (!n->to_guest || !n->to_shell || !n->step_timer)
                return -ENOMEM;
        if ((r = machine_proc_new(m->w, NSPAWN_PROC, &nspawn_proc_ops, n, &n->proc)) < 0 ||
            (r = machine_proc_add_fd(n->proc, STORE_LISTEN, &n->listen_fd)) < 0 ||
            (r = machine_proc_add_fd(n->proc, STORE_CONN, &n->conn_fd)) < 0 ||
            (r = machine_proc_add_fd(n->proc, STORE_CONSOLE, &n->console_fd)) < 0)
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
        if (n->to_guest)
                evbuffer_free(n->to_guest);
        if (n->to_shell)
                evbuffer_free(n->to_shell);
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
