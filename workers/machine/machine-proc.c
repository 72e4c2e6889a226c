/* SPDX-License-Identifier: MIT */
/*
 * machine-proc.c owns the processes a backend has the supervisor run for it:
 * the spawn request and its answer, the process's exit told from a stopped
 * leftover's, the kill timer, the fd-store table, and re-adoption after a
 * worker restart. Every process is on one list (a worker runs one machine),
 * so machine_proc_on_frame() can route the supervisor's answers without the
 * backend. Nothing here knows what the process is, beyond the backend's word
 * that it is the machine itself (MSG_SPAWN's machine flag).
 */
#include <signal.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "machine-proc.h"
#include "machine-util.h"
#include "peer.h"

#define PROC_FDS_MAX 16u

struct proc_fd {
        const char *name;
        int *fd;
};

struct machine_proc {
        struct worker *w;
        char *name;
        const struct machine_proc_ops *ops;
        void *userdata;
        uint32_t spawn_seq; /* 0: no spawn in flight */
        int64_t pid;
        int64_t stale_pid; /* a leftover stopped after a restart: its exit is ignored */
        struct event *kill_timer;
        char *kill_why;
        struct proc_fd fds[PROC_FDS_MAX];
        size_t n_fds;
        bool stored;  /* the fds are in the supervisor's store */
        bool machine; /* its spawns are the machine itself, not a helper */
        LIST_ENTRY(machine_proc) link;
};

static LIST_HEAD(, machine_proc) procs = LIST_HEAD_INITIALIZER(procs);

static void kill_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct machine_proc *p = arg;

        log_warning("%s", p->kill_why ?: "killing a process that did not exit");
        machine_proc_kill(p);
}

