/* SPDX-License-Identifier: MIT */
/*
 * qemu-requests.h: the one-line requests on one of QEMU's control
 * connections (HMP or QMP), served in order, one in flight, each answered or
 * failed within QEMU_REQUESTS_TIMEOUT_USEC. The connection's reader decides
 * when an answer is complete and hands it to qemu_requests_complete(); what a
 * request was for is the owner's (its kind), told through the ops.
 */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#define QEMU_REQUESTS_TIMEOUT_USEC (30ull * 1000000ull)

struct qemu_request {
        int kind;      /* the owner's */
        bool startup;  /* a step of QEMU's start-up handshake */
        char *command; /* one line, without '\n'; NULL: send nothing, wait for what QEMU says first */
        int fd;        /* passed with the command (SCM_RIGHTS: QMP getfd), owned; < 0: none */
        uint32_t seq;
        TAILQ_ENTRY(qemu_request) link;
};

struct qemu_requests_ops {
        /* Optional: @r becomes the one in flight, before it is written. */
        void (*activate)(void *userdata, const struct qemu_request *r);
        void (*answered)(void *userdata, const struct qemu_request *r, const char *reply, size_t len);
        /* @r failed; return false to stop serving the queue. */
        bool (*failed)(void *userdata, const struct qemu_request *r, int error, const char *why);
        /* @r is dropped unanswered by qemu_requests_fail_all(). */
        void (*dropped)(void *userdata, const struct qemu_request *r, const char *why);
};

struct qemu_requests {
        const char *what; /* the connection, as error messages name it */
        int *fd;          /* the connection (a field of the owner); < 0: requests wait */
        const struct qemu_requests_ops *ops;
        void *userdata;
        TAILQ_HEAD(, qemu_request) pending;
        struct qemu_request *active;
        struct event *timer;
};

int qemu_requests_init(struct qemu_requests *mq, struct event_base *base, const char *what, int *fd,
                       const struct qemu_requests_ops *ops, void *userdata);
void qemu_requests_done(struct qemu_requests *mq);
int qemu_requests_submit(struct qemu_requests *mq, int kind, bool startup, const char *command, uint32_t seq);
/* The same with @fd (taken, also on failure) passed along with @command. */
int qemu_requests_submit_fd(struct qemu_requests *mq, int kind, bool startup, const char *command, int fd);
/* The request in flight is answered (@error 0, @reply) or failed (@error < 0, @why). */
void qemu_requests_complete(struct qemu_requests *mq, int error, const char *why, const char *reply, size_t len);
/* Every request is dropped (ops->dropped) with @why. */
void qemu_requests_fail_all(struct qemu_requests *mq, const char *why);
/* One read of the connection (watched by *@ev), as machine_read_some(). When
 * QEMU closed it, the request in flight fails and the others wait (QEMU is
 * exiting, and its exit fails them). */
ssize_t qemu_requests_read(struct qemu_requests *mq, struct event **ev, void *buf, size_t size);
