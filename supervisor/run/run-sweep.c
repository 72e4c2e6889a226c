/* SPDX-License-Identifier: MIT */
/*
 * run-sweep.c owns the cleanup of what SIGKILLed runs leave on the host: a
 * killed vigil cannot remove its own run directory (VM disks, sockets), and
 * a killed systemd-nspawn leaves its /run/systemd/nspawn/propagate/<machine>
 * directory. The next run removes both, but only those whose owner is
 * provably gone: a run directory names its vigil (pid + start time), a
 * propagate directory its systemd-nspawn (--machine=NAME on a live process).
 */
#include <sys/stat.h>

#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "run-sweep.h"

#define NSPAWN_PROPAGATE "/run/systemd/nspawn/propagate"

unsigned long long run_sweep_start_time(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long long start = 0;
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f) || !(p = strrchr(buf, ')')))
                return 0;
        /* after ") ": state(3) ... starttime(22) */
        if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &start) != 1)
                return 0;
        return start;
}

void run_sweep_mark_owner(const char *dir) {
        char path[600];
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(path, sizeof(path), "%s/owner", dir);
        f = fopen(path, "we");
        if (f)
                fprintf(f, "%d %llu\n", (int) getpid(), run_sweep_start_time(getpid()));
}

/* Kept-state directories (vigil-keep-UID) are never touched. */
void run_sweep_tmp_dirs(const char *base) {
        _cleanup_closedir_ DIR *d = opendir(base);
        struct dirent *e;

        while (d && (e = readdir(d))) {
                char dir[600], owner[640], text[64] = "";
                unsigned long long start = 0;
                int pid = 0;
                struct stat st;
                _cleanup_fclose_ FILE *f = NULL;

                if (strncmp(e->d_name, "vigil-", 6) != 0 || strlen(e->d_name) != 14 ||
                    strspn(e->d_name + 6, "0123456789abcdef") != 8)
                        continue;
                snprintf(dir, sizeof(dir), "%s/%s", base, e->d_name);
                if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
                        continue;
                snprintf(owner, sizeof(owner), "%s/owner", dir);
                f = fopen(owner, "re");
                if (!f || !fgets(text, sizeof(text), f) || sscanf(text, "%d %llu", &pid, &start) != 2 || pid <= 0)
                        continue; /* not ours to judge */
                if (run_sweep_start_time(pid) == start)
                        continue; /* its vigil is alive */
                log_info("Removing %s, left by a run that is gone (pid %d)", dir, pid);
                rm_rf(dir);
        }
}

/* Is a systemd-nspawn with --machine=@machine (or -M @machine) running? */
static bool nspawn_alive(const char *machine) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        struct dirent *e;

        if (!d)
                return true; /* cannot tell: keep it */
        while ((e = readdir(d))) {
                char path[300], buf[4096];
                _cleanup_fclose_ FILE *f = NULL;
                size_t n;
                const char *prev = "";

                if (strspn(e->d_name, "0123456789") != strlen(e->d_name))
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
                f = fopen(path, "re");
                if (!f || (n = fread(buf, 1, sizeof(buf) - 1, f)) == 0)
                        continue;
                buf[n] = 0;
                const char *slash = strrchr(buf, '/');
                if (!streq(slash ? slash + 1 : buf, "systemd-nspawn"))
                        continue;
                for (const char *a = buf + strlen(buf) + 1; a < buf + n; a += strlen(a) + 1) {
                        if ((strncmp(a, "--machine=", 10) == 0 && streq(a + 10, machine)) ||
                            ((streq(prev, "--machine") || streq(prev, "-M")) && streq(a, machine)))
                                return true;
                        prev = a;
                }
        }
        return false;
}

/* Names vigil gives containers: vigil-<8 hex>-<host> (nspawn-argv.c). */
static bool propagate_name_is_ours(const char *name) {
        return strncmp(name, "vigil-", 6) == 0 && strlen(name) > 15 && strspn(name + 6, "0123456789abcdef") == 8 &&
               name[14] == '-';
}

void run_sweep_nspawn_propagate(void) {
        _cleanup_closedir_ DIR *d = opendir(NSPAWN_PROPAGATE);
        struct dirent *e;
        unsigned removed = 0;

        while (d && (e = readdir(d))) {
                char dir[600];
                struct stat st;

                if (!propagate_name_is_ours(e->d_name))
                        continue;
                snprintf(dir, sizeof(dir), NSPAWN_PROPAGATE "/%s", e->d_name);
                if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || nspawn_alive(e->d_name))
                        continue;
                rm_rf(dir);
                removed++;
        }
        if (removed > 0)
                log_info("Removed %u directories under " NSPAWN_PROPAGATE " left by containers of killed runs",
                         removed);
}
