/* SPDX-License-Identifier: MIT */
/*
 * sup-reap.c owns learning that processes ended: a pidfd per worker and per
 * spawned process, watched by libevent and reaped with waitid(P_PIDFD), plus
 * a SIGCHLD sweep for everything else that is our child: orphans reparented
 * to us as subreaper (or as PID 1 of our namespace), and any of ours whose
 * pidfd event has not run yet. At the end it kills whatever is left. A reaped
 * worker is reported up through s->ops->reaped (child_reaped), a spawned process to
 * its record (sup-proc.c).
 */
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include "sup-proc.h"
#include "sup-reap.h"
#include "sup-records.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void status_decode(int status, int *ret_code, int *ret_sig) {
        if (WIFSIGNALED(status)) {
                *ret_code = -1;
                *ret_sig = WTERMSIG(status);
        } else {
                *ret_code = WEXITSTATUS(status);
                *ret_sig = 0;
        }
}

static void siginfo_decode(const siginfo_t *si, int *ret_code, int *ret_sig) {
        if (si->si_code == CLD_EXITED) {
                *ret_code = si->si_status;
                *ret_sig = 0;
        } else {
                *ret_code = -1;
                *ret_sig = si->si_status;
        }
}

static struct sup_proc *proc_by_pid(struct sup *s, pid_t pid) {
        for (size_t i = 0; i < s->n_children; i++)
                for (struct sup_proc *p = s->children[i].procs; p; p = p->next)
                        if (p->pid == pid)
                                return p;
        return NULL;
}

static struct child *child_by_pid(struct sup *s, pid_t pid) {
        for (size_t i = 0; i < s->n_children; i++)
                if (s->children[i].pid == pid && s->children[i].pidfd >= 0 && !s->children[i].reaped)
                        return &s->children[i];
        return NULL;
}

/* Deliver one reaped pid to whoever owns it. */
static void reap_deliver(struct sup *s, pid_t pid, int code, int sig) {
        struct child *c = child_by_pid(s, pid);
        struct sup_proc *p;

        if (c) {
                s->ops->reaped(c, code, sig);
                return;
        }
        p = proc_by_pid(s, pid);
        if (p) {
                proc_exited(p, code, sig);
                s->ops->advance(s);
                return;
        }
        log_debug("Reaped orphan pid %d (exit %d, signal %d)", (int) pid, code, sig);
}

static void on_child_pidfd(evutil_socket_t fd, short what, void *arg) {
        struct child *c = arg;
        siginfo_t si = {};
        int code, sig;

        if (waitid((idtype_t) P_PIDFD, (id_t) c->pidfd, &si, WEXITED | WNOHANG) < 0) {
                /* ECHILD: the SIGCHLD sweep reaped it first and delivered its status. */
                if (errno != ECHILD)
                        log_warning_errno(negative_errno(), "waitid on pidfd of '%s'", c->spec.id);
                return;
        }
        if (si.si_pid == 0)
                return; /* not yet */
        siginfo_decode(&si, &code, &sig);
        c->sup->ops->reaped(c, code, sig);
}

static void on_proc_pidfd(evutil_socket_t fd, short what, void *arg) {
        struct sup_proc *p = arg;
        struct sup *s = p->owner->sup;
        siginfo_t si = {};
        int code, sig;

        if (waitid((idtype_t) P_PIDFD, (id_t) p->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        siginfo_decode(&si, &code, &sig);
        proc_exited(p, code, sig); /* frees p */
        s->ops->advance(s);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg) {
        struct sup *s = arg;
        int status, code, sg;
        pid_t pid;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                status_decode(status, &code, &sg);
                reap_deliver(s, pid, code, sg);
        }
}

int reap_setup(struct sup *s) {
        s->ev_sigchld = evsignal_new(s->base, SIGCHLD, on_sigchld, s);
        if (!s->ev_sigchld || event_add(s->ev_sigchld, NULL) < 0)
                return -ENOMEM;
        return 0;
}

int reap_watch_child(struct child *c) {
        if (c->ev_pidfd)
                event_free(c->ev_pidfd);
        c->ev_pidfd = event_new(c->sup->base, c->pidfd, EV_READ | EV_PERSIST, on_child_pidfd, c);
        if (!c->ev_pidfd || event_add(c->ev_pidfd, NULL) < 0)
                return -ENOMEM;
        return 0;
}

int reap_watch_proc(struct sup_proc *p) {
        p->ev_pidfd = event_new(p->owner->sup->base, p->pidfd, EV_READ | EV_PERSIST, on_proc_pidfd, p);
        if (!p->ev_pidfd || event_add(p->ev_pidfd, NULL) < 0)
                return -ENOMEM;
        return 0;
}

/* Our direct children right now, from /proc (orphans included). */
static size_t kill_direct_children(void) {
        char path[64], buf[512];
        pid_t self = getpid();
        size_t n = 0;
        DIR *d = opendir("/proc");
        struct dirent *de;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                FILE *f = fopen(path, "re");
                if (!f)
                        continue;
                size_t len = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[len] = '\0';
                /* "pid (comm) state ppid ..." where comm may contain anything but ends at the last ')' */
                char *rp = strrchr(buf, ')');
                char st;
                long ppid;
                if (!rp || sscanf(rp + 1, " %c %ld", &st, &ppid) != 2 || ppid != self)
                        continue;
                (void) kill((pid_t) pid, SIGKILL);
                n++;
        }
        closedir(d);
        return n;
}

void reap_kill_leftovers(struct sup *s) {
        uint64_t deadline = now_usec() + 2 * USEC_PER_SEC;

        if (s->pidns_init) {
                /* PID 1 of our namespace: kill(-1) reaches every process in it. */
                (void) kill(-1, SIGKILL);
        }
        /* Killing a parent hands its children to us (subreaper): repeat until
         * nothing is left or the deadline passes. */
        for (;;) {
                size_t n = kill_direct_children();
                int status, code, sig;
                pid_t pid;

                while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                        status_decode(status, &code, &sig);
                        reap_deliver(s, pid, code, sig);
                }
                if (pid < 0 && errno == ECHILD)
                        break;
                if (now_usec() > deadline) {
                        log_warning("Some processes survived SIGKILL for 2 s");
                        break;
                }
                if (n == 0 || pid == 0)
                        (void) usleep(10 * 1000);
        }
}
