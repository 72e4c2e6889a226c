/* SPDX-License-Identifier: MIT */
/*
 * script-channel.c owns the supervisor channel of vigil-script after start-up.
 * Unlike the other workers it is not a libevent loop: Python threads block in
 * requests (with the GIL released), so sending is a mutex-guarded blocking
 * write and a dedicated reader thread demultiplexes replies by seq into the
 * pending table, waking waiters through one condition variable.
 *
 * If the supervisor disappears, every waiter gets -EPIPE. The reader then
 * gives Python a few seconds to turn that into a verdict and exits the
 * process itself: with no supervisor, nothing this worker does matters.
 *
 * Requests to a machine go over a direct channel to its worker when one can
 * be had (CHANNEL_OPEN: the supervisor brokers a socketpair), without the
 * supervisor's hop; each such channel has its own reader thread feeding the
 * same table. When a channel dies (its worker restarted), what was in flight
 * on it follows the supervisor's routing rule: an idempotent request is sent
 * again through the supervisor, which holds it until the worker is ready;
 * any other fails naming the restart. The next request opens a new channel.
 * VIGIL_DIRECT_CHANNELS=0 keeps everything on the supervisor's path.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "exit-status.h"
#include "fd-util.h"
#include "log.h"
#include "macro.h"
#include "peer.h"
#include "script-channel.h"
#include "time-util.h"

#define LOST_GRACE_SEC 5
/* After a CHANNEL_OPEN refused because the worker is not ready or not there
 * yet, requests to that machine go through the supervisor this long; after
 * any other refusal (a supervisor that brokers none), for good. */
#define DIRECT_RETRY_USEC (1 * USEC_PER_SEC)
#define DIRECT_OPEN_MS    10000

/* One brokered channel to one machine worker, alive until its worker closes it. */
struct direct_chan {
        struct script_channel *ch;
        struct direct_target *target;
        int fd;
        unsigned id;      /* what pending entries sent on it carry in ->via */
        bool alive;       /* its reader has not seen it close */
        bool reader_done; /* the reader thread has left: free once no sender uses it */
        unsigned users;   /* senders writing on fd now */
        pthread_mutex_t send_lock;
};

/* A machine the script talked to: its current channel, or when to try again. */
struct direct_target {
        char name[NAME_MAX_LEN + 1];
        struct direct_chan *chan;
        uint64_t retry_at;
        struct direct_target *next;
};

struct script_channel {
        int fd;
        pthread_mutex_t lock; /* table, next_seq, lost, targets and their channels */
        pthread_cond_t cond;  /* broadcast whenever an entry completes */
        pthread_mutex_t send_lock;
        pthread_mutex_t open_lock; /* one CHANNEL_OPEN at a time */
        struct script_pending_table table;
        uint32_t next_seq;
        int lost;
        const char *lost_reason;
        pthread_t reader;
        bool direct;
        unsigned next_chan_id;
        struct direct_target *targets;
};

static void channel_mark_lost(struct script_channel *ch, int error, const char *reason) {
        pthread_mutex_lock(&ch->lock);
        if (ch->lost == 0) {
                ch->lost = error;
                ch->lost_reason = reason;
                script_pending_fail_all(&ch->table, error);
                pthread_cond_broadcast(&ch->cond);
        }
        pthread_mutex_unlock(&ch->lock);
}

/* A reply from the supervisor or a direct channel (@fd: one that came with it, or NULL). */
static void channel_deliver(struct script_channel *ch, struct frame *f, int *fd, const char *from) {
        enum script_deliver what;
        int r;

        pthread_mutex_lock(&ch->lock);
        r = script_pending_deliver_fd(&ch->table, f, fd, &what);
        if (r >= 0 && what == SCRIPT_DELIVER_FINAL)
                pthread_cond_broadcast(&ch->cond);
        pthread_mutex_unlock(&ch->lock);
        if (r == -ENOENT)
                log_warning("Dropping %s with seq %u from %s: no request is waiting for it", f->info->name, f->seq,
                            from);
        else if (r == -EBADMSG)
                log_debug("Ignoring %s from %s", f->info->name, from);
        else if (r < 0)
                log_error_errno(r, "Failed to store a reply");
}

static void channel_on_frame(struct script_channel *ch, struct frame *f, int *fd) {
        int r;

        if (f->type == MSG_PING) {
                const struct msg_ping *ping = f->body;

                pthread_mutex_lock(&ch->send_lock);
                r = frame_write_blocking(ch->fd, MSG_PONG, f->seq, ping, NULL, 0);
                pthread_mutex_unlock(&ch->send_lock);
                if (r < 0)
                        log_debug_errno(r, "Failed to answer PING");
                return;
        }

        channel_deliver(ch, f, f->type == MSG_CHANNEL && fd && *fd >= 0 ? fd : NULL, "the supervisor");
}

