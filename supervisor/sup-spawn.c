/* SPDX-License-Identifier: MIT */
/*
 * sup-spawn.c owns fork+exec: for workers (channel moved to fd 3) and for the
 * processes workers ask the spawn service for. It knows no child or tree. Between fork and exec the child
 * leaves the supervisor's session, arranges to die with the supervisor
 * (PR_SET_PDEATHSIG), gets exactly its stdio and channel (everything else is
 * closed), drops capabilities per its kind and execs. A failure there travels
 * back through a CLOEXEC pipe with the child's own errno and wording (crun's
 * pattern), so the supervisor reports "execve /x: No such file or directory"
 * rather than an anonymous exit 127.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "config.h"
#include "fd-util.h"
#include "sup-cgroup.h"
#include "sup-spawn.h"

static struct rlimit nofile_orig;
static bool nofile_raised;

/* Stored fds (a switch keeps two per port) and their copies queued for a
 * restarted worker can pass the usual soft limit of 1024, so the supervisor
 * raises its own; every process it starts gets the original back, because
 * programs using select() break on fds above 1023 (systemd does the same). */
void spawn_raise_nofile(void) {
        struct rlimit rl;

        if (nofile_raised || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        nofile_orig = rl;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
                nofile_raised = true;
}

struct spawn_error {
        int err; /* positive errno */
        char msg[480];
};

_noreturn_ static void child_fail(int errfd, int err, const char *fmt, ...) _printf_(3, 4);
static void child_fail(int errfd, int err, const char *fmt, ...) {
        struct spawn_error e = {.err = err > 0 ? err : EIO};
        va_list ap;
        size_t n;

        va_start(ap, fmt);
        vsnprintf(e.msg, sizeof(e.msg), fmt, ap);
        va_end(ap);
        n = strlen(e.msg);
        snprintf(e.msg + n, sizeof(e.msg) - n, ": %s", strerror(e.err));
        (void) !write(errfd, &e, sizeof(e));
        _exit(127);
}

/* Runs in the forked child; never returns. */
_noreturn_ static void spawn_child(const struct spawn_req *req, pid_t parent, int errfd) {
        int src[4], nul = -1;
        sigset_t all;

        /* Signal state is inherited across exec: start from a clean one. */
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);

        if (nofile_raised)
                (void) setrlimit(RLIMIT_NOFILE, &nofile_orig);

        /* Own session: a terminal's Ctrl-C reaches only vigil, which then stops
         * everything in order instead of every process dying at once. */
        (void) setsid();

        /* Die with the supervisor; recheck in case it died before the prctl. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                child_fail(errfd, errno, "prctl(PR_SET_PDEATHSIG)");
        if (getppid() != parent)
                _exit(127);

        /* Lift errfd and every source fd above the targets first, so that moving
         * one into place never clobbers another. */
        errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 10);
        if (errfd < 0)
                _exit(127);
        for (int i = 0; i < 3; i++) {
                if (req->stdio[i] < 0) {
                        if (nul < 0 && (nul = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
                                child_fail(errfd, errno, "open /dev/null");
                        src[i] = fcntl(nul, F_DUPFD_CLOEXEC, 10);
                } else
                        src[i] = fcntl(req->stdio[i], F_DUPFD_CLOEXEC, 10);
                if (src[i] < 0)
                        child_fail(errfd, errno, "dup stdio %d", i);
        }
        src[3] = req->chan_fd >= 0 ? fcntl(req->chan_fd, F_DUPFD_CLOEXEC, 10) : -1;
        if (req->chan_fd >= 0 && src[3] < 0)
                child_fail(errfd, errno, "dup channel");
        for (int i = 0; i < 4; i++)
                if (src[i] >= 0 && dup2(src[i], i) < 0) /* dup2 clears CLOEXEC on the target */
                        child_fail(errfd, errno, "dup2 to fd %d", i);
        /* Nothing else crosses exec, even an fd a library opened without CLOEXEC. */
        (void) fd_close_all_except(req->chan_fd >= 0 ? 4 : 3, &errfd, 1);

        if (req->cwd && req->cwd[0] && chdir(req->cwd) < 0)
                child_fail(errfd, errno, "chdir %s", req->cwd);

        /* Before the capabilities go: joining a cgroup needs write access to it. */
        if (req->cgroup) {
                int r = sup_cgroup_join(req->cgroup);
                if (r < 0)
                        child_fail(errfd, -r, "joining cgroup %s", req->cgroup);
        }

        if (req->caps) {
                int r = kind_caps_apply(req->caps);
                if (r < 0)
                        child_fail(errfd, -r, "dropping capabilities");
        }

        if (req->path)
                execve(req->path, req->argv, req->envp);
        else
                execvpe(req->argv[0], req->argv, req->envp);
        child_fail(errfd, errno, "execve %s", req->path ?: req->argv[0]);
}

int spawn_process(const struct spawn_req *req, pid_t *ret_pid, int *ret_pidfd, char *errbuf, size_t errsize) {
        _cleanup_close_ int rd = -EBADF, wr = -EBADF;
        struct spawn_error e = {};
        int p[2], pidfd;
        pid_t parent = getpid(), pid;
        ssize_t n;

        if (!req->argv || !req->argv[0])
                return -EINVAL;
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        rd = p[0];
        wr = p[1];

        pid = fork();
        if (pid < 0) {
                snprintf(errbuf, errsize, "fork: %s", strerror(errno));
                return negative_errno();
        }
        if (pid == 0)
                spawn_child(req, parent, wr);

        wr = safe_close(wr);
        do
                n = read(rd, &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        if (n > 0) {
                /* exec failed: the child exits at once; reap it here, it was never watched. */
                (void) waitpid(pid, NULL, 0);
                e.msg[sizeof(e.msg) - 1] = '\0';
                snprintf(errbuf, errsize, "%s", n == (ssize_t) sizeof(e) ? e.msg : "spawn failed");
                return -(n == (ssize_t) sizeof(e) && e.err > 0 ? e.err : EIO);
        }

        pidfd = pidfd_open_pid(pid);
        if (pidfd < 0) {
                /* Without a pidfd we could neither watch nor safely signal it. */
                snprintf(errbuf, errsize, "pidfd_open: %s", strerror(-pidfd));
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return pidfd;
        }
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

static bool executable(const char *path) {
        return access(path, X_OK) == 0;
}

int spawn_resolve_exe(const char *self_dir, const struct sup_kind *k, char *buf, size_t size) {
        const char *dir = getenv("VIGIL_LIBEXEC_DIR");
        /* An explicit override, then next to vigil (installed layout), then the
         * build tree (running uninstalled), then the configured libexecdir. */
        const struct {
                const char *dir, *name;
        } candidates[] = {
                {dir, k->exe},
                {self_dir, k->exe},
                {VIGIL_BUILD_ROOT, k->build_path},
                {VIGIL_LIBEXECDIR, k->exe},
        };

        for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
                if (!candidates[i].dir || !candidates[i].dir[0])
                        continue;
                snprintf(buf, size, "%s/%s", candidates[i].dir, candidates[i].name);
                if (executable(buf))
                        return 0;
        }
        return -ENOENT;
}

static bool env_dropped(const char *e) {
        /* Our own notify/watchdog/activation state must not leak into workers,
         * or a worker could tell systemd we are ready (sd_notify(3)). */
        static const char *const drop[] = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=",  "WATCHDOG_PID=", "LISTEN_FDS=",
                                           "LISTEN_PID=",    "LISTEN_FDNAMES=", "VIGIL_RUN=",    "VIGIL_LOG_TARGET="};
        for (size_t i = 0; i < ELEMENTSOF(drop); i++)
                if (strncmp(e, drop[i], strlen(drop[i])) == 0)
                        return true;
        return false;
}

static char **env_build(char *const *base, const char *run_id, const char *log_target) {
        size_t n = strv_length(base), k = 0;
        char **env = calloc(n + 3, sizeof(char *));

        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (env_dropped(base[i]))
                        continue;
                if (!(env[k++] = strdup(base[i])))
                        return strv_free(env);
        }
        if (asprintf(&env[k++], "VIGIL_RUN=%s", run_id) < 0) {
                env[k - 1] = NULL;
                return strv_free(env);
        }
        if (log_target && asprintf(&env[k++], "VIGIL_LOG_TARGET=%s", log_target) < 0) {
                env[k - 1] = NULL;
                return strv_free(env);
        }
        return env;
}

char **spawn_worker_env(const char *run_id, enum log_target t) {
        extern char **environ;
        const char *target = t == LOG_TARGET_JOURNAL ? "journal" : t == LOG_TARGET_STDERR ? "stderr" : NULL;

        return env_build(environ, run_id, target);
}

char **spawn_env_with_run(char *const *env, const char *run_id) {
        return env_build(env, run_id, NULL);
}
