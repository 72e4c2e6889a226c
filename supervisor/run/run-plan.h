/* SPDX-License-Identifier: MIT */
/*
 * run-plan.h: what a test run consists of, decided before any process
 * starts. Three front doors fill the same plan: vigil's own `vigil run` CLI,
 * a vigil JSON spec, and the reference driver's contracts (its CLI, its
 * environment variables and the JSON --config of newer nixpkgs). The plan
 * then renders each worker's configuration JSON. Pure code: no I/O besides
 * reading the files named on the command line (done by the caller).
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "worker-config.h"

#define RUN_NODES_MAX 254u /* the reference numbers nodes 1..254 */
#define RUN_VLANS_MAX 32u
/* Under nix (the reference front door) a quiet test must not hit max-silent-time. */
#define RUN_HEARTBEAT_REFERENCE_DEFAULT 600u
#define RUN_HEARTBEAT_UNSET             UINT_MAX
#define RUN_NODE_VLANS_MAX              8u

struct run_node {
        char *name;
        char *backend;      /* "qemu", "nspawn" or "ssh" */
        char *tree;         /* nspawn: the directory tree to boot; NULL = the Debian tree of tools/mkdebian */
        char *start_script; /* NixOS run-<name>-vm, or NULL */
        char *kernel;       /* kernel+initrd VM; NULL with no start script = built-in tiny guest */
        char *initrd;
        char *append; /* extra kernel parameters */
        unsigned memory_mb;
        unsigned cpus;
        int vlans[RUN_NODE_VLANS_MAX];
        size_t n_vlans;
        bool vlans_set;
        unsigned number; /* 1-based, by sorted name */
        bool added_live; /* by create_machine() while the run goes: no SSH backdoor, as the reference */
        bool keep_state; /* create_machine(keep_machine_state=True) */
        /* ssh: the host and how to reach it (checked by proto/ssh-target.c, as the worker checks it). */
        struct {
                char *host, *user, *identity_file, *known_hosts, *proxy_jump;
                char **options;
                unsigned port, connect_timeout_s;
        } ssh;
        /* spec "guest_channel" of this node; _MACHINE_GUEST_CHANNEL_INVALID: the run's */
        enum machine_guest_channel guest_channel;
};

struct run_plan {
        char *script;
        struct run_node nodes[RUN_NODES_MAX];
        size_t n_nodes;
        int vlans[RUN_VLANS_MAX];
        size_t n_vlans;
        int default_vlans[RUN_NODE_VLANS_MAX]; /* for --node nodes */
        size_t n_default_vlans;
        unsigned global_timeout;
        unsigned boot_timeout; /* start of a machine -> its backdoor ready line; capped by global_timeout */
        unsigned heartbeat;    /* seconds between "still running" lines on stderr; 0 off */
        char *out_dir;
        char *junit;
        char *accel;
        char *boot_cache; /* --boot-cache, spec "boot_cache": QEMU boot snapshots; NULL off */
        /* How commands reach the guest shell (docs/machine.md): the fast framing
         * unless the spec or --guest-channel says otherwise; a node's own spec
         * key wins over both. */
        enum machine_guest_channel guest_channel;
        bool guest_channel_from_cli; /* --guest-channel given: the spec's top level does not override it */
        char *log_level;
        char *spec_file;
        char *config_file; /* reference --config */
        bool interactive;
        bool keep_state;
        bool no_pidns;
        bool reference_cli;
        bool help;     /* -h/--help: print run_plan_usage() and exit 0 */
        int verbosity; /* --quiet -1, --verbose 1: the progress line and how much stderr says */
        /* The reference's SSH backdoor (--config enable_ssh_backdoor, --dump-vsocks N): every QEMU
         * machine gets a vhost-vsock device with guest CID vsock_offset + its node number. */
        bool ssh_backdoor;
        unsigned vsock_offset;
};

/* Where the run lives on disk; chosen by run-main.c. */
struct run_dirs {
        const char *run_id;
        const char *tmp_dir;       /* per-run directory (short: AF_UNIX paths) */
        const char *out_dir;       /* absolute */
        const char *guest_dir;     /* tiny guest kernel+initrd, or NULL if none needed */
        const char *guest_cmdline; /* the guest's recommended kernel parameters, or NULL */
        const char *debian_tree;   /* tools/mkdebian's tree, or NULL if no nspawn node needs it */
};

/* create_machine(): one more NixOS start-script machine, appended (existing
 * nodes keep their index and number); its index in *ret_index. */
int run_plan_add_machine(struct run_plan *p, const char *name, const char *start_script, bool keep_state,
                         size_t *ret_index, char **ret_error);

/* Undo the last run_plan_add_machine() (its worker could not be added). */
void run_plan_drop_last(struct run_plan *p);

/* The guest CID of a QEMU node's vhost-vsock device when the SSH backdoor is on. */
unsigned run_plan_vsock_cid(const struct run_plan *p, const struct run_node *n);

void run_plan_init(struct run_plan *p);
void run_plan_done(struct run_plan *p);

/* `vigil run SCRIPT [options]`; argv[0] is "run". */
int run_plan_parse_args(struct run_plan *p, int argc, char **argv, char **ret_error);
/* The reference driver's CLI with its environment-variable defaults. */
int run_plan_parse_reference(struct run_plan *p, int argc, char **argv, const char *(*env)(const char *name),
                             char **ret_error);
/* argparse-style --help of `vigil run` or of the reference front door. */
void run_plan_usage(FILE *f, bool reference);
/* vigil's JSON spec: {"nodes": {...}, "vlans": [...], "global_timeout": N, "test_script": "..."} */
int run_plan_load_spec(struct run_plan *p, const char *json, char **ret_error);
/* The reference's --config JSON: {"vms": {...}, "vlans": [...], "global_timeout": N, "test_script": "..."} */
int run_plan_load_reference_config(struct run_plan *p, const char *json, char **ret_error);
/* Sort, number and check nodes; collect VLANs. Must run before rendering. */
int run_plan_finalize(struct run_plan *p, char **ret_error);

bool run_plan_needs_guest(const struct run_plan *p);
/* True if an nspawn node has no "tree" of its own (it boots tools/mkdebian's). */
bool run_plan_needs_debian_tree(const struct run_plan *p);
/* The TAP that VLAN @vlan's switch makes for container node @number:
 * v<first 4 of the run id><vlan>n<number> (at most 13 bytes), unique across
 * concurrent runs, since TAPs live in the host's one namespace. */
void run_plan_tap_name(const char *run_id, int vlan, unsigned number, char *buf, size_t size);

/* A worker's config as the shared contract's struct (proto/worker-config.h):
 * 0, -ENOMEM, or -EINVAL for a node whose backend or accel the contract lacks. */
int run_plan_machine_struct(const struct run_plan *p, size_t node, const struct run_dirs *d,
                            struct machine_config *ret);
int run_plan_switch_struct(const struct run_plan *p, size_t vlan, const struct run_dirs *d, struct switch_config *ret);

/* Configuration JSON for each child; malloc'd strings, NULL on OOM. */
char *run_plan_machine_config(const struct run_plan *p, size_t node, const struct run_dirs *d);
char *run_plan_switch_config(const struct run_plan *p, size_t vlan, const struct run_dirs *d);
char *run_plan_script_config(const struct run_plan *p, const struct run_dirs *d);

/* Derive a machine name from a start script path: run-(.+)-vm$, else "machine". */
char *run_plan_name_from_script(const char *path);
