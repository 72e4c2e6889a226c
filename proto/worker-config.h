/* SPDX-License-Identifier: MIT */
/*
 * worker-config.h owns the one contract for the JSON a worker receives in
 * MSG_CONFIG (docs/machine.md and docs/switch.md, "Configuration"): the
 * machine and switch configs as C structs, and one table of fields per
 * config (key, type, offset, required, default, bounds). The front end fills
 * a struct and calls the writer; the worker calls the parser, which refuses
 * a missing, mistyped, out-of-range or unknown key with a message naming it
 * ("machine config: \"qemu.cpus\" must be between 1 and 1024"). Both walk
 * the same table, so the two sides cannot drift. Pure code (json-c only);
 * checks that are the worker's own business (socket path lengths, MAC and
 * interface name syntax) stay with the worker.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WORKER_CONFIG_ERROR_MAX 256u

/* ---- the generic table ---- */

enum worker_config_type {
        WORKER_CONFIG_STRING, /* char *; NULL = absent */
        WORKER_CONFIG_U64,    /* uint64_t within [min, max] */
        WORKER_CONFIG_BOOL,   /* bool */
        WORKER_CONFIG_ENUM,   /* int-sized enum; JSON: one of names[] */
        WORKER_CONFIG_OBJECT, /* a JSON object whose fields land in the same struct */
        WORKER_CONFIG_ARRAY,  /* pointer to elements + size_t count; JSON: array of objects */
        WORKER_CONFIG_STRV,   /* char **, NULL-terminated; JSON: array of strings */
        _WORKER_CONFIG_TYPE_MAX,
};

struct worker_config_field;

struct worker_config_object {
        const struct worker_config_field *fields;
        size_t n_fields;
        size_t size; /* ARRAY: one element's size */
};

struct worker_config_field {
        const char *key;
        enum worker_config_type type;
        size_t offset;
        bool required;     /* STRING: also non-empty */
        uint64_t min, max; /* U64: the range; STRING: max length (0: MSG_STR_MAX); ARRAY, STRV: max elements */
        uint64_t def;      /* U64, BOOL, ENUM: the value when absent or null */
        const char *def_string;
        const char *const *names; /* ENUM: names[value] */
        size_t n_names;
        const struct worker_config_object *object; /* OBJECT: its fields; ARRAY: one element */
        size_t count_offset;                       /* ARRAY: the size_t count */
        /* The field exists only when this holds for the struct parsed so far
         * (fields are parsed in table order); NULL: always. when_text names the
         * condition in messages ("backend \"qemu\""). */
        bool (*when)(const void *base);
        const char *when_text;
};

/* ---- the machine worker's config ---- */

enum machine_accel {
        MACHINE_ACCEL_AUTO,
        MACHINE_ACCEL_KVM,
        MACHINE_ACCEL_TCG,
        _MACHINE_ACCEL_MAX,
        _MACHINE_ACCEL_INVALID = -22,
};

enum machine_backend_kind {
        MACHINE_BACKEND_QEMU,
        MACHINE_BACKEND_NSPAWN,
        MACHINE_BACKEND_SSH,
        _MACHINE_BACKEND_KIND_MAX,
        _MACHINE_BACKEND_KIND_INVALID = -22,
};

enum machine_guest_channel {
        MACHINE_GUEST_CHANNEL_REFERENCE, /* the reference's base64 backdoor */
        MACHINE_GUEST_CHANNEL_FAST,      /* framed output (docs/machine.md) */
        _MACHINE_GUEST_CHANNEL_MAX,
        _MACHINE_GUEST_CHANNEL_INVALID = -22,
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

struct machine_config {
        char *name;
        enum machine_backend_kind backend_kind; /* "backend" */
        uint64_t node_number;
        char *state_dir;
        char *shared_dir; /* the worker defaults it to <state_dir>/xchg */
        char *out_dir;
        bool keep_state;
        enum machine_accel accel;
        bool allow_reboot;
        enum machine_guest_channel guest_channel;
        bool fast_path; /* guest_channel == FAST, set by the worker's parser */
        struct machine_vlan *vlans;
        size_t n_vlans;
        struct machine_host *hosts;
        size_t n_hosts;

