/* SPDX-License-Identifier: MIT */
/*
 * run-status.h: what a run is doing, folded from its lifecycle events (the
 * sup_hooks.event stream live, or timeline.jsonl afterwards): each machine's
 * state, restarts, the current subtest and the last command. Pure; shared by
 * the live progress (run-progress.c) and `vigil ps` (run-ps.c), so both say
 * the same about a machine.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define RUN_STATUS_MACHINES_MAX 256 /* counted beyond this, not named */

enum run_machine_state {
        RUN_MACHINE_STARTING, /* worker up, machine not started */
        RUN_MACHINE_STANDBY,  /* not started either: its QEMU loads the boot snapshot ahead, the guest paused */
        RUN_MACHINE_BOOTING,  /* QEMU / nspawn running, guest shell not yet */
        RUN_MACHINE_READY,    /* guest shell connected */
        RUN_MACHINE_DOWN,     /* hypervisor or worker gone */
        _RUN_MACHINE_STATE_MAX,
};

struct run_status_machine {
        char name[64];
        enum run_machine_state state;
        long long pid;         /* its machine process (role=machine) since spawned, until it exits; 0: none */
        bool standby_next;     /* boot-standby said: the next machine proc_spawned is loaded ahead of start() */
        long long standby_pid; /* that QEMU until it runs (boot-restored) or exits; 0: none */
};

struct run_status {
        struct run_status_machine machines[RUN_STATUS_MACHINES_MAX];
        size_t n_machines;
        unsigned restarts;
        char subtest[128];
        char last[256]; /* the last command, "b: echo hi (exit 0, 75 ms)" */
};

/* Fold one event in; returns the milestone it is ("booting", "ready", "subtest
 * passed", ...) or NULL. @kv: NULL-terminated key, value pairs. */
const char *run_status_feed(struct run_status *st, const char *name, const char *child, const char *kind,
                            const char *const *kv, const char *message);
const char *run_machine_state_to_string(enum run_machine_state s);
/* The machine named @name, or NULL if no event has named it. */
const struct run_status_machine *run_status_machine(const struct run_status *st, const char *name);
