/* SPDX-License-Identifier: MIT */
/*
 * test-sup-fsm: every cell of the child state x event table, written out a
 * second time here as the expected behaviour, plus the lifecycles the runtime
 * walks (start, crash, stop, stop timeout, protocol error, removal).
 */
#include "sup-fsm.h"
#include "tap.h"

#include "macro.h"

struct expect {
        enum child_state state;
        enum child_event event;
        enum child_state next;
        enum child_action action;
};

/* Every allowed cell. Any (state, event) not listed must be INVALID. */
static const struct expect allowed[] = {
        {CHILD_STOPPED, CHILD_EV_START, CHILD_STARTING, CHILD_ACT_SPAWN},
        {CHILD_STOPPED, CHILD_EV_STOP, CHILD_STOPPED, CHILD_ACT_STOPPED},
        {CHILD_STOPPED, CHILD_EV_REMOVE, CHILD_REMOVED, CHILD_ACT_NONE},

        {CHILD_STARTING, CHILD_EV_SPAWN_FAILED, CHILD_STOPPED, CHILD_ACT_REPORT_EXIT},
        {CHILD_STARTING, CHILD_EV_HELLO, CHILD_CONFIGURING, CHILD_ACT_HANDSHAKE},
        {CHILD_STARTING, CHILD_EV_READY, CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR},
        {CHILD_STARTING, CHILD_EV_CHAN_LOST, CHILD_KILLING, CHILD_ACT_KILL},
        {CHILD_STARTING, CHILD_EV_EXITED, CHILD_STOPPED, CHILD_ACT_REPORT_EXIT},
        {CHILD_STARTING, CHILD_EV_STOP, CHILD_STOPPING, CHILD_ACT_TERMINATE},
        {CHILD_STARTING, CHILD_EV_START_TIMEOUT, CHILD_KILLING, CHILD_ACT_KILL},

        {CHILD_CONFIGURING, CHILD_EV_HELLO, CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR},
        {CHILD_CONFIGURING, CHILD_EV_READY, CHILD_RUNNING, CHILD_ACT_MARK_READY},
        {CHILD_CONFIGURING, CHILD_EV_CHAN_LOST, CHILD_KILLING, CHILD_ACT_KILL},
        {CHILD_CONFIGURING, CHILD_EV_EXITED, CHILD_STOPPED, CHILD_ACT_REPORT_EXIT},
        {CHILD_CONFIGURING, CHILD_EV_STOP, CHILD_STOPPING, CHILD_ACT_TERMINATE},
        {CHILD_CONFIGURING, CHILD_EV_START_TIMEOUT, CHILD_KILLING, CHILD_ACT_KILL},

        {CHILD_RUNNING, CHILD_EV_HELLO, CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR},
        {CHILD_RUNNING, CHILD_EV_READY, CHILD_KILLING, CHILD_ACT_PROTOCOL_ERROR},
        {CHILD_RUNNING, CHILD_EV_CHAN_LOST, CHILD_KILLING, CHILD_ACT_KILL},
        {CHILD_RUNNING, CHILD_EV_EXITED, CHILD_STOPPED, CHILD_ACT_REPORT_EXIT},
        {CHILD_RUNNING, CHILD_EV_STOP, CHILD_STOPPING, CHILD_ACT_TERMINATE},

        {CHILD_STOPPING, CHILD_EV_HELLO, CHILD_STOPPING, CHILD_ACT_NONE},
        {CHILD_STOPPING, CHILD_EV_READY, CHILD_STOPPING, CHILD_ACT_NONE},
        {CHILD_STOPPING, CHILD_EV_CHAN_LOST, CHILD_STOPPING, CHILD_ACT_NONE},
        {CHILD_STOPPING, CHILD_EV_EXITED, CHILD_STOPPED, CHILD_ACT_STOPPED},
        {CHILD_STOPPING, CHILD_EV_STOP, CHILD_STOPPING, CHILD_ACT_NONE},
        {CHILD_STOPPING, CHILD_EV_STOP_TIMEOUT, CHILD_STOPPING, CHILD_ACT_KILL},

        {CHILD_KILLING, CHILD_EV_HELLO, CHILD_KILLING, CHILD_ACT_NONE},
        {CHILD_KILLING, CHILD_EV_READY, CHILD_KILLING, CHILD_ACT_NONE},
        {CHILD_KILLING, CHILD_EV_CHAN_LOST, CHILD_KILLING, CHILD_ACT_NONE},
        {CHILD_KILLING, CHILD_EV_EXITED, CHILD_STOPPED, CHILD_ACT_REPORT_EXIT},
        {CHILD_KILLING, CHILD_EV_STOP, CHILD_STOPPING, CHILD_ACT_NONE},

        {CHILD_REMOVED, CHILD_EV_STOP, CHILD_REMOVED, CHILD_ACT_STOPPED},
        {CHILD_REMOVED, CHILD_EV_REMOVE, CHILD_REMOVED, CHILD_ACT_NONE},
};

static const struct expect *find_allowed(enum child_state s, enum child_event e) {
        for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                if (allowed[i].state == s && allowed[i].event == e)
                        return &allowed[i];
        return NULL;
}

