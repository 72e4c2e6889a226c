/* SPDX-License-Identifier: MIT */
/*
 * sup-loop.c owns the supervisor as a library (sup.h): building a tree, the event
 * loop it runs in, and what reaches the tree as a whole from outside: signals,
 * the global timeout, the teardown deadline, the systemd watchdog and the
 * heartbeat line. What happens to children is sup-tree.c's.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-id128.h>

#include "defaults.h"
#include "exit-status.h"
#include "log-stderr.h"
#include "sup-cgroup.h"
#include "sup-events.h"
#include "sup-reap.h"
#include "sup-records.h"
#include "sup-route.h"
#include "sup-spawn.h"
#include "sup-stderr.h"
#include "sup-timeline.h"
#include "sup-tree.h"

static void on_signal(evutil_socket_t sig, short what, void *arg) {
        struct sup *s = arg;
        char why[64];

        if (s->tearing_down) {
                log_warning("Received %s again during teardown: killing everything now", strsignal((int) sig));
                tree_kill_all(s);
                tree_finish(s);
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
        tree_shutdown(s, VIGIL_EXIT_INTERRUPTED, why);
}

static void on_global_timeout(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;
        char secs[32];

        snprintf(secs, sizeof(secs), "%llu", (unsigned long long) (s->global_timeout_usec / USEC_PER_SEC));
        events_emit(s, NULL, LOG_ERR, LOG_EVENT_TIMEOUT, "timeout", (const char *[]){"timeout_s", secs, NULL},
                    "Global timeout of %s s reached, tearing everything down", secs);
        s->tearing_down = false; /* the timeout wins over a teardown already under way */
        tree_shutdown(s, VIGIL_EXIT_TIMEOUT, "global timeout");
}

static void on_teardown_deadline(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;

        log_error("Teardown did not finish within %llu s, killing everything", TEARDOWN_MAX_USEC / USEC_PER_SEC);
        tree_kill_all(s);
        tree_finish(s);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
        events_notify(arg, "WATCHDOG=1");
}

/* Straight to stderr, whatever the log target: it exists for whoever watches
 * stderr for silence (nix's max-silent-time), not for the journal. */
static void on_heartbeat(evutil_socket_t fd, short what, void *arg) {
        struct sup *s = arg;
        char line[512];
        size_t up = 0;
        int n;

        for (size_t i = 0; i < s->n_children; i++)
                up += s->children[i].state == CHILD_RUNNING;
        n = snprintf(line, sizeof(line), "vigil: run %s still running after %llu s, %zu/%zu children up%s%s\n",
                     s->run_id, (now_usec() - s->started_usec) / USEC_PER_SEC, up, s->n_children,
                     s->subtest[0] ? "; subtest: " : "", s->subtest);
        log_stderr_write(line, (size_t) MIN(n, (int) sizeof(line) - 1));
}

void sup_shutdown(struct sup *s, int exit_code, const char *why) {
        tree_shutdown(s, exit_code, why);
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
        s->ops = &tree_child_ops;
        s->timeline_fd = -EBADF;
        s->notify_fd = o && o->notify_fd >= 0 ? o->notify_fd : -EBADF;
        s->strategy = STRATEGY_ONE_FOR_ONE;
        s->intensity = (struct sup_intensity){.max_restarts = DEFAULT_INTENSITY_MAX_RESTARTS,
                                              .max_seconds = DEFAULT_INTENSITY_MAX_SECONDS};
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

        s->worker_env = spawn_worker_env(s->run_id, s->log_target);
        s->base = event_base_new();
        if (!s->worker_env || !s->base)
                return sup_free(s), -ENOMEM;
        log_set_field("VIGIL_RUN", s->run_id);
        sup_stderr_bound(s->run_id, s->outdir);
        *ret = s;
        return 0;
}

