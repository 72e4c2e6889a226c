/* SPDX-License-Identifier: MIT */
/*
 * sup-tree.c owns the supervision tree at run time: the life of each child
 * (its state table fed with events, its worker spawned and stopped, its
 * "down" decided once it is both reaped and disconnected), the strategy's
 * verdict on an unexpected exit, and the queue of stop/start operations a
 * restart plan or a teardown turns into (carried out one at a time, like
 * OTP's synchronous starts and ordered terminations). It is the top of the
 * runtime: the files below report to it through tree_child_ops only.
 */
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "config.h"
#include "exit-status.h"
#include "sup-cgroup.h"
#include "sup-dispatch.h"
#include "sup-events.h"
#include "sup-proc.h"
#include "sup-reap.h"
#include "sup-records.h"
#include "sup-route.h"
#include "sup-spawn.h"
#include "sup-stderr.h"
#include "sup-tree.h"

static void child_feed(struct child *c, enum child_event ev);

static const char *const op_names[_OP_KIND_MAX] = {
        [OP_STOP] = "stop",
        [OP_START] = "start",
        [OP_REMOVE] = "remove",
        [OP_FINISH] = "finish",
};

/* ---- the operation queue ---- */

static int ops_push(struct sup *s, enum op_kind kind, struct child *c) {
        if (s->ops_head > 0 && s->ops_head == s->n_ops)
                s->ops_head = s->n_ops = 0;
        if (s->n_ops == s->ops_cap) {
                size_t cap = MAX(s->ops_cap * 2, (size_t) 16);
                struct op *o = realloc(s->ops_queue, cap * sizeof(struct op));
                if (!o)
                        return log_error_errno(-ENOMEM, "Cannot queue %s of '%s'", op_names[kind],
                                               c ? c->spec.id : "tree");
                s->ops_queue = o;
                s->ops_cap = cap;
        }
        s->ops_queue[s->n_ops++] = (struct op){.kind = kind, .c = c};
        if (kind == OP_STOP)
                c->stop_pending = true;
        if (kind == OP_START)
                c->start_pending = true;
        return 0;
}

static void ops_clear(struct sup *s) {
        for (size_t i = s->ops_head; i < s->n_ops; i++)
                if (s->ops_queue[i].c) {
                        s->ops_queue[i].c->stop_pending = false;
                        s->ops_queue[i].c->start_pending = false;
                }
        s->ops_head = s->n_ops = 0;
        s->ops_gen++;
}

void tree_finish(struct sup *s) {
        if (s->finishing)
                return;
        s->finishing = true;
        if (s->ev_finish)
                (void) event_del(s->ev_finish);
        reap_kill_leftovers(s);
        sup_cgroup_remove_run(s->run_id);
        (void) event_base_loopexit(s->base, NULL);
}

static void on_finish_timeout(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;

        log_warning("%zu spawned process(es) still alive after SIGTERM, killing", proc_count(s));
        tree_finish(s);
}

/* Run op @i; true once it is complete. */
static bool op_step(struct sup *s, size_t i) {
        struct op op = s->ops_queue[i];
        bool first = !s->ops_queue[i].started;
        struct child *c = op.c;

        s->ops_queue[i].started = true;
        switch (op.kind) {
        case OP_STOP:
                if (first)
                        child_feed(c, CHILD_EV_STOP);
                if (child_state_has_process(c->state))
                        return false;
                c->stop_pending = false;
                return true;

        case OP_START:
                if (first) {
                        c->start_pending = false;
                        if (c->state != CHILD_STOPPED || s->tearing_down)
                                return true;
                        if (c->started_once) {
                                c->restarts++;
                                events_emit(s, c, LOG_NOTICE, LOG_EVENT_RESTARTED, "restarted", NULL,
                                            "Restarting %s '%s' (restart %" PRIu64 ")",
                                            worker_kind_to_string(c->spec.kind), c->spec.id, c->restarts);
                        }
                        c->started_once = true;
                        child_feed(c, CHILD_EV_START);
                }
                return c->state == CHILD_RUNNING || !child_state_has_process(c->state);

        case OP_REMOVE:
                if (c->state == CHILD_STOPPED) {
                        child_feed(c, CHILD_EV_REMOVE);
                        proc_kill_all(c, false);
                        fdstore_clear(&c->fds);
                        route_target_down(c, false);
                        events_emit(s, c, LOG_INFO, LOG_EVENT_NONE, "removed", NULL,
                                    "Child '%s' removed from the tree", c->spec.id);
                }
                return true;

        case OP_FINISH:
                if (first) {
                        for (size_t k = 0; k < s->n_children; k++)
                                proc_kill_all(&s->children[k], false);
                        if (proc_count(s) > 0)
                                (void) timer_add_usec(s->ev_finish, PROC_TERM_USEC + 200 * USEC_PER_MSEC);
                }
                if (proc_count(s) == 0)
                        tree_finish(s);
                return false; /* nothing runs after it */

        case _OP_KIND_MAX:
                break;
        }
        return true;
}

