/* SPDX-License-Identifier: MIT */
/*
 * peer.c owns one end of a worker channel: reading datagrams, decoding them
 * into frames, checking their direction, handing them to the owner with their
 * fds, and queueing outgoing frames under a byte cap. Whatever goes wrong ends
 * in exactly one on_lost call, delivered from its own event so the owner may
 * free the peer there; a lost peer neither reads nor sends again. A send that
 * finds the other end gone (it exited) is not the loss yet: what that end
 * sent before it closed (a worker's last words, a script's verdict) is read
 * first, and its EOF is the loss.
 */
#include <event2/event.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "fd-util.h"
#include "macro.h"
#include "peer.h"

#define PEER_QUEUE_MAX_DEFAULT (64u * 1024u * 1024u)
#define PEER_QUEUE_HIGH        (1024u * 1024u)
#define PEER_QUEUE_LOW         (256u * 1024u)
#define PEER_READS_PER_WAKEUP  64 /* frames handled per wakeup before others get a turn */
#define PEER_BATCH             4  /* datagrams taken per recvmmsg() */

struct qframe {
        struct qframe *next;
        uint8_t *buf;
        size_t len;
        int fds[FRAME_FDS_MAX];
        size_t n_fds;
};

struct peer {
        struct event_base *base;
        int fd;
        unsigned accept_dir;
        const struct peer_ops *ops;
        void *userdata;

        struct event *ev_read;
        struct event *ev_write;
        struct event *ev_lost;
        struct event *ev_drained;

        struct qframe *head, *tail;
        size_t queued;
        size_t queue_max;
        bool congested; /* passed PEER_QUEUE_HIGH, on_drained due below PEER_QUEUE_LOW */
        bool read_paused;
        bool write_dead; /* a send found the other end gone: write nothing more, read to its EOF */

        uint32_t seq;
        bool lost;
        enum peer_lost_reason reason;
        char detail[256];
        /* PEER_BATCH slots of FRAME_MAX + 1 bytes; batch[next..count) were
         * received but not handled yet (reading was paused in between). */
        uint8_t *rbuf;
        struct datagram batch[PEER_BATCH];
        size_t batch_next, batch_count;
};

static const char *const lost_names[_PEER_LOST_MAX] = {
        [PEER_LOST_EOF] = "connection closed",
        [PEER_LOST_IO] = "I/O error",
        [PEER_LOST_BAD_FRAME] = "malformed frame",
        [PEER_LOST_DIRECTION] = "message not allowed in this direction",
        [PEER_LOST_HANDLER] = "message rejected by handler",
        [PEER_LOST_OVERFLOW] = "send queue overflow",
        [PEER_LOST_KILLED] = "killed",
};

const char *peer_lost_reason_to_string(enum peer_lost_reason r) {
        if (r < 0 || r >= _PEER_LOST_MAX)
                return "unknown";
        return lost_names[r];
}

static struct qframe *qframe_free(struct qframe *q) {
        if (!q)
                return NULL;
        for (size_t i = 0; i < q->n_fds; i++)
                safe_close(q->fds[i]);
        free(q->buf);
        free(q);
        return NULL;
}

static void batch_clear(struct peer *p) {
        for (size_t i = p->batch_next; i < p->batch_count; i++)
                for (size_t k = 0; k < p->batch[i].n_fds; k++)
                        safe_close(p->batch[i].fds[k]);
        p->batch_next = p->batch_count = 0;
}

static void queue_clear(struct peer *p) {
        while (p->head) {
                struct qframe *q = p->head;
                p->head = q->next;
                qframe_free(q);
        }
        p->tail = NULL;
        p->queued = 0;
}

static void lost_cb(evutil_socket_t fd, short what, void *arg) {
        struct peer *p = arg;

        /* The owner may free the peer in on_lost: touch nothing after. */
        if (p->ops->on_lost)
                p->ops->on_lost(p, p->reason, p->detail, p->userdata);
}

static void set_lost(struct peer *p, enum peer_lost_reason reason, const char *detail) {
        if (p->lost)
                return;
        p->lost = true;
        p->reason = reason;
        snprintf(p->detail, sizeof(p->detail), "%s%s%s", peer_lost_reason_to_string(reason), detail ? ": " : "",
                 detail ?: "");
        (void) event_del(p->ev_read);
        (void) event_del(p->ev_write);
        queue_clear(p);
        batch_clear(p);
        /* Close our end now so the other side sees EOF even if the owner keeps the
         * struct around; the fd number is not reused by us. */
        (void) shutdown(p->fd, SHUT_RDWR);
        event_active(p->ev_lost, 0, 0);
}