int machine_proc_new(struct worker *w, const char *name, const struct machine_proc_ops *ops, void *userdata,
                     struct machine_proc **ret) {
        struct machine_proc *p = calloc(1, sizeof *p);

        if (!p)
                return -ENOMEM;
        p->w = w;
        p->ops = ops;
        p->userdata = userdata;
        p->name = strdup(name);
        p->kill_timer = evtimer_new(worker_event_base(w), kill_timer_cb, p);
        LIST_INSERT_HEAD(&procs, p, link);
        if (!p->name || !p->kill_timer) {
                machine_proc_free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

struct machine_proc *machine_proc_free(struct machine_proc *p) {
        if (!p)
                return NULL;
        LIST_REMOVE(p, link);
        machine_event_free(&p->kill_timer);
        free(p->kill_why);
        free(p->name);
        free(p);
        return NULL;
}

int machine_proc_spawn(struct machine_proc *p, char **argv, char **env, const char *cwd, unsigned stdio,
                       const int *fds, size_t n_fds) {
        struct peer *peer = worker_peer(p->w);
        uint32_t seq = peer_next_seq(peer);
        int r;

        r = peer_send(peer, MSG_SPAWN, seq,
                      &(struct msg_spawn){.name = p->name,
                                          .argv = argv,
                                          .env = env,
                                          .cwd = (char *) cwd,
                                          .stdio = stdio,
                                          .machine = p->machine},
                      fds, n_fds);
        if (r < 0)
                return r;
        p->spawn_seq = seq;
        return 0;
}

void machine_proc_set_machine(struct machine_proc *p, bool machine) {
        p->machine = machine;
}

int64_t machine_proc_pid(const struct machine_proc *p) {
        return p ? p->pid : 0;
}

void machine_proc_kill(struct machine_proc *p) {
        (void) peer_send(worker_peer(p->w), MSG_PROC_KILL, 0,
                         &(struct msg_proc_kill){.name = p->name, .signal = SIGKILL}, NULL, 0);
}

void machine_proc_abandon(struct machine_proc *p) {
        if (p->pid <= 0)
                return;
        machine_proc_kill(p);
        p->pid = 0;
}

void machine_proc_kill_after(struct machine_proc *p, unsigned long long usec, const char *why) {
        free(p->kill_why);
        p->kill_why = why ? strdup(why) : NULL;
        machine_timer_set(p->kill_timer, usec);
}

void machine_proc_cancel_kill(struct machine_proc *p) {
        if (p)
                (void) evtimer_del(p->kill_timer);
}

int machine_proc_add_fd(struct machine_proc *p, const char *name, int *fd) {
        if (p->n_fds >= PROC_FDS_MAX)
                return -ENOBUFS;
        p->fds[p->n_fds++] = (struct proc_fd){.name = name, .fd = fd};
        return 0;
}

static struct proc_fd *proc_fd_find(struct machine_proc *p, const char *name) {
        for (size_t i = 0; i < p->n_fds; i++)
                if (streq(p->fds[i].name, name))
                        return &p->fds[i];
        return NULL;
}

static void proc_fd_store(struct machine_proc *p, const struct proc_fd *s) {
        if (*s->fd < 0)
                return;
        p->stored = true;
        if (worker_store_fd(p->w, s->name, *s->fd) < 0)
                log_warning("Could not hand the %s fd to the supervisor's store", s->name);
}

void machine_proc_store_fds(struct machine_proc *p) {
        for (size_t i = 0; i < p->n_fds; i++)
                proc_fd_store(p, &p->fds[i]);
}

void machine_proc_store_fd(struct machine_proc *p, const char *name) {
        const struct proc_fd *s = proc_fd_find(p, name);

        if (s)
                proc_fd_store(p, s);
}

void machine_proc_forget_fd(struct machine_proc *p, const char *name) {
        if (p->stored && proc_fd_find(p, name))
                (void) worker_forget_fd(p->w, name);
}

void machine_proc_forget_fds(struct machine_proc *p) {
        if (p->stored)
                for (size_t i = 0; i < p->n_fds; i++)
                        (void) worker_forget_fd(p->w, p->fds[i].name);
        p->stored = false;
}

int64_t machine_proc_restore(struct machine_proc *p) {
        const struct worker_restored_proc *restored;
        size_t n;

        for (size_t i = 0; i < p->n_fds; i++) {
                int fd = worker_take_fd(p->w, p->fds[i].name);
                *p->fds[i].fd = fd >= 0 ? fd : -EBADF;
        }
        p->stored = true; /* they are still there */
        p->pid = 0;
        restored = worker_procs(p->w, &n);
        for (size_t i = 0; i < n; i++)
                if (streq(restored[i].name, p->name))
                        p->pid = restored[i].pid;
        return p->pid;
}

void machine_proc_kill_stale(struct machine_proc *p) {
        p->stale_pid = p->pid;
        machine_proc_kill(p);
        p->pid = 0;
}

bool machine_proc_stale_alive(const struct machine_proc *p) {
        return p && p->stale_pid > 0;
}

void machine_proc_describe_exit(const struct msg_proc_exit *e, char *buf, size_t size) {
        if (e->signal > 0)
                (void) snprintf(buf, size, "killed by signal %lld (%s)", (long long) e->signal,
                                strsignal((int) e->signal));
        else
                (void) snprintf(buf, size, "exit status %lld", (long long) e->code);
}

static struct machine_proc *proc_by_seq(uint32_t seq) {
        struct machine_proc *p;

        LIST_FOREACH(p, &procs, link)
        if (seq != 0 && p->spawn_seq == seq)
                return p;
        return NULL;
}

static int proc_on_spawned(const struct frame *f) {
        const struct msg_spawned *s = f->body;
        struct machine_proc *p = proc_by_seq(f->seq);

        if (!p)
                return 0; /* an answer to a request of a worker before this one */
        p->spawn_seq = 0;
        p->pid = s->pid;
        if (p->ops->spawned)
                p->ops->spawned(p, s->pid, p->userdata);
        return 0;
}

static int proc_on_error(const struct frame *f) {
        const struct msg_error *e = f->body;
        struct machine_proc *p = proc_by_seq(f->seq);

        if (!p)
                return -ENOENT;
        p->spawn_seq = 0;
        if (p->ops->spawn_failed)
                p->ops->spawn_failed(p, (int) e->code, e->message, p->userdata);
        return 0;
}

static int proc_on_exit(const struct frame *f) {
        const struct msg_proc_exit *e = f->body;
        struct machine_proc *p;

        LIST_FOREACH(p, &procs, link) {
                /* A leftover stopped after a restart may end while its
                 * successor is being spawned (pid still 0): its exit is not
                 * the new one's. */
                if (e->pid > 0 && e->pid == p->stale_pid) {
                        p->stale_pid = 0;
                        log_debug("The stopped leftover %s (pid %lld) exited", e->name, (long long) e->pid);
                        return 0;
                }
                /* While a spawn is in flight no exit is the new one's: the
                 * supervisor answers the spawn before it reports that
                 * process's exit. It is an older one's, e.g. told to this
                 * worker after its CONFIG because it ended while the
                 * previous worker was down. */
                if (streq(e->name, p->name) && p->pid <= 0 && p->spawn_seq != 0) {
                        log_debug("The exit of an earlier %s (pid %lld) is not the one being spawned", e->name,
                                  (long long) e->pid);
                        return 0;
                }
                if (streq(e->name, p->name) && (e->pid == p->pid || p->pid <= 0)) {
                        p->pid = 0;
                        (void) evtimer_del(p->kill_timer);
                        if (p->ops->exited)
                                p->ops->exited(p, e, p->userdata);
                        return 0;
                }
        }
        log_debug("Ignoring the exit of %s (pid %lld)", e->name, (long long) e->pid);
        return 0;
}

typedef int (*proc_frame_fn)(const struct frame *f);

static const proc_frame_fn proc_handlers[] = {
        [MSG_SPAWNED] = proc_on_spawned,
        [MSG_ERROR] = proc_on_error,
        [MSG_PROC_EXIT] = proc_on_exit,
};

int machine_proc_on_frame(const struct frame *f) {
        if (f->type <= 0 || (size_t) f->type >= ELEMENTSOF(proc_handlers) || !proc_handlers[f->type])
                return -ENOENT;
        return proc_handlers[f->type](f);
}
