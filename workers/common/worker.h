/* SPDX-License-Identifier: MIT */
/*
 * worker.h: the start-up and event loop every libevent-driven worker shares.
 * The supervisor execs a worker with its channel at fd 3. worker_main()
 * adopts it, sends HELLO, collects the PROC_LIST and FD_RESTORE frames that a
 * restarted worker gets back, then hands the CONFIG to the kind's configure()
 * and dispatches every later frame to on_frame(). Losing the supervisor ends
 * the worker (there is nobody left to serve).
 */
#pragma once

#include <event2/event.h>

#include "msg.h"
#include "peer.h"

struct worker;

struct worker_restored_proc {
        char *name;
        int64_t pid;
};

struct worker_ops {
        enum worker_kind kind;
        /* Called once with the configuration. Restored fds/procs (after a restart)
         * are available through worker_take_fd()/worker_procs(). Return < 0 to exit
         * with WORKER_EXIT_CONFIG (for -EINVAL) or WORKER_EXIT_CRASH. The worker
         * sends READY itself when it is ready (worker_send_ready()). */
        int (*configure)(struct worker *w, const struct msg_config *cfg, void *userdata);
        /* Every frame after CONFIG, and every request over a brokered channel
         * (seq is then a tag: answer with worker_reply*()). Return < 0 to drop
         * the supervisor (protocol error), or that channel. */
        int (*on_frame)(struct worker *w, const struct frame *f, int *fds, size_t n_fds, void *userdata);
        /* Optional: the channel to the supervisor, once congested (peer_congested()),
         * has drained: producers that stopped may go on. */
        void (*on_drained)(struct worker *w, void *userdata);
        /* Optional: called before the loop exits, for cleanup. */
        void (*on_exit)(struct worker *w, void *userdata);
};

/* Parse "--name NAME" (and ignore the rest), open the log, run the loop.
 * Returns the process exit code. */
int worker_main(int argc, char **argv, const struct worker_ops *ops, void *userdata);

struct event_base *worker_event_base(struct worker *w);
struct peer *worker_peer(struct worker *w);
const char *worker_name(struct worker *w);
uint64_t worker_restarts(struct worker *w);

/* Take a restored fd by store name (-ENOENT if none). */
int worker_take_fd(struct worker *w, const char *name);
/* Processes the supervisor still runs for this worker (after a restart). */
const struct worker_restored_proc *worker_procs(struct worker *w, size_t *ret_n);

int worker_send_ready(struct worker *w);
/* Hand an fd to the supervisor's store under @name (replacing an older one). */
int worker_store_fd(struct worker *w, const char *name, int fd);
int worker_forget_fd(struct worker *w, const char *name);
/* Answer request @seq where it came from: the supervisor, or the direct client
 * it names (dropped if that client left). A final reply ends the request. */
int worker_reply(struct worker *w, int type, uint32_t seq, const void *body);
int worker_reply_error(struct worker *w, uint32_t seq, int code, const char *fmt, ...) _printf_(4, 5);
/* The peer replies to @seq go to (NULL: its client left), for flow control. */
struct peer *worker_reply_peer(struct worker *w, uint32_t seq);
/* The supervisor's or any direct client's send queue is congested. */
bool worker_replies_congested(struct worker *w);
/* Emit a timeline/journal event through the supervisor. */
int worker_send_event(struct worker *w, const char *event, const char *fmt, ...) _printf_(3, 4);

/* Leave the loop; worker_main() returns @code. */
void worker_exit(struct worker *w, int code);