static int queue_flush(struct peer *p);

void peer_kill(struct peer *p, enum peer_lost_reason reason, const char *detail) {
        if (!p)
                return;
        /* What the owner queued last (an ERROR saying why) goes out if the
         * socket takes it now; nothing waits for a peer being killed. */
        if (!p->lost)
                (void) queue_flush(p);
        set_lost(p, reason, detail);
}

/* Write queued frames until the queue is empty or the socket is full. */
static int queue_flush(struct peer *p) {
        while (p->head) {
                struct qframe *q = p->head;
                int r = fd_send_datagram(p->fd, q->buf, q->len, q->fds, q->n_fds);

                if (r == -EAGAIN || r == -EWOULDBLOCK)
                        return event_add(p->ev_write, NULL) < 0 ? -ENOMEM : 0;
                if (r < 0)
                        return r;
                p->head = q->next;
                if (!p->head)
                        p->tail = NULL;
                p->queued -= q->len;
                qframe_free(q);
                if (p->congested && p->queued <= PEER_QUEUE_LOW) {
                        /* Deferred: the owner may send again from on_drained. */
                        p->congested = false;
                        event_active(p->ev_drained, 0, 0);
                }
        }
        (void) event_del(p->ev_write);
        return 0;
}

/* @r from sending: the other end gone (EPIPE, ECONNRESET) leaves its last
 * frames to read, and the read side reports the EOF; anything else is the
 * loss now. */
static void send_failed(struct peer *p, int r) {
        char d[64];

        if (r == -EPIPE || r == -ECONNRESET) {
                p->write_dead = true;
                queue_clear(p);
                (void) event_del(p->ev_write);
                event_active(p->ev_read, EV_READ, 0);
                return;
        }
        snprintf(d, sizeof(d), "send: %s", strerror(-r));
        set_lost(p, PEER_LOST_IO, d);
}

static void drained_cb(evutil_socket_t fd, short what, void *arg) {
        struct peer *p = arg;

        if (!p->lost && p->ops->on_drained)
                p->ops->on_drained(p, p->userdata);
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
        struct peer *p = arg;
        int r = queue_flush(p);

        if (r < 0)
                send_failed(p, r);
}

static void handle_datagram(struct peer *p, const uint8_t *buf, size_t n, int *fds, size_t n_fds) {
        struct frame f = {};
        enum frame_error why = FRAME_OK;
        char d[128];
        int r;

        r = frame_decode(buf, n, &f, &why);
        if (r < 0) {
                snprintf(d, sizeof(d), "%s (%zu bytes)", frame_error_to_string(why), n);
                set_lost(p, PEER_LOST_BAD_FRAME, d);
                return;
        }
        if (!(f.info->dir & p->accept_dir)) {
                snprintf(d, sizeof(d), "%s", f.info->name);
                set_lost(p, PEER_LOST_DIRECTION, d);
                frame_done(&f);
                return;
        }
        r = p->ops->on_frame(p, &f, fds, n_fds, p->userdata);
        if (r < 0 && !p->lost) {
                snprintf(d, sizeof(d), "%s: %s", f.info->name, strerror(-r));
                set_lost(p, PEER_LOST_HANDLER, d);
        }
        frame_done(&f);
}

/* One recvmmsg() fills the batch: a lone frame costs one call, not a second
 * one that only says EAGAIN, and a burst is taken PEER_BATCH at a time. */
