/* SPDX-License-Identifier: MIT */
/*
 * worker.c owns the life of a libevent-driven worker process from exec to
 * exit: adopting the channel at fd 3, the HELLO / PROC_LIST / FD_RESTORE /
 * CONFIG handshake, dispatching later frames to the kind's handler, and
 * leaving when the supervisor goes away. Kind-specific code never sees the
 * handshake; it gets a configure() call with restored fds ready to take.
 * Requests that come over brokered channels (worker-direct.c) reach the same
 * on_frame(), and worker_reply() sends every answer where its request came from.
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>

#include "exit-status.h"
#include "fd-util.h"
#include "log.h"
#include "reply-tags.h"
#include "worker-direct.h"
#include "worker.h"

#define WORKER_FD          3
#define RESTORED_FDS_MAX   600 /* a switch stores two fds per port, 256 ports */
#define RESTORED_PROCS_MAX 32

struct restored_fd {
        char *name;
        int fd;
};

struct worker {
        const struct worker_ops *ops;
        void *userdata;
        struct event_base *base;
        struct peer *peer;
        struct worker_direct *direct;
        struct event *ev_sigterm;
        char name[NAME_MAX_LEN + 1];
        bool configured;
        uint64_t restarts;
        int exit_code;
        struct restored_fd fds[RESTORED_FDS_MAX];
        size_t n_fds;
        struct worker_restored_proc procs[RESTORED_PROCS_MAX];
        size_t n_procs;
};

struct event_base *worker_event_base(struct worker *w) {
        return w->base;
}

struct peer *worker_peer(struct worker *w) {
        return w->peer;
}

const char *worker_name(struct worker *w) {
        return w->name;
}

uint64_t worker_restarts(struct worker *w) {
        return w->restarts;
}

void worker_exit(struct worker *w, int code) {
        w->exit_code = code;
        event_base_loopbreak(w->base);
}

int worker_take_fd(struct worker *w, const char *name) {
        for (size_t i = 0; i < w->n_fds; i++)
                if (w->fds[i].fd >= 0 && streq(w->fds[i].name, name))
                        return TAKE_FD(w->fds[i].fd);
        return -ENOENT;
}

const struct worker_restored_proc *worker_procs(struct worker *w, size_t *ret_n) {
        *ret_n = w->n_procs;
        return w->procs;
}

int worker_send_ready(struct worker *w) {
        return peer_send(w->peer, MSG_READY, 0, &(struct msg_empty){}, NULL, 0);
}

int worker_store_fd(struct worker *w, const char *name, int fd) {
        return peer_send(w->peer, MSG_FD_STORE, 0, &(struct msg_fd_store){.name = (char *) name}, &fd, 1);
}

int worker_forget_fd(struct worker *w, const char *name) {
        return peer_send(w->peer, MSG_FD_FORGET, 0, &(struct msg_fd_forget){.name = (char *) name}, NULL, 0);
}

/* Where a reply to @seq goes: the supervisor under @seq, or the direct client
 * that sent the request under its own seq. NULL when that client is gone. */
static struct peer *worker_reply_route(struct worker *w, uint32_t seq, uint32_t *ret_to) {
        struct peer *p;

        if (!reply_tag_is_direct(seq)) {
                *ret_to = seq;
                return w->peer;
        }
        return worker_direct_resolve(w->direct, seq, &p, ret_to) < 0 ? NULL : p;
}

/* A reply to @seq was sent with result @r. A direct client's request is
 * forgotten with its final reply, and a send that failed with its channel is
 * not the replier's failure. */
static int worker_reply_sent(struct worker *w, uint32_t seq, bool final, int r) {
        if (!reply_tag_is_direct(seq))
                return r;
        if (final)
                worker_direct_forget(w->direct, seq);
        if (r < 0)
                log_debug_errno(r, "A reply to a direct client was lost with its channel");
        return 0;
}

int worker_reply(struct worker *w, int type, uint32_t seq, const void *body) {
        const struct msg_info *info = msg_info_get(type);
        struct peer *p;
        uint32_t to;

        p = worker_reply_route(w, seq, &to);
        if (!p)
                return 0; /* that client is gone: nobody would read it */
        return worker_reply_sent(w, seq, info && info->final, peer_send(p, type, to, body, NULL, 0));
}