static void *channel_reader(void *userdata) {
        struct script_channel *ch = userdata;
        const char *reason;
        int r;

        for (;;) {
                struct frame f = {};
                int fds[FRAME_FDS_MAX];
                size_t n_fds = 0;
                enum frame_error why = FRAME_OK;

                r = frame_read_blocking(ch->fd, &f, fds, ELEMENTSOF(fds), &n_fds, &why);
                for (size_t i = 1; i < n_fds; i++)
                        safe_close(fds[i]); /* only a CHANNEL reply carries one fd */
                if (r == -EPIPE) {
                        reason = "the supervisor closed the channel";
                        break;
                }
                if (r < 0 && why != FRAME_OK) {
                        log_error("Bad frame from the supervisor (%s), giving up", frame_error_to_string(why));
                        reason = "bad frame from the supervisor";
                        r = -EPROTO;
                        break;
                }
                if (r < 0) {
                        log_error_errno(r, "Failed to read from the supervisor");
                        reason = "read error on the supervisor channel";
                        break;
                }
                if (!(f.info->dir & DIR_TO_WORKER)) {
                        log_error("The supervisor sent %s, which only workers send; giving up", f.info->name);
                        frame_done(&f);
                        reason = "protocol error on the supervisor channel";
                        r = -EPROTO;
                        break;
                }
                channel_on_frame(ch, &f, n_fds > 0 ? &fds[0] : NULL);
                if (n_fds > 0)
                        safe_close(fds[0]);
                frame_done(&f);
        }

        channel_mark_lost(ch, r == -EPROTO ? -EPROTO : -EPIPE, reason);
        /* Let the waiters turn this into a verdict, then go: the supervisor is gone. */
        sleep(LOST_GRACE_SEC);
        log_error("Supervisor channel lost (%s), exiting", reason);
        _exit(r == -EPROTO ? WORKER_EXIT_PROTOCOL : WORKER_EXIT_CRASH);
        return NULL;
}

int script_channel_start(int fd, size_t reply_max, struct script_channel **ret) {
        struct script_channel *ch;
        int r;

        ch = calloc(1, sizeof(*ch));
        if (!ch)
                return -ENOMEM;
        ch->fd = fd;
        ch->next_seq = 1;
        script_pending_table_init(&ch->table, reply_max);
        pthread_mutex_init(&ch->lock, NULL);
        pthread_mutex_init(&ch->send_lock, NULL);
        pthread_mutex_init(&ch->open_lock, NULL);
        ch->direct = !streq_ptr(getenv("VIGIL_DIRECT_CHANNELS"), "0");
        {
                pthread_condattr_t attr;

                pthread_condattr_init(&attr);
                pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
                pthread_cond_init(&ch->cond, &attr);
                pthread_condattr_destroy(&attr);
        }
        r = -pthread_create(&ch->reader, NULL, channel_reader, ch);
        if (r < 0) {
                free(ch);
                return r;
        }
        (void) pthread_detach(ch->reader);
        *ret = ch;
        return 0;
}

/* Register a request under a fresh seq. */
static int channel_register(struct script_channel *ch, struct script_pending **ret) {
        uint32_t seq;
        int r;

        pthread_mutex_lock(&ch->lock);
        if (ch->lost) {
                r = ch->lost;
                pthread_mutex_unlock(&ch->lock);
                return r;
        }
        do {
                seq = ch->next_seq++;
                r = seq == 0 || seq >= ROUTE_SEQ_DIRECT ? -EEXIST : script_pending_add(&ch->table, seq, ret);
                if (seq >= ROUTE_SEQ_DIRECT)
                        ch->next_seq = 1;
        } while (r == -EEXIST);
        pthread_mutex_unlock(&ch->lock);
        return r;
}

static void channel_unregister(struct script_channel *ch, struct script_pending *p) {
        pthread_mutex_lock(&ch->lock);
        script_pending_remove(&ch->table, p);
        pthread_mutex_unlock(&ch->lock);
}