static int batch_fill(struct peer *p) {
        int n = fd_recv_datagrams(p->fd, p->rbuf, FRAME_MAX + 1, PEER_BATCH, p->batch);

        if (n < 0)
                return n;
        p->batch_next = 0;
        p->batch_count = (size_t) n;
        return n;
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
        struct peer *p = arg;

        for (int i = 0; i < PEER_READS_PER_WAKEUP && !p->lost && !p->read_paused; i++) {
                if (p->batch_next == p->batch_count) {
                        /* A short batch emptied the socket: wait for the next readiness. */
                        if (i > 0 && p->batch_count < PEER_BATCH)
                                return;
                        int n = batch_fill(p);
                        if (n == -ECONNRESET)
                                n = batch_fill(p); /* see frame_read_blocking(): the frames come next */
                        if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR)
                                return;
                        if (n < 0) {
                                set_lost(p, n == -ECONNRESET ? PEER_LOST_EOF : PEER_LOST_IO, strerror(-n));
                                return;
                        }
                }
                size_t slot = p->batch_next++;
                struct datagram *d = &p->batch[slot];
                if (d->len == -EMSGSIZE || d->len > (ssize_t) FRAME_MAX) {
                        for (size_t k = 0; k < d->n_fds; k++)
                                safe_close(d->fds[k]);
                        set_lost(p, PEER_LOST_BAD_FRAME, "frame too big");
                        return;
                }
                if (d->len <= 0) {
                        set_lost(p, PEER_LOST_EOF, NULL);
                        return;
                }
                handle_datagram(p, p->rbuf + slot * (FRAME_MAX + 1), (size_t) d->len, d->fds, d->n_fds);
                for (size_t k = 0; k < d->n_fds; k++)
                        safe_close(d->fds[k]);
                d->n_fds = 0;
        }
        /* Out of turns with frames already taken from the socket: no readiness
         * edge will bring us back for them, so ask for another turn. */
        if (!p->lost && !p->read_paused && p->batch_next < p->batch_count)
                event_active(p->ev_read, EV_READ, 0);
}

int peer_new(struct event_base *base, int fd, unsigned accept_dir, const struct peer_ops *ops, void *userdata,
             struct peer **ret) {
        struct peer *p;
        int r;

        if (!base || fd < 0 || !ops || !ops->on_frame || !ret)
                return -EINVAL;
        r = fd_set_nonblock(fd, 1);
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (struct peer){
                .base = base,
                .fd = fd,
                .accept_dir = accept_dir,
                .ops = ops,
                .userdata = userdata,
                .queue_max = PEER_QUEUE_MAX_DEFAULT,
        };
        p->rbuf = malloc((size_t) PEER_BATCH * (FRAME_MAX + 1));
        p->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, read_cb, p);
        p->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, write_cb, p);
        p->ev_lost = event_new(base, -1, 0, lost_cb, p);
        p->ev_drained = event_new(base, -1, 0, drained_cb, p);
        if (!p->rbuf || !p->ev_read || !p->ev_write || !p->ev_lost || !p->ev_drained ||
            event_add(p->ev_read, NULL) < 0) {
                p->fd = -EBADF; /* not ours on failure */
                peer_free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

struct peer *peer_free(struct peer *p) {
        if (!p)
                return NULL;
        queue_clear(p);
        batch_clear(p);
        if (p->ev_read)
                event_free(p->ev_read);
        if (p->ev_write)
                event_free(p->ev_write);
        if (p->ev_lost)
                event_free(p->ev_lost);
        if (p->ev_drained)
                event_free(p->ev_drained);
        safe_close(p->fd);
        free(p->rbuf);
        free(p);
        return NULL;
}

int peer_send_raw(struct peer *p, const uint8_t *buf, size_t len, const int *fds, size_t n_fds) {
        struct qframe *q;
        bool was_empty;

        if (!p)
                return -EINVAL;
        if (p->lost || p->write_dead)
                return -EPIPE;
        if (len > FRAME_MAX)
                return -E2BIG;
        if (n_fds > FRAME_FDS_MAX)
                return -E2BIG;
        if (p->queued + len > p->queue_max) {
                set_lost(p, PEER_LOST_OVERFLOW, NULL);
                return -ENOBUFS;
        }
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->buf = malloc(len);
        if (!q->buf) {
                free(q);
                return -ENOMEM;
        }
        memcpy(q->buf, buf, len);
        q->len = len;
        for (size_t i = 0; i < n_fds; i++) {
                int d = fd_dup_cloexec(fds[i]);
                if (d < 0) {
                        qframe_free(q);
                        return d;
                }
                q->fds[q->n_fds++] = d;
        }

        was_empty = !p->head;
        if (p->tail)
                p->tail->next = q;
        else
                p->head = q;
        p->tail = q;
        p->queued += len;
        if (p->queued >= PEER_QUEUE_HIGH)
                p->congested = true;

        if (was_empty) {
                int r = queue_flush(p);
                if (r < 0) {
                        send_failed(p, r);
                        return -EPIPE;
                }
        }
        return 0;
}

int peer_send(struct peer *p, int type, uint32_t seq, const void *body, const int *fds, size_t n_fds) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        if (!p)
                return -EINVAL;
        if (p->lost)
                return -EPIPE;
        r = frame_encode(type, seq, body, &buf, &len);
        if (r < 0)
                return r;
        return peer_send_raw(p, buf, len, fds, n_fds);
}

