/* SPDX-License-Identifier: MIT */
/*
 * sup-route.h: hub-and-spoke routing of requests between workers, their
 * replay or failure when a target restarts, and flow control between workers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "frame.h"

struct child;
struct sup;

/* A ROUTE_REQUEST frame from @origin. Errors the origin can be told about are
 * answered with MSG_ERROR here; -EPROTO (with @why) means @origin broke the
 * protocol and the caller ends its channel. */
int route_request(struct child *origin, const struct frame *f, size_t n_fds, char *why, size_t why_size);
/* A ROUTE_REPLY frame from @target: back to its origin under the origin's seq. */
int route_reply(struct child *target, const struct frame *f, int *fds, size_t n_fds);
/* CHANNEL_OPEN from @origin: a socketpair between it and the named child, one
 * end to each (MSG_CHANNEL), or MSG_ERROR naming why not. Always 0: nothing
 * an opener asks for is a protocol error beyond what dispatch checks. */
int route_open_channel(struct child *origin, const struct frame *f);
void route_target_ready(struct child *target);
void route_target_down(struct child *target, bool will_restart);
void route_origin_down(struct child *origin);
void route_free_all(struct sup *s);
/* @c's send queue drained (or @c is gone): read again what was held for it. */
void route_release(struct child *c);
