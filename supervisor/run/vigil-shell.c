/* SPDX-License-Identifier: MIT */
/*
 * vigil-shell.c owns `vigil shell RUN_ID|OUT_DIR MACHINE [-- COMMAND...]`:
 * an interactive root shell on the user's terminal (its pty, job control,
 * window size) into a machine of a run that is still going, beside the
 * test's own backdoor shell, never through it. It finds the run as `vigil ps`
 * does (run-registry.h), then the run's processes
 * by the VIGIL_RUN= every spawned process carries (pids in the run's
 * timeline are its PID namespace's, not ours) and the machine by its state
 * directory, the spawned process's cwd; then it becomes the shell's way in:
 * nsenter into a container's namespaces, a new session over an SSH
 * machine's ControlMaster, or a VM's debug console (hvc1, QEMU's unix socket
 * <state>/dbg, where vigil's tiny guest runs a root shell). Exit codes:
 * docs/cli.md, "SHELL".
 */
#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

#include "defaults.h"
#include "exit-status.h"
#include "macro.h"
#include "run-registry.h"
#include "vigil-shell.h"

/* `vigil shell`'s own failures; the shell's exit status otherwise. */
enum {
        VIGIL_SHELL_EXIT_NO_MACHINE = 7,  /* no such run, or the machine is not running in it */
        VIGIL_SHELL_EXIT_UNSUPPORTED = 8, /* the machine's backend has no way in from here */
};

enum vigil_shell_kind {
        VIGIL_SHELL_NSPAWN,
        VIGIL_SHELL_SSH,
        VIGIL_SHELL_QEMU,
        _VIGIL_SHELL_KIND_MAX,
        _VIGIL_SHELL_KIND_NONE = -1,
};

struct vigil_shell_target {
        enum vigil_shell_kind kind;
        pid_t pid; /* systemd-nspawn, the ssh master, QEMU */
        char state_dir[PATH_MAX];
};

static void vigil_shell_usage(FILE *f) {
        fputs("Usage: vigil shell RUN_ID|OUT_DIR MACHINE [-- COMMAND [ARG...]]\n\n"
              "A root shell in MACHINE of a running vigil run (RUN_ID, or the run's output directory),\n"
              "beside the test's own shell: nsenter for containers, a new session over the SSH\n"
              "connection for SSH machines, the debug console (hvc1) for VMs. With a COMMAND (not\n"
              "for VMs), runs that instead of a login shell. Exits with the shell's status; 2 bad\n"
              "usage, 7 no such run or machine, 8 not possible for this machine.\n",
              f);
}

static bool vigil_shell_registry_has(const struct run_registry_entry *e, const char *machine) {
        for (size_t i = 0; i < e->n_machines; i++)
                if (streq(e->machines[i].name, machine))
                        return true;
        return false;
}

