/* SPDX-License-Identifier: MIT */
/*
 * sup-dispatch.c owns what arrives from workers: the peer callbacks, the
 * handshake (HELLO -> PROC_LIST, FD_RESTORE, CONFIG -> READY), one handler
 * table per worker kind (designated initialisers indexed by message type: a
 * type missing from a kind's table is a protocol error from that kind), and
 * the local services: the fd store, the spawn service and events. Anything a
 * worker gets wrong costs that worker its channel, never the supervisor.
 */
#include <signal.h>
#include <stdarg.h>

#include "sup-internal.h"

static const char *kind_name(const struct child *c) {
        return worker_kind_to_string(c->spec.kind);
}

void child_protocol_error(struct child *c, const char *fmt, ...) {
        char why[512], pid[32];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        snprintf(pid, sizeof(pid), "%d", (int) c->pid);
        sup_event(c->sup, c, LOG_ERR, LOG_EVENT_PROTOCOL_ERROR, "protocol_error",
                  (const char *[]){"pid", pid, "reason", why, NULL}, "Protocol error from %s '%s': %s", kind_name(c),
                  c->spec.id, why);
        /* Logged here, once; the loss that follows is reported as "killed". The
         * worker may see EOF and exit 0 before our SIGKILL lands: that exit still
         * counts as a crash. */
        c->faulted = true;
        peer_kill(c->peer, PEER_LOST_KILLED, why);
}

/* ---- the fd store ---- */

void child_close_fds(struct child *c) {
        for (size_t i = 0; i < c->n_fds; i++) {
                free(c->fds[i].name);
                safe_close(c->fds[i].fd);
        }
        free(c->fds);
        c->fds = NULL;
        c->n_fds = c->cap_fds = 0;
}

static int on_fd_store(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_fd_store *m = f->body;
        struct stored_fd *slot = NULL;

        if (n_fds != 1) {
                child_protocol_error(c, "FD_STORE '%s' with %zu fds attached, expected 1", m->name, n_fds);
                return 0;
        }
        for (size_t i = 0; i < c->n_fds && !slot; i++)
                if (streq(c->fds[i].name, m->name))
                        slot = &c->fds[i];
        if (!slot) {
                if (c->n_fds >= CHILD_FDS_MAX) {
                        log_warning("%s '%s' tried to store more than %u fds, refusing '%s'", kind_name(c), c->spec.id,
                                    CHILD_FDS_MAX, m->name);
                        return 0;
                }
                if (c->n_fds == c->cap_fds) {
                        size_t cap = MIN(MAX(c->cap_fds * 2, (size_t) 8), (size_t) CHILD_FDS_MAX);
                        struct stored_fd *n = realloc(c->fds, cap * sizeof(struct stored_fd));
                        if (!n)
                                return log_error_errno(-ENOMEM, "fd store");
                        c->fds = n;
                        c->cap_fds = cap;
                }
                char *name = strdup(m->name);
                if (!name)
                        return log_error_errno(-ENOMEM, "fd store");
                slot = &c->fds[c->n_fds++];
                *slot = (struct stored_fd){.name = name, .fd = -EBADF};
        }
        safe_close(slot->fd);
        slot->fd = TAKE_FD(fds[0]);
        sup_event(c->sup, c, LOG_DEBUG, LOG_EVENT_NONE, "fd_stored", (const char *[]){"name", m->name, NULL},
                  "Stored fd '%s' for '%s'", m->name, c->spec.id);
        return 0;
}

static int on_fd_forget(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_fd_forget *m = f->body;

        for (size_t i = 0; i < c->n_fds; i++)
                if (streq(c->fds[i].name, m->name)) {
                        free(c->fds[i].name);
                        safe_close(c->fds[i].fd);
                        c->fds[i] = c->fds[--c->n_fds];
                        return 0;
                }
        return 0;
}

/* ---- the spawn service ---- */

struct sup_proc *sup_proc_free(struct sup_proc *p) {
        if (!p)
                return NULL;
        if (p->ev_pidfd)
                event_free(p->ev_pidfd);
        if (p->ev_term)
                event_free(p->ev_term);
        safe_close(p->pidfd);
        sup_cgroup_remove(p->cgroup);
        free(p->cgroup);
        free(p->name);
        free(p);
        return NULL;
}

size_t sup_count_procs(struct sup *s) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_children; i++)
                n += s->children[i].n_procs;
        return n;
}

static void proc_unlink(struct sup_proc *p) {
        struct child *c = p->owner;
        for (struct sup_proc **pp = &c->procs; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        c->n_procs--;
                        return;
                }
}

static bool child_can_receive(const struct child *c) {
        return c->peer && !peer_is_lost(c->peer) && (c->state == CHILD_CONFIGURING || c->state == CHILD_RUNNING);
}

