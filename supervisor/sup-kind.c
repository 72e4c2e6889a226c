/* SPDX-License-Identifier: MIT */
/*
 * sup-kind.c owns the static table of worker kinds: which executable each
 * kind runs, and which privileges it and the processes it has the
 * supervisor spawn keep when vigil runs as root. Reading this table is
 * reading the privilege map of a run.
 */
#include <linux/capability.h>
#include <cap-ng.h>
#include <sys/prctl.h>

#include "macro.h"
#include "sup-kind.h"

/* No capabilities at all, and no way to regain any through setuid or file
 * capabilities on exec: what every worker gets unless listed otherwise. A
 * root worker without capabilities still owns root's files, so this limits
 * the kernel interfaces it can reach (mounts, namespaces, raw network,
 * ptrace, module loading), not the file system. */
static const struct cap_policy caps_none = {.no_new_privs = true};

/* The switch worker needs
 * CAP_NET_ADMIN to create and configure the TAP ports of containers. It
 * is safe to keep alone: without CAP_SYS_ADMIN it cannot enter other network
 * namespaces it has no fd for, and no_new_privs stops it from gaining more. */
static const int caps_net_admin_list[] = {CAP_NET_ADMIN};
static const struct cap_policy caps_net_admin = {
        .caps = caps_net_admin_list,
        .n_caps = ELEMENTSOF(caps_net_admin_list),
        .no_new_privs = true,
};

/* systemd-nspawn, spawned for a machine worker's nspawn backend, needs root's
 * full set (mounts, namespaces, cgroups, device nodes) and must keep setuid
 * working inside the container (su, sudo), so it is exec'd with the
 * supervisor's own privileges and without no_new_privs. This is safe only as
 * far as the machine worker is trusted to choose the argv: the worker itself
 * runs without capabilities, so a compromised worker can reach root only
 * through this request, which is logged (proc_spawned) with its argv[0]. */
static const struct cap_policy caps_keep_all = {.keep_all = true};

/* QEMU (TCG or KVM), the NixOS run-*-vm scripts and ssh need no capability:
 * /dev/kvm access is a file permission, networking goes through the switch's
 * unix sockets (VDE), not TAP devices. */
/* A NixOS container start script (run-<name>-nspawn) makes network namespaces,
 * veths and bridges and runs systemd-nspawn itself: the nspawn backend runs it
 * under `unshare` (its own network and mount namespaces, nspawn-script.c),
 * which therefore keeps what systemd-nspawn keeps. `nsenter` is the shell into
 * such a container (setns into another process's namespaces needs
 * CAP_SYS_ADMIN; the commands then run as the container's root). The same
 * trust argument as for systemd-nspawn holds: the worker chooses the argv. */
static const char *const machine_spawn_privileged[] = {"systemd-nspawn", "unshare", "nsenter"};

static const struct cap_policy *machine_spawn_caps(const char *argv0) {
        for (size_t i = 0; i < ELEMENTSOF(machine_spawn_privileged); i++)
                if (streq(argv0, machine_spawn_privileged[i]))
                        return &caps_keep_all;
        return &caps_none;
}

/* systemd-nspawn puts its container in "<own cgroup>/payload": without a group
 * of its own, every container would share the host's root one. So does the
 * one a start script runs under `unshare`. */
static bool machine_spawn_own_cgroup(const char *argv0) {
        return streq(argv0, "systemd-nspawn") || streq(argv0, "unshare");
}

static const struct cap_policy *switch_spawn_caps(const char *argv0) {
        return &caps_net_admin;
}

static const struct cap_policy *test_spawn_caps(const char *argv0) {
        return &caps_none;
}

/* clang-format off */
static const struct sup_kind kinds[_KIND_MAX] = {
        [KIND_MACHINE] = {
                .kind = KIND_MACHINE,
                .exe = "vigil-machine",
                .build_path = "workers/machine/vigil-machine",
                .caps = caps_none,
                .spawn_caps = machine_spawn_caps,
                .spawn_own_cgroup = machine_spawn_own_cgroup,
        },
        [KIND_SWITCH] = {
                .kind = KIND_SWITCH,
                .exe = "vigil-switch",
                .build_path = "workers/switch/vigil-switch",
                .caps = caps_net_admin,
                .spawn_caps = switch_spawn_caps,
        },
        /* The script worker runs the user's test script: it gets nothing, and may
         * not ask for processes (SPAWN is not in its table). */
        [KIND_SCRIPT] = {
                .kind = KIND_SCRIPT,
                .exe = "vigil-script",
                .build_path = "workers/script/vigil-script",
                .caps = caps_none,
        },
        [KIND_TEST] = {
                .kind = KIND_TEST,
                .exe = "vigil-testworker",
                .build_path = "tests/helpers/vigil-testworker",
                .caps = caps_none,
                .spawn_caps = test_spawn_caps,
        },
};
/* clang-format on */

const struct sup_kind *kind_get(enum worker_kind k) {
        if (k <= KIND_SUPERVISOR || k >= _KIND_MAX)
                return NULL;
        return &kinds[k];
}

/* Called between fork and exec. As root, leaves exactly @p's capabilities in
 * the effective, permitted and bounding sets (the bounding set is what limits
 * root after exec) and clears the ambient set. */
int kind_caps_apply(const struct cap_policy *p) {
        if (geteuid() == 0 && !p->keep_all) {
                bool have[CAP_POLICY_MAX] = {false};

                /* Keep only what we still hold: asking for a capability outside our
                 * bounding set fails capng_apply(), and the worker would die before it
                 * could say which one it needs (it reports that itself, exit 78). */
                capng_get_caps_process();
                for (size_t i = 0; i < p->n_caps && i < CAP_POLICY_MAX; i++)
                        have[i] = capng_have_capability(CAPNG_PERMITTED, (unsigned) p->caps[i]);
                capng_clear(CAPNG_SELECT_ALL);
                for (size_t i = 0; i < p->n_caps && i < CAP_POLICY_MAX; i++)
                        if (have[i] && capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET,
                                                    (unsigned) p->caps[i]) < 0)
                                return -EINVAL;
                if (capng_apply(CAPNG_SELECT_ALL) < 0)
                        return -EPERM;
        }
        if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        return 0;
}
