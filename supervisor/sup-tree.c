/* SPDX-License-Identifier: MIT */
/*
 * sup-tree.c owns the supervision tree at run time: the children in start
 * order, the queue of stop/start operations a restart plan or a teardown turns
 * into (carried out one at a time, like OTP's synchronous starts and ordered
 * terminations), feeding child events through the state table, asking the
 * strategy what an unexpected exit means, the global timeout, signals, and
 * the lifecycle events every decision produces (journal + timeline.jsonl).
 */
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-id128.h>

#include "exit-status.h"
#include "sup-internal.h"

static const char *const op_names[_OP_KIND_MAX] = {
        [OP_STOP] = "stop",
        [OP_START] = "start",
        [OP_REMOVE] = "remove",
        [OP_FINISH] = "finish",
};

/* ---- lifecycle events ---- */

void sup_event_at(const struct log_location *at, struct sup *s, struct child *c, int prio, enum log_event ev,
                  const char *name, const char *const *kv, const char *fmt, ...) {
        char msg[1024];
        const char *extra[24];
        char fields[12][160];
        size_t n = 0, nf = 0;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        if (c) {
                snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_CHILD=%s", c->spec.id);
                extra[n++] = fields[nf++];
                snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_KIND=%s", worker_kind_to_string(c->spec.kind));
                extra[n++] = fields[nf++];
                if (c->spec.kind == KIND_MACHINE) {
                        snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_MACHINE=%s", c->spec.id);
                        extra[n++] = fields[nf++];
                }
                snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_RESTARTS=%" PRIu64, c->restarts);
                extra[n++] = fields[nf++];
        }
        for (size_t i = 0; kv && kv[i] && kv[i + 1] && nf < ELEMENTSOF(fields); i += 2) {
                size_t k = (size_t) snprintf(fields[nf], sizeof(fields[nf]), "VIGIL_");
                for (const char *p = kv[i]; *p && k < sizeof(fields[nf]) - 2; p++)
                        fields[nf][k++] = (char) (*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
                snprintf(fields[nf] + k, sizeof(fields[nf]) - k, "=%s", kv[i + 1]);
                extra[n++] = fields[nf++];
        }
        extra[n] = NULL;

        log_internal_at(at, prio, 0, ev, extra, "%s", msg);
        timeline_write(s, name, c, kv, msg);
        if (s->hooks.event && name)
                s->hooks.event(s, name, c ? c->spec.id : NULL, c ? worker_kind_to_string(c->spec.kind) : NULL, kv, msg,
                               s->hooks_userdata);
}

void sup_notify(struct sup *s, const char *line) {
        if (s->notify_fd >= 0) {
                char buf[512];
                int n = snprintf(buf, sizeof(buf), "%s\n", line);
                (void) !write(s->notify_fd, buf, (size_t) MIN(n, (int) sizeof(buf) - 1));
        } else
                (void) sd_notify(0, line);
}

void sup_notify_status(struct sup *s) {
        size_t up = 0, live = 0;
        char line[320];

        for (size_t i = 0; i < s->n_children; i++) {
                up += s->children[i].state == CHILD_RUNNING;
                live += s->children[i].state != CHILD_REMOVED;
        }
        snprintf(line, sizeof(line), "STATUS=%zu/%zu children running%s%s%s", up, live,
                 s->tearing_down ? ", shutting down" : "", s->subtest[0] ? "; subtest: " : "", s->subtest);
        sup_notify(s, line);

        /* READY=1 once every child has been started and none is still starting. */
        if (!s->initial_ready_sent && !s->tearing_down) {
                for (size_t i = 0; i < s->n_children; i++) {
                        const struct child *c = &s->children[i];
                        if (c->state == CHILD_REMOVED)
                                continue;
                        if (!c->started_once || c->start_pending || c->state == CHILD_STARTING ||
                            c->state == CHILD_CONFIGURING)
                                return;
                }
                s->initial_ready_sent = true;
                sup_notify(s, "READY=1");
        }
}

/* ---- the operation queue ---- */

static int ops_push(struct sup *s, enum op_kind kind, struct child *c) {
        if (s->ops_head > 0 && s->ops_head == s->n_ops)
                s->ops_head = s->n_ops = 0;
        if (s->n_ops == s->ops_cap) {
                size_t cap = MAX(s->ops_cap * 2, (size_t) 16);
                struct op *o = realloc(s->ops, cap * sizeof(struct op));
                if (!o)
                        return log_error_errno(-ENOMEM, "Cannot queue %s of '%s'", op_names[kind],
                                               c ? c->spec.id : "tree");
                s->ops = o;
                s->ops_cap = cap;
        }
        s->ops[s->n_ops++] = (struct op){.kind = kind, .c = c};
        if (kind == OP_STOP)
                c->stop_pending = true;
        if (kind == OP_START)
                c->start_pending = true;
        return 0;
}

static void ops_clear(struct sup *s) {
        for (size_t i = s->ops_head; i < s->n_ops; i++)
                if (s->ops[i].c) {
                        s->ops[i].c->stop_pending = false;
                        s->ops[i].c->start_pending = false;
                }
        s->ops_head = s->n_ops = 0;
        s->ops_gen++;
}

static void finish_now(struct sup *s) {
        if (s->finishing)
                return;
        s->finishing = true;
        if (s->ev_finish)
                (void) event_del(s->ev_finish);
        sup_kill_leftovers(s);
        sup_cgroup_remove_run(s->run_id);
        (void) event_base_loopexit(s->base, NULL);
}

static void on_finish_timeout(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;

        log_warning("%zu spawned process(es) still alive after SIGTERM, killing", sup_count_procs(s));
        finish_now(s);
}

/* Run op @i; true once it is complete. */
static bool op_step(struct sup *s, size_t i) {
        struct op op = s->ops[i];
        bool first = !s->ops[i].started;
        struct child *c = op.c;

        s->ops[i].started = true;
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
                                sup_event(s, c, LOG_NOTICE, LOG_EVENT_RESTARTED, "restarted", NULL,
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
                        child_kill_procs(c, false);
                        child_close_fds(c);
                        route_target_down(c, false);
                        sup_event(s, c, LOG_INFO, LOG_EVENT_NONE, "removed", NULL, "Child '%s' removed from the tree",
                                  c->spec.id);
                }
                return true;

        case OP_FINISH:
                if (first) {
                        for (size_t k = 0; k < s->n_children; k++)
                                child_kill_procs(&s->children[k], false);
                        if (sup_count_procs(s) > 0)
                                (void) event_add(s->ev_finish,
                                                 &(struct timeval){.tv_usec = PROC_TERM_USEC + 200 * USEC_PER_MSEC});
                }
                if (sup_count_procs(s) == 0)
                        finish_now(s);
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

void sup_ops_advance(struct sup *s) {
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
                sup_shutdown(s, s->exit_code, "every child has ended");
}

/* ---- events of one child ---- */

struct child *sup_find_child(struct sup *s, const char *id) {
        for (size_t i = 0; i < s->n_children; i++)
                if (streq(s->children[i].spec.id, id))
                        return &s->children[i];
        return NULL;
}

bool child_will_restart(const struct child *c) {
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
        sup_event(c->sup, c, LOG_WARNING, LOG_EVENT_KILLED, "killed",
                  (const char *[]){"pid", pid, "reason", why, NULL}, "Killing %s '%s' (pid %d): %s",
                  worker_kind_to_string(c->spec.kind), c->spec.id, (int) c->pid, why);
        (void) child_signal(c, SIGKILL);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg) {
        struct child *c = arg;

        child_feed(c, CHILD_EV_STOP_TIMEOUT);
        sup_ops_advance(c->sup);
}

static void on_start_timeout(evutil_socket_t fd, short what, void *arg) {
        struct child *c = arg;

        c->faulted = true;
        child_feed(c, CHILD_EV_START_TIMEOUT);
        sup_ops_advance(c->sup);
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
        sup_event(c->sup, c, LOG_INFO, LOG_EVENT_NONE, "stopping",
                  (const char *[]){"pid", pid, "timeout_ms", ms, NULL},
                  "Stopping %s '%s' (SIGTERM, SIGKILL after %s ms)", worker_kind_to_string(c->spec.kind), c->spec.id,
                  ms);
        (void) child_signal(c, SIGTERM);
        (void) event_add(c->ev_stop, &(struct timeval){.tv_sec = c->spec.shutdown_ms / 1000,
                                                       .tv_usec = (c->spec.shutdown_ms % 1000) * 1000});
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
                sup_event(s, c, LOG_WARNING, LOG_EVENT_EXITED, "exited",
                          (const char *[]){"exit_code", code, "exit_kind", exit_kind_to_string(kind), "deliberate",
                                           "0", NULL},
                          "%s '%s' could not be started (counted as a crash)", worker_kind_to_string(c->spec.kind),
                          c->spec.id);
        else if (c->exit_signal)
                sup_event(s, c, deliberate ? LOG_INFO : LOG_WARNING, LOG_EVENT_EXITED, "exited",
                          (const char *[]){"pid", pid, "signal", sig, "exit_kind", exit_kind_to_string(kind),
                                           "deliberate", deliberate ? "1" : "0", NULL},
                          "%s '%s' (pid %d) killed by signal %s%s", worker_kind_to_string(c->spec.kind), c->spec.id,
                          (int) c->pid, strsignal(c->exit_signal), deliberate ? " (stopped by vigil)" : "");
        else
                sup_event(s, c, deliberate || kind == EXIT_KIND_NORMAL ? LOG_INFO : LOG_WARNING, LOG_EVENT_EXITED,
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
                sup_notify_status(s);
                return;
        }

        struct strategy_child sc[SUP_CHILDREN_MAX];
        struct strategy_plan *plan = malloc(sizeof(*plan));
        if (!plan) {
                log_error_errno(-ENOMEM, "Cannot plan the restart of '%s'", c->spec.id);
                sup_shutdown(s, VIGIL_EXIT_INTERNAL, "out of memory");
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
                sup_shutdown(s, VIGIL_EXIT_INTERNAL, "restart strategy failed");
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
                sup_event(s, c, LOG_ERR, LOG_EVENT_GAVE_UP, "gave_up",
                          (const char *[]){"max_restarts", mr, "max_seconds", ms, NULL},
                          "Giving up: more than %u restart(s) within %u s (last: '%s'); tearing the tree down",
                          s->intensity.max_restarts, s->intensity.max_seconds, c->spec.id);
                sup_shutdown(s, VIGIL_EXIT_GAVE_UP, "restart intensity exceeded");
                break;
        }
        case VERDICT_FAIL_RUN:
                sup_event(s, c, LOG_ERR, LOG_EVENT_GAVE_UP, "gave_up", (const char *[]){"reason", "config", NULL},
                          "%s '%s' rejected its configuration (exit %d): failing the run",
                          worker_kind_to_string(c->spec.kind), c->spec.id, c->exit_code);
                sup_shutdown(s, VIGIL_EXIT_USAGE, "a worker rejected its configuration");
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
                sup_shutdown(s, s->exit_code, why);
        }
        sup_notify_status(s);
}

void child_feed(struct child *c, enum child_event ev) {
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
                child_handshake(c);
                break;
        case CHILD_ACT_MARK_READY:
                (void) event_del(c->ev_start);
                snprintf(pid, sizeof(pid), "%d", (int) c->pid);
                sup_event(s, c, LOG_INFO, LOG_EVENT_READY, "ready", (const char *[]){"pid", pid, NULL},
                          "%s '%s' (pid %d) is ready", worker_kind_to_string(c->spec.kind), c->spec.id, (int) c->pid);
                route_target_ready(c);
                sup_notify_status(s);
                break;
        case CHILD_ACT_TERMINATE:
                child_terminate(c);
                break;
        case CHILD_ACT_KILL:
                if (ev == CHILD_EV_CHAN_LOST && c->lost_reason == PEER_LOST_EOF)
                        /* A clean close usually means it is exiting: let it finish with its own
                         * exit code (restart-me, permanent failure) before we step in. */
                        (void) event_add(c->ev_drain, &(struct timeval){.tv_usec = EOF_GRACE_USEC});
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
                child_protocol_error(c, "%s while %s", child_event_to_string(ev), child_state_to_string(old));
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

void child_reaped(struct child *c, int code, int sig) {
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
                (void) event_add(c->ev_drain, &(struct timeval){.tv_usec = DRAIN_USEC});
        sup_ops_advance(c->sup);
}

void child_lost(struct child *c, enum peer_lost_reason reason, const char *detail) {
        c->lost = true;
        c->lost_reason = reason;
        c->peer = peer_free(c->peer);
        (void) event_del(c->ev_drain);
        child_feed(c, CHILD_EV_CHAN_LOST);
        if (c->reaped)
                child_feed(c, CHILD_EV_EXITED);
        sup_ops_advance(c->sup);
}

/* ---- the tree ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg) {
        struct sup *s = arg;
        char why[64];

        if (s->tearing_down) {
                log_warning("Received %s again during teardown: killing everything now", strsignal((int) sig));
                for (size_t i = 0; i < s->n_children; i++) {
                        (void) child_signal(&s->children[i], SIGKILL);
                        child_kill_procs(&s->children[i], true);
                }
                finish_now(s);
                return;
        }
        /* Ctrl-C at an interactive REPL interrupts the statement, as in the reference. */
        for (size_t i = 0; sig == SIGINT && i < s->n_children; i++) {
                struct child *c = &s->children[i];
                if (c->spec.interactive && c->state == CHILD_RUNNING) {
                        log_info("SIGINT forwarded to the interactive child '%s'", c->spec.id);
                        (void) child_signal(c, SIGINT);
                        return;
                }
        }
        snprintf(why, sizeof(why), "received %s", sigabbrev_np((int) sig) ?: "signal");
        sup_shutdown(s, VIGIL_EXIT_INTERRUPTED, why);
}

static void on_global_timeout(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;
        char secs[32];

        snprintf(secs, sizeof(secs), "%llu", (unsigned long long) (s->global_timeout_usec / USEC_PER_SEC));
        sup_event(s, NULL, LOG_ERR, LOG_EVENT_TIMEOUT, "timeout", (const char *[]){"timeout_s", secs, NULL},
                  "Global timeout of %s s reached, tearing everything down", secs);
        s->tearing_down = false; /* the timeout wins over a teardown already under way */
        sup_shutdown(s, VIGIL_EXIT_TIMEOUT, "global timeout");
}

/* Machines power off gracefully: ask systemd for the whole bounded teardown
 * (plus slack) rather than its TimeoutStopSec default. */
static void notify_stopping(struct sup *s) {
        char extend[64];

        sup_notify(s, "STOPPING=1");
        snprintf(extend, sizeof(extend), "EXTEND_TIMEOUT_USEC=%llu",
                 (unsigned long long) (TEARDOWN_MAX_USEC + 10 * USEC_PER_SEC));
        sup_notify(s, extend);
}

static void on_teardown_deadline(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;

        log_error("Teardown did not finish within %llu s, killing everything", TEARDOWN_MAX_USEC / USEC_PER_SEC);
        for (size_t i = 0; i < s->n_children; i++) {
                (void) child_signal(&s->children[i], SIGKILL);
                child_kill_procs(&s->children[i], true);
        }
        finish_now(s);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
        sup_notify(arg, "WATCHDOG=1");
}

/* Straight to stderr, whatever the log target: it exists for whoever watches
 * stderr for silence (nix's max-silent-time), not for the journal. */
static void on_heartbeat(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;
        size_t up = 0;

        for (size_t i = 0; i < s->n_children; i++)
                up += s->children[i].state == CHILD_RUNNING;
        fprintf(stderr, "vigil: run %s still running after %llu s, %zu/%zu children up%s%s\n", s->run_id,
                (now_usec() - s->started_usec) / USEC_PER_SEC, up, s->n_children, s->subtest[0] ? "; subtest: " : "",
                s->subtest);
}

void sup_shutdown(struct sup *s, int exit_code, const char *why) {
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
                (void) event_add(s->ev_teardown_deadline,
                                 &(struct timeval){.tv_sec = TEARDOWN_MAX_USEC / USEC_PER_SEC});
        sup_ops_advance(s);
}

void sup_set_exit_code(struct sup *s, int exit_code) {
        s->exit_code = exit_code;
}

const char *sup_run_id(const struct sup *s) {
        return s->run_id;
}

void sup_set_strategy(struct sup *s, enum sup_strategy strategy, const struct sup_intensity *in) {
        s->strategy = strategy;
        if (in)
                s->intensity = *in;
        s->history = (struct restart_history){};
}

struct event_base *sup_event_base(struct sup *s) {
        return s->base;
}

void sup_set_hooks(struct sup *s, const struct sup_hooks *h, void *userdata) {
        s->hooks = h ? *h : (struct sup_hooks){};
        s->hooks_userdata = userdata;
}

int sup_new(const struct sup_options *o, struct sup **ret) {
        struct sup *s = calloc(1, sizeof(*s));
        char self[4096];
        ssize_t n;

        if (!s)
                return -ENOMEM;
        s->timeline_fd = -EBADF;
        s->notify_fd = o && o->notify_fd >= 0 ? o->notify_fd : -EBADF;
        s->strategy = STRATEGY_ONE_FOR_ONE;
        s->intensity = (struct sup_intensity){.max_restarts = 1, .max_seconds = 5};
        s->exit_code = VIGIL_EXIT_PASS;
        s->log_target = o ? o->log_target : LOG_TARGET_AUTO;
        s->global_timeout_usec = o ? o->global_timeout_usec : 0;
        s->heartbeat_usec = o ? o->heartbeat_usec : 0;
        s->pidns_init = getpid() == 1;

        if (o && o->run_id)
                snprintf(s->run_id, sizeof(s->run_id), "%s", o->run_id);
        else {
                sd_id128_t id;
                if (sd_id128_randomize(&id) < 0)
                        snprintf(s->run_id, sizeof(s->run_id), "%llx%x", now_usec(), (unsigned) getpid());
                else
                        (void) sd_id128_to_string(id, s->run_id);
        }
        if (o && o->outdir && !(s->outdir = strdup(o->outdir)))
                return sup_free(s), -ENOMEM;

        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = '\0';
                char *slash = strrchr(self, '/');
                if (slash)
                        *slash = '\0';
                snprintf(s->self_dir, sizeof(s->self_dir), "%s", self);
        }

        s->worker_env = sup_build_worker_env(s->run_id, s->log_target);
        s->base = event_base_new();
        if (!s->worker_env || !s->base)
                return sup_free(s), -ENOMEM;
        log_set_field("VIGIL_RUN", s->run_id);
        *ret = s;
        return 0;
}

