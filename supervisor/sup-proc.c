/* SPDX-License-Identifier: MIT */
/*
 * sup-proc.c owns the spawn service's process records: the QEMUs,
 * systemd-nspawns and helpers workers ask the supervisor to start, so that
 * they outlive a worker's crash and die with the supervisor. Each record is
 * on its child's list until the process has been reaped; its exit goes to the
 * worker as PROC_EXIT, or waits for the next worker if this one is down.
 */
#include <signal.h>

#include "sup-cgroup.h"
#include "sup-events.h"
#include "sup-proc.h"
#include "sup-records.h"

struct sup_proc *proc_free(struct sup_proc *p) {
        if (!p)
                return NULL;
        if (p->ev_pidfd)
                event_free(p->ev_pidfd);
        if (p->ev_term)
                event_free(p->ev_term);
        safe_close(p->pidfd);
        sup_cgroup_remove(p->cgroup);
        free(p->cgroup);
        free(p->name);
        free(p);
        return NULL;
}

void proc_free_all(struct child *c) {
        while (c->procs) {
                struct sup_proc *p = c->procs;
                c->procs = p->next;
                proc_free(p);
        }
        c->n_procs = 0;
        for (size_t k = 0; k < c->n_pending_exits; k++)
                free(c->pending_exits[k].name);
        c->n_pending_exits = 0;
}

size_t proc_count(struct sup *s) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_children; i++)
                n += s->children[i].n_procs;
        return n;
}

struct sup_proc *proc_find(struct child *c, const char *name) {
        for (struct sup_proc *p = c->procs; p; p = p->next)
                if (streq(p->name, name))
                        return p;
        return NULL;
}

static void proc_unlink(struct sup_proc *p) {
        struct child *c = p->owner;
        for (struct sup_proc **pp = &c->procs; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        c->n_procs--;
                        return;
                }
}

/* role=machine: the machine's own process, whose start and end are the
 * machine's (run-status.c); role=helper: a KVM probe, a shell, ssh's session. */
static const char *proc_role(bool machine) {
        return machine ? "machine" : "helper";
}

int proc_spawn(struct child *c, const char *name, struct spawn_req *req, bool own_cgroup, bool machine,
               struct sup_proc **ret, char *err, size_t errsize) {
        struct sup *s = c->sup;
        struct sup_proc *p;
        char pid[32];
        int r;

        p = calloc(1, sizeof(*p));
        if (!p || !(p->name = strdup(name))) {
                proc_free(p);
                snprintf(err, errsize, "SPAWN: out of memory");
                return -ENOMEM;
        }
        p->owner = c;
        p->pidfd = -EBADF;
        p->machine = machine;
        if (own_cgroup) {
                r = sup_cgroup_create(s->run_id, c->spec.id, name, &p->cgroup);
                if (r < 0)
                        log_warning_errno(r, "No cgroup of its own for '%s' of '%s' (it shares the hierarchy's root)",
                                          name, c->spec.id);
                req->cgroup = p->cgroup;
        }

        r = spawn_process(req, &p->pid, &p->pidfd, err, errsize);
        if (r < 0) {
                events_emit(s, c, LOG_WARNING, LOG_EVENT_NONE, "proc_spawn_failed",
                            (const char *[]){"name", name, "role", proc_role(machine), "reason", err, NULL},
                            "Spawn of '%s' for '%s' failed: %s", name, c->spec.id, err);
                proc_free(p);
                return r;
        }
        p->next = c->procs;
        c->procs = p;
        c->n_procs++;

        snprintf(pid, sizeof(pid), "%d", (int) p->pid);
        events_emit(
                s, c, LOG_INFO, LOG_EVENT_NONE, "proc_spawned",
                (const char *[]){"name", p->name, "pid", pid, "role", proc_role(machine), "argv0", req->argv[0], NULL},
                "Spawned '%s' (pid %d, %s) for '%s'", p->name, (int) p->pid, req->argv[0], c->spec.id);
        *ret = p;
        return 0;
}

void proc_flush_pending_exits(struct child *c) {
        for (size_t i = 0; i < c->n_pending_exits; i++) {
                struct pending_exit *e = &c->pending_exits[i];
                (void) peer_send(
                        c->peer, MSG_PROC_EXIT, 0,
                        &(struct msg_proc_exit){.name = e->name, .pid = e->pid, .code = e->code, .signal = e->signal},
                        NULL, 0);
                free(e->name);
        }
        c->n_pending_exits = 0;
}

void proc_exited(struct sup_proc *p, int code, int sig) {
        struct child *c = p->owner;
        char pid[32], cs[32], ss[32];

        snprintf(pid, sizeof(pid), "%d", (int) p->pid);
        snprintf(cs, sizeof(cs), "%d", code);
        snprintf(ss, sizeof(ss), "%d", sig);
        events_emit(c->sup, c, LOG_INFO, LOG_EVENT_NONE, "proc_exited",
                    (const char *[]){"name", p->name, "pid", pid, "role", proc_role(p->machine), "exit_code", cs,
                                     "signal", ss, NULL},
                    "Process '%s' (pid %d) of '%s' ended (exit %d, signal %d)", p->name, (int) p->pid, c->spec.id,
                    code, sig);

        struct msg_proc_exit m = {.name = p->name, .pid = p->pid, .code = code, .signal = sig};
        if (child_reachable(c))
                (void) peer_send(c->peer, MSG_PROC_EXIT, 0, &m, NULL, 0);
        else if (c->state != CHILD_REMOVED) {
                /* Its worker is down: tell the next one, after its CONFIG. */
                if (c->n_pending_exits == CHILD_PENDING_EXITS_MAX) {
                        free(c->pending_exits[0].name);
                        memmove(c->pending_exits, c->pending_exits + 1,
                                (CHILD_PENDING_EXITS_MAX - 1) * sizeof(struct pending_exit));
                        c->n_pending_exits--;
                }
                char *name = strdup(p->name);
                if (name)
                        c->pending_exits[c->n_pending_exits++] =
                                (struct pending_exit){.name = name, .pid = p->pid, .code = code, .signal = sig};
        }
        proc_unlink(p);
        proc_free(p);
}

static void on_proc_term_timeout(evutil_socket_t fd, short what, void *arg) {
        struct sup_proc *p = arg;

        /* Not a fault in itself: systemd-nspawn turns SIGTERM into a container
         * poweroff that may take longer than the grace period. */
        log_info("Process '%s' (pid %d) of '%s' still running %llu ms after SIGTERM, killing", p->name, (int) p->pid,
                 p->owner->spec.id, (unsigned long long) (PROC_TERM_USEC / 1000));
        (void) pidfd_send(p->pidfd, SIGKILL);
}

void proc_kill_all(struct child *c, bool immediately) {
        for (struct sup_proc *p = c->procs; p; p = p->next) {
                if (immediately) {
                        (void) pidfd_send(p->pidfd, SIGKILL);
                        continue;
                }
                if (p->ev_term && event_pending(p->ev_term, EV_TIMEOUT, NULL))
                        continue;
                (void) pidfd_send(p->pidfd, SIGTERM);
                if (!p->ev_term)
                        p->ev_term = evtimer_new(c->sup->base, on_proc_term_timeout, p);
                if (p->ev_term)
                        (void) timer_add_usec(p->ev_term, PROC_TERM_USEC);
        }
}
