/* SPDX-License-Identifier: MIT */
/*
 * sup-cgroup.c owns the cgroups vigil makes for spawned processes that run
 * their own cgroup subtree (systemd-nspawn): one directory per process,
 * <hierarchy>/vigil/<run id>/<child>.<proc>, created before the spawn, joined
 * by the forked child before exec, removed (deepest first) when the process is
 * gone. Without it every container of every run would share the hierarchy's
 * root "payload" group on a host without systemd as PID 1. Every hierarchy
 * nspawn looks at is used: the unified one (of a hybrid host, or the v2 root)
 * and systemd's named v1 one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sup-cgroup.h"

#define CGROUP2_PRIVATE "/run/vigil-cgroup2"

static const char *const hierarchies[][2] = {
        /* probe file, hierarchy root: every one present is used (a hybrid host has two) */
        {"/sys/fs/cgroup/unified/cgroup.controllers", "/sys/fs/cgroup/unified"},
        {"/sys/fs/cgroup/systemd/cgroup.procs", "/sys/fs/cgroup/systemd"},
        {"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup"},
        {CGROUP2_PRIVATE "/cgroup.controllers", CGROUP2_PRIVATE},
};

/* systemd-nspawn takes its own group from the cgroup2 ("0::") line of
 * /proc/self/cgroup even on a v1 host, and that line exists whether or not
 * cgroup2 is mounted: so the group must be joined in cgroup2 too. A v1-only
 * host (no systemd mounted it) gets a grouping-only cgroup2 mount of ours,
 * in the supervisor's own mount namespace when it has one. */
static void cgroup2_ensure(void) {
        static const char *const known[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified", CGROUP2_PRIVATE};
        struct statfs sfs;

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (statfs(known[i], &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
                        return;
        (void) mkdir(CGROUP2_PRIVATE, 0755);
        if (mount("cgroup2", CGROUP2_PRIVATE, "cgroup2", MS_NOSUID | MS_NOEXEC | MS_NODEV, NULL) < 0)
                log_warning_errno(negative_errno(),
                                  "Cannot mount cgroup2 on " CGROUP2_PRIVATE " (containers will share one cgroup)");
        else
                log_info("Mounted cgroup2 on " CGROUP2_PRIVATE " (none was mounted) for per-container groups");
}

static bool hierarchy_present(size_t i) {
        return access(hierarchies[i][0], F_OK) == 0;
}

static int mkdir_one(const char *path) {
        return mkdir(path, 0755) < 0 && errno != EEXIST ? negative_errno() : 0;
}

int sup_cgroup_create(const char *run_id, const char *child, const char *proc, char **ret_rel) {
        char rel[256], path[PATH_MAX];
        bool any = false;
        int r = 0;

        cgroup2_ensure();
        snprintf(rel, sizeof(rel), "vigil/%s/%s.%s", run_id, child, proc);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(hierarchies); i++) {
                if (!hierarchy_present(i))
                        continue;
                any = true;
                snprintf(path, sizeof(path), "%s/vigil", hierarchies[i][1]);
                r = mkdir_one(path);
                if (r >= 0) {
                        snprintf(path, sizeof(path), "%s/vigil/%s", hierarchies[i][1], run_id);
                        r = mkdir_one(path);
                }
                if (r >= 0) {
                        snprintf(path, sizeof(path), "%s/%s", hierarchies[i][1], rel);
                        r = mkdir_one(path);
                }
        }
        if (r < 0 || !any)
                return r < 0 ? r : -EOPNOTSUPP;
        *ret_rel = strdup(rel);
        return *ret_rel ? 0 : -ENOMEM;
}

int sup_cgroup_join(const char *rel) {
        for (size_t i = 0; i < ELEMENTSOF(hierarchies); i++) {
                char procs[PATH_MAX];
                int fd;

                if (!hierarchy_present(i))
                        continue;
                snprintf(procs, sizeof(procs), "%s/%s/cgroup.procs", hierarchies[i][1], rel);
                fd = open(procs, O_WRONLY | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                if (write(fd, "0\n", 2) != 2) {
                        int r = negative_errno();
                        close(fd);
                        return r;
                }
                close(fd);
        }
        return 0;
}

/* rmdir @path after its empty subgroups; a group with processes stays (EBUSY). */
static void remove_tree(const char *path, int depth) {
        DIR *d = depth < 8 ? opendir(path) : NULL;
        struct dirent *e;

        while (d && (e = readdir(d))) {
                char sub[PATH_MAX];
                if (e->d_type != DT_DIR || streq(e->d_name, ".") || streq(e->d_name, ".."))
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                remove_tree(sub, depth + 1);
        }
        if (d)
                closedir(d);
        (void) rmdir(path);
}

void sup_cgroup_remove(const char *rel) {
        for (size_t i = 0; rel && i < ELEMENTSOF(hierarchies); i++) {
                char path[PATH_MAX], *slash;

                if (!hierarchy_present(i))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", hierarchies[i][1], rel);
                remove_tree(path, 0);
                /* The run's directory goes with its last process. */
                if ((slash = strrchr(path, '/'))) {
                        *slash = 0;
                        (void) rmdir(path);
                }
        }
}

void sup_cgroup_remove_run(const char *run_id) {
        /* The groups' last processes (a container's init and its children,
         * already killed) may take a moment to leave: wait for them, bounded. */
        for (int tries = 0; tries < 60; tries++) {
                bool left = false;
                for (size_t i = 0; i < ELEMENTSOF(hierarchies); i++) {
                        char path[PATH_MAX];
                        if (!hierarchy_present(i))
                                continue;
                        snprintf(path, sizeof(path), "%s/vigil/%s", hierarchies[i][1], run_id);
                        remove_tree(path, 0);
                        left = left || access(path, F_OK) == 0;
                }
                if (!left)
                        return;
                (void) usleep(50 * 1000);
        }
        log_warning("The run's cgroups under vigil/%s still hold processes after 3 s; left in place", run_id);
}

void sup_cgroup_sweep(void) {
        /* Runs killed with SIGKILL leave empty groups; an old enough empty one
         * is nobody's (a live run's groups hold processes or are seconds old). */
        for (size_t i = 0; i < ELEMENTSOF(hierarchies); i++) {
                char top[128];
                struct dirent *e;
                DIR *d;

                if (!hierarchy_present(i))
                        continue;
                snprintf(top, sizeof(top), "%s/vigil", hierarchies[i][1]);
                d = opendir(top);
                while (d && (e = readdir(d))) {
                        char path[PATH_MAX];
                        struct stat st;
                        if (e->d_type != DT_DIR || streq(e->d_name, ".") || streq(e->d_name, ".."))
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", top, e->d_name);
                        if (stat(path, &st) == 0 && time(NULL) - st.st_mtime > 60)
                                remove_tree(path, 0);
                }
                if (d)
                        closedir(d);
        }
}