static void test_every_cell(void) {
        for (int s = 0; s < _CHILD_STATE_MAX; s++)
                for (int e = 0; e < _CHILD_EVENT_MAX; e++) {
                        struct child_transition t = child_fsm_step(s, e);
                        const struct expect *x = find_allowed(s, e);
                        if (x)
                                CHECK(t.next == x->next && t.action == x->action, "%s x %s -> %s/%s",
                                      child_state_to_string(s), child_event_to_string(e),
                                      child_state_to_string(x->next), child_action_to_string(x->action));
                        else
                                CHECK(t.next == (enum child_state) s && t.action == CHILD_ACT_INVALID,
                                      "%s x %s is invalid", child_state_to_string(s), child_event_to_string(e));
                }
}

static void test_out_of_range(void) {
        struct child_transition t = child_fsm_step(_CHILD_STATE_MAX, CHILD_EV_START);
        CHECK(t.action == CHILD_ACT_INVALID, "state out of range is invalid");
        t = child_fsm_step(CHILD_STOPPED, _CHILD_EVENT_MAX);
        CHECK(t.action == CHILD_ACT_INVALID && t.next == CHILD_STOPPED, "event out of range is invalid");
}

static void test_names(void) {
        bool all = true;
        for (int s = 0; s < _CHILD_STATE_MAX; s++)
                all = all && child_state_to_string(s);
        for (int e = 0; e < _CHILD_EVENT_MAX; e++)
                all = all && child_event_to_string(e);
        for (int a = 0; a < _CHILD_ACTION_MAX; a++)
                all = all && child_action_to_string(a);
        CHECK(all, "every state, event and action has a name");
        CHECK(!child_state_to_string(_CHILD_STATE_MAX), "no name past the end");
}

/* Walk a sequence of events and check the actions in order. */
static bool walk(enum child_state s, const enum child_event *ev, const enum child_action *act, size_t n,
                 enum child_state final) {
        for (size_t i = 0; i < n; i++) {
                struct child_transition t = child_fsm_step(s, ev[i]);
                if (t.action != act[i])
                        return false;
                s = t.next;
        }
        return s == final;
}

static void test_lifecycles(void) {
        {
                const enum child_event ev[] = {CHILD_EV_START, CHILD_EV_HELLO, CHILD_EV_READY, CHILD_EV_EXITED};
                const enum child_action act[] = {CHILD_ACT_SPAWN, CHILD_ACT_HANDSHAKE, CHILD_ACT_MARK_READY,
                                                 CHILD_ACT_REPORT_EXIT};
                CHECK(walk(CHILD_STOPPED, ev, act, 4, CHILD_STOPPED), "start, ready, crash: exit is judged");
        }
        {
                const enum child_event ev[] = {CHILD_EV_START, CHILD_EV_HELLO,        CHILD_EV_READY,
                                               CHILD_EV_STOP,  CHILD_EV_STOP_TIMEOUT, CHILD_EV_CHAN_LOST,
                                               CHILD_EV_EXITED};
                const enum child_action act[] = {CHILD_ACT_SPAWN,     CHILD_ACT_HANDSHAKE, CHILD_ACT_MARK_READY,
                                                 CHILD_ACT_TERMINATE, CHILD_ACT_KILL,      CHILD_ACT_NONE,
                                                 CHILD_ACT_STOPPED};
                CHECK(walk(CHILD_STOPPED, ev, act, 7, CHILD_STOPPED),
                      "stop ignoring SIGTERM: timeout escalates to kill, exit completes the stop");
        }
        {
                const enum child_event ev[] = {CHILD_EV_START, CHILD_EV_HELLO, CHILD_EV_READY, CHILD_EV_CHAN_LOST,
                                               CHILD_EV_EXITED};
                const enum child_action act[] = {CHILD_ACT_SPAWN, CHILD_ACT_HANDSHAKE, CHILD_ACT_MARK_READY,
                                                 CHILD_ACT_KILL, CHILD_ACT_REPORT_EXIT};
                CHECK(walk(CHILD_STOPPED, ev, act, 5, CHILD_STOPPED),
                      "bad frame: channel lost, kill, the exit counts as a crash");
        }
        {
                const enum child_event ev[] = {CHILD_EV_START, CHILD_EV_HELLO, CHILD_EV_READY,
                                               CHILD_EV_READY, CHILD_EV_STOP,  CHILD_EV_EXITED};
                const enum child_action act[] = {CHILD_ACT_SPAWN,          CHILD_ACT_HANDSHAKE, CHILD_ACT_MARK_READY,
                                                 CHILD_ACT_PROTOCOL_ERROR, CHILD_ACT_NONE,      CHILD_ACT_STOPPED};
                CHECK(walk(CHILD_STOPPED, ev, act, 6, CHILD_STOPPED),
                      "second READY is a protocol error; a teardown overtaking the kill makes the exit ours");
        }
        {
                const enum child_event ev[] = {CHILD_EV_START, CHILD_EV_SPAWN_FAILED, CHILD_EV_REMOVE, CHILD_EV_START};
                const enum child_action act[] = {CHILD_ACT_SPAWN, CHILD_ACT_REPORT_EXIT, CHILD_ACT_NONE,
                                                 CHILD_ACT_INVALID};
                CHECK(walk(CHILD_STOPPED, ev, act, 4, CHILD_REMOVED),
                      "spawn failure is judged; a removed child never starts again");
        }
        CHECK(!child_state_has_process(CHILD_STOPPED) && !child_state_has_process(CHILD_REMOVED) &&
                      child_state_has_process(CHILD_STARTING) && child_state_has_process(CHILD_KILLING),
              "has_process matches the states with a process");
}

int main(void) {
        test_every_cell();
        test_out_of_range();
        test_names();
        test_lifecycles();
        return tap_done();
}
