/* SPDX-License-Identifier: MIT */
/*
 * sup.h: the supervision tree as a library, for every front end of the vigil
 * executable (`vigil supervise SPEC.json`, `vigil run SCRIPT`). Build a tree
 * with sup_new() + sup_tree_add_child() (children start in the order added),
 * then sup_run() starts them, supervises them and returns the run's exit code
 * (enum vigil_exit) once the tree is down. Everything else (spawning, reaping,
 * routing, the fd store, timeouts, signals) happens inside sup_run().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "sup-spec.h"

struct sup;

struct sup_options {
        const char *run_id;           /* NULL: a random one */
        const char *outdir;           /* NULL: no timeline.jsonl */
        uint64_t global_timeout_usec; /* 0: none */
        enum log_target log_target;   /* passed on to workers (VIGIL_LOG_TARGET) */
        int notify_fd;                /* >= 0: sd_notify lines are written here (PID namespace relay) */
        uint64_t heartbeat_usec;      /* > 0: a "still running" line on stderr this often (nix max-silent-time) */
};

struct sup_hooks {
        /* A child went down and the strategy has decided (restart or not). */
        void (*child_exited)(struct sup *s, const char *id, int code, int signal, bool will_restart, void *userdata);
        /* MSG_S_RESULT from a script worker: return < 0 to treat it as a protocol error. */
        int (*script_result)(struct sup *s, const char *id, int64_t exit_code, const char *message, void *userdata);
        /* Every lifecycle event as timeline.jsonl records it (@child NULL for
         * the tree's own, @kv NULL-terminated key/value pairs): for progress. */
        void (*event)(struct sup *s, const char *name, const char *child, const char *kind, const char *const *kv,
                      const char *message, void *userdata);
        /* MSG_S_ADD_MACHINE (create_machine()): build the machine's child and add it with
         * sup_tree_add_child_live(); < 0 with a message in *ret_error refuses. */
        int (*add_machine)(struct sup *s, const char *name, const char *start_command, bool keep_state,
                           char **ret_error, void *userdata);
};

int sup_new(const struct sup_options *o, struct sup **ret);
struct sup *sup_free(struct sup *s);
void sup_freep(struct sup **s);

void sup_set_strategy(struct sup *s, enum sup_strategy strategy, const struct sup_intensity *in);
void sup_set_hooks(struct sup *s, const struct sup_hooks *h, void *userdata);

/* Append a child (copied). -EINVAL with a message in *ret_error for a bad spec
 * or a duplicate id, -E2BIG past SUP_CHILDREN_MAX, -EBUSY once running. */
int sup_tree_add_child(struct sup *s, const struct child_spec *spec, char **ret_error);
/* Add a child to the running tree and start it (create_machine()); -ESHUTDOWN
 * before sup_run() or while tearing down. */
int sup_tree_add_child_live(struct sup *s, const struct child_spec *spec, char **ret_error);
/* Strategy, intensity and every child of @spec. */
int sup_tree_add_spec(struct sup *s, const struct sup_spec *spec, char **ret_error);

/* Start the children in order and supervise them until the tree is down (all
 * children ended for good, give-up, global timeout, signal). Returns the exit
 * code: the one set with sup_set_exit_code() / sup_shutdown(), VIGIL_EXIT_PASS
 * by default. */
int sup_run(struct sup *s);

/* Begin an orderly teardown (reverse start order, honouring shutdown specs);
 * sup_run() returns @exit_code. A second call while tearing down is ignored. */
void sup_shutdown(struct sup *s, int exit_code, const char *why);
void sup_set_exit_code(struct sup *s, int exit_code);

const char *sup_run_id(const struct sup *s);
/* The tree's libevent loop, for a front end's own timers. */
struct event_base *sup_event_base(struct sup *s);

/* PID namespace for the whole tree (sup-pidns.c). Call before sup_new(), with
 * no threads running. In the namespace's PID 1 it returns 0 (and *ret_notify_fd
 * is the sd_notify relay, or -1); the original process never returns from it:
 * it waits for PID 1, forwarding signals, and exits with its status. Returns 1
 * when no namespace is used (disabled, or not permitted: logged), < 0 on error. */
int sup_pidns_enter(bool allow, int *ret_notify_fd);
/* @fn runs in the original process once PID 1 has exited (everything of the
 * run is dead), with the host's /proc, just before it exits. */
void sup_pidns_at_outer_exit(void (*fn)(void));
/* The SIGTERM/SIGINT/SIGHUP that reached PID 1 before the event loop ran, or 0. */
int sup_pidns_early_signal(void);

/* A run that ends before its tree exists (bad input, interrupted cache build)
 * still leaves its story in @outdir/timeline.jsonl: one run_end line with the
 * exit code and why. Best effort. */
void timeline_write_run_end(const char *outdir, const char *run_id, int exit_code, const char *message);
