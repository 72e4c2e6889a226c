/* SPDX-License-Identifier: MIT */
/*
 * macro.h owns the small idioms every vigil file uses: cleanup attributes,
 * ownership transfer (TAKE_FD/TAKE_PTR), array sizing and errno helpers.
 * Nothing here allocates or logs.
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(a)  (sizeof(a) / sizeof((a)[0]))
#define _unused_       __attribute__((unused))
#define _noreturn_     __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _likely_(x)    __builtin_expect(!!(x), 1)
#define _unlikely_(x)  __builtin_expect(!!(x), 0)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Move ownership out of a variable, leaving a value its cleanup ignores. */
#define TAKE_PTR(p)                                                                                                   \
        ({                                                                                                            \
                __typeof__(p) _p = (p);                                                                               \
                (p) = NULL;                                                                                           \
                _p;                                                                                                   \
        })
#define TAKE_FD(fd)                                                                                                   \
        ({                                                                                                            \
                int _fd = (fd);                                                                                       \
                (fd) = -EBADF;                                                                                        \
                _fd;                                                                                                  \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)
static inline void close_pairp(int (*fds)[2]) {
        (*fds)[0] = safe_close((*fds)[0]);
        (*fds)[1] = safe_close((*fds)[1]);
}
#define _cleanup_close_pair_ _cleanup_(close_pairp)
#define EBADF_PAIR                                                                                                    \
        { -EBADF, -EBADF }

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Free a NULL-terminated string vector; returns NULL. */
static inline char **strv_free(char **v) {
        if (v)
                for (char **i = v; *i; i++)
                        free(*i);
        free(v);
        return NULL;
}
static inline void strv_freep(char ***v) {
        *v = strv_free(*v);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

static inline size_t strv_length(char *const *v) {
        size_t n = 0;
        if (v)
                while (v[n])
                        n++;
        return n;
}

/* A deep copy of @v (NULL: an empty vector); NULL when out of memory. */
static inline char **strv_copy(char *const *v) {
        size_t n = strv_length(v);
        char **c = calloc(n + 1, sizeof(char *));

        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(v[i])))
                        return strv_free(c);
        return c;
}

/* errno as a negative value, never 0, for "return -errno" after a libc call. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

#define USEC_PER_SEC  1000000ULL
#define USEC_PER_MSEC 1000ULL
#define NSEC_PER_USEC 1000ULL

/* @clock's time in microseconds. */
#include <time.h>
static inline unsigned long long clock_usec(clockid_t clock) {
        struct timespec ts;
        (void) clock_gettime(clock, &ts);
        return (unsigned long long) ts.tv_sec * USEC_PER_SEC + (unsigned long long) ts.tv_nsec / NSEC_PER_USEC;
}

/* CLOCK_MONOTONIC in microseconds. */
static inline unsigned long long now_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}

/* CLOCK_REALTIME in microseconds since the epoch. */
static inline unsigned long long now_realtime_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}
