/* SPDX-License-Identifier: MIT */
/*
 * nspawn-host.c owns what a container start needs of the host before
 * systemd-nspawn runs: refusing a tree that cannot boot (naming the field),
 * the files under the state dir's host/ directory, raising the inotify limits
 * that stop containers past ~21, and the udev database entries that let
 * nspawn take a TAP on a host without udevd. Plain syscalls, no event loop.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fs-util.h"
#include "log.h"
#include "nspawn-argv.h"
#include "nspawn-host.h"

#define INOTIFY_WATCHES 1048576
#define UDEV_DATA_DIR   "/run/udev/data"
#define UDEV_CONTROL    "/run/udev/control"

static void host_path(const struct machine_config *c, const char *name, char *buf, size_t size) {
        (void) snprintf(buf, size, "%s/" NSPAWN_HOST_DIR "%s%s", c->state_dir, name ? "/" : "", name ?: "");
}

long nspawn_read_long(const char *path) {
        char buf[32] = "";
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t k;

        if (fd < 0 || (k = read(fd, buf, sizeof buf - 1)) <= 0)
                return -1;
        buf[k] = 0;
        return strtol(buf, NULL, 10);
}

/* Every booted systemd takes several inotify instances; at the default 128
 * per user, containers past about 21 exit at once. Raise the limits when
 * they are lower (a sysctl file is writable by uid 0 without capabilities),
 * or say exactly which one will stop us. */
void nspawn_raise_inotify_limits(void) {
        static bool done;
        static const struct {
                const char *name;
                long want;
        } limits[] = {
                {"fs.inotify.max_user_instances", NSPAWN_INOTIFY_INSTANCES},
                {"fs.inotify.max_user_watches", INOTIFY_WATCHES},
        };

        if (done)
                return;
        done = true;
        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                char path[128], text[32];
                _cleanup_close_ int fd = -EBADF;
                long have;
                int len;

                (void) snprintf(path, sizeof path, "/proc/sys/%s", limits[i].name);
                for (char *p = path + strlen("/proc/sys/"); *p; p++)
                        if (*p == '.')
                                *p = '/';
                have = nspawn_read_long(path);
                if (have < 0 || have >= limits[i].want)
                        continue;
                len = snprintf(text, sizeof text, "%ld\n", limits[i].want);
                fd = open(path, O_WRONLY | O_CLOEXEC);
                if (fd < 0 || write(fd, text, (size_t) len) != len) {
                        log_warning("%s is %ld and could not be raised to %ld (%m): every container's systemd takes "
                                    "several inotify instances, so containers past about %ld exit at once; run "
                                    "`sysctl -w %s=%ld` as root",
                                    limits[i].name, have, limits[i].want, have / 6, limits[i].name, limits[i].want);
                        continue;
                }
                log_info("Raised %s from %ld to %ld (every container's systemd takes several inotify instances)",
                         limits[i].name, have, limits[i].want);
        }
}

