/* SPDX-License-Identifier: MIT */
/*
 * machine-util.c owns the libevent helpers every part of vigil-machine needs
 * in the same form: arming and freeing events, watching an fd, reading and
 * writing a non-blocking pipe or socket, unix sockets by directory and
 * name. Nothing
 * here knows a hypervisor, a container or a request.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "fd-util.h"
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

/* One read from a non-blocking pipe or socket: the number of bytes read, 0
 * when there are none yet (EAGAIN, EINTR), or < 0 once the stream has ended
 * (-EPIPE at its end, -errno on an error). */
ssize_t machine_read_some(int fd, void *buf, size_t size) {
        ssize_t n = read(fd, buf, size);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0)
                return negative_errno();
        return n > 0 ? n : -EPIPE;
}

int machine_write_all(int fd, const char *text) {
        size_t len = strlen(text);

        while (len > 0) {
                ssize_t n = write(fd, text, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                text += n;
                len -= (size_t) n;
        }
        return 0;
}

/* The address of the unix socket @dir/@name; -ENAMETOOLONG if it does not fit. */
static int unix_address(const char *dir, const char *name, struct sockaddr_un *ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};

        if ((size_t) snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        *ret = sa;
        return 0;
}

int machine_listen_unix(const char *dir, const char *name, int *ret) {
        struct sockaddr_un sa;
        _cleanup_close_ int fd = -EBADF;
        int r = unix_address(dir, name, &sa);

        if (r < 0)
                return r;
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 1) < 0)
                return negative_errno();
        *ret = TAKE_FD(fd);
        return 0;
}

int machine_connect_unix(const char *dir, const char *name, int *ret) {
        struct sockaddr_un sa;
        _cleanup_close_ int fd = -EBADF;
        int r = unix_address(dir, name, &sa);

        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return negative_errno();
        (void) fd_set_nonblock(fd, 1);
        *ret = TAKE_FD(fd);
        return 0;
}
