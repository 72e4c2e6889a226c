/* SPDX-License-Identifier: MIT */
/*
 * peer.h: one end of a SOCK_SEQPACKET channel driven by libevent. A peer
 * decodes each datagram into a struct frame and hands it to on_frame with any
 * fds that came with it; it queues outgoing frames up to a byte cap. Loss of
 * the peer (EOF, I/O error, bad frame, handler error, queue overflow,
 * peer_kill()) is reported through on_lost exactly once; after that the peer
 * sends and receives nothing. The owner frees it with peer_free().
 */
#pragma once

#include <event2/event.h>
#include <stdarg.h>
#include <stdint.h>

#include "frame.h"

struct peer;

enum peer_lost_reason {
        PEER_LOST_EOF,
        PEER_LOST_IO,
        PEER_LOST_BAD_FRAME, /* could not decode: detail in the frame_error */
        PEER_LOST_DIRECTION, /* a type this side must not receive */
        PEER_LOST_HANDLER,   /* on_frame returned < 0 */
        PEER_LOST_OVERFLOW,  /* send queue exceeded its cap */
        PEER_LOST_KILLED,    /* peer_kill() by the owner */
        _PEER_LOST_MAX,
};

const char *peer_lost_reason_to_string(enum peer_lost_reason r);

struct peer_ops {
        /* @fds holds n_fds received fds; the handler takes the ones it keeps with
         * TAKE_FD, the peer closes the rest afterwards. Return < 0 to kill the peer. */
        int (*on_frame)(struct peer *p, const struct frame *f, int *fds, size_t n_fds, void *userdata);
        /* Called once. @detail is a human-readable reason (static or peer-owned). */
        void (*on_lost)(struct peer *p, enum peer_lost_reason reason, const char *detail, void *userdata);
        /* Optional: the send queue, once congested (peer_congested()), fell below
         * the low watermark. Called from its own event, never from peer_send(). */
        void (*on_drained)(struct peer *p, void *userdata);
};

/* @accept_dir: the enum msg_dir a frame must carry to be accepted here
 * (DIR_TO_SUP on the supervisor side, DIR_TO_WORKER in workers).
 * Takes ownership of @fd on success only. */
int peer_new(struct event_base *base, int fd, unsigned accept_dir, const struct peer_ops *ops, void *userdata,
             struct peer **ret);
struct peer *peer_free(struct peer *p);
static inline void peer_freep(struct peer **p) {
        *p = peer_free(*p);
}

/* Queue a frame; fds (may be NULL) are dup'ed, the caller keeps its own. -EPIPE
 * once the peer is lost, -E2BIG for an oversized frame; overflow kills the peer
 * and returns -ENOBUFS. */
int peer_send(struct peer *p, int type, uint32_t seq, const void *body, const int *fds, size_t n_fds);
/* Send a raw, already-encoded frame (routing). */
int peer_send_raw(struct peer *p, const uint8_t *buf, size_t len, const int *fds, size_t n_fds);
/* Send MSG_ERROR / MSG_OK replies; the message is cut to MSG_STR_MAX - 1 bytes. */
int peer_send_error(struct peer *p, uint32_t seq, int code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
int peer_send_errorv(struct peer *p, uint32_t seq, int code, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));
int peer_send_ok(struct peer *p, uint32_t seq);
/* Send @len bytes as MSG_CHUNKs of <= CHUNK_MAX with @seq. */
int peer_send_chunks(struct peer *p, uint32_t seq, const uint8_t *data, size_t len);

/* Stop reading, report on_lost(PEER_LOST_KILLED, detail) once. Idempotent. */
void peer_kill(struct peer *p, enum peer_lost_reason reason, const char *detail);

bool peer_is_lost(const struct peer *p);
int peer_fd(const struct peer *p);
size_t peer_queued_bytes(const struct peer *p);
/* Flow control. The send queue is congested from the moment it holds 1 MiB
 * until it has drained to 256 KiB (then on_drained). Producers stop feeding a
 * congested peer: the queue cap (peer_set_queue_max) is only the defence
 * against a peer that does not read at all, far above what flow-controlled
 * traffic reaches. */
bool peer_congested(const struct peer *p);
/* Stop (true) or resume (false) reading frames; the kernel's socket buffer
 * then pushes back on the sender. */
int peer_pause_read(struct peer *p, bool pause);
bool peer_read_paused(const struct peer *p);
void peer_set_queue_max(struct peer *p, size_t max);
void *peer_get_userdata(const struct peer *p);
/* Next sequence number for a request (never 0). */
uint32_t peer_next_seq(struct peer *p);

/* Blocking helpers for simple clients (script worker threads, tests): write one
 * frame / read one frame on a blocking fd. */
int frame_write_blocking(int fd, int type, uint32_t seq, const void *body, const int *fds, size_t n_fds);
int frame_read_blocking(int fd, struct frame *ret, int *ret_fds, size_t max_fds, size_t *ret_n_fds,
                        enum frame_error *ret_why);
