/* SPDX-License-Identifier: MIT */
/*
 * sup-internal.h: the supervisor's own records (struct sup, struct child, the
 * processes spawned for children, stored fds, routed requests) and the
 * functions the supervisor's files share, grouped by the file that owns them.
 * Nothing outside supervisor/ includes this.
 */
#pragma once

#include <event2/event.h>
#include <inttypes.h>
#include <sys/types.h>

#include "fd-util.h"
#include "peer.h"
#include "sup-fsm.h"
#include "sup.h"

#define CHILD_FDS_MAX            1024u                  /* stored fds per child (a switch keeps 1 + 2 per port) */
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

/* Per worker kind (sup-kind.c). */
typedef int (*sup_handler_t)(struct child *c, const struct frame *f, int *fds, size_t n_fds);

#define CAP_POLICY_MAX 16 /* capabilities one policy may keep */

struct cap_policy {
        bool keep_all;   /* leave the capability sets alone (see sup-kind.c for who and why) */
        const int *caps; /* otherwise: exactly these, in effective/permitted/bounding */
        size_t n_caps;
        bool no_new_privs;
};

struct sup_kind {
        enum worker_kind kind;
        const char *exe;        /* installed name, e.g. "vigil-machine" */
        const char *build_path; /* relative to VIGIL_BUILD_ROOT */
        struct cap_policy caps; /* for the worker itself */
        /* for processes it asks the spawn service for, by argv[0] basename; NULL = default */
        const struct cap_policy *(*spawn_caps)(const char *argv0);
        /* true: a process it asks for gets its own cgroup (it manages a subtree: systemd-nspawn) */
        bool (*spawn_own_cgroup)(const char *argv0);
        const sup_handler_t *handlers; /* indexed by msg type, ROUTE_LOCAL types only */
        size_t n_handlers;
};

struct stored_fd {
        char *name;
        int fd;
};

struct sup_proc {
        struct child *owner;
        struct sup_proc *next;
        char *name;
        pid_t pid;
        int pidfd;
        struct event *ev_pidfd;
        struct event *ev_term; /* SIGTERM -> SIGKILL escalation */
        char *cgroup;          /* its own cgroup (sup-cgroup.c), removed with it; or NULL */
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

        struct stored_fd *fds; /* grown on demand up to CHILD_FDS_MAX */
        size_t n_fds, cap_fds;
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
        uint8_t *buf; /* the request, encoded with target_seq */
        size_t len;
};

struct sup {
        struct event_base *base;
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

        struct op *ops;
        size_t n_ops, ops_cap, ops_head;
        uint64_t ops_gen; /* bumped when a teardown replaces the queue */
        bool advancing;

        struct route *routes;
        size_t n_routes;

        bool tearing_down;
        bool finishing;
        int exit_code;
        bool exit_code_set;

        char **worker_env;
        char self_dir[4096];

        struct event *ev_sig[4];
        struct event *ev_sigchld;
        struct event *ev_timeout;
        struct event *ev_teardown_deadline;
        struct event *ev_watchdog;
        struct event *ev_heartbeat;
        struct event *ev_finish;
        bool pidns_init; /* PID 1 of our own namespace */

        struct sup_hooks hooks;
        void *hooks_userdata;
};

/* sup-tree.c */
void child_feed(struct child *c, enum child_event ev);
/* The two halves of "down": the process was reaped; the channel was lost. */
void child_reaped(struct child *c, int code, int sig);
void child_lost(struct child *c, enum peer_lost_reason reason, const char *detail);
void sup_ops_advance(struct sup *s);
struct child *sup_find_child(struct sup *s, const char *id);
/* One lifecycle event: journald/stderr via log_event() and a timeline line.
 * @kv is NULL or alternating key/value strings, NULL-terminated; keys are the
 * lower-case timeline names ("pid"), journald gets VIGIL_<UPPER>=value. */
void sup_event_at(const struct log_location *at, struct sup *s, struct child *c, int prio, enum log_event ev,
                  const char *name, const char *const *kv, const char *fmt, ...) _printf_(8, 9);
/* CODE_FILE/LINE/FUNC in the journal name the caller, not sup_event_at(). */
#define sup_event(...) sup_event_at(LOG_HERE, __VA_ARGS__)
void sup_notify(struct sup *s, const char *line);
/* STATUS= (children, current subtest) and READY=1 once all children are up. */
void sup_notify_status(struct sup *s);
bool child_will_restart(const struct child *c);

/* sup-spawn.c */
struct spawn_req {
        const char *path; /* exec this file; NULL: search argv[0] in PATH */
        char *const *argv;
        char *const *envp;
        const char *cwd; /* NULL or "": the supervisor's */
        int stdio[3];    /* -1: /dev/null */
        int chan_fd;     /* >= 0: becomes fd 3 */
        const struct cap_policy *caps;
        const char *cgroup; /* NULL, or a group (sup_cgroup_create) the child joins before exec */
};
void sup_raise_nofile(void);
int sup_spawn(const struct spawn_req *req, pid_t *ret_pid, int *ret_pidfd, char *errbuf, size_t errsize);
int child_spawn(struct child *c);
int child_signal(struct child *c, int sig);
int sup_resolve_exe(struct sup *s, const struct sup_kind *k, char *buf, size_t size);
char **sup_build_worker_env(const char *run_id, enum log_target t);
char **sup_env_with_run(char *const *env, const char *run_id);

/* sup-reap.c */
int sup_reap_setup(struct sup *s);
int child_watch_pid(struct child *c);
int proc_watch(struct sup_proc *p);
void sup_reap_all(struct sup *s);
void sup_kill_leftovers(struct sup *s);

/* sup-dispatch.c */
extern const struct peer_ops child_peer_ops;
void child_handshake(struct child *c);
void child_protocol_error(struct child *c, const char *fmt, ...) _printf_(2, 3);
void child_flush_pending_exits(struct child *c);
void child_proc_exited(struct sup_proc *p, int code, int sig);
void child_kill_procs(struct child *c, bool immediately);
void child_close_fds(struct child *c);
struct sup_proc *sup_proc_free(struct sup_proc *p);
size_t sup_count_procs(struct sup *s);

/* sup-route.c */
int route_request(struct child *origin, const struct frame *f, int *fds, size_t n_fds);
int route_reply(struct child *target, const struct frame *f, int *fds, size_t n_fds);
void route_target_ready(struct child *target);
void route_target_down(struct child *target, bool will_restart);
void route_origin_down(struct child *origin);
void route_free_all(struct sup *s);
/* @c's send queue drained (or @c is gone): read again what was held for it. */
void route_release(struct child *c);

/* sup-kind.c */
const struct sup_kind *sup_kind_get(enum worker_kind k);
int caps_apply(const struct cap_policy *p);

/* sup-cgroup.c */
/* The relative group "vigil/<run>/<child>.<proc>" made in every present hierarchy. */
int sup_cgroup_create(const char *run_id, const char *child, const char *proc, char **ret_rel);
/* Move the calling process into it (in the forked child, before exec). */
int sup_cgroup_join(const char *rel);
void sup_cgroup_remove(const char *rel);
/* At the end of a run: remove what is left of its groups, waiting (bounded)
 * for killed processes to leave them. */
void sup_cgroup_remove_run(const char *run_id);
void sup_cgroup_sweep(void);

/* sup-pidns.c */

/* sup-timeline.c */
int timeline_open(struct sup *s);
void timeline_write(struct sup *s, const char *event, struct child *c, const char *const *kv, const char *message);
