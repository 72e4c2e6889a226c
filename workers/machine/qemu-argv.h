/* SPDX-License-Identifier: MIT */
/*
 * qemu-argv.h owns how a QEMU process is described to the supervisor's spawn
 * service: argv, environment and cwd, for (a) a NixOS run-<name>-vm start
 * script driven exactly like the reference driver (§2.2, §3), and (b) a
 * kernel + initrd (+ disk) VM from the test spec. Also the acceleration
 * decision and the default NIC for set_link. Pure code: the caller passes in
 * the host environment and the probe result.
 */
#pragma once

#include <stdbool.h>

#include "machine-config.h"

struct qemu_cmd {
        char **argv;
        char **env;
        char *cwd;
};

void qemu_cmd_done(struct qemu_cmd *c);

/* Socket and file names inside the state dir (the reference's layout). */
#define QEMU_QMP_NAME     "qmp"
#define QEMU_MONITOR_NAME "monitor"
#define QEMU_SHELL_NAME   "shell"      /* guest -> host: a regular file QEMU appends to */
#define QEMU_SHELL_IN     "shell.in"   /* host -> guest: a FIFO */
#define QEMU_VSERIAL_ID   "vigil-vser" /* the virtio-serial bus the shell's virtconsole sits on */
#define QEMU_DEBUG_NAME   "dbg"        /* a second virtconsole (hvc1): a unix socket `vigil shell` connects to */

/* The arguments the reference driver appends to every start command, with
 * one difference: the guest shell's virtconsole is not on the command line.
 * QEMU starts paused (-S) and qemu_shell_setup_commands() adds it over QMP,
 * because only a chardev set up that way can be a regular file for output
 * (never EAGAIN, so QEMU never drops console data: hw/char/virtio-console.c
 * drops what a console port cannot write at once) and a FIFO for input. */
int qemu_control_args(const char *state_dir, bool allow_reboot, bool nographic, char ***ret);
/* The value of @name in @env ("NAME=value" entries), or NULL. */
const char *qemu_env_get(char *const *env, const char *name);

/* The QMP commands (one JSON object each, NULL-terminated) that add the
 * shell's chardev and virtconsole and let the paused guest run. */
int qemu_shell_setup_commands(const char *state_dir, char ***ret);

/* (a) /bin/sh -c "<script> <control args>" with the reference's environment:
 * @host_env plus TMPDIR=<state_dir>, SHARED_DIR, USE_TMPDIR=1 and
 * QEMU_VDE_SOCKET_<nr> per VLAN. QEMU_OPTS, QEMU_KERNEL_PARAMS, QEMU_NET_OPTS
 * pass through from @host_env. -nographic unless DISPLAY/WAYLAND_DISPLAY. */
int qemu_build_start_script(const struct machine_config *c, bool allow_reboot, char *const *host_env,
                            struct qemu_cmd *ret);

/* (b) the QEMU binary directly, with @accel ("kvm"/"tcg"). */
int qemu_build_direct(const struct machine_config *c, const char *accel, bool allow_reboot, char *const *host_env,
                      struct qemu_cmd *ret);

/* HMP set_link target for "" : the reference's virtio-net-pci.1 for start
 * scripts, the first VLAN NIC ("nic1") for kernel+initrd VMs. */
const char *qemu_default_nic(const struct machine_config *c);

enum qemu_kvm_probe {
        QEMU_KVM_UNTESTED, /* no probe was run */
        QEMU_KVM_WORKS,    /* a KVM guest reached the probe's mark in time */
        QEMU_KVM_MISSING,  /* /dev/kvm cannot be opened */
        QEMU_KVM_HANGS,    /* a KVM guest made no progress within the bound */
        QEMU_KVM_FAILED,   /* QEMU refused -accel kvm */
        _QEMU_KVM_PROBE_MAX,
        _QEMU_KVM_PROBE_INVALID = -22,
};

const char *qemu_kvm_probe_to_string(enum qemu_kvm_probe p);
enum qemu_kvm_probe qemu_kvm_probe_from_string(const char *s);

/* The host's verdict for this boot (qemu-probe.c keeps it beside the run's):
 * one line "<key> <verdict>", the key naming the boot (boot_id), /dev/kvm
 * and the QEMU binary, with no spaces. @ret gets the line; -ENOBUFS if it
 * does not fit, -EINVAL for a key with a space or an untested verdict. */
int qemu_kvm_probe_host_line(const char *key, enum qemu_kvm_probe p, char *ret, size_t size);
/* The verdict of such a @text for @key: QEMU_KVM_UNTESTED unless it is one
 * line for exactly this key with a probe's verdict (works, hangs, failed). */
enum qemu_kvm_probe qemu_kvm_probe_host_parse(const char *text, const char *key);

/* Whether @requested needs a probe at all. */
bool qemu_accel_needs_probe(enum machine_accel requested);
/* "kvm" or "tcg", and a human reason for the log line. */
const char *qemu_accel_decide(enum machine_accel requested, enum qemu_kvm_probe probe, const char **ret_reason);
