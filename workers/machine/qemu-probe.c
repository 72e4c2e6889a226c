/* SPDX-License-Identifier: MIT */
/*
 * qemu-probe.c owns the bounded KVM probe: /dev/kvm exists on hosts whose
 * KVM guests hang, so before the first direct-boot machine of a run uses it,
 * a throw-away QEMU with the machine's kernel must print the kernel banner
 * within PROBE_USEC; the answer is cached for the run beside the state dirs,
 * and for the host until it reboots (a hanging /dev/kvm cost every run its
 * 3 s): in $XDG_RUNTIME_DIR, or /run for root, keyed by the boot, /dev/kvm
 * and the QEMU binary. The verdict goes to qemu_accel_decide() (qemu-argv.c)
 * through ops->done.
 */
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fd-util.h"
#include "fs-util.h"
#include "log.h"
#include "machine-proc.h"
#include "machine-util.h"
#include "qemu-probe.h"

#define PROBE_PROC  "kvm-probe"
#define PROBE_MARK  "Linux version"
#define PROBE_USEC  (3 * USEC_PER_SEC) /* a working KVM prints its banner in well under 1 s */
#define PROBE_CACHE "vigil-kvm-probe"

struct qemu_probe {
        struct event_base *base;
        const struct qemu_probe_ops *ops;
        void *userdata;
        char *state_dir;
        struct machine_proc *proc;
        int probe_fd;
        struct event *probe_ev;
        struct event *probe_timer;
        char probe_tail[64];
        char *binary; /* of the probe under way (the host cache's key) */
        bool probing;
};

static void probe_cache_path(struct qemu_probe *q, char *buf, size_t size) {
        _cleanup_free_ char *copy = strdup(q->state_dir);
        (void) snprintf(buf, size, "%s/" PROBE_CACHE, copy ? dirname(copy) : "/tmp");
}

/* The host's cache: $XDG_RUNTIME_DIR (a tmpfs of this user's, emptied at
 * logout or reboot), or /run for root; none otherwise (a shared /tmp is not
 * to be trusted with it). false: none. */
static bool host_cache_path(char *buf, size_t size) {
        const char *dir = getenv("XDG_RUNTIME_DIR");

        if (dir && dir[0] == '/')
                return snprintf(buf, size, "%s/" PROBE_CACHE, dir) < (int) size;
        if (geteuid() == 0)
                return snprintf(buf, size, "/run/" PROBE_CACHE) < (int) size;
        return false;
}

/* "boot=<boot_id>,kvm=<major:minor>,qemu=<binary>": a verdict holds for
 * this boot of the host, this /dev/kvm and this QEMU. */
static bool host_cache_key(const char *binary, char *buf, size_t size) {
        char boot[64] = "";
        _cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
        struct stat st;
        ssize_t n;

        if (fd < 0 || (n = read(fd, boot, sizeof boot - 1)) <= 0 || stat("/dev/kvm", &st) < 0)
                return false;
        boot[n] = 0;
        boot[strcspn(boot, "\n")] = 0;
        return snprintf(buf, size, "boot=%s,kvm=%u:%u,qemu=%s", boot, major(st.st_rdev), minor(st.st_rdev), binary) <
               (int) size;
}

static enum qemu_kvm_probe host_cached(const char *binary, char *path, size_t size) {
        char key[PATH_MAX + 128], text[PATH_MAX + 160];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        ssize_t n;

        if (!host_cache_path(path, size) || !host_cache_key(binary, key, sizeof key))
                return QEMU_KVM_UNTESTED;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        /* Only a file of ours: another user's could steer us to a hanging KVM. */
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != geteuid() || (n = read(fd, text, sizeof text - 1)) <= 0)
                return QEMU_KVM_UNTESTED;
        text[n] = 0;
        return qemu_kvm_probe_host_parse(text, key);
}

static void host_cache(const char *binary, enum qemu_kvm_probe p) {
        char path[PATH_MAX], key[PATH_MAX + 128], line[PATH_MAX + 160];

        if (host_cache_path(path, sizeof path) && host_cache_key(binary, key, sizeof key) &&
            qemu_kvm_probe_host_line(key, p, line, sizeof line) >= 0)
                (void) write_file_atomic(path, line, 0644, false);
}

static enum qemu_kvm_probe run_cached(struct qemu_probe *q) {
        char path[512], text[32] = "";
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        probe_cache_path(q, path, sizeof path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (n = read(fd, text, sizeof text - 1)) <= 0)
                return QEMU_KVM_UNTESTED;
        text[n] = 0;
        text[strcspn(text, "\n")] = 0;
        enum qemu_kvm_probe p = qemu_kvm_probe_from_string(text);
        return p < 0 ? QEMU_KVM_UNTESTED : p;
}

enum qemu_kvm_probe qemu_probe_cached(struct qemu_probe *q, const char *binary) {
        enum qemu_kvm_probe p = run_cached(q);
        char path[PATH_MAX];

        if (p != QEMU_KVM_UNTESTED)
                return p;
        p = host_cached(binary, path, sizeof path);
        if (p == QEMU_KVM_UNTESTED)
                return p;
        log_info("KVM probe: this boot's verdict for %s is \"%s\" (%s; remove it to probe again)", binary,
                 qemu_kvm_probe_to_string(p), path);
        qemu_probe_cache(q, p);
        return p;
}

