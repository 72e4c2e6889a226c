/* SPDX-License-Identifier: MIT */
/*
 * qemu-requests.c owns the request queue of one QEMU control connection
 * (see qemu-requests.h): order, the one request in flight, its deadline,
 * writing it, and telling the owner how it ended.
 */
#include "fd-util.h"
#include "log.h"
#include "machine-util.h"
#include "qemu-requests.h"

static struct qemu_request *request_free(struct qemu_request *r) {
        if (r) {
                free(r->command);
                safe_close(r->fd);
                free(r);
        }
        return NULL;
}

static void requests_run(struct qemu_requests *mq);

void qemu_requests_complete(struct qemu_requests *mq, int error, const char *why, const char *reply, size_t len) {
        struct qemu_request *r = TAKE_PTR(mq->active);
        bool go_on = true;

        (void) evtimer_del(mq->timer);
        if (!r)
                return;
        if (error < 0)
                go_on = mq->ops->failed(mq->userdata, r, error, why);
        else
                mq->ops->answered(mq->userdata, r, reply, len);
        request_free(r);
        if (go_on)
                requests_run(mq);
}

static void requests_run(struct qemu_requests *mq) {
        struct qemu_request *r;
        char why[128];
        int fd = *mq->fd, k;

        if (mq->active || fd < 0 || !(r = TAILQ_FIRST(&mq->pending)))
                return;
        TAILQ_REMOVE(&mq->pending, r, link);
        mq->active = r;
        machine_timer_set(mq->timer, QEMU_REQUESTS_TIMEOUT_USEC);
        if (mq->ops->activate)
                mq->ops->activate(mq->userdata, r);
        if (!r->command)
                return;
        /* The fd rides on the command's first byte. */
        k = r->fd >= 0 ? fd_send_datagram(fd, r->command, 1, &r->fd, 1) : 0;
        if (k >= 0)
                k = machine_write_all(fd, r->command + (r->fd >= 0));
        if (k >= 0)
                k = machine_write_all(fd, "\n");
        if (k < 0) {
                (void) snprintf(why, sizeof why, "could not write to %s", mq->what);
                qemu_requests_complete(mq, k, why, NULL, 0);
        }
}

static int requests_submit(struct qemu_requests *mq, int kind, bool startup, const char *command, uint32_t seq,
                           int fd) {
        struct qemu_request *r = calloc(1, sizeof *r);

        if (r)
                r->fd = fd;
        if (!r || (command && !(r->command = strdup(command)))) {
                if (!r)
                        safe_close(fd);
                request_free(r);
                return -ENOMEM;
        }
        r->kind = kind;
        r->startup = startup;
        r->seq = seq;
        TAILQ_INSERT_TAIL(&mq->pending, r, link);
        requests_run(mq);
        return 0;
}

int qemu_requests_submit(struct qemu_requests *mq, int kind, bool startup, const char *command, uint32_t seq) {
        return requests_submit(mq, kind, startup, command, seq, -EBADF);
}

int qemu_requests_submit_fd(struct qemu_requests *mq, int kind, bool startup, const char *command, int fd) {
        if (!command) {
                safe_close(fd);
                return -EINVAL;
        }
        return requests_submit(mq, kind, startup, command, 0, fd);
}

void qemu_requests_fail_all(struct qemu_requests *mq, const char *why) {
        struct qemu_request *r;

        (void) evtimer_del(mq->timer);
        if (mq->active)
                TAILQ_INSERT_HEAD(&mq->pending, mq->active, link);
        mq->active = NULL;
        while ((r = TAILQ_FIRST(&mq->pending))) {
                TAILQ_REMOVE(&mq->pending, r, link);
                mq->ops->dropped(mq->userdata, r, why);
                request_free(r);
        }
}

static void requests_timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu_requests *mq = arg;
        char why[128];

        (void) snprintf(why, sizeof why, "%s did not answer within %llu s", mq->what,
                        QEMU_REQUESTS_TIMEOUT_USEC / USEC_PER_SEC);
        qemu_requests_complete(mq, -ETIMEDOUT, why, NULL, 0);
}

ssize_t qemu_requests_read(struct qemu_requests *mq, struct event **ev, void *buf, size_t size) {
        ssize_t n = machine_read_some(*mq->fd, buf, size);
        char why[128];

        if (n >= 0)
                return n;
        machine_event_free(ev);
        *mq->fd = safe_close(*mq->fd);
        if (mq->active) {
                (void) snprintf(why, sizeof why, "%s closed its connection", mq->what);
                qemu_requests_complete(mq, -ECONNRESET, why, NULL, 0);
        }
        return n;
}

int qemu_requests_init(struct qemu_requests *mq, struct event_base *base, const char *what, int *fd,
                       const struct qemu_requests_ops *ops, void *userdata) {
        *mq = (struct qemu_requests){.what = what, .fd = fd, .ops = ops, .userdata = userdata};
        TAILQ_INIT(&mq->pending);
        mq->timer = evtimer_new(base, requests_timer_cb, mq);
        return mq->timer ? 0 : -ENOMEM;
}

void qemu_requests_done(struct qemu_requests *mq) {
        struct qemu_request *r;

        machine_event_free(&mq->timer);
        mq->active = request_free(mq->active);
        while ((r = TAILQ_FIRST(&mq->pending))) {
                TAILQ_REMOVE(&mq->pending, r, link);
                request_free(r);
        }
}
