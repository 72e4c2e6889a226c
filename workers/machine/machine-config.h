/* SPDX-License-Identifier: MIT */
/*
 * machine-config.h owns the machine worker's configuration: the JSON the
 * supervisor sends in MSG_CONFIG (contract: docs/machine.md, "Configuration"),
 * decoded and checked into one struct before anything acts on it. Pure code
 * (json-c only); errors come back as text naming the offending field.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum machine_accel {
        MACHINE_ACCEL_AUTO,
        MACHINE_ACCEL_KVM,
        MACHINE_ACCEL_TCG,
        _MACHINE_ACCEL_MAX,
        _MACHINE_ACCEL_INVALID = -22,
};

struct machine_vlan {
        uint64_t nr;
        char *socket;  /* qemu: the VLAN switch's VDE control directory */
        char *tap;     /* nspawn: the switch's TAP port for this node (<= 15 bytes) */
        char *mac;     /* may be NULL: no NIC for kernel+initrd, only the env var */
        char *address; /* informational (the tiny guest gets it via append) */
};

/* One line of the machine's /etc/hosts (nspawn writes them; QEMU guests get
 * them by other means). */
struct machine_host {
        char *name;
        char *address;
};

enum machine_backend_kind {
        MACHINE_BACKEND_QEMU,
        MACHINE_BACKEND_NSPAWN,
        _MACHINE_BACKEND_KIND_MAX,
        _MACHINE_BACKEND_KIND_INVALID = -22,
};

struct machine_config {
        char *name;
        char *backend;
        enum machine_backend_kind backend_kind;
        uint64_t node_number;
        char *state_dir;
        char *shared_dir;
        char *out_dir;
        bool keep_state;
        enum machine_accel accel;
        bool allow_reboot;
        struct machine_vlan *vlans;
        size_t n_vlans;
        struct machine_host *hosts;
        size_t n_hosts;

        /* qemu: exactly one of start_script or kernel. */
        char *start_script;
        char *kernel;
        char *initrd;
        char *append;
        char *disk;
        uint64_t memory_mb;
        uint64_t cpus;
        char *binary;      /* qemu: qemu-system-x86_64; nspawn: systemd-nspawn */
        char **extra_args; /* appended to QEMU's or systemd-nspawn's argv */

        /* nspawn: the directory tree booted read-only with a volatile overlay. */
        char *tree;

        uint64_t connect_s;  /* bound on waiting for the ready line; 0 = none */
        uint64_t output_max; /* cap on one command's output bytes */
        bool fast_path;      /* "guest_channel": "fast" (docs/machine.md) */
};

#define MACHINE_CONFIG_ERROR_MAX 256u

/* Parse @json. On failure returns -EINVAL and writes a message into @error. */
int machine_config_parse(const char *json, struct machine_config *ret, char *error, size_t error_size);
void machine_config_done(struct machine_config *c);

/* "52:54:00:12:01:03": six hex pairs joined by ':'. */
bool machine_mac_valid(const char *s);

const char *machine_accel_to_string(enum machine_accel a);
const char *machine_backend_kind_to_string(enum machine_backend_kind k);
enum machine_backend_kind machine_backend_kind_from_string(const char *s);
enum machine_accel machine_accel_from_string(const char *s);