static bool vigil_shell_environ_has_run(pid_t pid, const char *run) {
        char path[64], buf[65536];
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0, want = strlen("VIGIL_RUN=") + strlen(run);
        ssize_t k;

        (void) snprintf(path, sizeof path, "/proc/%d/environ", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        while (len < sizeof buf - 1 && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
                len += (size_t) k;
        buf[len] = 0;
        for (size_t i = 0; i < len; i += strlen(buf + i) + 1)
                if (strncmp(buf + i, "VIGIL_RUN=", 10) == 0 && strlen(buf + i) >= want &&
                    strncmp(buf + i + 10, run, strlen(run)) == 0)
                        return true;
        return false;
}

/* argv of @pid, NUL-separated, in @buf; the number of arguments. */
static size_t vigil_shell_cmdline(pid_t pid, char *buf, size_t size) {
        char path[64];
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0, n = 0;
        ssize_t k;

        (void) snprintf(path, sizeof path, "/proc/%d/cmdline", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        while (len < size - 1 && (k = read(fd, buf + len, size - 1 - len)) > 0)
                len += (size_t) k;
        buf[len] = 0;
        for (size_t i = 0; i < len; i++)
                n += buf[i] == 0;
        return n;
}

static bool vigil_shell_argv_has(const char *buf, size_t n, const char *arg) {
        for (size_t i = 0; i < n; i++, buf += strlen(buf) + 1)
                if (streq(buf, arg))
                        return true;
        return false;
}

/* Which backend process @pid is, from its argv. */
static enum vigil_shell_kind vigil_shell_classify(pid_t pid) {
        char buf[16384];
        size_t n = vigil_shell_cmdline(pid, buf, sizeof buf);
        const char *base = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;

        if (n == 0)
                return _VIGIL_SHELL_KIND_NONE;
        if (streq(base, "systemd-nspawn"))
                return VIGIL_SHELL_NSPAWN;
        if (streq(base, "ssh") && vigil_shell_argv_has(buf, n, "-M"))
                return VIGIL_SHELL_SSH;
        if (strncmp(base, "qemu-system-", 12) == 0)
                return VIGIL_SHELL_QEMU;
        return _VIGIL_SHELL_KIND_NONE;
}

/* The run's backend process for @machine: spawned with VIGIL_RUN=@run and
 * running in <tmp>/vm-state-@machine. */
static int vigil_shell_find(const char *run, const char *machine, struct vigil_shell_target *ret, bool *ret_run_seen) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        char suffix[PATH_MAX];
        struct dirent *de;

        *ret_run_seen = false;
        if (!d)
                return negative_errno();
        (void) snprintf(suffix, sizeof suffix, "/vm-state-%s", machine);
        while ((de = readdir(d))) {
                char link[64], cwd[PATH_MAX];
                pid_t pid = (pid_t) strtol(de->d_name, NULL, 10);
                enum vigil_shell_kind kind;
                ssize_t k;

                if (pid <= 0 || !vigil_shell_environ_has_run(pid, run))
                        continue;
                *ret_run_seen = true;
                (void) snprintf(link, sizeof link, "/proc/%d/cwd", (int) pid);
                k = readlink(link, cwd, sizeof cwd - 1);
                if (k <= 0)
                        continue;
                cwd[k] = 0;
                if (strlen(cwd) < strlen(suffix) || !streq(cwd + strlen(cwd) - strlen(suffix), suffix))
                        continue;
                kind = vigil_shell_classify(pid);
                if (kind < 0)
                        continue;
                *ret = (struct vigil_shell_target){.kind = kind, .pid = pid};
                (void) snprintf(ret->state_dir, sizeof ret->state_dir, "%s", cwd);
                return 0;
        }
        return -ESRCH;
}

static pid_t vigil_shell_ppid(pid_t pid, bool *ret_ns_init) {
        char path[64], line[512];
        _cleanup_fclose_ FILE *f = NULL;
        pid_t ppid = 0;

        *ret_ns_init = false;
        (void) snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        if (!(f = fopen(path, "re")))
                return 0;
        while (fgets(line, sizeof line, f)) {
                if (strncmp(line, "PPid:", 5) == 0)
                        ppid = (pid_t) strtol(line + 5, NULL, 10);
                else if (strncmp(line, "NSpid:", 6) == 0) {
                        const char *last = strrchr(line, '\t');
                        *ret_ns_init = last && last != strchr(line, '\t') && strtol(last, NULL, 10) == 1;
                }
        }
        return ppid;
}

/* The container's init: a descendant of systemd-nspawn whose innermost pid
 * (NSpid's last field) is 1. */
static pid_t vigil_shell_container_init(pid_t nspawn) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        struct dirent *de;

        while (d && (de = readdir(d))) {
                pid_t pid = (pid_t) strtol(de->d_name, NULL, 10), up;
                bool init, ignored;

                if (pid <= 0)
                        continue;
                up = vigil_shell_ppid(pid, &init);
                for (unsigned depth = 0; init && up > 1 && depth < 4; depth++) {
                        if (up == nspawn)
                                return pid;
                        up = vigil_shell_ppid(up, &ignored);
                }
        }
        return 0;
}

static char **vigil_shell_env(void) {
        static char term[256];
        static char *env[] = {term,
                              "HOME=/root",
                              "USER=root",
                              "LOGNAME=root",
                              "LANG=C.UTF-8",
                              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              NULL};

        (void) snprintf(term, sizeof term, "TERM=%s", getenv("TERM") ?: "vt220");
        return env;
}

static int vigil_shell_exec_nspawn(const struct vigil_shell_target *t, char **command) {
        char target[32];
        pid_t init = vigil_shell_container_init(t->pid);
        /* On a terminal, script(1) gives the shell a pty of the container's own
         * devpts (so tty(1) and programs that open /dev/tty work) and passes
         * window size changes on; our terminal's pty is not visible inside. */
        const char *login_tty[] = {"/usr/bin/script", "-q", "-e", "-c", "/bin/bash -l", "/dev/null", NULL};
        const char *login_pipe[] = {"/bin/bash", "-l", NULL};
        const char **login = isatty(STDIN_FILENO) ? login_tty : login_pipe;
        const char *argv[64] = {"nsenter", "--target", target, "--all", "--root", "--wd", "--"};
        size_t n = 7;

        if (init <= 0) {
                fprintf(stderr,
                        "vigil shell: the container's init (a child of systemd-nspawn pid %d) is not running\n",
                        (int) t->pid);
                return VIGIL_SHELL_EXIT_NO_MACHINE;
        }
        (void) snprintf(target, sizeof target, "%d", (int) init);
        for (const char **c = command && *command ? (const char **) command : login; *c && n < ELEMENTSOF(argv) - 1;
             c++)
                argv[n++] = *c;
        argv[n] = NULL;
        execvpe("nsenter", (char **) argv, vigil_shell_env());
        fprintf(stderr, "vigil shell: cannot run nsenter: %s (apt-get install util-linux)\n", strerror(errno));
        return VIGIL_EXIT_INTERNAL;
}

static int vigil_shell_wait(pid_t child) {
        int status;

        while (waitpid(child, &status, 0) < 0)
                if (errno != EINTR)
                        return VIGIL_EXIT_INTERNAL;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A mux client tells its master of window size changes by kill(2) with the
 * master's pid as the master sees it, which is a pid of the run's PID
 * namespace: so ssh must run in that namespace. setns() only moves the
 * children forked afterwards, so a child of ours enters it and forks ssh;
 * we keep our own namespace (the sanitizers' leak check, which forks a
 * tracer of its own, needs that). Returns 0 in the process that goes on to
 * exec ssh (the grandchild; or us, if no namespace differs), or in the
 * parent the shell's exit status + 1000. */
static int vigil_shell_join_pidns(pid_t master) {
        char path[64];
        struct stat ours, theirs;
        _cleanup_close_ int fd = -EBADF;
        pid_t child;

        (void) snprintf(path, sizeof path, "/proc/%d/ns/pid", (int) master);
        if (stat(path, &theirs) < 0 || stat("/proc/self/ns/pid", &ours) < 0 || theirs.st_ino == ours.st_ino)
                return 0;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        child = fork();
        if (child < 0) {
                fprintf(stderr, "vigil shell: fork: %s\n", strerror(errno));
                return 1000 + VIGIL_EXIT_INTERNAL;
        }
        if (child == 0) {
                pid_t ssh;

                if (fd < 0 || setns(fd, CLONE_NEWPID) < 0) {
                        fprintf(stderr,
                                "vigil shell: cannot enter the run's PID namespace (%s): window size changes will "
                                "not reach the session\n",
                                strerror(errno));
                        return 0;
                }
                ssh = fork();
                if (ssh == 0)
                        return 0;
                _exit(ssh < 0 ? VIGIL_EXIT_INTERNAL : vigil_shell_wait(ssh));
        }
        /* The terminal is raw while ssh runs: no signals from it; pass on a kill. */
        (void) signal(SIGINT, SIG_IGN);
        (void) signal(SIGQUIT, SIG_IGN);
        return 1000 + vigil_shell_wait(child);
}

/* A new session over the machine's ControlMaster: the user and host are the
 * master's (its -l and last argument); everything else lives in the master. */
static int vigil_shell_exec_ssh(const struct vigil_shell_target *t, char **command) {
        char buf[16384], control[PATH_MAX + 32];
        const char *user = "root", *host = NULL, *a = buf;
        size_t n = vigil_shell_cmdline(t->pid, buf, sizeof buf);
        int r;
        const char *argv[64] = {"ssh", "-tt",           "-e", "none", "-o", "ControlMaster=no",
                                "-o",  "BatchMode=yes", "-o", control};
        size_t k = 10;

        for (size_t i = 0; i < n; i++, a += strlen(a) + 1) {
                if (streq(a, "-l") && i + 1 < n)
                        user = a + strlen(a) + 1;
                host = a;
        }
        if (!host) {
                fprintf(stderr, "vigil shell: the SSH machine's connection (ssh pid %d) has gone\n", (int) t->pid);
                return VIGIL_SHELL_EXIT_NO_MACHINE;
        }
        (void) snprintf(control, sizeof control, "ControlPath=%s/ssh-control", t->state_dir);
        argv[k++] = "-l";
        argv[k++] = user;
        argv[k++] = host;
        for (char **c = command; c && *c && k < ELEMENTSOF(argv) - 1; c++)
                argv[k++] = *c;
        argv[k] = NULL;
        r = vigil_shell_join_pidns(t->pid);
        if (r > 0)
                return r; /* the parent: ssh ran in the run's PID namespace */
        execvp("ssh", (char **) argv);
        fprintf(stderr, "vigil shell: cannot run ssh: %s (apt-get install openssh-client)\n", strerror(errno));
        return VIGIL_EXIT_INTERNAL;
}

/* ---- VMs: the debug console (hvc1), a unix socket of QEMU's ---- */

#define VIGIL_SHELL_EXIT_MARK "\033]vigil-shell-exit;" /* then the status and BEL (tools/guest/debug-shell) */
#define VIGIL_SHELL_ASK_MS    1500                     /* no answer this long: ask the worker for a shell */
#define VIGIL_SHELL_QUIET_MS  10000                    /* no answer this long after asking: none will come */

static struct termios vigil_shell_saved;
static bool vigil_shell_raw;

static void vigil_shell_restore_tty(void) {
        if (vigil_shell_raw)
                (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &vigil_shell_saved);
        vigil_shell_raw = false;
}

static int vigil_shell_write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t k = write(fd, buf, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -EIO;
                buf += k;
                len -= (size_t) k;
        }
        return 0;
}

/* The guest's bytes to our stdout, watching for the exit marker. Returns
 * the shell's status once the marker is complete, -1 while it goes on. */
struct vigil_shell_mark {
        size_t matched; /* bytes of VIGIL_SHELL_EXIT_MARK seen */
        bool in_status;
        int status;
};

static int vigil_shell_feed(struct vigil_shell_mark *mk, const char *buf, size_t len) {
        static const char mark[] = VIGIL_SHELL_EXIT_MARK;
        char out[8192];
        size_t n = 0;

        for (size_t i = 0; i < len; i++) {
                char ch = buf[i];
                if (mk->in_status) {
                        if (ch == '\a') {
                                (void) vigil_shell_write_all(STDOUT_FILENO, out, n);
                                return mk->status;
                        }
                        if (ch >= '0' && ch <= '9')
                                mk->status = mk->status * 10 + (ch - '0');
                        continue;
                }
                if (ch == mark[mk->matched]) {
                        if (++mk->matched == sizeof mark - 1) {
                                mk->in_status = true;
                                mk->status = 0;
                        }
                        continue;
                }
                /* Not the marker after all: what matched so far was output. */
                for (size_t k = 0; k < mk->matched; k++) {
                        if (n == sizeof out)
                                (void) vigil_shell_write_all(STDOUT_FILENO, out, n), n = 0;
                        out[n++] = mark[k];
                }
                mk->matched = ch == mark[0] ? 1 : 0;
                if (mk->matched)
                        continue;
                if (n == sizeof out)
                        (void) vigil_shell_write_all(STDOUT_FILENO, out, n), n = 0;
                out[n++] = ch;
        }
        (void) vigil_shell_write_all(STDOUT_FILENO, out, n);
        return -1;
}

/* Ask the VM's machine worker to start a shell on hvc1 (a NixOS guest runs
 * none there): it watches its state dir for this file. */
static int vigil_shell_ask(const struct vigil_shell_target *t) {
        char path[PATH_MAX];
        int fd;

        if ((size_t) snprintf(path, sizeof path, "%s/" DEBUG_SHELL_REQUEST_NAME, t->state_dir) >= sizeof path)
                return -ENAMETOOLONG;
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        close(fd);
        return 0;
}

/* Relay the terminal to the VM's hvc1, where the tiny guest runs a root
 * login shell (tools/guest/debug-shell); when nothing answers, the machine
 * worker is asked to start one (workers/machine/qemu-debugshell.c). QEMU's
 * socket takes one client at a time. The window size is set once, as the
 * first line (again once a shell asked for answers); later resizes do not
 * reach a VM (no side channel to its tty). */
static int vigil_shell_vm(const struct vigil_shell_target *t, const char *machine) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        struct vigil_shell_mark mk = {};
        struct winsize ws = {};
        bool heard = false, asked = false;
        char line[96];
        int status = -1;

        if ((size_t) snprintf(sa.sun_path, sizeof sa.sun_path, "%s/dbg", t->state_dir) >= sizeof sa.sun_path)
                return VIGIL_SHELL_EXIT_UNSUPPORTED;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                fprintf(stderr,
                        "vigil shell: VM '%s' has no debug console at %s (%s): it was started by a vigil without "
                        "one\n",
                        machine, sa.sun_path, strerror(errno));
                return VIGIL_SHELL_EXIT_UNSUPPORTED;
        }
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &vigil_shell_saved) == 0) {
                struct termios raw = vigil_shell_saved;
                cfmakeraw(&raw);
                if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
                        vigil_shell_raw = true;
        }
        if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
                (void) snprintf(line, sizeof line, " stty rows %u cols %u\r", ws.ws_row, ws.ws_col);
        else
                (void) snprintf(line, sizeof line, "\r");
        (void) vigil_shell_write_all(fd, line, strlen(line));
        for (;;) {
                struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
                char buf[16384];
                ssize_t k;
                int r = poll(p, 2, heard ? -1 : asked ? VIGIL_SHELL_QUIET_MS : VIGIL_SHELL_ASK_MS);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r == 0 && !asked) {
                        asked = true;
                        r = vigil_shell_ask(t);
                        if (r >= 0)
                                continue;
                        vigil_shell_restore_tty();
                        fprintf(stderr,
                                "vigil shell: nothing answers on VM '%s''s debug console (hvc1), and asking its "
                                "worker for a shell failed (%s)\n",
                                machine, strerror(-r));
                        return VIGIL_SHELL_EXIT_UNSUPPORTED;
                }
                if (r == 0) {
                        vigil_shell_restore_tty();
                        fprintf(stderr,
                                "vigil shell: nothing answers on VM '%s''s debug console (hvc1), %d s after asking "
                                "its worker to start a shell there (the guest's bash and setsid; the worker's log "
                                "says why)\n",
                                machine, VIGIL_SHELL_QUIET_MS / 1000);
                        return VIGIL_SHELL_EXIT_UNSUPPORTED;
                }
                if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                        k = read(fd, buf, sizeof buf);
                        if (k <= 0) {
                                vigil_shell_restore_tty();
                                fprintf(stderr, "\r\nvigil shell: VM '%s''s debug console closed (the VM stopped?)\n",
                                        machine);
                                return VIGIL_SHELL_EXIT_NO_MACHINE;
                        }
                        if (!heard && asked) /* a new shell: the first line went before it */
                                (void) vigil_shell_write_all(fd, line, strlen(line));
                        heard = true;
                        status = vigil_shell_feed(&mk, buf, (size_t) k);
                        if (status >= 0)
                                break;
                }
                if (p[0].revents & (POLLIN | POLLHUP)) {
                        k = read(STDIN_FILENO, buf, sizeof buf);
                        if (k <= 0)
                                break; /* our input ended: leave the shell to the next one */
                        if (vigil_shell_write_all(fd, buf, (size_t) k) < 0)
                                break;
                }
        }
        vigil_shell_restore_tty();
        return status >= 0 ? status : VIGIL_EXIT_PASS;
}

