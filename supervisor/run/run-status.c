/* SPDX-License-Identifier: MIT */
/*
 * run-status.c owns the reading of a run's lifecycle events into its status:
 * which event moves a machine to which state, what counts as a restart, which
 * script events open and close a subtest. Pure.
 *
 * Of the processes a machine worker has spawned, only the machine's own
 * (role=machine: QEMU, the container, ssh's master) moves its state; a KVM
 * probe's or a shell's start and exit (role=helper) are no boot and no
 * machine going down. Exits are told apart by pid. Without a role (an older
 * vigil's timeline) a process is the machine's.
 */
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "run-status.h"

/* clang-format off */
static const char *const machine_state_names[_RUN_MACHINE_STATE_MAX] = {
        [RUN_MACHINE_STARTING] = "starting",
        [RUN_MACHINE_STANDBY]  = "standby",
        [RUN_MACHINE_BOOTING]  = "booting",
        [RUN_MACHINE_READY]    = "ready",
        [RUN_MACHINE_DOWN]     = "down",
};
/* clang-format on */

const char *run_machine_state_to_string(enum run_machine_state s) {
        return s >= 0 && s < _RUN_MACHINE_STATE_MAX ? machine_state_names[s] : NULL;
}

const struct run_status_machine *run_status_machine(const struct run_status *st, const char *name) {
        for (size_t i = 0; i < st->n_machines; i++)
                if (streq(st->machines[i].name, name))
                        return &st->machines[i];
        return NULL;
}

static struct run_status_machine *status_machine_add(struct run_status *st, const char *name) {
        struct run_status_machine *m = (struct run_status_machine *) run_status_machine(st, name);

        if (m)
                return m;
        if (st->n_machines == RUN_STATUS_MACHINES_MAX)
                return NULL;
        m = &st->machines[st->n_machines++];
        *m = (struct run_status_machine){.state = RUN_MACHINE_STARTING};
        snprintf(m->name, sizeof(m->name), "%s", name);
        return m;
}

static const char *kv_get(const char *const *kv, const char *key) {
        for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
                if (streq(kv[i], key))
                        return kv[i + 1];
        return NULL;
}

/* "exit 0 after 75 ms: CMD" -> "b: CMD (exit 0, 75 ms)" */
static void status_command(struct run_status *st, const char *child, const char *message) {
        const char *cmd = strstr(message, ": ");
        unsigned long long ms = 0;
        int status = 0;

        if (cmd && sscanf(message, "exit %d after %llu ms", &status, &ms) == 2)
                snprintf(st->last, sizeof(st->last), "%s: %.*s (exit %d, %llu ms)", child,
                         (int) strcspn(cmd + 2, "\n"), cmd + 2, status, ms);
        else if (cmd)
                snprintf(st->last, sizeof(st->last), "%s: %.*s (failed)", child, (int) strcspn(cmd + 2, "\n"),
                         cmd + 2);
}

static long long kv_pid(const char *const *kv) {
        const char *s = kv_get(kv, "pid");

        return s ? strtoll(s, NULL, 10) : 0;
}

/* A timeline without roles (written by a vigil before them) counted every
 * process as the machine's, and still does. */
static bool kv_role_machine(const char *const *kv) {
        const char *role = kv_get(kv, "role");

        return !role || streq(role, "machine");
}

/* A QEMU spawned after boot-standby is loaded ahead of start(): the machine
 * is not started, so not booting either. */
static const char *status_proc_spawned(struct run_status_machine *m, const char *const *kv) {
        if (!kv_role_machine(kv))
                return NULL;
        m->pid = kv_pid(kv);
        if (!m->standby_next)
                return m->state = RUN_MACHINE_BOOTING, "booting";
        m->standby_next = false;
        m->standby_pid = kv_pid(kv);
        return m->state = RUN_MACHINE_STANDBY, "standby (loaded ahead of start())";
}

/* Only the machine process's exit takes the machine down: not a helper's, nor
 * that of a machine process another has replaced. The standby QEMU's exit
 * before it ran is its giving up: the machine is still not started (a
 * start() meanwhile spawned another, already booting). */
static const char *status_proc_exited(struct run_status_machine *m, const char *const *kv) {
        long long pid = kv_pid(kv);

        if (pid <= 0 || (pid != m->pid && pid != m->standby_pid))
                return NULL;
        if (pid == m->pid)
                m->pid = 0;
        if (pid != m->standby_pid)
                return m->state = RUN_MACHINE_DOWN, "down";
        m->standby_pid = 0;
        if (m->state != RUN_MACHINE_STANDBY)
                return NULL;
        return m->state = RUN_MACHINE_STARTING, "standby given up";
}

/* boot-restored: start() let the standby guest run. */
static const char *status_standby_runs(struct run_status_machine *m) {
        m->standby_pid = 0;
        if (m->state != RUN_MACHINE_STANDBY)
                return NULL;
        return m->state = RUN_MACHINE_BOOTING, "booting";
}

const char *run_status_feed(struct run_status *st, const char *name, const char *child, const char *kind,
                            const char *const *kv, const char *message) {
        bool machine = kind && streq(kind, "machine") && child;
        const char *ev = kv_get(kv, "name");
        struct run_status_machine *m = machine ? status_machine_add(st, child) : NULL;

        if (!name || (machine && !m))
                return NULL;
        if (m && streq(name, "spawned"))
                m->state = RUN_MACHINE_STARTING, m->standby_next = false;
        else if (m && streq(name, "proc_spawned"))
                return status_proc_spawned(m, kv);
        else if (m && streq(name, "proc_spawn_failed") && kv_role_machine(kv))
                m->standby_next = false;
        else if (m && streq(name, "proc_exited"))
                return status_proc_exited(m, kv);
        else if (m && streq(name, "exited") && !streq(kv_get(kv, "deliberate") ?: "0", "1"))
                return m->state = RUN_MACHINE_DOWN, "worker exited";
        else if (streq(name, "restarted"))
                return st->restarts++, "restarted";
        else if (m && streq(name, "worker_event") && ev && streq(ev, "boot-standby"))
                m->standby_next = true;
        else if (m && streq(name, "worker_event") && ev && streq(ev, "boot-restored"))
                return status_standby_runs(m);
        else if (m && streq(name, "worker_event") && ev && streq(ev, "guest-ready"))
                return m->state = RUN_MACHINE_READY, "ready";
        else if (m && streq(name, "worker_event") && ev && streq(ev, "command") && message)
                status_command(st, child, message);
        else if (streq(name, "worker_event") && ev && kind && streq(kind, "script")) {
                if (streq(ev, "subtest-begin"))
                        return snprintf(st->subtest, sizeof(st->subtest), "%s", message ?: ""), "subtest begins";
                if (streq(ev, "subtest-end") || streq(ev, "subtest-failed"))
                        return st->subtest[0] = 0, streq(ev, "subtest-end") ? "subtest passed" : "subtest failed";
        }
        return NULL;
}
