/* SPDX-License-Identifier: MIT */
/*
 * machine-util.h: the libevent helpers every part of vigil-machine uses in
 * the same form (arming, freeing and watching events). Nothing here knows a
 * machine.
 */
#pragma once

#include <event2/event.h>
#include <sys/types.h>

void machine_timer_set(struct event *e, unsigned long long usec);
/* Free *@e (may be NULL) and clear it. */
void machine_event_free(struct event **e);
/* Replace *@ret by a new event on @fd; an EV_PERSIST one is armed at once. */
int machine_event_watch(struct event_base *base, int fd, short what, event_callback_fn cb, void *arg,
                        struct event **ret);
/* One read from a non-blocking pipe or socket: the number of bytes read, 0
 * when there are none yet (EAGAIN, EINTR), or < 0 once the stream has ended
 * (-EPIPE at its end, -errno on an error). */
ssize_t machine_read_some(int fd, void *buf, size_t size);
/* All of @text, retrying short writes and EINTR. */
int machine_write_all(int fd, const char *text);
/* A listening (non-blocking, backlog 1) / a connected unix socket at @dir/@name. */
int machine_listen_unix(const char *dir, const char *name, int *ret);
int machine_connect_unix(const char *dir, const char *name, int *ret);