static void child_free_events(struct child *c) {
        if (c->ev_stop)
                event_free(c->ev_stop);
        if (c->ev_drain)
                event_free(c->ev_drain);
        if (c->ev_start)
                event_free(c->ev_start);
        if (c->ev_pidfd)
                event_free(c->ev_pidfd);
        c->ev_stop = c->ev_drain = c->ev_start = c->ev_pidfd = NULL;
}

struct sup *sup_free(struct sup *s) {
        if (!s)
                return NULL;
        route_free_all(s);
        for (size_t i = 0; i < s->n_children; i++) {
                struct child *c = &s->children[i];
                c->peer = peer_free(c->peer);
                child_free_events(c);
                c->pidfd = safe_close(c->pidfd);
                child_close_fds(c);
                while (c->procs) {
                        struct sup_proc *p = c->procs;
                        c->procs = p->next;
                        sup_proc_free(p);
                }
                for (size_t k = 0; k < c->n_pending_exits; k++)
                        free(c->pending_exits[k].name);
                child_spec_done(&c->spec);
        }
        free(s->children);
        free(s->ops);
        for (size_t i = 0; i < ELEMENTSOF(s->ev_sig); i++)
                if (s->ev_sig[i])
                        event_free(s->ev_sig[i]);
        struct event **evs[] = {&s->ev_sigchld,  &s->ev_timeout,   &s->ev_teardown_deadline,
                                &s->ev_watchdog, &s->ev_heartbeat, &s->ev_finish};
        for (size_t i = 0; i < ELEMENTSOF(evs); i++)
                if (*evs[i])
                        event_free(*evs[i]);
        if (s->base)
                event_base_free(s->base);
        strv_free(s->worker_env);
        free(s->outdir);
        safe_close(s->timeline_fd);
        safe_close(s->notify_fd);
        free(s);
        return NULL;
}

