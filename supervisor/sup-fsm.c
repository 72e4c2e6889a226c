/* SPDX-License-Identifier: MIT */
/*
 * sup-fsm.c: the child state x event table. Reading the table is reading the
 * behaviour; a cell left out is an event the runtime must never feed in that
 * state (CHILD_ACT_INVALID), which test-sup-fsm checks cell by cell.
 */
#include "sup-fsm.h"

#include "macro.h"

/* clang-format off */
#define T(s, a) { .next = (s), .action = (a), .set = true }

struct cell {
        enum child_state next;
        enum child_action action;
        bool set;
};

static const struct cell fsm_table[_CHILD_STATE_MAX][_CHILD_EVENT_MAX] = {
        [CHILD_STOPPED] = {
                [CHILD_EV_START] = T(CHILD_STARTING, CHILD_ACT_SPAWN),
                [CHILD_EV_STOP] = T(CHILD_STOPPED, CHILD_ACT_STOPPED),
                [CHILD_EV_REMOVE] = T(CHILD_REMOVED, CHILD_ACT_NONE),
        },
        [CHILD_STARTING] = {
                /* The spawn failed before any process existed: judged like a crash,
                 * so a missing executable ends in GIVE_UP instead of a busy loop. */
                [CHILD_EV_SPAWN_FAILED] = T(CHILD_STOPPED, CHILD_ACT_REPORT_EXIT),
                [CHILD_EV_HELLO] = T(CHILD_CONFIGURING, CHILD_ACT_HANDSHAKE),
                [CHILD_EV_READY] = T(CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR),
                [CHILD_EV_CHAN_LOST] = T(CHILD_KILLING, CHILD_ACT_KILL),
                [CHILD_EV_EXITED] = T(CHILD_STOPPED, CHILD_ACT_REPORT_EXIT),
                [CHILD_EV_STOP] = T(CHILD_STOPPING, CHILD_ACT_TERMINATE),
                /* A start that hangs must not hold the tree (OTP's hanging_restart_loop). */
                [CHILD_EV_START_TIMEOUT] = T(CHILD_KILLING, CHILD_ACT_KILL),
        },
        [CHILD_CONFIGURING] = {
                [CHILD_EV_HELLO] = T(CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR),
                [CHILD_EV_READY] = T(CHILD_RUNNING, CHILD_ACT_MARK_READY),
                [CHILD_EV_CHAN_LOST] = T(CHILD_KILLING, CHILD_ACT_KILL),
                [CHILD_EV_EXITED] = T(CHILD_STOPPED, CHILD_ACT_REPORT_EXIT),
                [CHILD_EV_STOP] = T(CHILD_STOPPING, CHILD_ACT_TERMINATE),
                [CHILD_EV_START_TIMEOUT] = T(CHILD_KILLING, CHILD_ACT_KILL),
        },
        [CHILD_RUNNING] = {
                [CHILD_EV_HELLO] = T(CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR),
                [CHILD_EV_READY] = T(CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR),
                [CHILD_EV_CHAN_LOST] = T(CHILD_KILLING, CHILD_ACT_KILL),
                [CHILD_EV_EXITED] = T(CHILD_STOPPED, CHILD_ACT_REPORT_EXIT),
                [CHILD_EV_STOP] = T(CHILD_STOPPING, CHILD_ACT_TERMINATE),
        },
        [CHILD_STOPPING] = {
                /* Frames still in flight when we decided to stop it are harmless. */
                [CHILD_EV_HELLO] = T(CHILD_STOPPING, CHILD_ACT_NONE),
                [CHILD_EV_READY] = T(CHILD_STOPPING, CHILD_ACT_NONE),
                [CHILD_EV_CHAN_LOST] = T(CHILD_STOPPING, CHILD_ACT_NONE),
                [CHILD_EV_EXITED] = T(CHILD_STOPPED, CHILD_ACT_STOPPED),
                [CHILD_EV_STOP] = T(CHILD_STOPPING, CHILD_ACT_NONE),
                [CHILD_EV_STOP_TIMEOUT] = T(CHILD_STOPPING, CHILD_ACT_KILL),
        },
        [CHILD_KILLING] = {
                [CHILD_EV_HELLO] = T(CHILD_KILLING, CHILD_ACT_NONE),
                [CHILD_EV_READY] = T(CHILD_KILLING, CHILD_ACT_NONE),
                [CHILD_EV_CHAN_LOST] = T(CHILD_KILLING, CHILD_ACT_NONE),
                /* It broke the protocol or its channel: that exit counts as a crash. */
                [CHILD_EV_EXITED] = T(CHILD_STOPPED, CHILD_ACT_REPORT_EXIT),
                /* A teardown overtook the kill: the exit is now one we asked for. */
                [CHILD_EV_STOP] = T(CHILD_STOPPING, CHILD_ACT_NONE),
        },
        [CHILD_REMOVED] = {
                [CHILD_EV_STOP] = T(CHILD_REMOVED, CHILD_ACT_STOPPED),
                [CHILD_EV_REMOVE] = T(CHILD_REMOVED, CHILD_ACT_NONE),
        },
};
/* clang-format on */

