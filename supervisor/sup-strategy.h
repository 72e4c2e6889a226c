/* SPDX-License-Identifier: MIT */
/*
 * sup-strategy.h: OTP restart policy as a pure function. Given the children in
 * start order, which one exited and how, the time and the restart history, it
 * says which children to stop (reverse start order), which to start again
 * (start order), which specs to drop, or that the supervisor must give up.
 * No I/O: the runtime (sup-tree.c) carries the plan out.
 * docs/restart-semantics.md is the prose version of this file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Children one supervisor may hold; also bounds every plan below. */
#define SUP_CHILDREN_MAX 512u
/* Children that may join a running tree (create_machine()), beyond those it started with. */
#define SUP_CHILDREN_LIVE_MAX 64u
/* Restart timestamps kept; bounds intensity.max_restarts (+1). */
#define RESTART_HISTORY_MAX 1024u

enum sup_strategy {
        STRATEGY_ONE_FOR_ONE,
        STRATEGY_ONE_FOR_ALL,
        STRATEGY_REST_FOR_ONE,
        _STRATEGY_MAX,
        _STRATEGY_INVALID = -22,
};

enum restart_type {
        RESTART_PERMANENT, /* always restarted (unless it reports a permanent failure) */
        RESTART_TRANSIENT, /* restarted only after an abnormal exit */
        RESTART_TEMPORARY, /* never restarted; its spec is dropped once it is down */
        _RESTART_TYPE_MAX,
        _RESTART_TYPE_INVALID = -22,
};

/* How a worker ended, from its exit code (proto/exit-status.h) or signal. */
enum exit_kind {
        EXIT_KIND_NORMAL,    /* exit 0 */
        EXIT_KIND_ABNORMAL,  /* crash, protocol error, any other code, any signal we did not send */
        EXIT_KIND_RESTART,   /* WORKER_EXIT_RESTART: restart even if transient */
        EXIT_KIND_PERMANENT, /* WORKER_EXIT_PERMANENT: never restart this child */
        EXIT_KIND_CONFIG,    /* WORKER_EXIT_CONFIG: never restart, fail the run */
        _EXIT_KIND_MAX,
};

struct sup_intensity {
        unsigned max_restarts; /* more than this many restarts ... */
        unsigned max_seconds;  /* ... within this many seconds: give up (OTP: 1 in 5) */
};

/* Sliding window of restart times; zero-initialise, and pass the same
 * intensity on every call. */
struct restart_history {
        uint64_t at_usec[RESTART_HISTORY_MAX];
        size_t head; /* index of the next slot to write */
        size_t n;
};

struct strategy_child {
        enum restart_type restart;
        bool alive;   /* a process exists (starting, running or stopping) */
        bool removed; /* spec already dropped */
};

enum strategy_verdict {
        VERDICT_NONE,     /* nothing restarts; see remove[] for a dropped spec */
        VERDICT_RESTART,  /* carry out stop[] then start[] */
        VERDICT_GIVE_UP,  /* intensity exceeded: tear the whole tree down */
        VERDICT_FAIL_RUN, /* a child rejected its configuration: tear down, bad input */
        _VERDICT_MAX,
};

struct strategy_plan {
        enum strategy_verdict verdict;
        size_t n_stop, n_start, n_remove;
        uint16_t stop[SUP_CHILDREN_MAX];   /* reverse start order; only alive children */
        uint16_t start[SUP_CHILDREN_MAX];  /* start order */
        uint16_t remove[SUP_CHILDREN_MAX]; /* specs to drop (after they are stopped) */
};

/* worker exit status -> kind. @signal != 0 means killed by that signal. */
enum exit_kind exit_kind_classify(int code, int signal);

/* Would this restart type restart after this kind of exit (ignoring intensity)? */
bool restart_wanted(enum restart_type t, enum exit_kind k);

/* Record a restart at @now_usec and say whether it stays within @in. */
bool restart_history_add(struct restart_history *h, const struct sup_intensity *in, uint64_t now_usec);

/* The decision for child @exited (which is already down) of @children[0..n).
 * Updates @h only when a restart is planned. -EINVAL on bad arguments. */
int strategy_decide(enum sup_strategy s, const struct sup_intensity *in, struct restart_history *h,
                    const struct strategy_child *children, size_t n, size_t exited, enum exit_kind kind,
                    uint64_t now_usec, struct strategy_plan *ret);

/* Whole-tree teardown: every alive child, reverse start order. */
int strategy_teardown(const struct strategy_child *children, size_t n, struct strategy_plan *ret);

const char *sup_strategy_to_string(enum sup_strategy s);
enum sup_strategy sup_strategy_from_string(const char *s);
const char *restart_type_to_string(enum restart_type t);
enum restart_type restart_type_from_string(const char *s);
const char *exit_kind_to_string(enum exit_kind k);
const char *strategy_verdict_to_string(enum strategy_verdict v);
