/* SPDX-License-Identifier: MIT */
/*
 * nspawn-script.h owns the contract of a NixOS container start script
 * (`run-<name>-nspawn`, nixos/modules/virtualisation/nspawn-container): the
 * environment the reference driver runs it with, the lines it and the
 * container print on its stdout (the PID line, the boot line), the container
 * init found as nspawn's one child, the wrapper that gives the script a
 * network and mount namespace of its own with vigil's TAPs already in its
 * `br<vlan>` bridges, and the nsenter shell into the container. Pure code;
 * the backend spawns, reads and writes (docs/machine.md, "start scripts").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What run-nspawn prints from systemd-nspawn's process just before the exec. */
#define NSPAWN_SCRIPT_PID_PREFIX "systemd-nspawn's PID is "
/* The reference driver's two boot lines (NspawnMachine.get_systemd_process):
 * a line starting with the first, or one containing the second. */
#define NSPAWN_SCRIPT_STARTUP_PREFIX "systemd[1]: Startup finished in"
#define NSPAWN_SCRIPT_WELCOME_NIXOS  "Welcome to NixOS"
/* vigil also takes systemd's welcome line of any other OS. */
#define NSPAWN_SCRIPT_WELCOME "Welcome to "

/* Longest prefix of a line kept for matching; the rest of a longer line is
 * ignored (the markers are near the start of theirs). */
#define NSPAWN_SCRIPT_LINE_MAX 256u

enum nspawn_script_event {
        NSPAWN_SCRIPT_NONE = 0,
        NSPAWN_SCRIPT_PID,    /* the PID line: scan->nspawn_pid is set */
        NSPAWN_SCRIPT_BOOTED, /* a boot line after the PID line: the container is up */
};

struct nspawn_script_scan {
        pid_t nspawn_pid; /* 0 until the PID line */
        bool booted;
        char line[NSPAWN_SCRIPT_LINE_MAX];
        size_t len;    /* bytes of the current line kept in line[] */
        bool overflow; /* the current line is longer than line[] */
};

/* One line (without its newline; a trailing '\r' is ignored). Returns an
 * event, or -EBADMSG for a PID line whose number is not a pid > 0, -EPROTO
 * for a boot line before any PID line (the reference asserts "Must find
 * systemd-nspawn PID"). After BOOTED nothing changes any more. */
int nspawn_script_scan_line(struct nspawn_script_scan *s, const char *line, size_t len);

/* Feed stdout bytes: every completed line goes through nspawn_script_scan_line().
 * Returns the last event seen (NONE if none), or the first error. */
int nspawn_script_feed(struct nspawn_script_scan *s, const uint8_t *buf, size_t len);

/* The text of /proc/<pid>/task/<pid>/children of systemd-nspawn: its one child
 * is the container's init. -ESRCH when there is none (not yet), -ENOTUNIQ
 * when there are several, -EBADMSG when it is not a list of pids. */
int nspawn_script_parse_children(const char *text, pid_t *ret);

/* The start script's environment, exactly the reference's and nothing else:
 * RUN_NSPAWN_ROOT_DIR=<state_dir>, RUN_NSPAWN_SHARED_DIR=<shared_dir>. */
int nspawn_script_env(const char *state_dir, const char *shared_dir, char ***ret);

struct nspawn_script_tap {
        const char *tap; /* the switch's TAP for this node on that VLAN */
        unsigned vlan;
};

/* The argv that runs @script: `unshare --net --mount --propagation private`
 * then a fixed sh program that moves each TAP from @host_netns (a path such
 * as /proc/<worker pid>/ns/net) into the new namespace, enslaves it to
 * `br<vlan>` (made without an address when missing: the script only adds a
 * bridge, with 192.168.<vlan>.254, when none exists), mounts a sysfs of the new
 * namespace (the script looks for /sys/class/net/br<vlan>; the host's
 * /sys/fs/cgroup is kept), tmpfs on /run/netns and /run/systemd/nspawn (the
 * script's `ip netns add nixos-nspawn-<name>` and nspawn's per-machine
 * directories stay private to this run), and execs the script. The process
 * keeps its pid through every exec. -EINVAL for a TAP name that is not 1-15
 * of [A-Za-z0-9._-] or a VLAN outside 1..4094. */
int nspawn_script_argv(const char *script, const char *host_netns, const struct nspawn_script_tap *taps, size_t n_taps,
                       char ***ret);

/* The shell into the container as the reference gets it (nsenter into the
 * init's mount, uts, ipc, net, pid and cgroup namespaces, /bin/sh, an empty
 * environment), made to speak the backdoor protocol: /etc/profile, cd /tmp,
 * the ready line, then `bash --norc` reading commands from stdin. */
int nspawn_script_shell_argv(pid_t init, char ***ret);
