/* SPDX-License-Identifier: MIT */
/*
 * test-machine-qemu-bootram: proves the guest RAM file of a direct-boot
 * snapshot is found as QEMU names it (a memfd seen through /proc) and copied
 * byte for byte, with holes and all-zero pages left holes. It matters
 * because a restore maps that copy as the guest's RAM: a wrong byte is a
 * guest that crashes later, a dense copy gigabytes of disk per snapshot.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "fd-util.h"
#include "macro.h"
#include "qemu-bootram.h"
#include "tap.h"

#define PAGE     4096
#define RAM_SIZE (8 << 20)

static void put(int fd, off_t off, char c, size_t len) {
        char buf[3 * PAGE];

        memset(buf, c, len);
        if (pwrite(fd, buf, len, off) != (ssize_t) len)
                abort();
}

static bool same(int a, int b, off_t size) {
        static char x[1 << 16], y[1 << 16];

        for (off_t off = 0; off < size; off += sizeof x)
                if (pread(a, x, sizeof x, off) != (ssize_t) sizeof x ||
                    pread(b, y, sizeof y, off) != (ssize_t) sizeof y || memcmp(x, y, sizeof x) != 0)
                        return false;
        return true;
}

int main(void) {
        char dir[] = "/tmp/vigil-bootram-XXXXXX", to[64], bad[96];
        _cleanup_close_ int ram = -EBADF, found = -EBADF, copy = -EBADF;
        struct stat st;

        if (!mkdtemp(dir))
                return 1;
        (void) snprintf(to, sizeof to, "%s/ram", dir);
        (void) snprintf(bad, sizeof bad, "%s/no-such-dir/ram", dir);

        CHECK(qemu_bootram_open(getpid()) == -ENOENT, "open: a process without QEMU's RAM memfd has none");
        /* QEMU's memory-backend-memfd, as /proc/PID/fd shows it. */
        ram = memfd_create("memory-backend-memfd", MFD_CLOEXEC);
        if (ram < 0 || ftruncate(ram, RAM_SIZE) < 0)
                return 1;
        put(ram, 0, 'a', 2 * PAGE);              /* data */
        put(ram, 10 * PAGE, 0, PAGE);            /* written, but all zeros */
        put(ram, 5 << 20, 'b', PAGE + PAGE / 2); /* data, then half a page of it */
        put(ram, RAM_SIZE - PAGE, 'z', PAGE);    /* the last page */
        found = qemu_bootram_open(getpid());
        CHECK(found >= 0 && fstat(found, &st) == 0 && st.st_size == RAM_SIZE,
              "open: QEMU's RAM memfd is found through /proc (%d)", found);

        CHECK(qemu_bootram_copy(found >= 0 ? found : ram, to) == 0, "copy: succeeds");
        copy = open(to, O_RDONLY | O_CLOEXEC);
        CHECK(copy >= 0 && fstat(copy, &st) == 0 && st.st_size == RAM_SIZE && same(ram, copy, RAM_SIZE),
              "copy: the same size and bytes");
        CHECK(copy >= 0 && lseek(copy, 2 * PAGE, SEEK_DATA) == (off_t) (5 << 20),
              "copy: a hole and an all-zero page stay holes (data again at %lld)",
              copy >= 0 ? (long long) lseek(copy, 2 * PAGE, SEEK_DATA) : -1LL);
        CHECK(copy >= 0 && (long long) st.st_blocks * 512 <= 64 * 1024,
              "copy: sparse (%lld bytes allocated for 5.5 pages of data)", (long long) st.st_blocks * 512);
        CHECK(qemu_bootram_copy(ram, bad) == -ENOENT, "copy: a directory that does not exist is -ENOENT");

        (void) unlink(to);
        (void) rmdir(dir);
        return tap_done();
}
