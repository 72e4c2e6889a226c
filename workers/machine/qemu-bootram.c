/* SPDX-License-Identifier: MIT */
/*
 * qemu-bootram.c owns the guest RAM file of a direct-boot snapshot
 * (docs/machine.md, "Boot snapshots"): the boot that saves keeps the guest's
 * RAM in a shared memfd of QEMU's (qemu_snapshot_ram_args()), which this
 * finds through /proc and copies, sparse, beside vmstate; restores map that
 * copy privately. qemu-bootcache.c decides when.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fd-util.h"
#include "fs-util.h"
#include "macro.h"
#include "qemu-bootram.h"
#include "qemu-snapshot.h"

#define RAM_COPY_CHUNK (1024 * 1024)
#define RAM_PAGE       4096

int qemu_bootram_open(int64_t qemu_pid) {
        char dir[64], target[128];
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *e;

        (void) snprintf(dir, sizeof dir, "/proc/%lld/fd", (long long) qemu_pid);
        d = opendir(dir);
        if (!d)
                return negative_errno();
        while ((e = readdir(d))) {
                ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
                if (n <= 0)
                        continue;
                target[n] = 0;
                if (strncmp(target, QEMU_SNAPSHOT_RAM_MEMFD " ", strlen(QEMU_SNAPSHOT_RAM_MEMFD) + 1) == 0 ||
                    streq(target, QEMU_SNAPSHOT_RAM_MEMFD)) {
                        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
                        return fd < 0 ? negative_errno() : fd;
                }
        }
        return -ENOENT;
}

static bool page_is_zero(const uint8_t *p, size_t len) {
        return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

int qemu_bootram_copy(int in, const char *to) {
        _cleanup_close_ int out = -EBADF;
        _cleanup_free_ uint8_t *buf = malloc(RAM_COPY_CHUNK);
        struct stat st;
        off_t off = 0;
        int r;

        if (!buf)
                return -ENOMEM;
        if (fstat(in, &st) < 0)
                return negative_errno();
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0)
                return negative_errno();
        while (off < st.st_size) {
                off_t data = lseek(in, off, SEEK_DATA);
                if (data < 0 && errno == ENXIO)
                        break;
                if (data < 0)
                        return negative_errno();
                ssize_t n = pread(in, buf, (size_t) MIN((off_t) RAM_COPY_CHUNK, st.st_size - data), data);
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
                /* One write per run of pages that are not all zero. */
                for (size_t i = 0; i < (size_t) n;) {
                        size_t end = i;
                        while (end < (size_t) n && !page_is_zero(buf + end, MIN((size_t) RAM_PAGE, n - end)))
                                end += MIN((size_t) RAM_PAGE, n - end);
                        if (end > i && (r = pwrite_all(out, buf + i, end - i, data + (off_t) i)) < 0)
                                return r;
                        i = end < (size_t) n ? end + MIN((size_t) RAM_PAGE, n - end) : end;
                }
                off = data + n;
        }
        /* On disk before the snapshot names it: a host crash must not leave
         * a vmstate whose RAM reads back as zeros. */
        if (ftruncate(out, st.st_size) < 0 || fdatasync(out) < 0)
                return negative_errno();
        return 0;
}