/* Validate @spec and append it as a stopped child. Before sup_run() the array
 * may move; once running it has SUP_CHILDREN_MAX slots (reserved by sup_run)
 * and never moves, since peers and events point into it. */
static int child_append(struct sup *s, const struct child_spec *spec, struct child **ret, char **ret_error) {
        struct child *n;
        int r;

        r = child_spec_validate(spec, ret_error);
        if (r < 0)
                return r;
        if (sup_find_child(s, spec->id)) {
                if (ret_error && asprintf(ret_error, "child '%s': duplicate id", spec->id) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        if (s->n_children >= SUP_CHILDREN_MAX || (s->running && s->n_children >= s->children_cap)) {
                if (ret_error && asprintf(ret_error, "no room for child '%s': at most %zu children", spec->id,
                                          s->running ? s->children_cap : (size_t) SUP_CHILDREN_MAX) < 0)
                        *ret_error = NULL;
                return -E2BIG;
        }
        const struct sup_kind *k = sup_kind_get(spec->kind);
        if (!k)
                return -EINVAL;

        if (!s->running) {
                n = realloc(s->children, (s->n_children + 1) * sizeof(struct child));
                if (!n)
                        return -ENOMEM;
                s->children = n;
        }
        struct child *c = &s->children[s->n_children];
        *c = (struct child){
                .sup = s,
                .index = s->n_children,
                .kind = k,
                .state = CHILD_STOPPED,
                .pidfd = -EBADF,
        };
        r = child_spec_copy(spec, &c->spec);
        if (r < 0)
                return r;
        s->n_children++;
        *ret = c;
        return 0;
}

int sup_tree_add_child(struct sup *s, const struct child_spec *spec, char **ret_error) {
        struct child *c;

        if (s->running)
                return -EBUSY;
        return child_append(s, spec, &c, ret_error);
}

/* create_machine(): the one place a child joins a running tree. It is started
 * at once, last in start order (so it stops first), and supervised like the
 * others from then on. */
int sup_tree_add_child_live(struct sup *s, const struct child_spec *spec, char **ret_error) {
        struct child *c;
        int r;

        if (!s->running || s->tearing_down)
                return -ESHUTDOWN;
        r = child_append(s, spec, &c, ret_error);
        if (r < 0)
                return r;
        c->ev_stop = evtimer_new(s->base, on_stop_timeout, c);
        c->ev_drain = evtimer_new(s->base, on_drain_timeout, c);
        c->ev_start = evtimer_new(s->base, on_start_timeout, c);
        if (!c->ev_stop || !c->ev_drain || !c->ev_start)
                return -ENOMEM;
        r = ops_push(s, OP_START, c);
        if (r < 0)
                return r;
        sup_ops_advance(s);
        return 0;
}

int sup_tree_add_spec(struct sup *s, const struct sup_spec *spec, char **ret_error) {
        sup_set_strategy(s, spec->strategy, &spec->intensity);
        for (size_t i = 0; i < spec->n_children; i++) {
                int r = sup_tree_add_child(s, &spec->children[i], ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int sup_setup_events(struct sup *s) {
        static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
        uint64_t wd = 0;
        const char *e;

        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                s->ev_sig[i] = evsignal_new(s->base, sigs[i], on_signal, s);
                if (!s->ev_sig[i] || event_add(s->ev_sig[i], NULL) < 0)
                        return -ENOMEM;
        }
        (void) signal(SIGPIPE, SIG_IGN);

        s->ev_timeout = evtimer_new(s->base, on_global_timeout, s);
        s->ev_teardown_deadline = evtimer_new(s->base, on_teardown_deadline, s);
        s->ev_finish = evtimer_new(s->base, on_finish_timeout, s);
        s->ev_watchdog = event_new(s->base, -1, EV_PERSIST, on_watchdog, s);
        s->ev_heartbeat = event_new(s->base, -1, EV_PERSIST, on_heartbeat, s);
        if (!s->ev_timeout || !s->ev_teardown_deadline || !s->ev_finish || !s->ev_watchdog || !s->ev_heartbeat)
                return -ENOMEM;
        if (s->heartbeat_usec > 0)
                (void) event_add(s->ev_heartbeat, &(struct timeval){.tv_sec = s->heartbeat_usec / USEC_PER_SEC,
                                                                    .tv_usec = s->heartbeat_usec % USEC_PER_SEC});
        if (s->global_timeout_usec > 0)
                (void) event_add(s->ev_timeout, &(struct timeval){.tv_sec = s->global_timeout_usec / USEC_PER_SEC,
                                                                  .tv_usec = s->global_timeout_usec % USEC_PER_SEC});

        /* Under a PID namespace the notify relay's owner is the service's main
         * process, so WATCHDOG_PID names it, not us: trust WATCHDOG_USEC alone. */
        e = getenv("WATCHDOG_USEC");
        if (s->notify_fd >= 0 ? (e && (wd = strtoull(e, NULL, 10)) > 0) : sd_watchdog_enabled(0, &wd) > 0) {
                log_info("systemd watchdog enabled, pinging every %llu ms", (unsigned long long) (wd / 2000));
                (void) event_add(s->ev_watchdog,
                                 &(struct timeval){.tv_sec = wd / 2 / USEC_PER_SEC, .tv_usec = wd / 2 % USEC_PER_SEC});
        }
        return 0;
}

int sup_run(struct sup *s) {
        char n[16];
        int r;

        if (s->running)
                return -EBUSY;
        if (s->n_children == 0)
                return log_error_errno(-EINVAL, "Nothing to supervise");
        /* Room for children added while running (sup_tree_add_child_live): the
         * array must not move once peers and events point into it. */
        s->children_cap = MIN(s->n_children + SUP_CHILDREN_LIVE_MAX, (size_t) SUP_CHILDREN_MAX);
        struct child *all = realloc(s->children, s->children_cap * sizeof(struct child));
        if (!all)
                return log_error_errno(-ENOMEM, "Cannot reserve the child table");
        s->children = all;
        s->running = true;
        s->started_usec = now_usec();
        sup_raise_nofile();

        /* Orphans of our workers (a QEMU whose worker died, a daemonised helper)
         * are reparented to us instead of init, so we reap and kill them. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                log_warning_errno(negative_errno(), "Cannot become a child subreaper, orphans will escape");

        r = sup_setup_events(s);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the event loop");
        r = sup_reap_setup(s);
        if (r < 0)
                return log_error_errno(r, "Cannot watch for exiting children");
        r = timeline_open(s);
        if (r < 0)
                return log_error_errno(r, "Cannot open the timeline in '%s'", s->outdir);
        sup_cgroup_sweep();

        snprintf(n, sizeof(n), "%zu", s->n_children);
        sup_event(s, NULL, LOG_INFO, LOG_EVENT_RUN_BEGIN, "run_begin",
                  (const char *[]){"run", s->run_id, "strategy", sup_strategy_to_string(s->strategy), "children", n,
                                   "pidns", s->pidns_init ? "1" : "0", NULL},
                  "Supervising %zu children (%s, at most %u restart(s) in %u s), run %s", s->n_children,
                  sup_strategy_to_string(s->strategy), s->intensity.max_restarts, s->intensity.max_seconds, s->run_id);

        for (size_t i = 0; i < s->n_children; i++)
                (void) ops_push(s, OP_START, &s->children[i]);
        for (size_t i = 0; i < s->n_children; i++) {
                struct child *c = &s->children[i];
                c->ev_stop = evtimer_new(s->base, on_stop_timeout, c);
                c->ev_drain = evtimer_new(s->base, on_drain_timeout, c);
                c->ev_start = evtimer_new(s->base, on_start_timeout, c);
                if (!c->ev_stop || !c->ev_drain || !c->ev_start)
                        return log_error_errno(-ENOMEM, "Cannot allocate timers");
        }
        if (sup_pidns_early_signal())
                sup_shutdown(s, VIGIL_EXIT_INTERRUPTED, "signal received during start-up");
        sup_ops_advance(s);

        r = event_base_dispatch(s->base);
        if (r < 0)
                return log_error_errno(-EIO, "Event loop failed");

        if (s->exit_code == VIGIL_EXIT_TEST_FAILED)
                log_event(LOG_ERR, LOG_EVENT_TEST_FAILED, NULL, "Run %s: the test failed", s->run_id);
        snprintf(n, sizeof(n), "%d", s->exit_code);
        sup_event(s, NULL, LOG_INFO, LOG_EVENT_RUN_END, "run_end", (const char *[]){"exit_code", n, NULL},
                  "Run %s ended with exit code %d", s->run_id, s->exit_code);
        return s->exit_code;
}