int peer_send_errorv(struct peer *p, uint32_t seq, int code, const char *fmt, va_list ap) {
        char msg[MSG_STR_MAX];

        vsnprintf(msg, sizeof(msg), fmt, ap);
        return peer_send(p, MSG_ERROR, seq, &(struct msg_error){.code = code, .message = msg}, NULL, 0);
}

int peer_send_error(struct peer *p, uint32_t seq, int code, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = peer_send_errorv(p, seq, code, fmt, ap);
        va_end(ap);
        return r;
}

int peer_send_ok(struct peer *p, uint32_t seq) {
        return peer_send(p, MSG_OK, seq, &(struct msg_empty){}, NULL, 0);
}

int peer_send_chunks(struct peer *p, uint32_t seq, const uint8_t *data, size_t len) {
        for (size_t off = 0; off < len; off += CHUNK_MAX) {
                struct msg_chunk c = {
                        .data = {.data = (uint8_t *) data + off, .len = MIN(CHUNK_MAX, len - off)},
                };
                int r = peer_send(p, MSG_CHUNK, seq, &c, NULL, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool peer_is_lost(const struct peer *p) {
        return !p || p->lost;
}

int peer_fd(const struct peer *p) {
        return p ? p->fd : -EBADF;
}

size_t peer_queued_bytes(const struct peer *p) {
        return p ? p->queued : 0;
}

bool peer_congested(const struct peer *p) {
        return p && !p->lost && p->congested;
}

int peer_pause_read(struct peer *p, bool pause) {
        if (!p || p->lost || p->read_paused == pause)
                return 0;
        p->read_paused = pause;
        if (pause)
                return event_del(p->ev_read) < 0 ? -EIO : 0;
        /* Add before activating: libevent does not insert an event that is
         * already active into the fd map, and it would never fire again. */
        if (event_add(p->ev_read, NULL) < 0)
                return -ENOMEM;
        /* What arrived while paused needs no new readiness edge: look now. */
        event_active(p->ev_read, EV_READ, 0);
        return 0;
}

bool peer_read_paused(const struct peer *p) {
        return p && p->read_paused;
}

void peer_set_queue_max(struct peer *p, size_t max) {
        if (p)
                p->queue_max = max;
}

void *peer_get_userdata(const struct peer *p) {
        return p ? p->userdata : NULL;
}

uint32_t peer_next_seq(struct peer *p) {
        if (++p->seq == 0)
                p->seq = 1;
        return p->seq;
}

int frame_write_blocking(int fd, int type, uint32_t seq, const void *body, const int *fds, size_t n_fds) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len;
        int r;

        r = frame_encode(type, seq, body, &buf, &len);
        if (r < 0)
                return r;
        do
                r = fd_send_datagram(fd, buf, len, fds, n_fds);
        while (r == -EINTR);
        return r;
}

int frame_read_blocking(int fd, struct frame *ret, int *ret_fds, size_t max_fds, size_t *ret_n_fds,
                        enum frame_error *ret_why) {
        _cleanup_free_ uint8_t *buf = malloc(FRAME_MAX + 1);
        int fds[FRAME_FDS_MAX];
        size_t n_fds = 0;
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        /* A peer that closes with frames of ours unread makes the kernel report
         * ECONNRESET once (it clears the error as it reports it), ahead of the
         * frames that peer sent before closing: its last words (a verdict, a
         * final reply) come on the next read, then EOF. */
        do
                n = fd_recv_datagram(fd, buf, FRAME_MAX + 1, fds, FRAME_FDS_MAX, &n_fds);
        while (n == -EINTR || n == -ECONNRESET);
        if (n < 0)
                return (int) n;
        if (n == 0)
                return -EPIPE;
        if (n > (ssize_t) FRAME_MAX) {
                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                if (ret_why)
                        *ret_why = FRAME_ERR_TOO_BIG;
                return -EMSGSIZE;
        }
        r = frame_decode(buf, (size_t) n, ret, ret_why);
        if (r < 0) {
                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                return r;
        }
        for (size_t i = 0; i < n_fds; i++) {
                if (ret_fds && i < max_fds)
                        ret_fds[i] = fds[i];
                else
                        safe_close(fds[i]);
        }
        if (ret_n_fds)
                *ret_n_fds = MIN(n_fds, max_fds);
        return 0;
}