static bool tree_is_down(struct sup *s) {
        for (size_t i = 0; i < s->n_children; i++)
                if (child_state_has_process(s->children[i].state) || s->children[i].start_pending)
                        return false;
        return true;
}

void tree_advance(struct sup *s) {
        /* Re-entered from an op's side effects (a spawn that fails at once, an exit
         * handled inline): the outer loop re-reads the queue, so just return. */
        if (s->advancing || s->finishing)
                return;
        s->advancing = true;
        while (s->ops_head < s->n_ops) {
                uint64_t gen = s->ops_gen;
                size_t head = s->ops_head;
                bool done = op_step(s, head);

                if (s->finishing)
                        break;
                if (s->ops_gen != gen)
                        continue; /* the queue was replaced (teardown began): start over */
                if (!done)
                        break;
                s->ops_head++;
        }
        if (s->ops_head == s->n_ops)
                s->ops_head = s->n_ops = 0;
        s->advancing = false;

        if (s->running && s->n_ops == 0 && !s->tearing_down && tree_is_down(s))
                tree_shutdown(s, s->exit_code, "every child has ended");
}

/* ---- events of one child ---- */

static bool child_will_restart(const struct child *c) {
        return c->start_pending && !c->sup->tearing_down;
}

int child_signal(struct child *c, int sig) {
        if (c->pidfd < 0)
                return -ESRCH;
        return pidfd_send(c->pidfd, sig);
}

static void child_kill_now(struct child *c, const char *why) {
        char pid[32];

        if (c->reaped)
                return;
        snprintf(pid, sizeof(pid), "%d", (int) c->pid);
        events_emit(c->sup, c, LOG_WARNING, LOG_EVENT_KILLED, "killed",
                    (const char *[]){"pid", pid, "reason", why, NULL}, "Killing %s '%s' (pid %d): %s",
                    worker_kind_to_string(c->spec.kind), c->spec.id, (int) c->pid, why);
        (void) child_signal(c, SIGKILL);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg) {
        struct child *c = arg;

        child_feed(c, CHILD_EV_STOP_TIMEOUT);
        tree_advance(c->sup);
}

static void on_start_timeout(evutil_socket_t fd, short what, void *arg) {
        struct child *c = arg;

        c->faulted = true;
        child_feed(c, CHILD_EV_START_TIMEOUT);
        tree_advance(c->sup);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
        struct child *c = arg;

        if (c->reaped && c->peer && !c->lost)
                /* Something it forked still holds its end of the channel. */
                peer_kill(c->peer, PEER_LOST_KILLED, "worker exited but its channel stayed open");
        else if (!c->reaped)
                child_kill_now(c, "closed its channel but did not exit");
}

static void child_terminate(struct child *c) {
        char pid[32], ms[32];

        snprintf(pid, sizeof(pid), "%d", (int) c->pid);
        if (c->spec.shutdown_ms == SHUTDOWN_BRUTAL_KILL) {
                child_kill_now(c, "shutdown is brutal_kill");
                return;
        }
        snprintf(ms, sizeof(ms), "%" PRId64, c->spec.shutdown_ms);
        events_emit(c->sup, c, LOG_INFO, LOG_EVENT_NONE, "stopping",
                    (const char *[]){"pid", pid, "timeout_ms", ms, NULL},
                    "Stopping %s '%s' (SIGTERM, SIGKILL after %s ms)", worker_kind_to_string(c->spec.kind), c->spec.id,
                    ms);
        (void) child_signal(c, SIGTERM);
        (void) timer_add_usec(c->ev_stop, (uint64_t) c->spec.shutdown_ms * USEC_PER_MSEC);
}

