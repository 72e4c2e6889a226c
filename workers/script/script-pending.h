/* SPDX-License-Identifier: MIT */
/*
 * script-pending.h: the requests the script worker is waiting on, keyed by
 * seq. Replies arrive as zero or more MSG_CHUNKs then one final frame
 * (M_*_RESULT, OK or ERROR); the table accumulates the chunks of each request
 * up to a byte cap and keeps the final frame for the waiting thread. Pure
 * code: no locking, no I/O (script-channel.c adds both).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct script_pending {
        uint32_t seq;
        bool done;            /* final frame (or a local error) is in */
        bool abandoned;       /* the waiter gave up (interrupted): drop it when done */
        bool overflow;        /* chunks went past the cap; the data was cut */
        int error;            /* local failure (e.g. -EPIPE: supervisor gone), 0 if final is valid */
        int failed;           /* a request that cannot finish (its channel died mid-way): the code ... */
        char *failed_message; /* ... and why, reported like a remote MSG_ERROR */
        unsigned via;         /* 0: sent through the supervisor; else the direct channel's id */
        bool sent;            /* written out on @via */
        uint8_t *replay;      /* an idempotent request sent directly: its frame, to send again */
        size_t replay_len;
        int fd; /* an fd that came with the final frame (MSG_CHANNEL), or < 0 */
        uint8_t *data;
        size_t len, cap;
        struct frame final;
        struct script_pending *next;
};

struct script_pending_table {
        struct script_pending *head;
        size_t data_max; /* cap on accumulated chunk bytes per request */
        size_t n;
};

void script_pending_table_init(struct script_pending_table *t, size_t data_max);
/* Free every entry (waiters must be gone). */
void script_pending_table_done(struct script_pending_table *t);

/* Register a request about to be sent. -EEXIST if @seq is in use. */
int script_pending_add(struct script_pending_table *t, uint32_t seq, struct script_pending **ret);

enum script_deliver {
        SCRIPT_DELIVER_PART,    /* a chunk was added */
        SCRIPT_DELIVER_FINAL,   /* the request is complete: wake its waiter */
        SCRIPT_DELIVER_DROPPED, /* belonged to an abandoned request (freed now if final) */
};

/* Hand a decoded reply frame to its request. On success the table owns *f
 * (and zeroes it). -ENOENT: no such seq; -EBADMSG: not a reply frame. In both
 * error cases *f is left to the caller. */
int script_pending_deliver(struct script_pending_table *t, struct frame *f, enum script_deliver *ret);
/* The same, for a final frame that may carry one fd: the request takes *@fd
 * (set to -EBADF) when it completes with it. */
int script_pending_deliver_fd(struct script_pending_table *t, struct frame *f, int *fd, enum script_deliver *ret);

/* @p is sent again from the start (a replay): forget the chunks so far. */
void script_pending_restart(struct script_pending *p);
/* Complete @p with a failure of @code and @message (copied), as an error
 * reply would; an abandoned @p is freed. */
void script_pending_fail(struct script_pending_table *t, struct script_pending *p, int code, const char *message);

/* Complete every waiting request with @error (the supervisor is gone). */
void script_pending_fail_all(struct script_pending_table *t, int error);

/* Take @p out of the table and free it (after its waiter consumed it). */
void script_pending_remove(struct script_pending_table *t, struct script_pending *p);

/* The waiter stops waiting: free now if complete, else drop on completion. */
void script_pending_abandon(struct script_pending_table *t, struct script_pending *p);
