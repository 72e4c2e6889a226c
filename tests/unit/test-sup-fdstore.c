/* SPDX-License-Identifier: MIT */
/*
 * test-sup-fdstore: the fd store keeps one fd per name, closes what it
 * replaces or forgets, takes an fd only when it keeps it, and refuses past
 * FDSTORE_MAX without touching the caller's fd. A restarted worker gets back
 * exactly these fds, so a leak or a double close here loses a VM.
 */
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "macro.h"
#include "sup-fdstore.h"
#include "tap.h"

static bool fd_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static int devnull(void) {
        return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int main(void) {
        struct fdstore st = {};
        int a = devnull(), b = devnull(), a_num = a, b_num = b;

        CHECK(fdstore_put(&st, "qmp", &a) == 0 && a == -EBADF, "put takes the fd");
        CHECK(st.n == 1 && streq(st.entries[0].name, "qmp") && st.entries[0].fd == a_num, "stored under its name");

        CHECK(fdstore_put(&st, "qmp", &b) == 0 && st.n == 1, "same name: replaced, not added");
        CHECK(!fd_open(a_num) && st.entries[0].fd == b_num, "the replaced fd is closed");

        int c = devnull(), c_num = c;
        CHECK(fdstore_put(&st, "shell", &c) == 0 && st.n == 2, "a second name");
        CHECK(fdstore_forget(&st, "qmp") == 0 && st.n == 1 && !fd_open(b_num), "forget closes and drops");
        CHECK(fdstore_forget(&st, "qmp") == -ENOENT, "forgetting an unknown name: -ENOENT");
        CHECK(streq(st.entries[0].name, "shell") && st.entries[0].fd == c_num, "the other entry is untouched");

        /* The cap needs FDSTORE_MAX open fds at once. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max > FDSTORE_MAX + 64) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        int r = 0;
        for (unsigned i = st.n; i < FDSTORE_MAX && r == 0; i++) {
                char name[32];
                int fd = devnull();
                snprintf(name, sizeof(name), "port%u", i);
                r = fd < 0 ? -EMFILE : fdstore_put(&st, name, &fd);
                safe_close(fd);
        }
        if (r == -EMFILE)
                printf("# not enough fds for the cap check\n");
        else {
                int extra = devnull(), extra_num = extra;
                CHECK(r == 0 && st.n == FDSTORE_MAX, "up to FDSTORE_MAX (%u) stored", FDSTORE_MAX);
                CHECK(fdstore_put(&st, "one-too-many", &extra) == -E2BIG, "past the cap: -E2BIG");
                CHECK(extra == extra_num && fd_open(extra), "a refused fd stays the caller's");
                safe_close(extra);
                CHECK(fdstore_put(&st, "shell", &(int){devnull()}) == 0, "replacing still works at the cap");
        }

        fdstore_clear(&st);
        CHECK(st.n == 0 && !st.entries && !fd_open(c_num), "clear closes everything");
        fdstore_clear(&st);
        CHECK(st.n == 0, "clear twice is harmless");
        return tap_done();
}
