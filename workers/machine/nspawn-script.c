/* SPDX-License-Identifier: MIT */
/*
 * nspawn-script.c: the NixOS container start script's contract (see
 * nspawn-script.h). Pure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "nspawn-script.h"

static bool has_prefix(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        return len >= n && memcmp(s, prefix, n) == 0;
}

static bool contains(const char *s, size_t len, const char *needle) {
        return memmem(s, len, needle, strlen(needle)) != NULL;
}

/* Like the reference's int(): decimal digits, nothing else but surrounding
 * blanks; a pid is > 0 and fits pid_t. */
static int parse_pid(const char *s, size_t len, pid_t *ret) {
        unsigned long long v = 0;
        size_t i = 0, digits = 0;

        while (i < len && (s[i] == ' ' || s[i] == '\t'))
                i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
                v = v * 10 + (unsigned long long) (s[i] - '0');
                if (v > 0x3fffffff) /* PID_MAX_LIMIT is 2^22 */
                        return -EBADMSG;
        }
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
                i++;
        if (i != len || digits == 0 || v == 0)
                return -EBADMSG;
        *ret = (pid_t) v;
        return 0;
}

int nspawn_script_scan_line(struct nspawn_script_scan *s, const char *line, size_t len) {
        if (s->booted)
                return NSPAWN_SCRIPT_NONE;
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (has_prefix(line, len, NSPAWN_SCRIPT_PID_PREFIX)) {
                size_t skip = strlen(NSPAWN_SCRIPT_PID_PREFIX);
                pid_t pid;
                int r = parse_pid(line + skip, len - skip, &pid);
                if (r < 0)
                        return r;
                s->nspawn_pid = pid;
                return NSPAWN_SCRIPT_PID;
        }
        if (has_prefix(line, len, NSPAWN_SCRIPT_STARTUP_PREFIX) || contains(line, len, NSPAWN_SCRIPT_WELCOME)) {
                if (s->nspawn_pid <= 0)
                        return -EPROTO;
                s->booted = true;
                return NSPAWN_SCRIPT_BOOTED;
        }
        return NSPAWN_SCRIPT_NONE;
}

int nspawn_script_feed(struct nspawn_script_scan *s, const uint8_t *buf, size_t len) {
        int last = NSPAWN_SCRIPT_NONE;

        for (size_t i = 0; i < len; i++) {
                if (buf[i] != '\n') {
                        if (s->len < sizeof s->line)
                                s->line[s->len++] = (char) buf[i];
                        else
                                s->overflow = true;
                        continue;
                }
                int r = nspawn_script_scan_line(s, s->line, s->len);
                s->len = 0;
                s->overflow = false;
                if (r < 0)
                        return r;
                if (r != NSPAWN_SCRIPT_NONE)
                        last = r;
        }
        return last;
}

int nspawn_script_parse_children(const char *text, pid_t *ret) {
        pid_t found = 0;
        const char *p = text;

        for (;;) {
                while (*p == ' ' || *p == '\n')
                        p++;
                if (!*p)
                        break;
                size_t n = strcspn(p, " \n");
                pid_t pid;
                if (parse_pid(p, n, &pid) < 0)
                        return -EBADMSG;
                if (found)
                        return -ENOTUNIQ;
                found = pid;
                p += n;
        }
        if (!found)
                return -ESRCH;
        *ret = found;
        return 0;
}

static int strv_make(char ***ret, size_t n, ...) {
        va_list ap;
        char **v = calloc(n + 1, sizeof *v);

        if (!v)
                return -ENOMEM;
        va_start(ap, n);
        for (size_t i = 0; i < n; i++) {
                const char *s = va_arg(ap, const char *);
                if (!(v[i] = strdup(s))) {
                        va_end(ap);
                        strv_free(v);
                        return -ENOMEM;
                }
        }
        va_end(ap);
        *ret = v;
        return 0;
}

int nspawn_script_env(const char *state_dir, const char *shared_dir, char ***ret) {
        _cleanup_free_ char *root = NULL, *shared = NULL;

        if (!state_dir || !shared_dir)
                return -EINVAL;
        if (asprintf(&root, "RUN_NSPAWN_ROOT_DIR=%s", state_dir) < 0 ||
            asprintf(&shared, "RUN_NSPAWN_SHARED_DIR=%s", shared_dir) < 0)
                return -ENOMEM;
        return strv_make(ret, 2, root, shared);
}

/* The wrapper program, fixed text: everything variable comes in as "$@", so
 * nothing needs quoting. Run as root with every capability (sup-kind.c). */