struct child_transition child_fsm_step(enum child_state state, enum child_event event) {
        if ((unsigned) state >= _CHILD_STATE_MAX || (unsigned) event >= _CHILD_EVENT_MAX)
                return (struct child_transition){.next = state, .action = CHILD_ACT_INVALID};

        const struct cell *c = &fsm_table[state][event];
        if (!c->set)
                return (struct child_transition){.next = state, .action = CHILD_ACT_INVALID};
        return (struct child_transition){.next = c->next, .action = c->action};
}

bool child_state_has_process(enum child_state s) {
        return s != CHILD_STOPPED && s != CHILD_REMOVED;
}

static const char *const state_names[_CHILD_STATE_MAX] = {
        [CHILD_STOPPED] = "stopped", [CHILD_STARTING] = "starting", [CHILD_CONFIGURING] = "configuring",
        [CHILD_RUNNING] = "running", [CHILD_STOPPING] = "stopping", [CHILD_KILLING] = "killing",
        [CHILD_REMOVED] = "removed",
};

static const char *const event_names[_CHILD_EVENT_MAX] = {
        [CHILD_EV_START] = "start",         [CHILD_EV_SPAWN_FAILED] = "spawn-failed",
        [CHILD_EV_HELLO] = "hello",         [CHILD_EV_READY] = "ready",
        [CHILD_EV_CHAN_LOST] = "chan-lost", [CHILD_EV_EXITED] = "exited",
        [CHILD_EV_STOP] = "stop",           [CHILD_EV_STOP_TIMEOUT] = "stop-timeout",
        [CHILD_EV_REMOVE] = "remove",       [CHILD_EV_START_TIMEOUT] = "start-timeout",
};

static const char *const action_names[_CHILD_ACTION_MAX] = {
        [CHILD_ACT_NONE] = "none",
        [CHILD_ACT_SPAWN] = "spawn",
        [CHILD_ACT_HANDSHAKE] = "handshake",
        [CHILD_ACT_MARK_READY] = "mark-ready",
        [CHILD_ACT_TERMINATE] = "terminate",
        [CHILD_ACT_KILL] = "kill",
        [CHILD_ACT_REPORT_EXIT] = "report-exit",
        [CHILD_ACT_STOPPED] = "stopped",
        [CHILD_ACT_PROTOCOL_ERROR] = "protocol-error",
        [CHILD_ACT_INVALID] = "invalid",
};

const char *child_state_to_string(enum child_state s) {
        return (unsigned) s < ELEMENTSOF(state_names) ? state_names[s] : NULL;
}

const char *child_event_to_string(enum child_event e) {
        return (unsigned) e < ELEMENTSOF(event_names) ? event_names[e] : NULL;
}

const char *child_action_to_string(enum child_action a) {
        return (unsigned) a < ELEMENTSOF(action_names) ? action_names[a] : NULL;
}