int vigil_shell_main(int argc, char **argv) {
        struct vigil_shell_target t;
        char run[128];
        _cleanup_(run_registry_entry_done) struct run_registry_entry e = {};
        _cleanup_free_ char *err = NULL;
        char **command = NULL;
        bool seen;
        int r;

        if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
                vigil_shell_usage(stdout);
                return VIGIL_EXIT_PASS;
        }
        if (argc < 3 || (argc > 3 && !streq(argv[3], "--")) || (argc == 4)) {
                vigil_shell_usage(stderr);
                return VIGIL_EXIT_USAGE;
        }
        if (argc > 4)
                command = argv + 4;
        r = run_registry_find(argv[1], &e, &err);
        if (r < 0) {
                fprintf(stderr, "vigil shell: %s\n", err ?: strerror(-r));
                return r == -ENOENT   ? VIGIL_SHELL_EXIT_NO_MACHINE
                       : r == -EEXIST ? VIGIL_EXIT_USAGE
                                      : VIGIL_EXIT_INTERNAL;
        }
        if (!vigil_shell_registry_has(&e, argv[2])) {
                fprintf(stderr, "vigil shell: run %.8s has no machine '%s' (see vigil ps %.8s)\n", e.run_id, argv[2],
                        e.run_id);
                return VIGIL_SHELL_EXIT_NO_MACHINE;
        }
        (void) snprintf(run, sizeof run, "%s", e.run_id);
        r = vigil_shell_find(run, argv[2], &t, &seen);
        if (r < 0) {
                if (!seen)
                        fprintf(stderr, "vigil shell: no process of run %s is running%s\n", run,
                                geteuid() != 0 ? " (or it is not yours: try as root)" : "");
                else
                        fprintf(stderr, "vigil shell: run %s has no running machine '%s'\n", run, argv[2]);
                return VIGIL_SHELL_EXIT_NO_MACHINE;
        }
        switch (t.kind) {
        case VIGIL_SHELL_NSPAWN:
                if (geteuid() != 0) {
                        fprintf(stderr, "vigil shell: entering container '%s' needs root (nsenter)\n", argv[2]);
                        return VIGIL_SHELL_EXIT_UNSUPPORTED;
                }
                return vigil_shell_exec_nspawn(&t, command);
        case VIGIL_SHELL_SSH:
                r = vigil_shell_exec_ssh(&t, command);
                return r >= 1000 ? r - 1000 : r;
        case VIGIL_SHELL_QEMU:
                if (command) {
                        fprintf(stderr, "vigil shell: -- COMMAND is for containers and SSH machines; '%s' is a VM\n",
                                argv[2]);
                        return VIGIL_EXIT_USAGE;
                }
                return vigil_shell_vm(&t, argv[2]);
        case _VIGIL_SHELL_KIND_MAX:
        case _VIGIL_SHELL_KIND_NONE:
                break;
        }
        return VIGIL_EXIT_INTERNAL;
}
