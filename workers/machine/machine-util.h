/* SPDX-License-Identifier: MIT */
/*
 * machine-util.h: the libevent helpers every part of vigil-machine uses in
 * the same form (arming, freeing and watching events). Nothing here knows a
 * machine.
 */
#pragma once

#include <event2/event.h>

void machine_timer_set(struct event *e, unsigned long long usec);
/* Free *@e (may be NULL) and clear it. */
void machine_event_free(struct event **e);
/* Replace *@ret by a new event on @fd; an EV_PERSIST one is armed at once. */
int machine_event_watch(struct event_base *base, int fd, short what, event_callback_fn cb, void *arg,
                        struct event **ret);
