/* SPDX-License-Identifier: MIT */
/*
 * machine-util.c owns the few helpers every backend needs in the same form:
 * arming and freeing libevent events, watching an fd, and the backend's one
 * process as the supervisor sees it (killing it, telling its exit from
 * another child's, describing that exit, and finding it again among the
 * processes a restarted worker inherits). Nothing here knows a hypervisor
 * or a container; the backends keep what differs between them.
 */
#include <signal.h>
#include <string.h>

#include "log.h"
#include "machine.h"
#include "time-util.h"

void machine_timer_set(struct event *e, unsigned long long usec) {
        struct timeval tv = timeval_from_usec(usec);

        (void) evtimer_add(e, &tv);
}

void machine_event_free(struct event **e) {
        if (*e)
                event_free(*e);
        *e = NULL;
}

int machine_event_watch(struct machine *m, int fd, short what, event_callback_fn cb, void *arg, struct event **ret) {
        machine_event_free(ret);
        *ret = event_new(m->base, fd, what, cb, arg);
        if (!*ret)
                return -ENOMEM;
        if ((what & EV_PERSIST) && event_add(*ret, NULL) < 0)
                return -ENOMEM;
        return 0;
}

void machine_proc_kill(struct machine *m, const char *proc) {
        /* The name is only encoded into the message, never written to. */
        (void) peer_send(worker_peer(m->w), MSG_PROC_KILL, 0,
                         &(struct msg_proc_kill){.name = (char *) proc, .signal = SIGKILL}, NULL, 0);
}

bool machine_proc_exit_is_current(struct machine *m, const struct msg_proc_exit *e, const char *proc) {
        /* A leftover stopped after a restart may end while its successor is
         * being spawned (m->pid still 0): its exit is not the new one's. */
        if (e->pid > 0 && e->pid == m->stale_pid) {
                m->stale_pid = 0;
                log_debug("The stopped leftover %s (pid %lld) exited", e->name, (long long) e->pid);
                return false;
        }
        if (streq(e->name, proc) && (e->pid == m->pid || m->pid <= 0))
                return true;
        log_debug("Ignoring the exit of %s (pid %lld)", e->name, (long long) e->pid);
        return false;
}

void machine_exit_describe(const struct msg_proc_exit *e, char *buf, size_t size) {
        if (e->signal > 0)
                (void) snprintf(buf, size, "killed by signal %lld (%s)", (long long) e->signal,
                                strsignal((int) e->signal));
        else
                (void) snprintf(buf, size, "exit status %lld", (long long) e->code);
}

void machine_proc_kill_stale(struct machine *m, const char *proc, int64_t pid) {
        m->stale_pid = pid;
        machine_proc_kill(m, proc);
}

int64_t machine_restored_pid(struct machine *m, const char *proc) {
        const struct worker_restored_proc *procs;
        int64_t pid = 0;
        size_t n;

        procs = worker_procs(m->w, &n);
        for (size_t i = 0; i < n; i++)
                if (streq(procs[i].name, proc))
                        pid = procs[i].pid;
        return pid;
}
