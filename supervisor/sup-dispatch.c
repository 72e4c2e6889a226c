/* SPDX-License-Identifier: MIT */
/*
 * sup-dispatch.c owns what arrives from workers: the peer callbacks, the
 * handshake (HELLO -> PROC_LIST, FD_RESTORE, CONFIG -> READY), one handler
 * table per worker kind (designated initialisers indexed by message type: a
 * type missing from a kind's table is a protocol error from that kind), and
 * the local services' messages (fd store, spawn service, events, script
 * results). It sits below the tree: what it learns about a child's life goes
 * up through s->ops (HELLO and READY to child_feed, a lost channel to
 * child_lost), never by name. Anything a worker gets wrong costs that worker
 * its channel, never the supervisor.
 */
#include <signal.h>
#include <stdarg.h>

#include "sup-dispatch.h"
#include "sup-events.h"
#include "sup-proc.h"
#include "sup-reap.h"
#include "sup-records.h"
#include "sup-route.h"

typedef int (*dispatch_handler_t)(struct child *c, const struct frame *f, int *fds, size_t n_fds);

static const char *kind_name(const struct child *c) {
        return worker_kind_to_string(c->spec.kind);
}

void dispatch_protocol_error(struct child *c, const char *fmt, ...) {
        char why[512], pid[32];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        snprintf(pid, sizeof(pid), "%d", (int) c->pid);
        events_emit(c->sup, c, LOG_ERR, LOG_EVENT_PROTOCOL_ERROR, "protocol_error",
                    (const char *[]){"pid", pid, "reason", why, NULL}, "Protocol error from %s '%s': %s", kind_name(c),
                    c->spec.id, why);
        /* Logged here, once; the loss that follows is reported as "killed". The
         * worker may see EOF and exit 0 before our SIGKILL lands: that exit still
         * counts as a crash. */
        c->faulted = true;
        peer_kill(c->peer, PEER_LOST_KILLED, why);
}

/* ---- the fd store ---- */

static int on_fd_store(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_fd_store *m = f->body;
        int r;

        if (n_fds != 1) {
                dispatch_protocol_error(c, "FD_STORE '%s' with %zu fds attached, expected 1", m->name, n_fds);
                return 0;
        }
        r = fdstore_put(&c->fds, m->name, &fds[0]);
        if (r == -E2BIG) {
                log_warning("%s '%s' tried to store more than %u fds, refusing '%s'", kind_name(c), c->spec.id,
                            FDSTORE_MAX, m->name);
                return 0;
        }
        if (r < 0) {
                /* Our failure, not the worker's: it keeps its channel (and its fd,
                 * which it still holds); a restart would lose this one. */
                events_emit(c->sup, c, LOG_ERR, LOG_EVENT_NONE, "fd_store_failed",
                            (const char *[]){"name", m->name, "reason", strerror(-r), NULL},
                            "Cannot store fd '%s' of '%s': %s", m->name, c->spec.id, strerror(-r));
                (void) peer_send_error(c->peer, f->seq, r, "FD_STORE '%s': supervisor error: %s", m->name,
                                       strerror(-r));
                return 0;
        }
        events_emit(c->sup, c, LOG_DEBUG, LOG_EVENT_NONE, "fd_stored", (const char *[]){"name", m->name, NULL},
                    "Stored fd '%s' for '%s'", m->name, c->spec.id);
        return 0;
}

static int on_fd_forget(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_fd_forget *m = f->body;

        (void) fdstore_forget(&c->fds, m->name); /* forgetting what is not there is fine */
        return 0;
}

/* ---- the spawn service ---- */