struct sup *sup_free(struct sup *s) {
        if (!s)
                return NULL;
        s->stderr_relay = sup_stderr_free(s->stderr_relay);
        route_free_all(s);
        for (size_t i = 0; i < s->n_children; i++)
                child_done(&s->children[i]);
        free(s->children);
        free(s->ops_queue);
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

void sup_freep(struct sup **s) {
        *s = sup_free(*s);
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
        if (sup_child_by_id(s, spec->id)) {
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
        const struct sup_kind *k = kind_get(spec->kind);
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
        r = child_init(c);
        if (r < 0)
                return r;
        r = tree_start(s, c);
        if (r < 0)
                return r;
        tree_advance(s);
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
        if (sup_stderr_new(s->base, &s->stderr_relay) < 0)
                log_warning("Cannot relay the children's stderr: they write vigil's stderr directly");

        s->ev_timeout = evtimer_new(s->base, on_global_timeout, s);
        s->ev_teardown_deadline = evtimer_new(s->base, on_teardown_deadline, s);
        s->ev_watchdog = event_new(s->base, -1, EV_PERSIST, on_watchdog, s);
        s->ev_heartbeat = event_new(s->base, -1, EV_PERSIST, on_heartbeat, s);
        if (!s->ev_timeout || !s->ev_teardown_deadline || !s->ev_watchdog || !s->ev_heartbeat)
                return -ENOMEM;
        if (s->heartbeat_usec > 0)
                (void) timer_add_usec(s->ev_heartbeat, s->heartbeat_usec);
        if (s->global_timeout_usec > 0)
                (void) timer_add_usec(s->ev_timeout, s->global_timeout_usec);

        /* Under a PID namespace the notify relay's owner is the service's main
         * process, so WATCHDOG_PID names it, not us: trust WATCHDOG_USEC alone. */
        e = getenv("WATCHDOG_USEC");
        if (s->notify_fd >= 0 ? (e && (wd = strtoull(e, NULL, 10)) > 0) : sd_watchdog_enabled(0, &wd) > 0) {
                log_info("systemd watchdog enabled, pinging every %llu ms", (unsigned long long) (wd / 2000));
                (void) timer_add_usec(s->ev_watchdog, wd / 2);
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
        spawn_raise_nofile();

        /* Orphans of our workers (a QEMU whose worker died, a daemonised helper)
         * are reparented to us instead of init, so we reap and kill them. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                log_warning_errno(negative_errno(), "Cannot become a child subreaper, orphans will escape");

        r = sup_setup_events(s);
        if (r >= 0)
                r = tree_setup(s);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the event loop");
        r = reap_setup(s);
        if (r < 0)
                return log_error_errno(r, "Cannot watch for exiting children");
        r = timeline_open(s);
        if (r < 0)
                return log_error_errno(r, "Cannot open the timeline in '%s'", s->outdir);
        sup_cgroup_sweep();

        snprintf(n, sizeof(n), "%zu", s->n_children);
        events_emit(s, NULL, LOG_INFO, LOG_EVENT_RUN_BEGIN, "run_begin",
                    (const char *[]){"run", s->run_id, "strategy", sup_strategy_to_string(s->strategy), "children", n,
                                     "pidns", s->pidns_init ? "1" : "0", NULL},
                    "Supervising %zu children (%s, at most %u restart(s) in %u s), run %s", s->n_children,
                    sup_strategy_to_string(s->strategy), s->intensity.max_restarts, s->intensity.max_seconds,
                    s->run_id);

        for (size_t i = 0; i < s->n_children; i++)
                (void) tree_start(s, &s->children[i]);
        for (size_t i = 0; i < s->n_children; i++)
                if (child_init(&s->children[i]) < 0)
                        return log_error_errno(-ENOMEM, "Cannot allocate timers");
        if (sup_pidns_early_signal())
                tree_shutdown(s, VIGIL_EXIT_INTERRUPTED, "signal received during start-up");
        tree_advance(s);

        r = event_base_dispatch(s->base);
        s->stderr_relay = sup_stderr_free(s->stderr_relay); /* the children's last lines before run_end */
        if (r < 0)
                return log_error_errno(-EIO, "Event loop failed");

        if (s->exit_code == VIGIL_EXIT_TEST_FAILED)
                log_event(LOG_ERR, LOG_EVENT_TEST_FAILED, NULL, "Run %s: the test failed", s->run_id);
        snprintf(n, sizeof(n), "%d", s->exit_code);
        events_emit(s, NULL, LOG_INFO, LOG_EVENT_RUN_END, "run_end", (const char *[]){"exit_code", n, NULL},
                    "Run %s ended with exit code %d", s->run_id, s->exit_code);
        return s->exit_code;
}