void child_flush_pending_exits(struct child *c) {
        for (size_t i = 0; i < c->n_pending_exits; i++) {
                struct pending_exit *e = &c->pending_exits[i];
                (void) peer_send(
                        c->peer, MSG_PROC_EXIT, 0,
                        &(struct msg_proc_exit){.name = e->name, .pid = e->pid, .code = e->code, .signal = e->signal},
                        NULL, 0);
                free(e->name);
        }
        c->n_pending_exits = 0;
}

void child_proc_exited(struct sup_proc *p, int code, int sig) {
        struct child *c = p->owner;
        char pid[32], cs[32], ss[32];

        snprintf(pid, sizeof(pid), "%d", (int) p->pid);
        snprintf(cs, sizeof(cs), "%d", code);
        snprintf(ss, sizeof(ss), "%d", sig);
        sup_event(c->sup, c, LOG_INFO, LOG_EVENT_NONE, "proc_exited",
                  (const char *[]){"name", p->name, "pid", pid, "exit_code", cs, "signal", ss, NULL},
                  "Process '%s' (pid %d) of '%s' ended (exit %d, signal %d)", p->name, (int) p->pid, c->spec.id, code,
                  sig);

        struct msg_proc_exit m = {.name = p->name, .pid = p->pid, .code = code, .signal = sig};
        if (child_can_receive(c))
                (void) peer_send(c->peer, MSG_PROC_EXIT, 0, &m, NULL, 0);
        else if (c->state != CHILD_REMOVED) {
                /* Its worker is down: tell the next one, after its CONFIG. */
                if (c->n_pending_exits == CHILD_PENDING_EXITS_MAX) {
                        free(c->pending_exits[0].name);
                        memmove(c->pending_exits, c->pending_exits + 1,
                                (CHILD_PENDING_EXITS_MAX - 1) * sizeof(struct pending_exit));
                        c->n_pending_exits--;
                }
                char *name = strdup(p->name);
                if (name)
                        c->pending_exits[c->n_pending_exits++] =
                                (struct pending_exit){.name = name, .pid = p->pid, .code = code, .signal = sig};
        }
        proc_unlink(p);
        sup_proc_free(p);
}

static void on_proc_term_timeout(evutil_socket_t fd, short what, void *arg) {
        struct sup_proc *p = arg;

        /* Not a fault in itself: systemd-nspawn turns SIGTERM into a container
         * poweroff that may take longer than the grace period. */
        log_info("Process '%s' (pid %d) of '%s' still running %llu ms after SIGTERM, killing", p->name, (int) p->pid,
                 p->owner->spec.id, (unsigned long long) (PROC_TERM_USEC / 1000));
        (void) pidfd_send(p->pidfd, SIGKILL);
}

void child_kill_procs(struct child *c, bool immediately) {
        for (struct sup_proc *p = c->procs; p; p = p->next) {
                if (immediately) {
                        (void) pidfd_send(p->pidfd, SIGKILL);
                        continue;
                }
                if (p->ev_term && event_pending(p->ev_term, EV_TIMEOUT, NULL))
                        continue;
                (void) pidfd_send(p->pidfd, SIGTERM);
                if (!p->ev_term)
                        p->ev_term = evtimer_new(c->sup->base, on_proc_term_timeout, p);
                if (p->ev_term)
                        (void) event_add(p->ev_term, &(struct timeval){.tv_usec = PROC_TERM_USEC});
        }
}

