/* SPDX-License-Identifier: MIT */
/*
 * fd-util.c owns the fd-level plumbing shared by every process: one datagram
 * with its SCM_RIGHTS fds in or out, CLOEXEC/non-blocking flags, pidfds and
 * closing everything a child must not inherit. Non-logging.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "fd-util.h"
#include "macro.h"
#include "msg.h"

int pwrite_all(int fd, const void *p, size_t len, off_t off) {
        const uint8_t *b = p;

        while (len > 0) {
                ssize_t n = pwrite(fd, b, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
                b += n;
                len -= (size_t) n;
                off += n;
        }
        return 0;
}

int fd_send_datagram(int sock, const void *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * FRAME_FDS_MAX)];
        } control = {};
        struct iovec iov = {.iov_base = (void *) buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n;

        if (n_fds > FRAME_FDS_MAX)
                return -E2BIG;
        if (n_fds > 0) {
                struct cmsghdr *c;
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

ssize_t fd_recv_datagram(int sock, void *buf, size_t size, int *ret_fds, size_t max_fds, size_t *ret_n_fds) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * FRAME_FDS_MAX)];
        } control = {};
        struct iovec iov = {.iov_base = buf, .iov_len = size};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        size_t got = 0;
        ssize_t n;

        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0)
                return negative_errno();

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                size_t k;
                int *in;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                in = (int *) CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        if (got < max_fds && ret_fds)
                                ret_fds[got++] = in[i];
                        else
                                (void) close(in[i]); /* more fds than we accept: never leak them */
                }
        }
        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
                for (size_t i = 0; i < got; i++)
                        (void) close(ret_fds[i]);
                if (ret_n_fds)
                        *ret_n_fds = 0;
                return -EMSGSIZE;
        }
        if (ret_n_fds)
                *ret_n_fds = got;
        return n;
}

#define DATAGRAMS_MAX 16

int fd_recv_datagrams(int sock, uint8_t *bufs, size_t size, size_t n, struct datagram *ret) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * FRAME_FDS_MAX)];
        } control[DATAGRAMS_MAX];
        struct iovec iov[DATAGRAMS_MAX];
        struct mmsghdr mh[DATAGRAMS_MAX];
        int got;

        n = MIN(n, (size_t) DATAGRAMS_MAX);
        for (size_t i = 0; i < n; i++) {
                iov[i] = (struct iovec){.iov_base = bufs + i * size, .iov_len = size};
                mh[i] = (struct mmsghdr){.msg_hdr = {
                                                 .msg_iov = &iov[i],
                                                 .msg_iovlen = 1,
                                                 .msg_control = &control[i],
                                                 .msg_controllen = sizeof(control[i]),
                                         }};
        }
        got = recvmmsg(sock, mh, (unsigned) n, MSG_CMSG_CLOEXEC | MSG_DONTWAIT, NULL);
        if (got < 0)
                return negative_errno();

        for (int i = 0; i < got; i++) {
                struct msghdr *h = &mh[i].msg_hdr;
                struct datagram *d = &ret[i];

                *d = (struct datagram){.len = (ssize_t) mh[i].msg_len};
                for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        int *in = (int *) CMSG_DATA(c);
                        for (size_t f = 0; f < k; f++) {
                                if (d->n_fds < FRAME_FDS_MAX)
                                        d->fds[d->n_fds++] = in[f];
                                else
                                        (void) close(in[f]); /* more fds than we accept: never leak them */
                        }
                }
                if (h->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
                        for (size_t f = 0; f < d->n_fds; f++)
                                (void) close(d->fds[f]);
                        d->n_fds = 0;
                        d->len = -EMSGSIZE;
                }
        }
        return got;
}

int fd_set_nonblock(int fd, int nonblock) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return negative_errno();
        flags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        if (fcntl(fd, F_SETFL, flags) < 0)
                return negative_errno();
        return 0;
}

int fd_set_cloexec(int fd, int cloexec) {
        int flags = fcntl(fd, F_GETFD);

        if (flags < 0)
                return negative_errno();
        flags = cloexec ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
        if (fcntl(fd, F_SETFD, flags) < 0)
                return negative_errno();
        return 0;
}

int fd_dup_cloexec(int fd) {
        int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);

        return r < 0 ? negative_errno() : r;
}

int fd_move_to(int fd, int target) {
        if (fd == target)
                return fd_set_cloexec(fd, 0);
        if (dup2(fd, target) < 0)
                return negative_errno();
        return 0;
}

int pidfd_open_pid(pid_t pid) {
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);

        return fd < 0 ? negative_errno() : fd;
}

int pidfd_send(int pidfd, int sig) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
                return negative_errno();
        return 0;
}

static bool fd_in(int fd, const int *keep, size_t n_keep) {
        for (size_t i = 0; i < n_keep; i++)
                if (keep[i] == fd)
                        return true;
        return false;
}

int fd_close_all_except(int from, const int *keep, size_t n_keep) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        if (!d) {
                /* No /proc: close a bounded range. */
                for (int fd = from; fd < 4096; fd++)
                        if (!fd_in(fd, keep, n_keep))
                                (void) close(fd);
                return 0;
        }
        while ((de = readdir(d))) {
                char *end;
                long fd = strtol(de->d_name, &end, 10);

                if (*end || end == de->d_name || fd < from || fd == dirfd(d))
                        continue;
                if (!fd_in((int) fd, keep, n_keep))
                        (void) close((int) fd);
        }
        closedir(d);
        return 0;
}
