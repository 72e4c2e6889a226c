/* SPDX-License-Identifier: MIT */
/*
 * sup-records.h: the supervisor's records and nothing else: struct sup (the
 * tree), struct child (one supervised worker), the processes spawned for a
 * child, the queued operations and the routed requests, with their limits.
 * Every file of the supervisor's runtime reads these; functions live in one
 * header per file. The files below sup-tree.c reach it only through the
 * callbacks in struct child_ops, never by name, so the arrows run one way:
 *
 *   sup-loop.c -> sup-tree.c -> sup-dispatch.c -> sup-reap.c -> sup-proc.c
 *     -> sup-route.c, sup-events.c, sup-fdstore.c -> sup-spawn.c, sup-kind.c
 *
 * Nothing outside supervisor/ includes this.
 */
#pragma once

#include <event2/event.h>
#include <inttypes.h>
#include <sys/types.h>

#include "fd-util.h"
#include "peer.h"
#include "sup-fdstore.h"
#include "sup-fsm.h"
#include "sup-kind.h"
#include "sup.h"
#include "time-util.h"

#define CHILD_PROCS_MAX          16u                    /* spawned processes per child */
#define CHILD_PENDING_EXITS_MAX  32u                    /* PROC_EXITs remembered while the worker is down */
#define CHILD_QUEUE_MAX          (64u * 1024u * 1024u)  /* send-queue cap per worker: a peer that does not read */
#define ROUTES_MAX               4096u                  /* routed requests in flight, whole tree */
#define ROUTES_QUEUED_PER_TARGET 256u                   /* requests waiting for a target to be READY */
#define DRAIN_USEC               (500 * USEC_PER_MSEC)  /* reaped but channel open: kill the channel after this */
#define EOF_GRACE_USEC           (1000 * USEC_PER_MSEC) /* channel closed cleanly: let it exit with its own code */
#define PROC_TERM_USEC           (1000 * USEC_PER_MSEC) /* spawned process: SIGTERM -> SIGKILL */
#define TEARDOWN_MAX_USEC        (60 * USEC_PER_SEC)    /* a teardown never takes longer than this */

struct child;
struct sup;

/* What the files below the tree report to it: sup-tree.c's child_feed,
 * child_reaped, child_lost and tree_advance, reached only through s->ops. */
struct child_ops {
        /* An event for @c's state table (HELLO, READY from its channel). */
        void (*feed)(struct child *c, enum child_event ev);
        /* The two halves of "down": the process was reaped; the channel was lost. */
        void (*reaped)(struct child *c, int code, int sig);
        void (*lost)(struct child *c, enum peer_lost_reason reason, const char *detail);
        /* Something a queued operation may wait for happened (a READY, a spawned
         * process ended): carry on with the queue. */
        void (*advance)(struct sup *s);
};

/* One process a worker asked the spawn service for (sup-proc.c). */
struct sup_proc {
        struct child *owner;
        struct sup_proc *next;
        char *name;
        pid_t pid;
        int pidfd;
        struct event *ev_pidfd;
        struct event *ev_term; /* SIGTERM -> SIGKILL escalation */
        char *cgroup;          /* its own cgroup (sup-cgroup.c), removed with it; or NULL */
        bool machine;          /* the machine itself (QEMU, the container), not a helper (SPAWN's flag) */
};

struct pending_exit {
        char *name;
        int64_t pid, code, signal;
};

struct child {
        struct sup *sup;
        size_t index; /* start order */
        struct child_spec spec;
        const struct sup_kind *kind;
        enum child_state state;

        pid_t pid;
        int pidfd;
        struct event *ev_pidfd;
        struct peer *peer;
        uint64_t generation; /* bumped per spawn; routed requests remember their origin's */
        bool reaped, lost;
        bool faulted; /* broke the protocol or its channel: its exit counts as abnormal, whatever the code */
        enum peer_lost_reason lost_reason;
        int exit_code, exit_signal;

        struct child *held_by; /* not read while this child's send queue is congested (sup-route.c) */

        struct event *ev_stop;  /* shutdown timeout */
        struct event *ev_drain; /* reaped but channel open / channel closed but alive */
        struct event *ev_start; /* start_timeout */

        uint64_t restarts; /* times (re)started after the first start */
        bool started_once;
        bool stop_pending;  /* a stop op for it is queued: its own exit is not a crash */
        bool start_pending; /* a start op for it is queued: requests to it wait */
        uint32_t seq;       /* the supervisor's seq counter towards this child, across restarts */
        uint64_t spawned_usec;

        struct fdstore fds;
        struct sup_proc *procs;
        size_t n_procs;
        struct pending_exit pending_exits[CHILD_PENDING_EXITS_MAX];
        size_t n_pending_exits;
};

enum op_kind {
        OP_STOP,
        OP_START,
        OP_REMOVE,
        OP_FINISH, /* the teardown is complete: clean up the rest and leave the loop */
        _OP_KIND_MAX,
};

struct op {
        enum op_kind kind;
        struct child *c;
        bool started;
};

struct route {
        struct route *next;
        struct child *origin;
        uint64_t origin_gen;
        uint32_t origin_seq;
        struct child *target;
        uint32_t target_seq;
        int type;
        bool idempotent;
        bool sent;
        bool answered_in_part; /* a CHUNK of the reply reached the origin: no transparent replay */
        uint8_t *buf;          /* the request, encoded with target_seq */
        size_t len;
};

struct sup {
        struct event_base *base;
        const struct child_ops *ops; /* sup-tree.c's, for the files below it */
        char run_id[64];
        char *outdir;
        enum log_target log_target;
        int timeline_fd;
        int notify_fd;
        uint64_t started_usec;
        uint64_t global_timeout_usec;
        uint64_t heartbeat_usec;

        enum sup_strategy strategy;
        struct sup_intensity intensity;
        struct restart_history history;

        struct child *children;
        size_t n_children;
        size_t children_cap; /* slots reserved by sup_run() for children added live */
        bool running;
        bool initial_ready_sent;
        char subtest[160]; /* the script's current subtest, for STATUS= ("" = none) */

        struct op *ops_queue;
        size_t n_ops, ops_cap, ops_head;
        uint64_t ops_gen; /* bumped when a teardown replaces the queue */
        bool advancing;

        struct route *routes;
        size_t n_routes;

        bool tearing_down;
        bool finishing;
        int exit_code;

        char **worker_env;
        char self_dir[4096];

        struct event *ev_sig[4];
        struct event *ev_sigchld;
        struct event *ev_timeout;
        struct event *ev_teardown_deadline;
        struct event *ev_watchdog;
        struct event *ev_heartbeat;
        struct event *ev_finish;
        bool pidns_init;                 /* PID 1 of our own namespace */
        struct sup_stderr *stderr_relay; /* the children's stderr, or NULL: they write vigil's */

        struct sup_hooks hooks;
        void *hooks_userdata;
};

static inline struct child *sup_child_by_id(struct sup *s, const char *id) {
        for (size_t i = 0; i < s->n_children; i++)
                if (streq(s->children[i].spec.id, id))
                        return &s->children[i];
        return NULL;
}

/* Its worker is up and may be sent frames (PROC_EXIT, routed requests). */
static inline bool child_reachable(const struct child *c) {
        return c->peer && !peer_is_lost(c->peer) && (c->state == CHILD_CONFIGURING || c->state == CHILD_RUNNING);
}

/* Arm @ev to fire once, @usec from now. */
static inline int timer_add_usec(struct event *ev, uint64_t usec) {
        struct timeval tv = timeval_from_usec(usec);
        return event_add(ev, &tv);
}