void qemu_probe_cache(struct qemu_probe *q, enum qemu_kvm_probe p) {
        char path[512], line[32];

        probe_cache_path(q, path, sizeof path);
        (void) snprintf(line, sizeof line, "%s\n", qemu_kvm_probe_to_string(p));
        (void) write_file_atomic(path, line, 0644, false);
}

static void probe_finish(struct qemu_probe *q, enum qemu_kvm_probe p) {
        if (!q->probing)
                return;
        q->probing = false;
        machine_event_free(&q->probe_ev);
        (void) evtimer_del(q->probe_timer);
        q->probe_fd = safe_close(q->probe_fd);
        machine_proc_kill(q->proc);
        qemu_probe_cache(q, p);
        host_cache(q->binary, p);
        q->ops->done(q->userdata, p);
}

static void probe_read_cb(evutil_socket_t fd, short what, void *arg) {
        struct qemu_probe *q = arg;
        char buf[4096 + sizeof q->probe_tail];
        size_t keep = strlen(q->probe_tail);
        ssize_t n;

        memcpy(buf, q->probe_tail, keep);
        n = machine_read_some(fd, buf + keep, 4096);
        if (n == 0)
                return;
        if (n < 0) {
                machine_event_free(&q->probe_ev);
                return; /* wait for PROC_EXIT or the timer */
        }
        buf[keep + (size_t) n] = 0;
        for (size_t i = 0; i < keep + (size_t) n; i++)
                if (!buf[i])
                        buf[i] = ' ';
        if (strstr(buf, PROBE_MARK)) {
                probe_finish(q, QEMU_KVM_WORKS);
                return;
        }
        size_t total = keep + (size_t) n, t = MIN(total, sizeof q->probe_tail - 1);
        memcpy(q->probe_tail, buf + total - t, t);
        q->probe_tail[t] = 0;
}

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg) {
        probe_finish(arg, QEMU_KVM_HANGS);
}

int qemu_probe_start(struct qemu_probe *q, char *binary, char *kernel) {
        _cleanup_close_ int kvm = -EBADF, out_w = -EBADF;
        char mem[] = "128";
        char *argv[] = {binary,       "-accel",     "kvm",      "-nodefaults",
                        "-nographic", "-no-reboot", "-m",       mem,
                        "-kernel",    kernel,       "-append",  "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1",
                        "-serial",    "stdio",      "-monitor", "none",
                        NULL};
        char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        int p[2], r;

        kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return 0; /* caller sees !probing: missing */
        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        q->probe_fd = p[0];
        out_w = p[1];
        (void) fd_set_nonblock(q->probe_fd, 1);
        q->probe_tail[0] = 0;
        r = machine_event_watch(q->base, q->probe_fd, EV_READ | EV_PERSIST, probe_read_cb, q, &q->probe_ev);
        if (r < 0)
                return r;
        r = machine_proc_spawn(q->proc, argv, env, "", 2, &out_w, 1);
        if (r < 0)
                return r;
        free(q->binary);
        q->binary = strdup(binary);
        q->probing = true;
        machine_timer_set(q->probe_timer, PROBE_USEC);
        log_info("/dev/kvm exists; probing whether a KVM guest makes progress (at most %llu s)",
                 PROBE_USEC / USEC_PER_SEC);
        return 1;
}

static void probe_spawn_failed(struct machine_proc *p, int error, const char *message, void *userdata) {
        probe_finish(userdata, QEMU_KVM_FAILED);
}

static void probe_exited(struct machine_proc *p, const struct msg_proc_exit *e, void *userdata) {
        probe_finish(userdata, QEMU_KVM_FAILED);
}

static const struct machine_proc_ops probe_proc_ops = {
        .spawn_failed = probe_spawn_failed,
        .exited = probe_exited,
};

int qemu_probe_new(struct worker *w, const char *state_dir, const struct qemu_probe_ops *ops, void *userdata,
                   struct qemu_probe **ret) {
        struct qemu_probe *q = calloc(1, sizeof *q);
        int r;

        if (!q)
                return -ENOMEM;
        q->base = worker_event_base(w);
        q->ops = ops;
        q->userdata = userdata;
        q->probe_fd = -EBADF;
        q->state_dir = strdup(state_dir);
        q->probe_timer = evtimer_new(q->base, probe_timer_cb, q);
        if (!q->state_dir || !q->probe_timer) {
                qemu_probe_free(q);
                return -ENOMEM;
        }
        r = machine_proc_new(w, PROBE_PROC, &probe_proc_ops, q, &q->proc);
        if (r < 0) {
                qemu_probe_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

struct qemu_probe *qemu_probe_free(struct qemu_probe *q) {
        if (!q)
                return NULL;
        machine_event_free(&q->probe_ev);
        machine_event_free(&q->probe_timer);
        q->probe_fd = safe_close(q->probe_fd);
        q->proc = machine_proc_free(q->proc);
        free(q->state_dir);
        free(q->binary);
        free(q);
        return NULL;
}
