/* SPDX-License-Identifier: MIT */
/*
 * resume-agent.c is vigil-resume, the one program vigil puts into a guest:
 * a boot-cache save starts it (qemu_snapshot_prepare_command()) and it waits
 * in the snapshot, blocked on a FIFO. After a restore, or after the save in
 * the VM that was saved, the resume job writes the host's time into that
 * FIFO; the agent sets the guest's clock and mounts the 9p shares the save
 * unmounted by system calls, answers on a second FIFO, removes its files and
 * exits. Under TCG a restored guest translates every code path anew, and the
 * exec of mount(8) and date(1) cost ~0.1 s of a restore that takes ~0.35 s:
 * this binary runs neither. It is freestanding (no libc: raw x86_64 system
 * calls, a few KiB), built by meson apart from the worker and carried in it
 * as base64. The parsing is pure and unit-tested (RESUME_AGENT_TEST leaves
 * out the system calls and the entry point).
 */
#include <stddef.h>
#include <stdint.h>

#include "resume-agent.h"

/* mount(2) flags as /proc/mounts spells them; anything else is the file
 * system's own and goes to mount(2)'s data. "rw" is no flag. */
static const struct {
        const char *word;
        unsigned long flag;
} resume_flags[] = {
        {"rw", 0},
        {"ro", 1},                /* MS_RDONLY */
        {"nosuid", 2},            /* MS_NOSUID */
        {"nodev", 4},             /* MS_NODEV */
        {"noexec", 8},            /* MS_NOEXEC */
        {"sync", 16},             /* MS_SYNCHRONOUS */
        {"mand", 64},             /* MS_MANDLOCK */
        {"dirsync", 128},         /* MS_DIRSYNC */
        {"nosymfollow", 256},     /* MS_NOSYMFOLLOW */
        {"noatime", 1024},        /* MS_NOATIME */
        {"nodiratime", 2048},     /* MS_NODIRATIME */
        {"relatime", 1 << 21},    /* MS_RELATIME */
        {"strictatime", 1 << 24}, /* MS_STRICTATIME */
        {"lazytime", 1 << 25},    /* MS_LAZYTIME */
};

static int ra_eq(const char *a, const char *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (a[i] != b[i] || !a[i])
                        return 0;
        return b[n] == 0;
}

/* Decimal digits at *@p, then one space or the end of the line; -1 if none. */
static int ra_number(const char **p, uint64_t *ret) {
        uint64_t v = 0;
        const char *s = *p;

        if (*s < '0' || *s > '9')
                return -1;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return -1;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        *p = s;
        return 0;
}

/* The request "<usec> <centiseconds>[ <cont usec>]\n": the host's time as the
 * job left, the guest's uptime when it started and, if the host knows it,
 * its time when QEMU let the VM run (0: not given). */
static int resume_parse_request(const char *line, uint64_t *ret_usec, uint64_t *ret_cs, uint64_t *ret_cont) {
        const char *p = line;

        *ret_cont = 0;
        if (ra_number(&p, ret_usec) < 0 || *p++ != ' ' || ra_number(&p, ret_cs) < 0)
                return -1;
        if (*p == ' ' && (p++, ra_number(&p, ret_cont) < 0))
                return -1;
        return *p == '\n' || *p == 0 ? 0 : -1;
}

