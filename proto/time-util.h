/* SPDX-License-Identifier: MIT */
/*
 * time-util.h owns the conversion of durations into the struct timeval that
 * libevent timers take. tv_usec must stay below 10^6: libevent carries one
 * overflow at most and other consumers (setsockopt, select) refuse it, so
 * every timer in the tree is armed through these, never with a hand-made
 * .tv_usec (tests/unit/test-time-util.c checks both).
 */
#pragma once

#include <stdint.h>
#include <sys/time.h>

#include "macro.h"

static inline struct timeval timeval_from_usec(uint64_t usec) {
        return (struct timeval){.tv_sec = (time_t) (usec / USEC_PER_SEC),
                                .tv_usec = (suseconds_t) (usec % USEC_PER_SEC)};
}

static inline struct timeval timeval_from_msec(uint64_t msec) {
        return timeval_from_usec(msec * USEC_PER_MSEC);
}

/* Seconds as a double (a Python timeout): negative and NaN are 0, rounded to the microsecond. */
static inline struct timeval timeval_from_seconds(double s) {
        if (!(s > 0))
                return (struct timeval){};
        if (s >= (double) (UINT64_MAX / USEC_PER_SEC))
                s = (double) (UINT64_MAX / USEC_PER_SEC) - 1;
        return timeval_from_usec((uint64_t) (s * 1e6 + 0.5));
}