static const char wrapper_sh[] = "set -eu\n"
                                 /* For this program's tools only: not exported, so the
                                  * script gets the reference's environment and nothing else. */
                                 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                                 "hostns=$1 script=$2\n"
                                 "shift 2\n"
                                 /* Private to this script: the named namespaces it adds, nspawn's
                                  * per-machine directories. */
                                 "mkdir -p /run/netns /run/systemd/nspawn\n"
                                 "mount -t tmpfs -o mode=0755 vigil-netns /run/netns\n"
                                 "mount -t tmpfs -o mode=0755 vigil-nspawn /run/systemd/nspawn\n"
                                 /* A sysfs shows the interfaces of the namespace that mounted it: the
                                  * script decides whether br<vlan> exists from /sys/class/net. */
                                 "mkdir /run/netns/.vigil-cgroup\n"
                                 "mount --rbind /sys/fs/cgroup /run/netns/.vigil-cgroup\n"
                                 "mount -t sysfs sysfs /sys\n"
                                 "mount --move /run/netns/.vigil-cgroup /sys/fs/cgroup\n"
                                 "rmdir /run/netns/.vigil-cgroup\n"
                                 "ip link set dev lo up\n"
                                 "while [ $# -ge 2 ]; do\n"
                                 "        nsenter --net=\"$hostns\" -- ip link set dev \"$1\" netns $$\n"
                                 "        if [ ! -e \"/sys/class/net/br$2\" ]; then\n"
                                 "                ip link add \"br$2\" type bridge\n"
                                 "                echo 1 >\"/proc/sys/net/ipv6/conf/br$2/disable_ipv6\" || :\n"
                                 "                ip link set dev \"br$2\" up\n"
                                 "        fi\n"
                                 "        ip link set dev \"$1\" master \"br$2\" up\n"
                                 "        shift 2\n"
                                 "done\n"
                                 "exec \"$script\"\n";

static bool tap_name_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 15)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                      ch == '_' || ch == '-'))
                        return false;
        }
        return true;
}

int nspawn_script_argv(const char *script, const char *host_netns, const struct nspawn_script_tap *taps, size_t n_taps,
                       char ***ret) {
        static const char *const head[] = {
                "unshare", "--net",   "--mount", "--propagation", "private",
                "--",      "/bin/sh", "-c",      wrapper_sh,      "vigil-nspawn-script",
        };
        size_t n = ELEMENTSOF(head) + 2 + 2 * n_taps, k = 0;
        _cleanup_strv_free_ char **v = NULL;

        if (!script || !*script || !host_netns || !*host_netns)
                return -EINVAL;
        for (size_t i = 0; i < n_taps; i++)
                if (!tap_name_valid(taps[i].tap) || taps[i].vlan < 1 || taps[i].vlan > 4094)
                        return -EINVAL;
        if (!(v = calloc(n + 1, sizeof *v)))
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(head); i++)
                if (!(v[k++] = strdup(head[i])))
                        return -ENOMEM;
        if (!(v[k++] = strdup(host_netns)) || !(v[k++] = strdup(script)))
                return -ENOMEM;
        for (size_t i = 0; i < n_taps; i++)
                if (!(v[k++] = strdup(taps[i].tap)) || asprintf(&v[k++], "%u", taps[i].vlan) < 0) {
                        v[k - 1] = NULL;
                        return -ENOMEM;
                }
        *ret = TAKE_PTR(v);
        return 0;
}

/* What the reference's backdoor service does on /dev/hvc0, on stdin/stdout.
 * bash runs in the background, so it is the container init's child, not
 * nsenter's: systemd's shutdown SIGSTOPs every process before it kills them,
 * and nsenter, seeing its child stop, stops itself and is never continued
 * (it is outside the container), so a child of nsenter would stay an unreaped
 * zombie and the container would never finish powering off. (An
 * asynchronous command's stdin is /dev/null before its own redirections
 * apply, hence fd 3.)
 * The boot line comes before systemd listens on its private socket, so a
 * first `systemctl` could fail with "Failed to connect to bus": the ready line
 * waits for that socket, at most 10 s (an init that is not systemd never
 * makes it). */
static const char shell_sh[] =
        "export USER=root HOME=/root\n"
        "i=0\n"
        "while [ ! -S /run/systemd/private ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done\n"
        "if [ -e /etc/profile ]; then . /etc/profile; fi\n"
        "cd /tmp 2>/dev/null || cd /\n"
        "echo 'Spawning backdoor root shell...'\n"
        "exec 3<&0\n"
        "PS1= bash --norc <&3 3<&- &\n";

int nspawn_script_shell_argv(pid_t init, char ***ret) {
        char target[32];

        if (init <= 0)
                return -EINVAL;
        (void) snprintf(target, sizeof target, "%d", (int) init);
        return strv_make(ret, 12, "nsenter", "--target", target, "--mount", "--uts", "--ipc", "--net", "--pid",
                         "--cgroup", "/bin/sh", "-c", shell_sh);
}
