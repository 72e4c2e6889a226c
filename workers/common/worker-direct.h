/* SPDX-License-Identifier: MIT */
/*
 * worker-direct.h: the server side of brokered channels. A worker that
 * serves direct requests (a machine worker, a test worker) adopts each
 * MSG_CHANNEL end it gets from the supervisor; requests arriving on it are
 * handed to the same handler as routed ones under a tag (reply-tags.h), and
 * replies by tag go back to the client that asked.
 */
#pragma once

#include <event2/event.h>

#include "msg.h"
#include "peer.h"

struct worker_direct;

struct worker_direct_ops {
        /* A valid request for this worker; f->seq is its tag. < 0 drops that client. */
        int (*on_request)(const struct frame *f, void *userdata);
        /* A client's send queue drained (see peer.h). */
        void (*on_drained)(void *userdata);
};

int worker_direct_new(struct event_base *base, enum worker_kind kind, const char *name,
                      const struct worker_direct_ops *ops, void *userdata, struct worker_direct **ret);
struct worker_direct *worker_direct_free(struct worker_direct *d);

/* Adopt @fd, the end of a channel from @m->peer (taken on success only). */
int worker_direct_adopt(struct worker_direct *d, const struct msg_channel *m, int fd);

/* Where a reply to @tag goes: 0 and the client's peer and seq; -ENOENT if that
 * client is gone (drop the reply). */
int worker_direct_resolve(struct worker_direct *d, uint32_t tag, struct peer **ret_peer, uint32_t *ret_seq);
/* The final reply to @tag went out. */
void worker_direct_forget(struct worker_direct *d, uint32_t tag);
/* Any client's send queue congested. */
bool worker_direct_congested(const struct worker_direct *d);