static const char *basename_of(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static int on_spawn(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_spawn *m = f->body;
        struct sup *s = c->sup;
        _cleanup_strv_free_ char **env = NULL;
        char err[512] = "", pid[32];
        size_t k = 0, want = 0;
        struct sup_proc *p;
        int r;

        if (!m->argv || !m->argv[0] || !m->argv[0][0])
                return peer_send_error(c->peer, f->seq, -EINVAL, "SPAWN '%s': empty argv", m->name), 0;
        if (m->stdio & ~7ull) {
                child_protocol_error(c, "SPAWN '%s': unknown stdio bits %#llx", m->name,
                                     (unsigned long long) m->stdio);
                return 0;
        }
        for (int i = 0; i < 3; i++)
                want += (m->stdio >> i) & 1;
        if (want != n_fds) {
                child_protocol_error(c, "SPAWN '%s': stdio mask wants %zu fds, %zu attached", m->name, want, n_fds);
                return 0;
        }
        if (!child_id_valid(m->name))
                return peer_send_error(c->peer, f->seq, -EINVAL, "SPAWN: invalid process name '%s'", m->name), 0;
        for (p = c->procs; p; p = p->next)
                if (streq(p->name, m->name))
                        return peer_send_error(c->peer, f->seq, -EEXIST, "SPAWN: process '%s' is already running",
                                               m->name),
                               0;
        if (c->n_procs >= CHILD_PROCS_MAX)
                return peer_send_error(c->peer, f->seq, -EMFILE, "SPAWN: at most %u processes per child",
                                       CHILD_PROCS_MAX),
                       0;

        env = sup_env_with_run(m->env, s->run_id);
        p = calloc(1, sizeof(*p));
        if (!env || !p || !(p->name = strdup(m->name))) {
                sup_proc_free(p);
                return peer_send_error(c->peer, f->seq, -ENOMEM, "SPAWN: out of memory"), 0;
        }
        p->owner = c;
        p->pidfd = -EBADF;

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
        if (c->kind->spawn_own_cgroup && c->kind->spawn_own_cgroup(basename_of(m->argv[0]))) {
                r = sup_cgroup_create(s->run_id, c->spec.id, m->name, &p->cgroup);
                if (r < 0)
                        log_warning_errno(r, "No cgroup of its own for '%s' of '%s' (it shares the hierarchy's root)",
                                          m->name, c->spec.id);
                req.cgroup = p->cgroup;
        }

        r = sup_spawn(&req, &p->pid, &p->pidfd, err, sizeof(err));
        if (r < 0) {
                sup_event(s, c, LOG_WARNING, LOG_EVENT_NONE, "proc_spawn_failed",
                          (const char *[]){"name", m->name, "reason", err, NULL}, "Spawn of '%s' for '%s' failed: %s",
                          m->name, c->spec.id, err);
                sup_proc_free(p);
                return peer_send_error(c->peer, f->seq, r, "%s", err), 0;
        }
        p->next = c->procs;
        c->procs = p;
        c->n_procs++;
        if (proc_watch(p) < 0)
                log_warning("Cannot watch pidfd of process '%s', relying on SIGCHLD", p->name);

        snprintf(pid, sizeof(pid), "%d", (int) p->pid);
        sup_event(s, c, LOG_INFO, LOG_EVENT_NONE, "proc_spawned",
                  (const char *[]){"name", p->name, "pid", pid, "argv0", m->argv[0], NULL},
                  "Spawned '%s' (pid %d, %s) for '%s'", p->name, (int) p->pid, m->argv[0], c->spec.id);
        (void) peer_send(c->peer, MSG_SPAWNED, f->seq, &(struct msg_spawned){.name = p->name, .pid = p->pid}, NULL, 0);
        return 0;
}

static int on_proc_kill(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_proc_kill *m = f->body;

        if (m->signal <= 0 || m->signal >= NSIG) {
                child_protocol_error(c, "PROC_KILL '%s': invalid signal %" PRId64, m->name, m->signal);
                return 0;
        }
        for (struct sup_proc *p = c->procs; p; p = p->next)
                if (streq(p->name, m->name)) {
                        int r = pidfd_send(p->pidfd, (int) m->signal);
                        if (f->seq == 0)
                                return 0;
                        return r < 0 ? (peer_send_error(c->peer, f->seq, r, "PROC_KILL '%s': %s", m->name,
                                                        strerror(-r)),
                                        0)
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
                child_protocol_error(c, "protocol version %" PRIu64 ", expected %d", m->proto, PROTO_VERSION);
                return 0;
        }
        if (!streq(m->kind, kind_name(c)) || !streq(m->name, c->spec.id)) {
                child_protocol_error(c, "HELLO from %s '%s', expected %s '%s'", m->kind, m->name, kind_name(c),
                                     c->spec.id);
                return 0;
        }
        child_feed(c, CHILD_EV_HELLO);
        return 0;
}

static int on_ready(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        child_feed(c, CHILD_EV_READY);
        sup_ops_advance(c->sup);
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

        sup_event(s, c, LOG_INFO, LOG_EVENT_NONE, "worker_event", (const char *[]){"name", m->event, NULL}, "%s",
                  m->message);
        /* The script's subtests show in `systemctl status` (STATUS=). Names are
         * the worker's text: only ever copied, bounded, into our own buffer. */
        if (c->kind->kind == KIND_SCRIPT && m->event &&
            (streq(m->event, "subtest-begin") || streq(m->event, "subtest-end"))) {
                snprintf(s->subtest, sizeof(s->subtest), "%s",
                         streq(m->event, "subtest-begin") && m->message ? m->message : "");
                sup_notify_status(s);
        }
        return 0;
}

static int on_s_result(struct child *c, const struct frame *f, int *fds, size_t n_fds) {
        const struct msg_s_result *m = f->body;
        struct sup *s = c->sup;
        char code[32];

        snprintf(code, sizeof(code), "%" PRId64, m->exit_code);
        sup_event(s, c, LOG_INFO, LOG_EVENT_NONE, "script_result", (const char *[]){"exit_code", code, NULL},
                  "Script result: %s (exit %s)", m->message, code);
        if (s->hooks.script_result) {
                int r = s->hooks.script_result(s, c->spec.id, m->exit_code, m->message, s->hooks_userdata);
                if (r < 0)
                        child_protocol_error(c, "S_RESULT refused: %s", strerror(-r));
        } else
                sup_set_exit_code(s, (int) m->exit_code);
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
        sup_event(s, c, LOG_INFO, LOG_EVENT_NONE, "machine_added", (const char *[]){"machine", m->name, NULL},
                  "Machine '%s' added to the run (create_machine)", m->name);
        return peer_send(c->peer, MSG_OK, f->seq, &(struct msg_empty){}, NULL, 0), 0;
}

/* ---- handler tables, one per kind ---- */

#define GENERIC_HANDLERS                                                                                              \
        [MSG_HELLO] = on_hello, [MSG_READY] = on_ready, [MSG_PING] = on_ping, [MSG_PONG] = on_pong,                   \
        [MSG_EVENT] = on_event, [MSG_FD_STORE] = on_fd_store, [MSG_FD_FORGET] = on_fd_forget

const sup_handler_t sup_handlers_machine[MSG_PROC_LIST + 1] = {
        GENERIC_HANDLERS,
        [MSG_SPAWN] = on_spawn,
        [MSG_PROC_KILL] = on_proc_kill,
};

const sup_handler_t sup_handlers_switch[MSG_PROC_LIST + 1] = {
        GENERIC_HANDLERS,
        [MSG_SPAWN] = on_spawn,
        [MSG_PROC_KILL] = on_proc_kill,
};

const sup_handler_t sup_handlers_script[MSG_S_ADD_MACHINE + 1] = {
        GENERIC_HANDLERS,
        [MSG_S_RESULT] = on_s_result,
        [MSG_S_ADD_MACHINE] = on_s_add_machine,
};

const sup_handler_t sup_handlers_test[MSG_PROC_LIST + 1] = {
        GENERIC_HANDLERS,
        [MSG_SPAWN] = on_spawn,
        [MSG_PROC_KILL] = on_proc_kill,
};

/* ---- peer callbacks ---- */

static int on_frame(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct child *c = userdata;
        const struct msg_info *info = f->info;
        sup_handler_t h = NULL;

        if (!(info->senders & KIND_BIT(c->spec.kind))) {
                child_protocol_error(c, "%s may not be sent by a %s worker", info->name, kind_name(c));
                return 0;
        }
        if (c->state == CHILD_STARTING && f->type != MSG_HELLO) {
                child_protocol_error(c, "%s before HELLO", info->name);
                return 0;
        }

        switch (info->route) {
        case ROUTE_REQUEST:
                return route_request(c, f, fds, n_fds);
        case ROUTE_REPLY:
                return route_reply(c, f, fds, n_fds);
        case ROUTE_LOCAL:
                break;
        }

        if ((size_t) f->type < c->kind->n_handlers)
                h = c->kind->handlers[f->type];
        if (!h) {
                child_protocol_error(c, "unexpected %s", info->name);
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
                sup_event(c->sup, c, LOG_ERR, LOG_EVENT_PROTOCOL_ERROR, "protocol_error",
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
        child_lost(c, reason, detail);
}

static void on_drained(struct peer *p, void *userdata) {
        route_release(userdata);
}

const struct peer_ops child_peer_ops = {.on_frame = on_frame, .on_lost = on_lost, .on_drained = on_drained};

/* ---- the handshake ---- */

void child_handshake(struct child *c) {
        struct sup *s = c->sup;
        int r = 0;

        for (struct sup_proc *p = c->procs; p && r >= 0; p = p->next)
                r = peer_send(c->peer, MSG_PROC_LIST, 0, &(struct msg_proc_list){.name = p->name, .pid = p->pid}, NULL,
                              0);
        for (size_t i = 0; i < c->n_fds && r >= 0; i++)
                r = peer_send(c->peer, MSG_FD_RESTORE, 0, &(struct msg_fd_restore){.name = c->fds[i].name},
                              &c->fds[i].fd, 1);
        if (r >= 0)
                r = peer_send(c->peer, MSG_CONFIG, 0,
                              &(struct msg_config){
                                      .restarts = c->restarts, .run_id = s->run_id, .json = c->spec.config_json},
                              NULL, 0);
        if (r < 0) {
                log_warning_errno(r, "Handshake with '%s' failed", c->spec.id);
                return; /* the peer reports the loss */
        }
        if (c->n_fds > 0)
                log_info("Handed %zu stored fd(s) back to '%s'", c->n_fds, c->spec.id);
        child_flush_pending_exits(c);
}
