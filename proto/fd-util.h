/* SPDX-License-Identifier: MIT */
/*
 * fd-util.h: datagram I/O with SCM_RIGHTS, pidfds, and small fd helpers.
 * Non-logging; negative errno returns.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"

/* All @len bytes of @p at @off of @fd (short writes and EINTR retried). */
int pwrite_all(int fd, const void *p, size_t len, off_t off);

/* sendmsg one datagram with up to FRAME_FDS_MAX fds. */
int fd_send_datagram(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

/* recvmsg one datagram into @buf (cap @size). Received fds are CLOEXEC and
 * stored in @ret_fds (n in *ret_n_fds). Returns bytes (0 = EOF), -EMSGSIZE if
 * truncated (any fds received are closed). */
ssize_t fd_recv_datagram(int sock, void *buf, size_t size, int *ret_fds, size_t max_fds, size_t *ret_n_fds);

/* One datagram of a batch: its length (0: end of stream; -EMSGSIZE: it or its
 * fds were truncated, and its fds are already closed) and its fds. */
struct datagram {
        ssize_t len;
        int fds[FRAME_FDS_MAX];
        size_t n_fds;
};
/* Receive up to @n datagrams in one recvmmsg() call, the i-th into
 * @bufs + i * @size. Returns how many (>= 1) or -errno (-EAGAIN: none). A
 * batch shorter than @n means the socket was empty when it was read. */
int fd_recv_datagrams(int sock, uint8_t *bufs, size_t size, size_t n, struct datagram *ret);

int fd_set_nonblock(int fd, int nonblock);
int fd_set_cloexec(int fd, int cloexec);
/* dup with CLOEXEC at >= 3 */
int fd_dup_cloexec(int fd);
/* Move @fd to exactly @target (without CLOEXEC), for use between fork and exec. */
int fd_move_to(int fd, int target);

int pidfd_open_pid(pid_t pid);
int pidfd_send(int pidfd, int sig);

/* Close every fd >= @from except those in @keep. */
int fd_close_all_except(int from, const int *keep, size_t n_keep);
