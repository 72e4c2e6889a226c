/* SPDX-License-Identifier: MIT */
/*
 * machine-util.c owns the libevent helpers every part of vigil-machine needs
 * in the same form: arming and freeing events and watching an fd. Nothing
 * here knows a hypervisor, a container or a request.
 */
#include "machine-util.h"
#include "macro.h"
#include "time-util.h"

void machine_timer_set(struct event *e, unsigned long long usec) {
        struct timeval tv = timeval_from_usec(usec);

        (void) evtimer_add(e, &tv);
}

void machine_event_free(struct event **e) {
        if (*e)
                event_free(*e);
        *e = NULL;
}

int machine_event_watch(struct event_base *base, int fd, short what, event_callback_fn cb, void *arg,
                        struct event **ret) {
        machine_event_free(ret);
        *ret = event_new(base, fd, what, cb, arg);
        if (!*ret)
                return -ENOMEM;
        if ((what & EV_PERSIST) && event_add(*ret, NULL) < 0)
                return -ENOMEM;
        return 0;
}