static int child_spawn(struct child *c) {
        struct sup *s = c->sup;
        _cleanup_close_ int mine = -EBADF, theirs = -EBADF;
        _cleanup_free_ char **argv = NULL;
        char exe[4096], err[512] = "", pid[32];
        size_t n_args = strv_length(c->spec.args), k = 0;
        int sv[2], r;

        c->pid = 0; /* until there is a new process, there is none */
        r = spawn_resolve_exe(s->self_dir, c->kind, exe, sizeof(exe));
        if (r < 0) {
                events_emit(s, c, LOG_ERR, LOG_EVENT_NONE, "spawn_failed",
                            (const char *[]){"reason", "not found", NULL},
                            "Cannot find %s: not in $VIGIL_LIBEXEC_DIR, %s, the build tree %s or %s", c->kind->exe,
                            s->self_dir, VIGIL_BUILD_ROOT, VIGIL_LIBEXECDIR);
                return r;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_error_errno(negative_errno(), "socketpair for '%s'", c->spec.id);
        mine = sv[0];
        theirs = sv[1];

        argv = calloc(n_args + 4, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        argv[k++] = exe;
        argv[k++] = (char *) "--name";
        argv[k++] = c->spec.id;
        for (size_t i = 0; i < n_args; i++)
                argv[k++] = c->spec.args[i];

        struct spawn_req req = {
                .path = exe,
                .argv = argv,
                .envp = s->worker_env,
                .stdio = {c->spec.interactive ? STDIN_FILENO : -1, STDOUT_FILENO,
                          c->spec.interactive ? STDERR_FILENO : sup_stderr_child_fd(s->stderr_relay)},
                .chan_fd = theirs,
                .caps = &c->kind->caps,
        };
        r = spawn_process(&req, &c->pid, &c->pidfd, err, sizeof(err));
        if (r < 0) {
                events_emit(s, c, LOG_ERR, LOG_EVENT_NONE, "spawn_failed", (const char *[]){"reason", err, NULL},
                            "Cannot start %s '%s': %s", worker_kind_to_string(c->spec.kind), c->spec.id, err);
                return r;
        }
        theirs = safe_close(theirs);

        c->generation++;
        c->reaped = c->lost = c->faulted = false;
        c->exit_code = c->exit_signal = 0;
        c->spawned_usec = now_usec();
        r = peer_new(s->base, mine, DIR_TO_SUP, &dispatch_peer_ops, c, &c->peer);
        if (r < 0) {
                /* It is running but unreachable: kill it; the reap reports the exit. */
                (void) pidfd_send(c->pidfd, SIGKILL);
                c->lost = true;
                c->lost_reason = PEER_LOST_IO;
        } else {
                TAKE_FD(mine);
                peer_set_queue_max(c->peer, CHILD_QUEUE_MAX);
        }
        r = reap_watch_child(c);
        if (r < 0)
                log_warning_errno(r, "Cannot watch pidfd of '%s', relying on SIGCHLD", c->spec.id);
        if (c->spec.start_timeout_ms > 0)
                (void) timer_add_usec(c->ev_start, (uint64_t) c->spec.start_timeout_ms * USEC_PER_MSEC);

        snprintf(pid, sizeof(pid), "%d", (int) c->pid);
        events_emit(s, c, LOG_INFO, LOG_EVENT_SPAWNED, "spawned", (const char *[]){"pid", pid, "exe", exe, NULL},
                    "Started %s '%s' (pid %d)", worker_kind_to_string(c->spec.kind), c->spec.id, (int) c->pid);
        return 0;
}

static void child_reset_process(struct child *c) {
        (void) event_del(c->ev_stop);
        (void) event_del(c->ev_start);
        (void) event_del(c->ev_drain);
        if (c->ev_pidfd) {
                event_free(c->ev_pidfd);
                c->ev_pidfd = NULL;
        }
        c->pidfd = safe_close(c->pidfd);
}

/* The child is down (reaped + channel lost, or never spawned). Decide. */
static void child_down(struct child *c, bool deliberate) {
        struct sup *s = c->sup;
        enum exit_kind kind = c->faulted ? EXIT_KIND_ABNORMAL : exit_kind_classify(c->exit_code, c->exit_signal);
        char pid[32], code[32], sig[32];
        bool will_restart = false;

        child_reset_process(c);
        snprintf(pid, sizeof(pid), "%d", (int) c->pid);
        snprintf(code, sizeof(code), "%d", c->exit_code);
        snprintf(sig, sizeof(sig), "%d", c->exit_signal);
        if (c->pid <= 0)
                events_emit(s, c, LOG_WARNING, LOG_EVENT_EXITED, "exited",
                            (const char *[]){"exit_code", code, "exit_kind", exit_kind_to_string(kind), "deliberate",
                                             "0", NULL},
                            "%s '%s' could not be started (counted as a crash)", worker_kind_to_string(c->spec.kind),
                            c->spec.id);
        else if (c->exit_signal)
                events_emit(s, c, deliberate ? LOG_INFO : LOG_WARNING, LOG_EVENT_EXITED, "exited",
                            (const char *[]){"pid", pid, "signal", sig, "exit_kind", exit_kind_to_string(kind),
                                             "deliberate", deliberate ? "1" : "0", NULL},
                            "%s '%s' (pid %d) killed by signal %s%s", worker_kind_to_string(c->spec.kind), c->spec.id,
                            (int) c->pid, strsignal(c->exit_signal), deliberate ? " (stopped by vigil)" : "");
        else
                events_emit(s, c, deliberate || kind == EXIT_KIND_NORMAL ? LOG_INFO : LOG_WARNING, LOG_EVENT_EXITED,
                            "exited",
                            (const char *[]){"pid", pid, "exit_code", code, "exit_kind", exit_kind_to_string(kind),
                                             "deliberate", deliberate ? "1" : "0", NULL},
                            "%s '%s' (pid %d) exited with code %d (%s%s)%s", worker_kind_to_string(c->spec.kind),
                            c->spec.id, (int) c->pid, c->exit_code, exit_kind_to_string(kind),
                            c->faulted ? ": after a protocol error" : "", deliberate ? " (stopped by vigil)" : "");

        route_origin_down(c);

        /* An exit we asked for, or one that raced with a stop we had already
         * planned (OTP ignores EXITs of children it is terminating): no judging. */
        if (deliberate || s->tearing_down || c->stop_pending) {
                will_restart = child_will_restart(c);
                route_target_down(c, will_restart);
                if (s->hooks.child_exited)
                        s->hooks.child_exited(s, c->spec.id, c->exit_code, c->exit_signal, will_restart,
                                              s->hooks_userdata);
                events_notify_status(s);
                return;
        }

        struct strategy_child sc[SUP_CHILDREN_MAX];
        struct strategy_plan *plan = malloc(sizeof(*plan));
        if (!plan) {
                log_error_errno(-ENOMEM, "Cannot plan the restart of '%s'", c->spec.id);
                tree_shutdown(s, VIGIL_EXIT_INTERNAL, "out of memory");
                return;
        }
        for (size_t i = 0; i < s->n_children; i++)
                sc[i] = (struct strategy_child){
                        .restart = s->children[i].spec.restart,
                        .alive = child_state_has_process(s->children[i].state),
                        .removed = s->children[i].state == CHILD_REMOVED,
                };
        int r = strategy_decide(s->strategy, &s->intensity, &s->history, sc, s->n_children, c->index, kind, now_usec(),
                                plan);
        if (r < 0) {
                log_error_errno(r, "Restart strategy failed for '%s'", c->spec.id);
                free(plan);
                tree_shutdown(s, VIGIL_EXIT_INTERNAL, "restart strategy failed");
                return;
        }

        switch (plan->verdict) {
        case VERDICT_NONE:
                for (size_t i = 0; i < plan->n_remove; i++)
                        (void) ops_push(s, OP_REMOVE, &s->children[plan->remove[i]]);
                break;
        case VERDICT_RESTART:
                for (size_t i = 0; i < plan->n_stop; i++)
                        (void) ops_push(s, OP_STOP, &s->children[plan->stop[i]]);
                for (size_t i = 0; i < plan->n_remove; i++)
                        (void) ops_push(s, OP_REMOVE, &s->children[plan->remove[i]]);
                for (size_t i = 0; i < plan->n_start; i++)
                        (void) ops_push(s, OP_START, &s->children[plan->start[i]]);
                will_restart = c->start_pending;
                break;
        case VERDICT_GIVE_UP: {
                char mr[16], ms[16];
                snprintf(mr, sizeof(mr), "%u", s->intensity.max_restarts);
                snprintf(ms, sizeof(ms), "%u", s->intensity.max_seconds);
                events_emit(s, c, LOG_ERR, LOG_EVENT_GAVE_UP, "gave_up",
                            (const char *[]){"max_restarts", mr, "max_seconds", ms, NULL},
                            "Giving up: more than %u restart(s) within %u s (last: '%s'); tearing the tree down",
                            s->intensity.max_restarts, s->intensity.max_seconds, c->spec.id);
                tree_shutdown(s, VIGIL_EXIT_GAVE_UP, "restart intensity exceeded");
                break;
        }
        case VERDICT_FAIL_RUN:
                events_emit(s, c, LOG_ERR, LOG_EVENT_GAVE_UP, "gave_up", (const char *[]){"reason", "config", NULL},
                            "%s '%s' rejected its configuration (exit %d): failing the run",
                            worker_kind_to_string(c->spec.kind), c->spec.id, c->exit_code);
                tree_shutdown(s, VIGIL_EXIT_USAGE, "a worker rejected its configuration");
                break;
        case _VERDICT_MAX:
                break;
        }
        free(plan);

        route_target_down(c, will_restart);
        if (s->hooks.child_exited)
                s->hooks.child_exited(s, c->spec.id, c->exit_code, c->exit_signal, will_restart, s->hooks_userdata);
        /* OTP's auto_shutdown = any_significant (the hook may already have begun it). */
        if (c->spec.significant && !will_restart) {
                char why[128];
                snprintf(why, sizeof(why), "significant child '%s' ended", c->spec.id);
                tree_shutdown(s, s->exit_code, why);
        }
        events_notify_status(s);
}

static void child_feed(struct child *c, enum child_event ev) {
        struct sup *s = c->sup;
        enum child_state old = c->state;
        struct child_transition t = child_fsm_step(c->state, ev);
        char pid[32];

        c->state = t.next;
        log_debug("child '%s': %s x %s -> %s (%s)", c->spec.id, child_state_to_string(old), child_event_to_string(ev),
                  child_state_to_string(t.next), child_action_to_string(t.action));

        switch (t.action) {
        case CHILD_ACT_NONE:
                break;
        case CHILD_ACT_SPAWN:
                if (child_spawn(c) < 0) {
                        c->exit_code = 127;
                        c->exit_signal = 0;
                        child_feed(c, CHILD_EV_SPAWN_FAILED);
                }
                break;
        case CHILD_ACT_HANDSHAKE:
                dispatch_handshake(c);
                break;
        case CHILD_ACT_MARK_READY:
                (void) event_del(c->ev_start);
                snprintf(pid, sizeof(pid), "%d", (int) c->pid);
                events_emit(s, c, LOG_INFO, LOG_EVENT_READY, "ready", (const char *[]){"pid", pid, NULL},
                            "%s '%s' (pid %d) is ready", worker_kind_to_string(c->spec.kind), c->spec.id,
                            (int) c->pid);
                route_target_ready(c);
                events_notify_status(s);
                break;
        case CHILD_ACT_TERMINATE:
                child_terminate(c);
                break;
        case CHILD_ACT_KILL:
                if (ev == CHILD_EV_CHAN_LOST && c->lost_reason == PEER_LOST_EOF)
                        /* A clean close usually means it is exiting: let it finish with its own
                         * exit code (restart-me, permanent failure) before we step in. */
                        (void) timer_add_usec(c->ev_drain, EOF_GRACE_USEC);
                else if (ev == CHILD_EV_START_TIMEOUT) {
                        char why[96];
                        snprintf(why, sizeof(why), "not ready within %" PRId64 " ms", c->spec.start_timeout_ms);
                        child_kill_now(c, why);
                } else if (ev == CHILD_EV_STOP_TIMEOUT) {
                        char why[96];
                        snprintf(why, sizeof(why), "did not stop within %" PRId64 " ms of SIGTERM",
                                 c->spec.shutdown_ms);
                        child_kill_now(c, why);
                } else
                        child_kill_now(c, "lost its channel");
                break;
        case CHILD_ACT_REPORT_EXIT:
                child_down(c, false);
                break;
        case CHILD_ACT_STOPPED:
                if (ev == CHILD_EV_EXITED)
                        child_down(c, true);
                break;
        case CHILD_ACT_PROTOCOL_ERROR:
                dispatch_protocol_error(c, "%s while %s", child_event_to_string(ev), child_state_to_string(old));
                child_kill_now(c, "protocol error");
                break;
        case CHILD_ACT_INVALID:
                log_error("Internal error: event %s for child '%s' in state %s, ignoring", child_event_to_string(ev),
                          c->spec.id, child_state_to_string(old));
                break;
        case _CHILD_ACTION_MAX:
                break;
        }
}

static void child_reaped(struct child *c, int code, int sig) {
        if (c->reaped)
                return;
        c->reaped = true;
        c->exit_code = code;
        c->exit_signal = sig;
        if (c->ev_pidfd)
                (void) event_del(c->ev_pidfd);
        (void) event_del(c->ev_drain);
        if (c->lost)
                child_feed(c, CHILD_EV_EXITED);
        else
                (void) timer_add_usec(c->ev_drain, DRAIN_USEC);
        tree_advance(c->sup);
}

static void child_lost(struct child *c, enum peer_lost_reason reason, const char *detail) {
        c->lost = true;
        c->lost_reason = reason;
        c->peer = peer_free(c->peer);
        (void) event_del(c->ev_drain);
        child_feed(c, CHILD_EV_CHAN_LOST);
        if (c->reaped)
                child_feed(c, CHILD_EV_EXITED);
        tree_advance(c->sup);
}

/* Machines power off gracefully: ask systemd for the whole bounded teardown
 * (plus slack) rather than its TimeoutStopSec default. */
static void notify_stopping(struct sup *s) {
        char extend[64];

        events_notify(s, "STOPPING=1");
        snprintf(extend, sizeof(extend), "EXTEND_TIMEOUT_USEC=%llu",
                 (unsigned long long) (TEARDOWN_MAX_USEC + 10 * USEC_PER_SEC));
        events_notify(s, extend);
}

void tree_shutdown(struct sup *s, int exit_code, const char *why) {
        struct strategy_child sc[SUP_CHILDREN_MAX];
        struct strategy_plan *plan;

        if (s->tearing_down)
                return;
        s->tearing_down = true;
        s->exit_code = exit_code;
        log_info("Shutting down: %s", why);
        notify_stopping(s);

        ops_clear(s);
        plan = malloc(sizeof(*plan));
        for (size_t i = 0; i < s->n_children; i++)
                sc[i] = (struct strategy_child){.alive = child_state_has_process(s->children[i].state)};
        if (plan && strategy_teardown(sc, s->n_children, plan) >= 0)
                for (size_t i = 0; i < plan->n_stop; i++)
                        (void) ops_push(s, OP_STOP, &s->children[plan->stop[i]]);
        free(plan);
        (void) ops_push(s, OP_FINISH, NULL);
        if (s->ev_teardown_deadline)
                (void) timer_add_usec(s->ev_teardown_deadline, TEARDOWN_MAX_USEC);
        tree_advance(s);
}

/* ---- for sup-loop.c ---- */

void tree_kill_all(struct sup *s) {
        for (size_t i = 0; i < s->n_children; i++) {
                (void) child_signal(&s->children[i], SIGKILL);
                proc_kill_all(&s->children[i], true);
        }
}

int tree_start(struct sup *s, struct child *c) {
        return ops_push(s, OP_START, c);
}

int tree_setup(struct sup *s) {
        s->ev_finish = evtimer_new(s->base, on_finish_timeout, s);
        return s->ev_finish ? 0 : -ENOMEM;
}

int child_init(struct child *c) {
        struct sup *s = c->sup;

        c->ev_stop = evtimer_new(s->base, on_stop_timeout, c);
        c->ev_drain = evtimer_new(s->base, on_drain_timeout, c);
        c->ev_start = evtimer_new(s->base, on_start_timeout, c);
        if (!c->ev_stop || !c->ev_drain || !c->ev_start)
                return -ENOMEM;
        return 0;
}

void child_done(struct child *c) {
        c->peer = peer_free(c->peer);
        struct event **evs[] = {&c->ev_stop, &c->ev_drain, &c->ev_start, &c->ev_pidfd};
        for (size_t i = 0; i < ELEMENTSOF(evs); i++)
                if (*evs[i]) {
                        event_free(*evs[i]);
                        *evs[i] = NULL;
                }
        c->pidfd = safe_close(c->pidfd);
        fdstore_clear(&c->fds);
        proc_free_all(c);
        child_spec_done(&c->spec);
}

/* How the files below report to the tree. */
const struct child_ops tree_child_ops = {
        .feed = child_feed,
        .reaped = child_reaped,
        .lost = child_lost,
        .advance = tree_advance,
};