/* Through the supervisor: the way every request went before direct channels. */
static int channel_send_routed(struct script_channel *ch, int type, const void *body, struct script_pending **ret) {
        struct script_pending *p;
        int r = channel_register(ch, &p);

        if (r < 0)
                return r;
        /* Registered before sending: the reply may beat the return of write(). */
        pthread_mutex_lock(&ch->send_lock);
        r = frame_write_blocking(ch->fd, type, p->seq, body, NULL, 0);
        pthread_mutex_unlock(&ch->send_lock);
        if (r < 0) {
                channel_unregister(ch, p);
                return r;
        }
        *ret = p;
        return 0;
}

/* ---- direct channels ---- */

/* The machine a request goes to, if it may take a direct channel. */
static const char *direct_target_name(const struct script_channel *ch, int type, const void *body) {
        const struct msg_info *info = msg_info_get(type);

        if (!ch->direct || !info || info->route != ROUTE_REQUEST || !(info->target & KIND_BIT(KIND_MACHINE)) ||
            info->n_fields == 0 || info->fields[0].type != FIELD_STR)
                return NULL;
        return *(char *const *) ((const uint8_t *) body + info->fields[0].offset);
}

static struct direct_target *direct_target_get(struct script_channel *ch, const char *name) {
        struct direct_target *t;

        for (t = ch->targets; t; t = t->next)
                if (streq(t->name, name))
                        return t;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->next = ch->targets;
        ch->targets = t;
        return t;
}

/* With ch->lock held: free @c once its reader has left and no sender uses it. */
static void direct_chan_release(struct direct_chan *c) {
        if (!c->reader_done || c->users > 0)
                return;
        if (c->target->chan == c)
                c->target->chan = NULL;
        safe_close(c->fd);
        pthread_mutex_destroy(&c->send_lock);
        free(c);
}

/* A copy of a frame to send again through the supervisor. */
struct resend {
        uint8_t *buf;
        size_t len;
};

/* With ch->lock held: @p was sent on a channel that died. Idempotent: again
 * through the supervisor (copied into @r), from the start; else it fails. */
static void direct_settle(struct script_channel *ch, struct script_pending *p, const char *machine, struct resend *r) {
        char msg[256];

        if (p->abandoned || !p->replay) {
                snprintf(msg, sizeof(msg),
                         "machine '%s' worker restarted or stopped while executing; request not repeated", machine);
                script_pending_fail(&ch->table, p, -ECONNRESET, msg);
                return;
        }
        p->via = 0;
        script_pending_restart(p);
        r->buf = malloc(p->replay_len);
        if (!r->buf) {
                script_pending_fail(&ch->table, p, -ENOMEM, "out of memory replaying a request");
                return;
        }
        memcpy(r->buf, p->replay, p->replay_len);
        r->len = p->replay_len;
}

/* Send each of @v through the supervisor and free its buffer (not @v). */
static void direct_resend(struct script_channel *ch, struct resend *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                pthread_mutex_lock(&ch->send_lock);
                int r = fd_send_datagram(ch->fd, v[i].buf, v[i].len, NULL, 0);
                pthread_mutex_unlock(&ch->send_lock);
                if (r < 0)
                        log_debug_errno(r, "Replaying a request through the supervisor failed");
                free(v[i].buf);
                v[i].buf = NULL;
        }
}

/* Its worker closed @c: settle what was sent on it, then leave. */
static void direct_chan_lost(struct direct_chan *c, const char *why) {
        struct script_channel *ch = c->ch;
        struct resend *v = NULL;
        size_t n = 0, cap = 0;

        log_debug("Direct channel to '%s' closed (%s)", c->target->name, why);
        pthread_mutex_lock(&ch->lock);
        c->alive = false;
        for (struct script_pending *p = ch->table.head, *next; p; p = next) {
                next = p->next; /* settling may free an abandoned entry */
                if (p->via != c->id || !p->sent || p->done)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 8;
                        struct resend *w = realloc(v, cap * sizeof(*v));
                        if (!w) {
                                script_pending_fail(&ch->table, p, -ENOMEM, "out of memory replaying a request");
                                continue;
                        }
                        v = w;
                }
                v[n] = (struct resend){};
                direct_settle(ch, p, c->target->name, &v[n]);
                n += v[n].buf != NULL;
        }
        pthread_cond_broadcast(&ch->cond);
        c->reader_done = true;
        direct_chan_release(c);
        pthread_mutex_unlock(&ch->lock);
        direct_resend(ch, v, n);
        free(v);
}