int worker_reply_error(struct worker *w, uint32_t seq, int code, const char *fmt, ...) {
        struct peer *p;
        uint32_t to;
        va_list ap;
        int r;

        p = worker_reply_route(w, seq, &to);
        if (!p)
                return 0;
        va_start(ap, fmt);
        r = peer_send_errorv(p, to, code < 0 ? code : -EIO, fmt, ap);
        va_end(ap);
        return worker_reply_sent(w, seq, true, r);
}

struct peer *worker_reply_peer(struct worker *w, uint32_t seq) {
        uint32_t to;

        return worker_reply_route(w, seq, &to);
}

bool worker_replies_congested(struct worker *w) {
        return peer_congested(w->peer) || worker_direct_congested(w->direct);
}

int worker_send_event(struct worker *w, const char *event, const char *fmt, ...) {
        char msg[MSG_STR_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return peer_send(w->peer, MSG_EVENT, 0, &(struct msg_event){.event = (char *) event, .message = msg}, NULL, 0);
}

static int handshake_frame(struct worker *w, const struct frame *f, int *fds, size_t n_fds) {
        switch (f->type) {
        case MSG_FD_RESTORE: {
                const struct msg_fd_restore *m = f->body;
                if (n_fds < 1 || w->n_fds >= RESTORED_FDS_MAX)
                        return -EBADMSG;
                w->fds[w->n_fds].name = strdup(m->name);
                if (!w->fds[w->n_fds].name)
                        return -ENOMEM;
                w->fds[w->n_fds++].fd = TAKE_FD(fds[0]);
                return 0;
        }
        case MSG_PROC_LIST: {
                const struct msg_proc_list *m = f->body;
                if (w->n_procs >= RESTORED_PROCS_MAX)
                        return -EBADMSG;
                w->procs[w->n_procs].name = strdup(m->name);
                if (!w->procs[w->n_procs].name)
                        return -ENOMEM;
                w->procs[w->n_procs++].pid = m->pid;
                return 0;
        }
        case MSG_CONFIG: {
                const struct msg_config *m = f->body;
                int r;

                w->restarts = m->restarts;
                w->configured = true;
                log_set_field("VIGIL_RUN", m->run_id);
                r = w->ops->configure(w, m, w->userdata);
                if (r < 0) {
                        log_error_errno(r, "Configuration refused");
                        worker_exit(w, r == -EINVAL ? WORKER_EXIT_CONFIG : WORKER_EXIT_CRASH);
                }
                return 0;
        }
        default:
                return -EBADMSG; /* nothing else may arrive before CONFIG */
        }
}

static int on_frame(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata) {
        struct worker *w = userdata;

        if (!w->configured)
                return handshake_frame(w, f, fds, n_fds);
        if (f->type == MSG_PING)
                return peer_send(p, MSG_PONG, f->seq, f->body, NULL, 0);
        if (f->type == MSG_CHANNEL && f->seq == 0) {
                /* A client's channel: a refused one is closed with the frame's fds. */
                if (n_fds == 1 && worker_direct_adopt(w->direct, f->body, fds[0]) >= 0)
                        fds[0] = -EBADF;
                return 0;
        }
        return w->ops->on_frame(w, f, fds, n_fds, w->userdata);
}

static int direct_on_request(const struct frame *f, void *userdata) {
        struct worker *w = userdata;

        return w->ops->on_frame(w, f, NULL, 0, w->userdata);
}

static void direct_on_drained(void *userdata) {
        struct worker *w = userdata;

        if (w->ops->on_drained)
                w->ops->on_drained(w, w->userdata);
}

static const struct worker_direct_ops worker_direct_ops = {
        .on_request = direct_on_request,
        .on_drained = direct_on_drained,
};

static void on_lost(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata) {
        struct worker *w = userdata;

        if (reason == PEER_LOST_EOF) {
                log_debug("Supervisor closed the channel, exiting");
                worker_exit(w, WORKER_EXIT_OK);
                return;
        }
        log_error("Lost the supervisor channel: %s", detail);
        worker_exit(w, WORKER_EXIT_PROTOCOL);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg) {
        struct worker *w = arg;

        log_debug("Received SIGTERM, exiting");
        worker_exit(w, WORKER_EXIT_OK);
}

static void on_drained(struct peer *p, void *userdata) {
        struct worker *w = userdata;

        if (w->configured && w->ops->on_drained)
                w->ops->on_drained(w, w->userdata);
}

static const struct peer_ops worker_peer_ops = {.on_frame = on_frame, .on_lost = on_lost, .on_drained = on_drained};

static int parse_name(int argc, char **argv, char *name, size_t size) {
        static const struct option opts[] = {
                {"name", required_argument, NULL, 'n'},
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0)
                if (c == 'n')
                        snprintf(name, size, "%s", optarg);
        optind = 1;
        return name[0] ? 0 : -EINVAL;
}

int worker_main(int argc, char **argv, const struct worker_ops *ops, void *userdata) {
        struct worker w = {.ops = ops, .userdata = userdata, .exit_code = WORKER_EXIT_OK};
        char ident[64];
        int r;

        /* If the supervisor dies, so do we: nobody would be left to route to us. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void) signal(SIGPIPE, SIG_IGN);

        if (parse_name(argc, argv, w.name, sizeof(w.name)) < 0) {
                fprintf(stderr, "%s: missing --name NAME (this program is started by vigil)\n", argv[0]);
                return WORKER_EXIT_CONFIG;
        }
        snprintf(ident, sizeof(ident), "vigil-%s", worker_kind_to_string(ops->kind));
        log_open(ident, LOG_TARGET_AUTO);
        log_set_field("VIGIL_CHILD", w.name);
        log_set_field("VIGIL_KIND", worker_kind_to_string(ops->kind));
        if (ops->kind == KIND_MACHINE)
                log_set_field("VIGIL_MACHINE", w.name);
        if (getenv("VIGIL_RUN"))
                log_set_field("VIGIL_RUN", getenv("VIGIL_RUN"));

        if (fcntl(WORKER_FD, F_GETFD) < 0) {
                log_error("fd %d is not open: this program is started by vigil", WORKER_FD);
                return WORKER_EXIT_CONFIG;
        }
        (void) fd_set_cloexec(WORKER_FD, 1);

        w.base = event_base_new();
        if (!w.base)
                return WORKER_EXIT_CRASH;
        r = peer_new(w.base, WORKER_FD, DIR_TO_WORKER, &worker_peer_ops, &w, &w.peer);
        if (r < 0) {
                log_error_errno(r, "Failed to adopt the supervisor channel");
                event_base_free(w.base);
                return WORKER_EXIT_CRASH;
        }
        r = worker_direct_new(w.base, ops->kind, w.name, &worker_direct_ops, &w, &w.direct);
        if (r < 0) {
                peer_free(w.peer);
                event_base_free(w.base);
                return WORKER_EXIT_CRASH;
        }
        w.ev_sigterm = evsignal_new(w.base, SIGTERM, on_sigterm, &w);
        if (w.ev_sigterm)
                (void) event_add(w.ev_sigterm, NULL);

        r = peer_send(w.peer, MSG_HELLO, 0,
                      &(struct msg_hello){.proto = PROTO_VERSION,
                                          .kind = (char *) worker_kind_to_string(ops->kind),
                                          .name = w.name,
                                          .pid = getpid()},
                      NULL, 0);
        if (r >= 0)
                (void) event_base_dispatch(w.base);
        else
                w.exit_code = WORKER_EXIT_PROTOCOL;

        if (ops->on_exit)
                ops->on_exit(&w, userdata);
        for (size_t i = 0; i < w.n_fds; i++) {
                free(w.fds[i].name);
                safe_close(w.fds[i].fd);
        }
        for (size_t i = 0; i < w.n_procs; i++)
                free(w.procs[i].name);
        if (w.ev_sigterm)
                event_free(w.ev_sigterm);
        worker_direct_free(w.direct);
        peer_free(w.peer);
        event_base_free(w.base);
        return w.exit_code;
}