static const char *basename_of(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static int on_spawn(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_spawn *m = f->body;
        struct sup *s = c->sup;
        _cleanup_strv_free_ char **env = NULL;
        char err[512] = "";
        size_t k = 0, want = 0;
        struct sup_proc *p;
        int r;

        if (!m->argv || !m->argv[0] || !m->argv[0][0])
                return peer_send_error(c->peer, f->seq, -EINVAL, "SPAWN '%s': empty argv", m->name), 0;
        if (m->stdio & ~7ull) {
                dispatch_protocol_error(c, "SPAWN '%s': unknown stdio bits %#llx", m->name,
                                        (unsigned long long) m->stdio);
                return 0;
        }
        for (int i = 0; i < 3; i++)
                want += (m->stdio >> i) & 1;
        if (want != n_fds) {
                dispatch_protocol_error(c, "SPAWN '%s': stdio mask wants %zu fds, %zu attached", m->name, want, n_fds);
                return 0;
        }
        if (m->machine && c->spec.kind != KIND_MACHINE && c->spec.kind != KIND_TEST) {
                dispatch_protocol_error(c, "SPAWN '%s': only a machine worker spawns a machine", m->name);
                return 0;
        }
        if (!child_id_valid(m->name))
                return peer_send_error(c->peer, f->seq, -EINVAL, "SPAWN: invalid process name '%s'", m->name), 0;
        if (proc_find(c, m->name))
                return peer_send_error(c->peer, f->seq, -EEXIST, "SPAWN: process '%s' is already running", m->name), 0;
        if (c->n_procs >= CHILD_PROCS_MAX)
                return peer_send_error(c->peer, f->seq, -EMFILE, "SPAWN: at most %u processes per child",
                                       CHILD_PROCS_MAX),
                       0;

        env = spawn_env_with_run(m->env, s->run_id);
        if (!env)
                return peer_send_error(c->peer, f->seq, -ENOMEM, "SPAWN: out of memory"), 0;

        struct spawn_req req = {
                .argv = m->argv,
                .envp = env,
                .cwd = m->cwd,
                .stdio = {-1, -1, -1},
                .chan_fd = -1,
                .caps = c->kind->spawn_caps ? c->kind->spawn_caps(basename_of(m->argv[0])) : &c->kind->caps,
        };
        for (int i = 0; i < 3; i++)
                if ((m->stdio >> i) & 1)
                        req.stdio[i] = fds[k++];
        bool own_cgroup = c->kind->spawn_own_cgroup && c->kind->spawn_own_cgroup(basename_of(m->argv[0]));

        r = proc_spawn(c, m->name, &req, own_cgroup, m->machine, &p, err, sizeof(err));
        if (r < 0)
                return peer_send_error(c->peer, f->seq, r, "%s", err), 0;
        if (reap_watch_proc(p) < 0)
                log_warning("Cannot watch pidfd of process '%s', relying on SIGCHLD", p->name);
        (void) peer_send(c->peer, MSG_SPAWNED, f->seq, &(struct msg_spawned){.name = p->name, .pid = p->pid}, NULL, 0);
        return 0;
}

static int on_proc_kill(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_proc_kill *m = f->body;

        if (m->signal <= 0 || m->signal >= NSIG) {
                dispatch_protocol_error(c, "PROC_KILL '%s': invalid signal %" PRId64, m->name, m->signal);
                return 0;
        }
        struct sup_proc *p = proc_find(c, m->name);
        if (p) {
                int r = pidfd_send(p->pidfd, (int) m->signal);
                if (f->seq == 0)
                        return 0;
                return r < 0 ? (peer_send_error(c->peer, f->seq, r, "PROC_KILL '%s': %s", m->name, strerror(-r)), 0)
                             : (peer_send_ok(c->peer, f->seq), 0);
        }
        if (f->seq != 0)
                (void) peer_send_error(c->peer, f->seq, -ESRCH, "PROC_KILL: no process '%s'", m->name);
        return 0;
}

/* ---- generic messages ---- */

static int on_hello(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_hello *m = f->body;

        if (m->proto != PROTO_VERSION) {
                dispatch_protocol_error(c, "protocol version %" PRIu64 ", expected %d", m->proto, PROTO_VERSION);
                return 0;
        }
        if (!streq(m->kind, kind_name(c)) || !streq(m->name, c->spec.id)) {
                dispatch_protocol_error(c, "HELLO from %s '%s', expected %s '%s'", m->kind, m->name, kind_name(c),
                                        c->spec.id);
                return 0;
        }
        c->sup->ops->feed(c, CHILD_EV_HELLO);
        return 0;
}

static int on_ready(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        c->sup->ops->feed(c, CHILD_EV_READY);
        c->sup->ops->advance(c->sup);
        return 0;
}

static int on_ping(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        /* A full queue kills the peer inside peer_send (PEER_LOST_OVERFLOW). */
        (void) peer_send(c->peer, MSG_PONG, f->seq, f->body, NULL, 0);
        return 0;
}

static int on_pong(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        return 0; /* the supervisor sends no PINGs yet; a stray PONG is harmless */
}

static int on_event(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_event *m = f->body;

        struct sup *s = c->sup;

        events_emit(s, c, LOG_INFO, LOG_EVENT_NONE, "worker_event", (const char *[]){"name", m->event, NULL}, "%s",
                    m->message);
        /* The script's subtests show in `systemctl status` (STATUS=). Names are
         * the worker's text: only ever copied, bounded, into our own buffer. */
        if (c->kind->kind == KIND_SCRIPT && m->event &&
            (streq(m->event, "subtest-begin") || streq(m->event, "subtest-end"))) {
                snprintf(s->subtest, sizeof(s->subtest), "%s",
                         streq(m->event, "subtest-begin") && m->message ? m->message : "");
                events_notify_status(s);
        }
        return 0;
}

static int on_s_result(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_s_result *m = f->body;
        struct sup *s = c->sup;
        char code[32];

        snprintf(code, sizeof(code), "%" PRId64, m->exit_code);
        events_emit(s, c, LOG_INFO, LOG_EVENT_NONE, "script_result", (const char *[]){"exit_code", code, NULL},
                    "Script result: %s (exit %s)", m->message, code);
        if (s->hooks.script_result) {
                int r = s->hooks.script_result(s, c->spec.id, m->exit_code, m->message, s->hooks_userdata);
                if (r < 0)
                        dispatch_protocol_error(c, "S_RESULT refused: %s", strerror(-r));
        } else
                s->exit_code = (int) m->exit_code;
        return 0;
}

/* create_machine(): the run front end builds the machine (sup_hooks.add_machine). */
static int on_s_add_machine(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_s_add_machine *m = f->body;
        struct sup *s = c->sup;
        _cleanup_free_ char *err = NULL;
        int r = -EOPNOTSUPP;

        if (s->hooks.add_machine)
                r = s->hooks.add_machine(s, m->name, m->start_command, m->keep_state, &err, s->hooks_userdata);
        if (r < 0)
                return peer_send_error(c->peer, f->seq, r, "cannot add machine '%s': %s", m->name,
                                       err ?: strerror(-r)),
                       0;
        events_emit(s, c, LOG_INFO, LOG_EVENT_NONE, "machine_added", (const char *[]){"machine", m->name, NULL},
                    "Machine '%s' added to the run (create_machine)", m->name);
        return peer_send(c->peer, MSG_OK, f->seq, &(struct msg_empty){}, NULL, 0), 0;
}

/* A worker asks for a direct channel to another child (sup-route.c brokers it). */
static int on_channel_open(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        return route_open_channel(c, f);
}

/* ---- handler tables, one per kind ---- */

#define GENERIC_HANDLERS                                                                                              \
        [MSG_HELLO] = on_hello, [MSG_READY] = on_ready, [MSG_PING] = on_ping, [MSG_PONG] = on_pong,                   \
        [MSG_EVENT] = on_event, [MSG_FD_STORE] = on_fd_store, [MSG_FD_FORGET] = on_fd_forget

static const dispatch_handler_t handlers_machine[MSG_PROC_LIST + 1] = {
        GENERIC_HANDLERS,
        [MSG_SPAWN] = on_spawn,
        [MSG_PROC_KILL] = on_proc_kill,
};

static const dispatch_handler_t handlers_switch[MSG_PROC_LIST + 1] = {
        GENERIC_HANDLERS,
        [MSG_SPAWN] = on_spawn,
        [MSG_PROC_KILL] = on_proc_kill,
};

/* The script worker runs the user's script: it may not ask for processes. */
static const dispatch_handler_t handlers_script[MSG_S_ADD_MACHINE + 1] = {
        GENERIC_HANDLERS,
        [MSG_CHANNEL_OPEN] = on_channel_open,
        [MSG_S_RESULT] = on_s_result,
        [MSG_S_ADD_MACHINE] = on_s_add_machine,
};

static const dispatch_handler_t handlers_test[MSG_CHANNEL_OPEN + 1] = {
        GENERIC_HANDLERS,
        [MSG_CHANNEL_OPEN] = on_channel_open,
        [MSG_SPAWN] = on_spawn,
        [MSG_PROC_KILL] = on_proc_kill,
};

static const struct {
        const dispatch_handler_t *handlers;
        size_t n;
} dispatch_tables[_KIND_MAX] = {
        [KIND_MACHINE] = {handlers_machine, ELEMENTSOF(handlers_machine)},
        [KIND_SWITCH] = {handlers_switch, ELEMENTSOF(handlers_switch)},
        [KIND_SCRIPT] = {handlers_script, ELEMENTSOF(handlers_script)},
        [KIND_TEST] = {handlers_test, ELEMENTSOF(handlers_test)},
};

static dispatch_handler_t dispatch_handler(enum worker_kind kind, int type) {
        if (kind < 0 || kind >= _KIND_MAX || type < 0 || (size_t) type >= dispatch_tables[kind].n)
                return NULL;
        return dispatch_tables[kind].handlers[type];
}

/* ---- peer callbacks ---- */

static int on_frame(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct child *c = userdata;
        const struct msg_info *info = f->info;
        dispatch_handler_t h;
        char why[512];
        int r;

        if (!(info->senders & KIND_BIT(c->spec.kind))) {
                dispatch_protocol_error(c, "%s may not be sent by a %s worker", info->name, kind_name(c));
                return 0;
        }
        if (c->state == CHILD_STARTING && f->type != MSG_HELLO) {
                dispatch_protocol_error(c, "%s before HELLO", info->name);
                return 0;
        }

        switch (info->route) {
        case ROUTE_REQUEST:
                r = route_request(c, f, n_fds, why, sizeof(why));
                if (r == -EPROTO)
                        dispatch_protocol_error(c, "%s", why);
                return 0;
        case ROUTE_REPLY:
                return route_reply(c, f, fds, n_fds);
        case ROUTE_LOCAL:
                break;
        }

        h = dispatch_handler(c->spec.kind, f->type);
        if (!h) {
                dispatch_protocol_error(c, "unexpected %s", info->name);
                return 0;
        }
        return h(c, f, fds, n_fds);
}

static void on_lost(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata) {
        struct child *c = userdata;
        char pid[32];

        switch (reason) {
        case PEER_LOST_BAD_FRAME:
        case PEER_LOST_DIRECTION:
        case PEER_LOST_HANDLER:
        case PEER_LOST_OVERFLOW:
        case PEER_LOST_IO:
                /* The peer layer decided; this is the one place it gets logged. */
                c->faulted = true;
                snprintf(pid, sizeof(pid), "%d", (int) c->pid);
                events_emit(c->sup, c, LOG_ERR, LOG_EVENT_PROTOCOL_ERROR, "protocol_error",
                            (const char *[]){"pid", pid, "reason", detail, NULL}, "Protocol error from %s '%s': %s",
                            kind_name(c), c->spec.id, detail);
                break;
        case PEER_LOST_EOF:
        case PEER_LOST_KILLED:
                log_debug("Channel of '%s' lost: %s", c->spec.id, detail);
                break;
        case _PEER_LOST_MAX:
                break;
        }
        c->sup->ops->lost(c, reason, detail);
}

static void on_drained(struct peer *p, void *userdata) {
        route_release(userdata);
}

const struct peer_ops dispatch_peer_ops = {.on_frame = on_frame, .on_lost = on_lost, .on_drained = on_drained};

/* ---- the handshake ---- */

void dispatch_handshake(struct child *c) {
        struct sup *s = c->sup;
        int r = 0;

        for (struct sup_proc *p = c->procs; p && r >= 0; p = p->next)
                r = peer_send(c->peer, MSG_PROC_LIST, 0, &(struct msg_proc_list){.name = p->name, .pid = p->pid}, NULL,
                              0);
        for (size_t i = 0; i < c->fds.n && r >= 0; i++)
                r = peer_send(c->peer, MSG_FD_RESTORE, 0, &(struct msg_fd_restore){.name = c->fds.entries[i].name},
                              &c->fds.entries[i].fd, 1);
        if (r >= 0)
                r = peer_send(c->peer, MSG_CONFIG, 0,
                              &(struct msg_config){
                                      .restarts = c->restarts, .run_id = s->run_id, .json = c->spec.config_json},
                              NULL, 0);
        if (r < 0) {
                log_warning_errno(r, "Handshake with '%s' failed", c->spec.id);
                return; /* the peer reports the loss */
        }
        if (c->fds.n > 0)
                log_info("Handed %zu stored fd(s) back to '%s'", c->fds.n, c->spec.id);
        proc_flush_pending_exits(c);
}
