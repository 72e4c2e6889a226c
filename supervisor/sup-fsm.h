/* SPDX-License-Identifier: MIT */
/*
 * sup-fsm.h: the life of one supervised child as a state x event table
 * (s6-supervise's action array, one row per child instead of one process per
 * service). Pure data and one lookup: no I/O, no libevent, no logging. The
 * runtime feeds events, performs the returned action and stores the next
 * state; the restart decision itself lives in sup-strategy.c.
 *
 * EXITED is fed only once the process has been reaped AND its channel is
 * lost, whichever comes second (tmux's job rule): before that the child's
 * record must stay alive because either side can still call back into it.
 */
#pragma once

#include <stdbool.h>

enum child_state {
        CHILD_STOPPED,     /* no process; may be started */
        CHILD_STARTING,    /* forked+exec'd, waiting for HELLO */
        CHILD_CONFIGURING, /* HELLO seen, restore+CONFIG sent, waiting for READY */
        CHILD_RUNNING,     /* READY: requests may be routed to it */
        CHILD_STOPPING,    /* we asked it to stop (SIGTERM + timer, or SIGKILL) */
        CHILD_KILLING,     /* it broke its channel (or the protocol): SIGKILL sent, exit will count */
        CHILD_REMOVED,     /* spec dropped: temporary child exited, permanent failure, ... */
        _CHILD_STATE_MAX,
};

enum child_event {
        CHILD_EV_START,        /* the strategy wants it running */
        CHILD_EV_SPAWN_FAILED, /* fork/exec failed: behaves like a crash at once */
        CHILD_EV_HELLO,
        CHILD_EV_READY,
        CHILD_EV_CHAN_LOST,     /* peer reported lost (EOF, bad frame, overflow, ...) */
        CHILD_EV_EXITED,        /* reaped AND channel lost */
        CHILD_EV_STOP,          /* the strategy or the teardown wants it gone */
        CHILD_EV_STOP_TIMEOUT,  /* shutdown timer expired */
        CHILD_EV_REMOVE,        /* drop the spec for good */
        CHILD_EV_START_TIMEOUT, /* not READY within the spec's start_timeout */
        _CHILD_EVENT_MAX,
};

enum child_action {
        CHILD_ACT_NONE,           /* nothing to do (event expected but irrelevant here) */
        CHILD_ACT_SPAWN,          /* fork + exec the worker */
        CHILD_ACT_HANDSHAKE,      /* send PROC_LIST, FD_RESTOREs, CONFIG */
        CHILD_ACT_MARK_READY,     /* flush queued requests, replay idempotent ones */
        CHILD_ACT_TERMINATE,      /* shutdown spec: SIGTERM + timer, or SIGKILL for brutal_kill */
        CHILD_ACT_KILL,           /* SIGKILL now */
        CHILD_ACT_REPORT_EXIT,    /* an exit the strategy must judge */
        CHILD_ACT_STOPPED,        /* an exit we asked for: the pending stop is complete */
        CHILD_ACT_PROTOCOL_ERROR, /* event not allowed in this state: kill the channel */
        CHILD_ACT_INVALID,        /* the runtime fed an impossible event: a vigil bug */
        _CHILD_ACTION_MAX,
};

struct child_transition {
        enum child_state next;
        enum child_action action;
};

/* The cell for (@state, @event). Never fails: unlisted cells are INVALID with
 * the state unchanged. */
struct child_transition child_fsm_step(enum child_state state, enum child_event event);

/* True while a process may exist for the child (anything but STOPPED/REMOVED). */
bool child_state_has_process(enum child_state s);

const char *child_state_to_string(enum child_state s);
const char *child_event_to_string(enum child_event e);
const char *child_action_to_string(enum child_action a);
