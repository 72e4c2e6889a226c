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
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "exit-status.h"
#include "log.h"
#include "macro.h"
#include "peer.h"
#include "script-channel.h"

#define LOST_GRACE_SEC 5

struct script_channel {
        int fd;
        pthread_mutex_t lock; /* table, next_seq, lost */
        pthread_cond_t cond;  /* broadcast whenever an entry completes */
        pthread_mutex_t send_lock;
        struct script_pending_table table;
        uint32_t next_seq;
        int lost;
        const char *lost_reason;
        pthread_t reader;
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

static void channel_on_frame(struct script_channel *ch, struct frame *f) {
        enum script_deliver what;
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

        pthread_mutex_lock(&ch->lock);
        r = script_pending_deliver(&ch->table, f, &what);
        if (r >= 0 && what == SCRIPT_DELIVER_FINAL)
                pthread_cond_broadcast(&ch->cond);
        pthread_mutex_unlock(&ch->lock);
        if (r == -ENOENT)
                log_warning("Dropping %s with seq %u: no request is waiting for it", f->info->name, f->seq);
        else if (r == -EBADMSG)
                log_debug("Ignoring %s from the supervisor", f->info->name);
        else if (r < 0)
                log_error_errno(r, "Failed to store a reply");
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
                for (size_t i = 0; i < n_fds; i++)
                        safe_close(fds[i]); /* nothing the script worker receives carries fds */
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
                channel_on_frame(ch, &f);
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

int script_channel_send_request(struct script_channel *ch, int type, const void *body, struct script_pending **ret) {
        struct script_pending *p;
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
                r = seq == 0 ? -EEXIST : script_pending_add(&ch->table, seq, &p);
        } while (r == -EEXIST);
        pthread_mutex_unlock(&ch->lock);
        if (r < 0)
                return r;

        /* Registered before sending: the reply may beat the return of write(). */
        pthread_mutex_lock(&ch->send_lock);
        r = frame_write_blocking(ch->fd, type, seq, body, NULL, 0);
        pthread_mutex_unlock(&ch->send_lock);
        if (r < 0) {
                pthread_mutex_lock(&ch->lock);
                script_pending_remove(&ch->table, p);
                pthread_mutex_unlock(&ch->lock);
                return r;
        }
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
