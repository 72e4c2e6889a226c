/* SPDX-License-Identifier: MIT */
/*
 * sup-pidns.c owns the "no orphans even after kill -9" arrangement: the
 * supervision tree runs in a new PID namespace whose PID 1 is the supervisor,
 * and the original vigil process only waits for it. PID 1 has
 * PDEATHSIG=SIGKILL towards that original process, and when a namespace's PID 1
 * dies the kernel kills every process in it, so killing vigil by any means
 * kills everything it started, including grandchildren that detached
 * themselves. The outer process forwards SIGTERM/SIGINT/SIGHUP inwards, relays
 * sd_notify lines (systemd accepts them only from the main pid) and exits with
 * PID 1's status.
 */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>

#include "exit-status.h"
#include "fd-util.h"
#include "sup.h"

static volatile sig_atomic_t early_signal;
static void (*outer_at_exit)(void);

void sup_pidns_at_outer_exit(void (*fn)(void)) {
        outer_at_exit = fn;
}

static void on_early_signal(int sig) {
        early_signal = sig;
}

int sup_pidns_early_signal(void) {
        return early_signal;
}

/* The outer process: wait for PID 1, forwarding signals and notifications. */
/* Give the namespace its own /proc, so pids read there (by us, by sanitizers,
 * by tools in the tree) are the namespace's pids. The mount namespace is a
 * slave of the host's: host mounts still appear inside, ours never leak out. */
static void mount_own_proc(void) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0 ||
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                log_warning_errno(negative_errno(), "Cannot mount a /proc for the PID namespace, pids under /proc "
                                                    "will be the host's");
}

_noreturn_ static void outer_wait(pid_t pid, int sigfd, int notify_rd) {
        _cleanup_close_ int pidfd = pidfd_open_pid(pid);
        char buf[4096];
        size_t have = 0;
        int status;

        for (;;) {
                struct pollfd p[3] = {
                        {.fd = sigfd, .events = POLLIN},
                        {.fd = pidfd, .events = POLLIN},
                        {.fd = notify_rd, .events = POLLIN},
                };
                if (poll(p, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(sigfd, &si, sizeof(si)) == sizeof(si))
                                (void) kill(pid, (int) si.ssi_signo);
                }
                if (p[2].revents & (POLLIN | POLLHUP)) {
                        ssize_t n = read(notify_rd, buf + have, sizeof(buf) - 1 - have);
                        if (n <= 0)
                                notify_rd = -1; /* poll ignores negative fds */
                        else {
                                have += (size_t) n;
                                char *nl;
                                while ((nl = memchr(buf, '\n', have))) {
                                        *nl = '\0';
                                        (void) sd_notify(0, buf);
                                        have -= (size_t) (nl + 1 - buf);
                                        memmove(buf, nl + 1, have);
                                }
                                if (have == sizeof(buf) - 1)
                                        have = 0; /* an overlong line: drop it */
                        }
                }
                if (p[1].revents & POLLIN || pidfd < 0)
                        break;
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (outer_at_exit)
                outer_at_exit(); /* the namespace is gone: clean up what it left on the host */
        if (WIFEXITED(status) && (WEXITSTATUS(status) == 128 + SIGTERM || WEXITSTATUS(status) == 128 + SIGINT)) {
                /* The nixos-test-driver front door ends "killed by SIGTERM" like the reference
                 * (run-main.c reference_exit); PID 1 cannot kill itself, so this side does. */
                int sig = WEXITSTATUS(status) - 128;
                sigset_t one;
                (void) signal(sig, SIG_DFL);
                (void) raise(sig);
                sigemptyset(&one);
                sigaddset(&one, sig);
                (void) sigprocmask(SIG_UNBLOCK, &one, NULL);
        }
        if (WIFEXITED(status))
                _exit(WEXITSTATUS(status));
        log_error("Supervisor (PID 1 of the run's namespace) died from signal %s", strsignal(WTERMSIG(status)));
        _exit(VIGIL_EXIT_INTERNAL);
}

int sup_pidns_enter(bool allow, int *ret_notify_fd) {
        static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
        _cleanup_close_ int self = -EBADF;
        sigset_t mask, old;
        int np[2], sigfd;
        pid_t pid;

        *ret_notify_fd = -EBADF;
        if (!allow) {
                log_info("PID namespace disabled: no-orphans relies on PR_SET_PDEATHSIG, subreaper and cleanup at "
                         "exit");
                return 1;
        }

        self = pidfd_open_pid(getpid());
        if (self < 0)
                return log_error_errno(self, "pidfd_open(self)");
        if (pipe2(np, O_CLOEXEC) < 0)
                return log_error_errno(negative_errno(), "pipe");

        sigemptyset(&mask);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                sigaddset(&mask, sigs[i]);
        (void) sigprocmask(SIG_BLOCK, &mask, &old);

        if (unshare(CLONE_NEWPID) < 0) {
                int r = negative_errno();
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                safe_close(np[0]);
                safe_close(np[1]);
                log_internal(LOG_NOTICE, r, LOG_EVENT_NONE, NULL,
                             "No PID namespace (%s); no-orphans relies on PR_SET_PDEATHSIG, subreaper and "
                             "cleanup at exit",
                             geteuid() == 0 ? "not permitted here" : "not root");
                return 1;
        }

        pid = fork();
        if (pid < 0) {
                int r = negative_errno();
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                return log_error_errno(r, "fork into the PID namespace");
        }
        if (pid == 0) {
                struct pollfd p = {.fd = self, .events = POLLIN};

                /* PID 1 of the namespace: dies with the outer vigil, taking everything
                 * in the namespace with it. Recheck: it may have died already. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
                if (poll(&p, 1, 0) > 0)
                        _exit(VIGIL_EXIT_INTERNAL);
                safe_close(np[0]);
                mount_own_proc();
                /* PID 1 ignores signals it has no handler for, even from outside:
                 * catch them until the event loop installs its own. */
                for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                        (void) signal(sigs[i], on_early_signal);
                (void) sigprocmask(SIG_SETMASK, &old, NULL);
                *ret_notify_fd = np[1];
                log_info("Running the tree in a new PID namespace: killing vigil by any signal kills everything");
                return 0;
        }

        safe_close(np[1]);
        sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sigfd < 0)
                log_warning_errno(negative_errno(), "signalfd: signals will not be forwarded");
        outer_wait(pid, sigfd, np[0]);
}