        /* "qemu": exactly one of start_script or kernel; "nspawn": of tree or
         * start_script (a NixOS run-<name>-nspawn). */
        char *start_script;
        char *kernel;
        char *initrd;
        char *append;
        char *disk;
        uint64_t memory_mb;
        uint64_t cpus;
        char *binary;      /* qemu: qemu-system-x86_64; nspawn: systemd-nspawn (worker defaults) */
        char **extra_args; /* appended to QEMU's or systemd-nspawn's argv */

        /* "nspawn": the directory tree booted read-only with a volatile overlay. */
        char *tree;

        /* "ssh": a host vigil did not start (checked by proto/ssh-target.h, in the plan and the worker). */
        char *ssh_host;
        char *ssh_user;
        uint64_t ssh_port; /* 0: ssh's own */
        char *ssh_identity_file;
        char *ssh_known_hosts; /* "strict" (NULL), "accept-new" or an absolute path */
        char *ssh_proxy_jump;
        char **ssh_options;             /* -o Key=Value */
        uint64_t ssh_connect_timeout_s; /* 0: the default */

        char *boot_cache; /* qemu: the boot cache directory (docs/machine.md); NULL: off */

        uint64_t connect_s;  /* "timeouts": bound on waiting for the ready line; 0 = none */
        uint64_t output_max; /* "limits": cap on one command's output bytes */
};

/* ---- the switch worker's config ---- */

/* A machine on the switch's VLAN: fault rules name it by its MAC; a tap
 * makes the switch create that TAP port for it (containers). */
struct switch_machine {
        char *name;
        char *mac;
        char *tap;
};

struct switch_config {
        uint64_t vlan;
        char *socket_dir; /* the VDE control directory */
        char *out_dir;    /* where vlan<N>.pcap goes; NULL: no pcap */
        bool pcap;
        struct switch_machine *machines;
        size_t n_machines;
};

extern const struct worker_config_object worker_config_machine;
extern const struct worker_config_object worker_config_switch;

/* Parse @json into *@ret by @table: on failure -EINVAL (or -ENOMEM) and a
 * message starting with @what ("machine config") in @error; *@ret is
 * written only on success. */
int worker_config_parse(const struct worker_config_object *table, const char *what, const char *json, void *ret,
                        char *error, size_t error_size);
/* Render *@c by @table; *@ret_json is malloc'd. Absent (NULL) strings are left out. */
int worker_config_write(const struct worker_config_object *table, const void *c, char **ret_json);
/* Free what the parser allocated (NULL-safe pointers), and zero the struct. */
void worker_config_done(const struct worker_config_object *table, void *c);
/* Field by field, as the table sees it. */
bool worker_config_equal(const struct worker_config_object *table, const void *a, const void *b);

/* The machine config's own contract beyond types: exactly one of
 * qemu.start_script or qemu.kernel, of nspawn.tree or nspawn.start_script; a
 * VLAN socket for qemu, a tap for nspawn. */
int worker_config_machine_parse(const char *json, struct machine_config *ret, char *error, size_t error_size);
int worker_config_machine_write(const struct machine_config *c, char **ret_json);
int worker_config_switch_parse(const char *json, struct switch_config *ret, char *error, size_t error_size);
int worker_config_switch_write(const struct switch_config *c, char **ret_json);

const char *machine_accel_to_string(enum machine_accel a);
enum machine_accel machine_accel_from_string(const char *s);
const char *machine_guest_channel_to_string(enum machine_guest_channel c);
enum machine_guest_channel machine_guest_channel_from_string(const char *s);
const char *machine_backend_kind_to_string(enum machine_backend_kind k);
enum machine_backend_kind machine_backend_kind_from_string(const char *s);

static inline void machine_config_donep(struct machine_config *c) {
        worker_config_done(&worker_config_machine, c);
}
static inline void switch_config_donep(struct switch_config *c) {
        worker_config_done(&worker_config_switch, c);
}