static void *direct_reader(void *userdata) {
        struct direct_chan *c = userdata;
        const char *why = "closed by the worker";
        char from[NAME_MAX_LEN + 32];

        snprintf(from, sizeof(from), "machine '%s'", c->target->name);
        for (;;) {
                struct frame f = {};
                int fds[FRAME_FDS_MAX];
                size_t n_fds = 0;
                enum frame_error fe = FRAME_OK;
                int r = frame_read_blocking(c->fd, &f, fds, ELEMENTSOF(fds), &n_fds, &fe);

                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]);
                if (r < 0) {
                        if (r != -EPIPE)
                                why = fe != FRAME_OK ? frame_error_to_string(fe) : "read error";
                        break;
                }
                if (f.info->route != ROUTE_REPLY) {
                        log_error("The worker of %s sent %s on its direct channel, closing it", from, f.info->name);
                        why = "protocol error";
                        frame_done(&f);
                        break;
                }
                channel_deliver(c->ch, &f, NULL, from);
                frame_done(&f);
        }
        direct_chan_lost(c, why);
        return NULL;
}

/* The worker's OK (seq 0) on a fresh channel: it adopted its end. Until then
 * nothing is sent on it: an end its worker never took (the worker died before
 * reading the supervisor's frame, which the supervisor had not noticed yet)
 * closes without it, and the open counts as refused. */
static int direct_wait_adopted(int fd) {
        struct timeval tv = timeval_from_msec(DIRECT_OPEN_MS), none = {};
        struct frame f = {};
        int r;

        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        r = frame_read_blocking(fd, &f, NULL, 0, NULL, NULL);
        if (r >= 0 && (f.type != MSG_OK || f.seq != 0))
                r = -EPROTO;
        frame_done(&f);
        if (r >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none)) < 0)
                r = -errno;
        return r == -EAGAIN || r == -EWOULDBLOCK ? -ETIMEDOUT : r;
}

/* Ask the supervisor for a channel to @name: its fd, or < 0. */
static int direct_open(struct script_channel *ch, const char *name) {
        struct script_pending *p;
        int r, fd;

        r = channel_send_routed(ch, MSG_CHANNEL_OPEN, &(struct msg_channel_open){.target = (char *) name}, &p);
        if (r < 0)
                return r;
        r = script_channel_wait(ch, p, DIRECT_OPEN_MS);
        pthread_mutex_lock(&ch->lock);
        if (r < 0)
                fd = r;
        else if (p->error)
                fd = p->error;
        else if (p->final.type == MSG_ERROR) {
                int64_t code = ((const struct msg_error *) p->final.body)->code;
                fd = code < 0 && code > -4096 ? (int) code : -EIO; /* never a code taken for an fd */
        } else
                fd = TAKE_FD(p->fd);
        if (fd < 0 && fd != -ENOENT && fd != -EAGAIN) /* those two are normal: not there or not ready yet */
                log_debug_errno(fd, "No direct channel to '%s'", name);
        script_pending_abandon(&ch->table, p);
        pthread_mutex_unlock(&ch->lock);
        if (fd >= 0) {
                r = direct_wait_adopted(fd);
                if (r < 0) {
                        log_debug_errno(r, "The direct channel to '%s' closed before its worker took it", name);
                        safe_close(fd);
                        return r == -EPIPE ? -EAGAIN : r;
                }
        }
        return fd;
}

/* With ch->lock held: @t's live channel with a user counted, or NULL. */
static struct direct_chan *direct_use(struct direct_target *t) {
        if (!t || !t->chan || !t->chan->alive)
                return NULL;
        t->chan->users++;
        return t->chan;
}

/* A live channel to @name with a user counted (direct_send() drops it),
 * opened now if there is none and the last refusal is old enough; NULL: go
 * through the supervisor. */
static struct direct_chan *direct_get(struct script_channel *ch, const char *name) {
        struct direct_target *t;
        struct direct_chan *c = NULL;
        pthread_t reader;
        int fd;

        pthread_mutex_lock(&ch->lock);
        t = direct_target_get(ch, name);
        c = direct_use(t);
        pthread_mutex_unlock(&ch->lock);
        if (c || !t)
                return c;

        /* One opener at a time; whoever waited here may find it open now. */
        pthread_mutex_lock(&ch->open_lock);
        pthread_mutex_lock(&ch->lock);
        c = direct_use(t);
        if (c || now_usec() < t->retry_at) {
                pthread_mutex_unlock(&ch->lock);
                pthread_mutex_unlock(&ch->open_lock);
                return c;
        }
        pthread_mutex_unlock(&ch->lock);