/* /proc/uptime's first field ("12.34 ...") in centiseconds. */
static int resume_parse_uptime(const char *text, uint64_t *ret_cs) {
        const char *p = text;
        uint64_t s, frac;

        if (ra_number(&p, &s) < 0 || *p++ != '.' || p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
                return -1;
        frac = (uint64_t) (p[0] - '0') * 10 + (uint64_t) (p[1] - '0');
        *ret_cs = s * 100 + frac;
        return 0;
}

/* The time to set: the host's @usec plus what the guest's uptime says passed
 * since the job started (never backwards). */
static uint64_t resume_clock_usec(uint64_t usec, uint64_t cs_then, uint64_t cs_now) {
        return usec + (cs_now > cs_then ? (cs_now - cs_then) * 10000 : 0);
}

/* Better, with the host's time @cont_usec when the VM went on: the guest's
 * monotonic clock stood still while it was paused, so what it counted since
 * the agent began waiting (@ns_start, just before the save paused the VM)
 * is the time the guest ran: a few ms of the save's end, and what it ran
 * since @cont_usec. The job's own time (the host's time as it left) lags by
 * however long the restored guest took to start it: 0.2-0.3 s under TCG. */
static uint64_t resume_clock_cont_usec(uint64_t cont_usec, uint64_t ns_start, uint64_t ns_now) {
        return cont_usec + (ns_now > ns_start ? (ns_now - ns_start) / 1000 : 0);
}

/* /proc/mounts escapes space, tab, newline and backslash as \ooo: undo it in place. */
static void resume_unescape(char *s) {
        char *w = s;

        for (char *r = s; *r; r++) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
                    r[3] <= '7') {
                        *w++ = (char) ((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
                        r += 3;
                } else
                        *w++ = *r;
        }
        *w = 0;
}

/* Splits the comma-separated @opts into mount(2)'s flags and its data (the
 * other words, comma-joined, in @data of @size). -1 if the data does not fit. */
static int resume_mount_options(const char *opts, unsigned long *ret_flags, char *data, size_t size) {
        unsigned long flags = 0;
        size_t used = 0;

        data[0] = 0;
        for (const char *p = opts; *p;) {
                size_t n = 0, i;

                while (p[n] && p[n] != ',')
                        n++;
                for (i = 0; i < sizeof resume_flags / sizeof resume_flags[0]; i++)
                        if (ra_eq(p, resume_flags[i].word, n))
                                break;
                if (i < sizeof resume_flags / sizeof resume_flags[0])
                        flags |= resume_flags[i].flag;
                else if (n > 0) {
                        if (used + (used > 0) + n + 1 > size)
                                return -1;
                        if (used > 0)
                                data[used++] = ',';
                        for (size_t k = 0; k < n; k++)
                                data[used++] = p[k];
                        data[used] = 0;
                }
                p += n;
                if (*p == ',')
                        p++;
        }
        *ret_flags = flags;
        return 0;
}

/* The next line of @text at *@pos split in place into its first four
 * fields (source, target, type, options); 0 at the end, -1 for a line with
 * fewer fields (skipped by the caller). */
static int resume_next_share(char *text, size_t *pos, char *fields[4]) {
        char *line = text + *pos, *end = line;
        int n = 0;

        if (!*line)
                return 0;
        while (*end && *end != '\n')
                end++;
        *pos = (size_t) (end - text) + (*end ? 1 : 0);
        *end = 0;
        for (char *p = line; *p && n < 4;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                fields[n++] = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                if (*p)
                        *p++ = 0;
        }
        return n == 4 ? 1 : -1;
}

#ifndef RESUME_AGENT_TEST

#if !defined(__x86_64__)
#error "vigil-resume speaks x86_64 system calls only"
#endif

enum {
        SYS_READ = 0,
        SYS_WRITE = 1,
        SYS_CLOSE = 3,
        SYS_ALARM = 37,
        SYS_FORK = 57,
        SYS_SETSID = 112,
        SYS_MOUNT = 165,
        SYS_CLOCK_SETTIME = 227,
        SYS_CLOCK_GETTIME = 228,
        SYS_EXIT_GROUP = 231,
        SYS_OPENAT = 257,
        SYS_NEWFSTATAT = 262,
        SYS_UNLINKAT = 263,
        SYS_PIPE2 = 293,
};

#define AT_FDCWD  (-100)
#define O_RDONLY  0
#define O_WRONLY  1
#define O_RDWR    2
#define O_CREAT   0100
#define O_TRUNC   01000
#define O_CLOEXEC 02000000

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
        register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
        long ret;

        __asm__ volatile("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
        return ret;
}

#define sys(n, a, b, c) sys6((n), (long) (a), (long) (b), (long) (c), 0, 0, 0)

/* The compiler may call these for copies and initialisers. */
void *memset(void *d, int c, size_t n) {
        unsigned char *p = d;

        while (n--)
                *p++ = (unsigned char) c;
        return d;
}

void *memcpy(void *d, const void *s, size_t n) {
        unsigned char *p = d;
        const unsigned char *q = s;

        while (n--)
                *p++ = *q++;
        return d;
}

struct ra_timespec {
        long sec, nsec;
};

static uint64_t ra_monotonic_ns(void) {
        struct ra_timespec ts = {0, 0};

        (void) sys(SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, &ts, 0);
        return (uint64_t) ts.sec * 1000000000u + (uint64_t) ts.nsec;
}

static long ra_open(const char *path, long flags) {
        return sys6(SYS_OPENAT, AT_FDCWD, (long) path, flags, 0600, 0, 0);
}

/* All of a small file (at most @size - 1 bytes), NUL-terminated; -1 if unreadable. */
static long ra_read_file(const char *path, char *buf, size_t size) {
        long fd = ra_open(path, O_RDONLY | O_CLOEXEC), n, got = 0;

        if (fd < 0)
                return -1;
        while ((size_t) got < size - 1 && (n = sys(SYS_READ, fd, buf + got, size - 1 - (size_t) got)) > 0)
                got += n;
        (void) sys(SYS_CLOSE, fd, 0, 0);
        buf[got] = 0;
        return got;
}

/* Appends @s (and @n's decimal digits if @n >= 0) to @buf at *@used. */
static void ra_append(char *buf, size_t size, size_t *used, const char *s, long n) {
        char digits[24];
        int k = 0;

        while (*s && *used + 1 < size)
                buf[(*used)++] = *s++;
        if (n < 0)
                return;
        do
                digits[k++] = (char) ('0' + n % 10);
        while ((n /= 10) > 0);
        while (k > 0 && *used + 1 < size)
                buf[(*used)++] = digits[--k];
}

/* st_dev of @path (the first field of x86_64's struct stat, 144 bytes). */
static int ra_dev(const char *path, unsigned long *ret) {
        unsigned long st[18];

        if (sys6(SYS_NEWFSTATAT, AT_FDCWD, (long) path, (long) st, 0, 0, 0) < 0)
                return -1;
        *ret = st[0];
        return 0;
}

/* Whether something is mounted on @dir: it is on another device than its parent. */
static int ra_mounted(const char *dir) {
        char parent[4200];
        size_t used = 0;
        unsigned long a, b;

        ra_append(parent, sizeof parent, &used, dir, -1);
        ra_append(parent, sizeof parent, &used, "/..", -1);
        parent[used] = 0;
        return ra_dev(dir, &a) == 0 && ra_dev(parent, &b) == 0 && a != b;
}

/* Mounts every share of RESUME_AGENT_SHARES not mounted yet; what failed in @why. */
static int resume_mount_shares(char *why, size_t size, size_t *used) {
        static char text[RESUME_AGENT_SHARES_MAX];
        char data[1024], *f[4];
        size_t pos = 0;
        unsigned long flags;
        int r, failed = 0;

        if (ra_read_file(RESUME_AGENT_SHARES, text, sizeof text) < 0)
                return 0; /* no shares were unmounted */
        while ((r = resume_next_share(text, &pos, f)) != 0) {
                long e;
                if (r < 0)
                        continue;
                resume_unescape(f[0]);
                resume_unescape(f[1]);
                if (ra_mounted(f[1]))
                        continue;
                if (resume_mount_options(f[3], &flags, data, sizeof data) < 0)
                        e = -7; /* E2BIG */
                else
                        e = sys6(SYS_MOUNT, (long) f[0], (long) f[1], (long) f[2], (long) flags, (long) data, 0);
                if (e < 0) {
                        ra_append(why, size, used, *used > 0 ? "; mount " : "mount ", -1);
                        failed++;
                        ra_append(why, size, used, f[1], -1);
                        ra_append(why, size, used, ": errno ", -e);
                }
        }
        return failed ? -1 : 0;
}

/* The waiting child: one request, the work, the answer. */
static int resume_serve(int ready) {
        char req[RESUME_AGENT_REQUEST_MAX], up[64], why[512];
        size_t got = 0, used = 0;
        uint64_t usec, cs0, cs1, cont, ns_start;
        long in, out, n;

        (void) sys(SYS_SETSID, 0, 0, 0);
        /* Read-write: opening never blocks, and our own writer end keeps the read from seeing EOF. */
        in = ra_open(RESUME_AGENT_IN, O_RDWR | O_CLOEXEC);
        if (in < 0)
                return 1;
        (void) sys(SYS_WRITE, ready, "r", 1);
        (void) sys(SYS_CLOSE, ready, 0, 0);
        ns_start = ra_monotonic_ns();
        /* Here the snapshot is taken; the restore job writes the request. */
        while (got < sizeof req - 1 && (n = sys(SYS_READ, in, req + got, sizeof req - 1 - got)) > 0) {
                got += (size_t) n;
                if (req[got - 1] == '\n')
                        break;
        }
        req[got] = 0;
        (void) sys(SYS_ALARM, 30, 0, 0); /* whatever happens next, never linger */
        if (resume_parse_request(req, &usec, &cs0, &cont) < 0)
                ra_append(why, sizeof why, &used, "bad request", -1);
        else {
                struct ra_timespec ts;
                uint64_t t;

                if (cont > 0)
                        t = resume_clock_cont_usec(cont, ns_start, ra_monotonic_ns());
                else {
                        cs1 = cs0;
                        if (ra_read_file("/proc/uptime", up, sizeof up) > 0)
                                (void) resume_parse_uptime(up, &cs1);
                        t = resume_clock_usec(usec, cs0, cs1);
                }
                ts.sec = (long) (t / 1000000);
                ts.nsec = (long) (t % 1000000) * 1000;
                n = sys(SYS_CLOCK_SETTIME, 0 /* CLOCK_REALTIME */, &ts, 0);
                if (n < 0)
                        ra_append(why, sizeof why, &used, "clock_settime: errno ", -n);
                (void) resume_mount_shares(why, sizeof why, &used);
        }
        if (used == 0)
                ra_append(why, sizeof why, &used, "ok", -1);
        ra_append(why, sizeof why, &used, "\n", -1);
        why[used] = 0;
        /* Blocks until the job opens it to read the answer. */
        out = ra_open(RESUME_AGENT_OUT, O_WRONLY | O_CLOEXEC);
        (void) sys(SYS_UNLINKAT, AT_FDCWD, RESUME_AGENT_IN, 0);
        (void) sys(SYS_UNLINKAT, AT_FDCWD, RESUME_AGENT_OUT, 0);
        (void) sys(SYS_UNLINKAT, AT_FDCWD, RESUME_AGENT_PID, 0);
        (void) sys(SYS_UNLINKAT, AT_FDCWD, RESUME_AGENT_PATH, 0);
        if (out >= 0)
                (void) sys(SYS_WRITE, out, why, used);
        return 0;
}

/* The parent returns once the child waits on the FIFO, its pid written. */
static int resume_main(void) {
        char buf[24];
        size_t used = 0;
        int p[2];
        long pid, fd;

        if (sys(SYS_PIPE2, p, O_CLOEXEC, 0) < 0)
                return 1;
        pid = sys(SYS_FORK, 0, 0, 0);
        if (pid < 0)
                return 1;
        if (pid == 0) {
                (void) sys(SYS_CLOSE, p[0], 0, 0);
                return resume_serve(p[1]);
        }
        (void) sys(SYS_CLOSE, p[1], 0, 0);
        ra_append(buf, sizeof buf, &used, "", pid);
        ra_append(buf, sizeof buf, &used, " " RESUME_AGENT_VERSION "\n", -1);
        fd = ra_open(RESUME_AGENT_PID, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
        if (fd < 0 || sys(SYS_WRITE, fd, buf, used) != (long) used)
                return 1;
        (void) sys(SYS_CLOSE, fd, 0, 0);
        return sys(SYS_READ, p[0], buf, 1) == 1 ? 0 : 1;
}

void resume_start(void) __attribute__((noreturn, used));
void resume_start(void) {
        (void) sys(SYS_EXIT_GROUP, resume_main(), 0, 0);
        __builtin_unreachable();
}

/* The kernel enters with a 16-byte aligned stack; the call leaves it as a function expects. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "        xor %ebp, %ebp\n"
        "        call resume_start\n"
        "        hlt\n");

#endif /* RESUME_AGENT_TEST */