static int find_in_path(const char *bin) {
        const char *path = getenv("PATH") ?: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

        if (strchr(bin, '/'))
                return access(bin, X_OK) < 0 ? negative_errno() : 0;
        for (const char *p = path; *p;) {
                size_t len = strcspn(p, ":");
                char full[512];
                if ((size_t) snprintf(full, sizeof full, "%.*s/%s", (int) len, p, bin) < sizeof full &&
                    access(full, X_OK) == 0)
                        return 0;
                p += len;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

static bool tree_has(const char *tree, const char *rel) {
        char path[1024];
        struct stat st;

        /* lstat: /sbin/init is usually an absolute symlink, meaningful only inside. */
        return (size_t) snprintf(path, sizeof path, "%s/%s", tree, rel) < sizeof path && lstat(path, &st) == 0;
}

/* Refuse at once, naming the field, what nspawn would only fail on later. */
int nspawn_preflight(const struct machine_config *c, char *why, size_t size) {
        struct stat st;
        int r;

        if (geteuid() != 0) {
                (void) snprintf(why, size,
                                "backend nspawn needs root: systemd-nspawn creates namespaces and mounts (run vigil "
                                "as root, or use backend qemu)");
                return -EPERM;
        }
        if (c->start_script) {
                static const char *const tools[] = {"unshare", "nsenter", "ip"};

                if (access(c->start_script, X_OK) < 0) {
                        r = negative_errno();
                        (void) snprintf(why, size, "nspawn.start_script %s: %s", c->start_script,
                                        r == -EACCES ? "not executable" : strerror(-r));
                        return r;
                }
                /* The script runs under unshare, its shell under nsenter (nspawn-script.c). */
                for (size_t i = 0; i < ELEMENTSOF(tools); i++)
                        if ((r = find_in_path(tools[i])) < 0) {
                                (void) snprintf(why, size,
                                                "%s: not found in PATH (Debian packages util-linux, iproute2), "
                                                "needed to run the container's start script",
                                                tools[i]);
                                return r;
                        }
                return 0;
        }
        r = find_in_path(c->binary);
        if (r < 0) {
                (void) snprintf(why, size, "nspawn.binary %s: %s (Debian package systemd-container)", c->binary,
                                r == -ENOENT ? "not found in PATH" : strerror(-r));
                return r;
        }
        if (stat(c->tree, &st) < 0) {
                r = negative_errno();
                (void) snprintf(why, size, "nspawn.tree %s: %s (build a tree with tools/mkdebian)", c->tree,
                                strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                (void) snprintf(why, size, "nspawn.tree %s is not a directory", c->tree);
                return -ENOTDIR;
        }
        if (!tree_has(c->tree, "sbin/init") && !tree_has(c->tree, "lib/systemd/systemd") &&
            !tree_has(c->tree, "usr/lib/systemd/systemd")) {
                (void) snprintf(why, size,
                                "nspawn.tree %s has neither /sbin/init nor /lib/systemd/systemd: nothing to boot",
                                c->tree);
                return -ENOEXEC;
        }
        if (!tree_has(c->tree, "etc/systemd/system/vigil-backdoor.service") &&
            !tree_has(c->tree, "lib/systemd/system/vigil-backdoor.service") &&
            !tree_has(c->tree, "usr/lib/systemd/system/vigil-backdoor.service")) {
                (void) snprintf(why, size,
                                "nspawn.tree %s lacks vigil-backdoor.service, so vigil could never reach its shell "
                                "(tools/debian/overlay; build trees with tools/mkdebian)",
                                c->tree);
                return -ENOENT;
        }
        return 0;
}

/* Host files the container sees under /run/vigil-host. */
int nspawn_prepare_host_dir(const struct machine_config *c, char *why, size_t size) {
        _cleanup_free_ char *setup = NULL;
        char path[512], host[80];
        int r;

        (void) mkdir(c->state_dir, 0700);
        host_path(c, NULL, path, sizeof path);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                r = negative_errno();
                (void) snprintf(why, size, "could not create %s: %s", path, strerror(-r));
                return r;
        }
        (void) snprintf(path, sizeof path, "%s/xchg", c->state_dir);
        (void) mkdir(path, 0755);
        if (c->shared_dir)
                (void) mkdir(c->shared_dir, 0755);
        if ((r = nspawn_build_setup(c, &setup)) < 0 || (r = nspawn_hostname(c->name, host, sizeof host - 1)) < 0)
                goto fail;
        strcat(host, "\n");
        host_path(c, NSPAWN_SETUP_NAME, path, sizeof path);
        if ((r = write_file_atomic(path, setup, 0644, false)) < 0)
                goto fail;
        host_path(c, NSPAWN_HOSTNAME_NAME, path, sizeof path);
        if ((r = write_file_atomic(path, host, 0644, false)) < 0)
                goto fail;
        return 0;
fail:
        (void) snprintf(why, size, "could not write the container's files under %s/" NSPAWN_HOST_DIR ": %s",
                        c->state_dir, strerror(-r));
        return r;
}

static bool ifindex_exists(long ifindex) {
        DIR *d = opendir("/sys/class/net");
        struct dirent *e;
        bool found = false;

        if (!d)
                return true; /* cannot tell: keep the entry */
        while (!found && (e = readdir(d))) {
                char path[320];
                if (e->d_name[0] == '.')
                        continue;
                (void) snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", e->d_name);
                found = nspawn_read_long(path) == ifindex;
        }
        closedir(d);
        return found;
}

/* Entries like ours (one "I:" line, udevd writes more) left by workers that
 * were killed, for interfaces that no longer exist here. A TAP inside a
 * running container is not visible here either: its entry goes too, which is
 * harmless, nspawn reads it only when it starts. Once per worker. */
static void udev_collect_stale(void) {
        static bool done;
        DIR *d;
        struct dirent *e;

        if (done || !(d = opendir(UDEV_DATA_DIR)))
                return;
        done = true;
        while ((e = readdir(d))) {
                char path[320], text[64] = "";
                _cleanup_close_ int fd = -EBADF;
                unsigned long long usec;
                long ifindex;
                char tail;
                ssize_t k;

                if (e->d_name[0] != 'n' || (ifindex = strtol(e->d_name + 1, NULL, 10)) <= 0)
                        continue;
                (void) snprintf(path, sizeof path, UDEV_DATA_DIR "/%s", e->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || (k = read(fd, text, sizeof text - 1)) <= 0)
                        continue;
                text[k] = 0;
                if (sscanf(text, "I:%llu%c", &usec, &tail) != 2 || tail != '\n' || strchr(text, '\n')[1] != 0)
                        continue;
                if (!ifindex_exists(ifindex))
                        (void) unlink(path);
        }
        closedir(d);
}

/* No udevd on this kind of host: nspawn refuses an interface udev has not
 * initialised ("Network interface X is not initialized yet"). With no udevd
 * running, mark the TAP initialised in udev's database as udevd would. */
void nspawn_udev_mark(const char *tap, int *ret_ifindex) {
        char path[128], text[64];
        long ifindex;
        int len;
        _cleanup_close_ int fd = -EBADF;

        if (access(UDEV_CONTROL, F_OK) == 0)
                return;
        udev_collect_stale();
        (void) snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", tap);
        ifindex = nspawn_read_long(path);
        if (ifindex <= 0)
                return;
        (void) mkdir("/run/udev", 0755);
        (void) mkdir(UDEV_DATA_DIR, 0755);
        (void) snprintf(path, sizeof path, UDEV_DATA_DIR "/n%ld", ifindex);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return; /* already there (ours from before, or udev's) */
        len = snprintf(text, sizeof text, "I:%llu\n", now_usec());
        if (write(fd, text, (size_t) len) == len)
                *ret_ifindex = (int) ifindex;
}

void nspawn_udev_forget(int *ifindex, size_t n) {
        char path[128];

        for (size_t i = 0; i < n; i++)
                if (ifindex[i] > 0) {
                        (void) snprintf(path, sizeof path, UDEV_DATA_DIR "/n%d", ifindex[i]);
                        (void) unlink(path);
                        ifindex[i] = 0;
                }
}