        fd = direct_open(ch, name);
        c = fd >= 0 ? calloc(1, sizeof(*c)) : NULL;
        pthread_mutex_lock(&ch->lock);
        if (c) {
                *c = (struct direct_chan){
                        .ch = ch, .target = t, .fd = fd, .id = ++ch->next_chan_id, .alive = true, .users = 1};
                pthread_mutex_init(&c->send_lock, NULL);
                if (pthread_create(&reader, NULL, direct_reader, c) == 0) {
                        (void) pthread_detach(reader);
                        t->chan = c;
                } else {
                        pthread_mutex_destroy(&c->send_lock);
                        free(c);
                        c = NULL;
                }
        }
        if (!c) {
                bool later = fd == -ENOENT || fd == -EAGAIN || fd == -ETIMEDOUT || fd == -EPROTO || fd >= 0;

                safe_close(fd);
                t->retry_at = later ? now_usec() + DIRECT_RETRY_USEC : UINT64_MAX;
        }
        pthread_mutex_unlock(&ch->lock);
        pthread_mutex_unlock(&ch->open_lock);
        return c;
}

/* Send @type on @c. 0: sent (or settled because @c died meanwhile); < 0:
 * not sent at all, @p unregistered: the caller may go through the supervisor. */
static int direct_send(struct direct_chan *c, int type, const void *body, struct script_pending *p) {
        struct script_channel *ch = c->ch;
        const struct msg_info *info = msg_info_get(type);
        _cleanup_free_ uint8_t *buf = NULL;
        struct resend again = {};
        size_t len;
        int r;

        r = frame_encode(type, p->seq, body, &buf, &len);
        if (r >= 0) {
                pthread_mutex_lock(&c->send_lock);
                r = fd_send_datagram(c->fd, buf, len, NULL, 0);
                pthread_mutex_unlock(&c->send_lock);
        }
        pthread_mutex_lock(&ch->lock);
        c->users--;
        if (r >= 0) {
                p->sent = true;
                if (info->idempotent) {
                        p->replay = TAKE_PTR(buf);
                        p->replay_len = len;
                }
                /* The reader settled what was sent before it saw the close; this one is ours. */
                if (!c->alive)
                        direct_settle(ch, p, c->target->name, &again);
        } else if (r != -E2BIG)
                script_pending_remove(&ch->table, p);
        direct_chan_release(c);
        pthread_mutex_unlock(&ch->lock);
        if (again.buf)
                direct_resend(ch, &again, 1);
        return r;
}

int script_channel_send_request(struct script_channel *ch, int type, const void *body, struct script_pending **ret) {
        const char *name = direct_target_name(ch, type, body);
        struct direct_chan *c = name ? direct_get(ch, name) : NULL;
        struct script_pending *p;
        int r;

        if (!c)
                return channel_send_routed(ch, type, body, ret);
        r = channel_register(ch, &p);
        if (r < 0) {
                pthread_mutex_lock(&ch->lock);
                c->users--;
                direct_chan_release(c);
                pthread_mutex_unlock(&ch->lock);
                return r;
        }
        p->via = c->id;
        r = direct_send(c, type, body, p);
        if (r == -E2BIG) {
                channel_unregister(ch, p);
                return r;
        }
        if (r < 0) /* the channel closed before it took the request: it never ran */
                return channel_send_routed(ch, type, body, ret);
        *ret = p;
        return 0;
}

int script_channel_wait(struct script_channel *ch, struct script_pending *p, int timeout_ms) {
        struct timespec deadline;
        int r = 0;

        if (timeout_ms >= 0) {
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += timeout_ms / 1000;
                deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
        }
        pthread_mutex_lock(&ch->lock);
        while (!p->done && r == 0)
                r = timeout_ms < 0 ? pthread_cond_wait(&ch->cond, &ch->lock)
                                   : pthread_cond_timedwait(&ch->cond, &ch->lock, &deadline);
        r = p->done ? 0 : -ETIMEDOUT;
        pthread_mutex_unlock(&ch->lock);
        return r;
}

void script_channel_release(struct script_channel *ch, struct script_pending *p) {
        pthread_mutex_lock(&ch->lock);
        script_pending_abandon(&ch->table, p);
        pthread_mutex_unlock(&ch->lock);
}

int script_channel_send(struct script_channel *ch, int type, const void *body) {
        int r;

        pthread_mutex_lock(&ch->send_lock);
        r = frame_write_blocking(ch->fd, type, 0, body, NULL, 0);
        pthread_mutex_unlock(&ch->send_lock);
        return r;
}

int script_channel_lost(struct script_channel *ch, const char **ret_reason) {
        int r;

        pthread_mutex_lock(&ch->lock);
        r = ch->lost;
        if (ret_reason)
                *ret_reason = ch->lost_reason;
        pthread_mutex_unlock(&ch->lock);
        return r;
}
