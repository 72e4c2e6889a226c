/* SPDX-License-Identifier: MIT */
/*
 * qemu-control.h: QEMU's HMP and QMP connections as one object (see
 * qemu-control.c). Requests carry the owner's kind; the owner hears how each
 * ended through its qemu_requests_ops.
 */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "qemu-requests.h"

enum qemu_control_channel {
        QEMU_HMP,
        QEMU_QMP,
};

struct qemu_control;

int qemu_control_new(struct event_base *base, const struct qemu_requests_ops *ops, void *userdata,
                     struct qemu_control **ret);
struct qemu_control *qemu_control_free(struct qemu_control *q);
/* The fields holding the connections' fds, for the fd store's table. */
int *qemu_control_monitor_fd(struct qemu_control *q);
int *qemu_control_qmp_fd(struct qemu_control *q);
/* The monitor connection QEMU made to our listening socket (taken). */
void qemu_control_adopt_monitor(struct qemu_control *q, int fd);
int qemu_control_connect_qmp(struct qemu_control *q, const char *dir, const char *name);
/* Read both connections; @restored: first drop what a worker before us left unread. */
int qemu_control_watch(struct qemu_control *q, bool restored);
/* Queue a one-line request (NULL: wait for what QEMU says first). */
int qemu_control_submit(struct qemu_control *q, enum qemu_control_channel channel, int kind, bool startup,
                        const char *command, uint32_t seq);
/* Queue a QMP request that passes @fd (taken) to QEMU (for getfd). */
int qemu_control_submit_fd(struct qemu_control *q, int kind, bool startup, const char *command, int fd);
/* The QMP events seen since the last call, one per line (NULL: out of memory). */
char *qemu_control_take_events(struct qemu_control *q, size_t *ret_len);
/* HMP quit; -ENOTCONN without a monitor connection. */
int qemu_control_quit(struct qemu_control *q);
/* Every request is dropped with @why; half-read replies are forgotten. */
void qemu_control_fail_all(struct qemu_control *q, const char *why);
/* Stop reading and close both connections. */
void qemu_control_close(struct qemu_control *q);
