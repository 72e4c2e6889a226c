/* SPDX-License-Identifier: MIT */
/*
 * run-plan.c owns the translation from what a user typed (vigil's CLI, a
 * JSON spec, or the reference driver's CLI/env/--config contracts) into one
 * checked plan, and from the plan into each worker's configuration JSON.
 * Every refusal names the offending option or key. Pure: the caller reads
 * files and creates directories.
 */
#include <ctype.h>
#include <json-c/json.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>

#include "defaults.h"
#include "errmsg.h"
#include "macro.h"
#include "run-plan.h"
#include "ssh-target.h"
#include "worker-config.h"

static const char *const backends_known[] = {"qemu", "nspawn", "ssh"};

static bool backend_known(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(backends_known); i++)
                if (streq(backends_known[i], name))
                        return true;
        return false;
}

/* "qemu, nspawn, ssh": the table above, for messages. */
static const char *backends_available(void) {
        static char buf[64];

        if (!buf[0])
                for (size_t i = 0; i < ELEMENTSOF(backends_known); i++)
                        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s", i ? ", " : "",
                                 backends_known[i]);
        return buf;
}

static void set_str(char **dst, const char *v) {
        free(*dst);
        *dst = v ? strdup(v) : NULL;
}

void run_plan_init(struct run_plan *p) {
        *p = (struct run_plan){.global_timeout = DEFAULT_GLOBAL_TIMEOUT_S,
                               .boot_timeout = DEFAULT_BOOT_TIMEOUT_S,
                               .guest_channel = MACHINE_GUEST_CHANNEL_FAST,
                               .heartbeat = RUN_HEARTBEAT_UNSET};
}

static void node_done(struct run_node *n) {
        free(n->name);
        free(n->backend);
        free(n->tree);
        free(n->start_script);
        free(n->kernel);
        free(n->initrd);
        free(n->append);
        free(n->ssh.host);
        free(n->ssh.user);
        free(n->ssh.identity_file);
        free(n->ssh.known_hosts);
        free(n->ssh.proxy_jump);
        strv_free(n->ssh.options);
        *n = (struct run_node){};
}

void run_plan_done(struct run_plan *p) {
        for (size_t i = 0; i < p->n_nodes; i++)
                node_done(&p->nodes[i]);
        free(p->script);
        free(p->out_dir);
        free(p->junit);
        free(p->accel);
        free(p->boot_cache);
        free(p->log_level);
        free(p->spec_file);
        free(p->config_file);
        *p = (struct run_plan){};
}

/* Names become hostnames, journal field values and path components. */
static bool name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 32 || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

static int parse_uint(const char *s, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        if (!s || !*s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

static struct run_node *node_find(struct run_plan *p, const char *name) {
        for (size_t i = 0; i < p->n_nodes; i++)
                if (streq(p->nodes[i].name, name))
                        return &p->nodes[i];
        return NULL;
}

static int node_add(struct run_plan *p, const char *name, struct run_node **ret, char **ret_error) {
        struct run_node *n;

        if (!name_valid(name))
                return errmsg_invalid(
                        ret_error,
                        "invalid machine name '%s': use 1-32 letters, digits, '-' or '_', not starting with '-'",
                        name);
        if (node_find(p, name))
                return errmsg_invalid(ret_error, "machine '%s' is defined twice", name);
        if (p->n_nodes >= RUN_NODES_MAX)
                return errmsg_invalid(ret_error, "too many machines (at most %u)", RUN_NODES_MAX);
        n = &p->nodes[p->n_nodes++];
        *n = (struct run_node){.name = strdup(name),
                               .backend = strdup("qemu"),
                               .memory_mb = DEFAULT_MEMORY_MB,
                               .cpus = DEFAULT_CPUS,
                               .guest_channel = _MACHINE_GUEST_CHANNEL_INVALID};
        *ret = n;
        return 0;
}

char *run_plan_name_from_script(const char *path) {
        const char *base = strrchr(path, '/');
        regex_t re;
        regmatch_t m[2];
        char *name = NULL;

        base = base ? base + 1 : path;
        if (regcomp(&re, "run-(.+)-vm$", REG_EXTENDED) != 0)
                return NULL;
        if (regexec(&re, base, 2, m, 0) == 0)
                name = strndup(base + m[1].rm_so, (size_t) (m[1].rm_eo - m[1].rm_so));
        else
                name = strdup("machine");
        regfree(&re);
        return name;
}

/* The reference's NspawnMachine.machine_name_from_start_command():
 * run-(.+)-nspawn in the script's file name; NULL when it does not match (the
 * reference asserts). */
static char *container_name_from_script(const char *path) {
        const char *base = strrchr(path, '/');
        regex_t re;
        regmatch_t m[2];
        char *name = NULL;

        base = base ? base + 1 : path;
        if (regcomp(&re, "run-(.+)-nspawn", REG_EXTENDED) != 0)
                return NULL;
        if (regexec(&re, base, 2, m, 0) == 0)
                name = strndup(base + m[1].rm_so, (size_t) (m[1].rm_eo - m[1].rm_so));
        regfree(&re);
        return name;
}

static int vlan_parse(const char *s, int *ret) {
        unsigned v;

        if (parse_uint(s, 4094, &v) < 0 || v == 0)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* ---- vigil run ---- */

enum run_opt {
        OPT_NODE,
        OPT_SPEC,
        OPT_VLAN,
        OPT_GLOBAL_TIMEOUT,
        OPT_BOOT_TIMEOUT,
        OPT_BOOT_CACHE,
        OPT_HEARTBEAT,
        OPT_OUT,
        OPT_JUNIT,
        OPT_INTERACTIVE,
        OPT_KEEP,
        OPT_ACCEL,
        OPT_GUEST_CHANNEL,
        OPT_LOG_LEVEL,
        OPT_NO_PIDNS,
        OPT_HELP,
        OPT_QUIET,
        OPT_VERBOSE,
        /* reference driver */
        OPT_START_SCRIPTS,
        OPT_VM_NAMES,
        OPT_VM_START_SCRIPTS,
        OPT_CONTAINER_NAMES,
        OPT_CONTAINER_START_SCRIPTS,
        OPT_VLANS,
        OPT_CONFIG,
        OPT_NO_INTERACTIVE,
        OPT_DUMP_VSOCKS,
        OPT_IGNORED,
        _OPT_MAX,
};

enum opt_arg {
        ARG_NONE,
        ARG_ONE,
        ARG_LIST, /* argparse nargs='*': every following word up to the next option */
};

struct opt {
        const char *long_name;
        char short_name;
        enum opt_arg arg;
        enum run_opt id;
};

static const struct opt vigil_opts[] = {
        {"node", 0, ARG_ONE, OPT_NODE},
        {"spec", 0, ARG_ONE, OPT_SPEC},
        {"vlan", 0, ARG_ONE, OPT_VLAN},
        {"global-timeout", 0, ARG_ONE, OPT_GLOBAL_TIMEOUT},
        {"boot-timeout", 0, ARG_ONE, OPT_BOOT_TIMEOUT},
        {"boot-cache", 0, ARG_ONE, OPT_BOOT_CACHE},
        {"heartbeat", 0, ARG_ONE, OPT_HEARTBEAT},
        {"output-dir", 'o', ARG_ONE, OPT_OUT},
        {"junit", 0, ARG_ONE, OPT_JUNIT},
        {"interactive", 'I', ARG_NONE, OPT_INTERACTIVE},
        {"keep-machine-state", 'K', ARG_NONE, OPT_KEEP}, /* the newest spelling */
        {"keep-vm-state", 0, ARG_NONE, OPT_KEEP},
        {"accel", 0, ARG_ONE, OPT_ACCEL},
        {"guest-channel", 0, ARG_ONE, OPT_GUEST_CHANNEL},
        {"log-level", 0, ARG_ONE, OPT_LOG_LEVEL},
        {"no-pidns", 0, ARG_NONE, OPT_NO_PIDNS},
        {"help", 'h', ARG_NONE, OPT_HELP},
        {"quiet", 'q', ARG_NONE, OPT_QUIET},
        {"verbose", 'v', ARG_NONE, OPT_VERBOSE},
        {},
};

/* The reference's argparse options; prefixes of long names are accepted like argparse does. */
static const struct opt reference_opts[] = {
        {"keep-machine-state", 'K', ARG_NONE, OPT_KEEP}, /* the newest spelling */
        {"keep-vm-state", 0, ARG_NONE, OPT_KEEP},
        {"interactive", 'I', ARG_NONE, OPT_INTERACTIVE},
        {"no-interactive", 0, ARG_NONE, OPT_NO_INTERACTIVE},
        {"start-scripts", 0, ARG_LIST, OPT_START_SCRIPTS},
        {"vm-names", 0, ARG_LIST, OPT_VM_NAMES},
        {"vm-start-scripts", 0, ARG_LIST, OPT_VM_START_SCRIPTS},
        {"container-names", 0, ARG_LIST, OPT_CONTAINER_NAMES},
        {"container-start-scripts", 0, ARG_LIST, OPT_CONTAINER_START_SCRIPTS},
        {"vlans", 0, ARG_LIST, OPT_VLANS},
        {"global-timeout", 0, ARG_ONE, OPT_GLOBAL_TIMEOUT},
        {"output_directory", 'o', ARG_ONE, OPT_OUT},
        {"junit-xml", 0, ARG_ONE, OPT_JUNIT},
        {"config", 'c', ARG_ONE, OPT_CONFIG},
        {"log-level", 0, ARG_ONE, OPT_LOG_LEVEL},
        {"debug-hook-attach", 0, ARG_ONE, OPT_IGNORED},
        {"dump-vsocks", 0, ARG_ONE, OPT_DUMP_VSOCKS},
        {"accel", 0, ARG_ONE, OPT_ACCEL},
        {"guest-channel", 0, ARG_ONE, OPT_GUEST_CHANNEL},
        {"no-pidns", 0, ARG_NONE, OPT_NO_PIDNS},
        {"heartbeat", 0, ARG_ONE, OPT_HEARTBEAT},
        {"boot-cache", 0, ARG_ONE, OPT_BOOT_CACHE},
        {"help", 'h', ARG_NONE, OPT_HELP},
        {},
};

/* What --help says of each option, argparse-style. */
static const char *const opt_help[_OPT_MAX] = {
        [OPT_NODE] = "a machine NAME[=BACKEND] (qemu: the tiny guest, the default; nspawn: a container; "
                     "ssh:[USER@]HOST[:PORT]: an existing host over SSH)",
        [OPT_SPEC] = "a vigil JSON spec of nodes, VLANs and timeouts (docs/spec.md)",
        [OPT_VLAN] = "a VLAN the --node machines join (default 1)",
        [OPT_GLOBAL_TIMEOUT] = "seconds before the whole test is stopped and fails (default " DEFAULT_TEXT(
                DEFAULT_GLOBAL_TIMEOUT_S) ")",
        [OPT_BOOT_TIMEOUT] = "seconds a machine may take to reach its guest shell (default " DEFAULT_TEXT(
                DEFAULT_BOOT_TIMEOUT_S) ")",
        [OPT_BOOT_CACHE] = "directory of boot snapshots: a QEMU machine's first boot saves one once its shell is up, "
                           "later runs restore it (docs/machine.md; off by default)",
        [OPT_HEARTBEAT] = "seconds between 'still running' lines on stderr (0 = off)",
        [OPT_OUT] = "directory for logs, screenshots, JUnit XML",
        [OPT_JUNIT] = "write a JUnit XML report (relative to the output directory)",
        [OPT_INTERACTIVE] = "open a Python REPL with the test globals instead of running the script",
        [OPT_NO_INTERACTIVE] = "run the test script (the default)",
        [OPT_KEEP] = "keep the machines' state directories after the run",
        [OPT_ACCEL] = "auto, kvm or tcg (auto probes /dev/kvm with a bounded boot)",
        [OPT_GUEST_CHANNEL] = "fast (the default) or reference: how commands reach the guest shell (docs/machine.md)",
        [OPT_LOG_LEVEL] = "debug, info, warning or error [env logLevel]",
        [OPT_NO_PIDNS] = "do not put the run into its own PID namespace",
        [OPT_HELP] = "show this help message and exit",
        [OPT_QUIET] = "warnings, errors and the progress only: no script log, no consoles",
        [OPT_VERBOSE] = "vigil's own debug messages too (--log-level debug)",
        [OPT_START_SCRIPTS] = "NixOS VM start scripts, machines named from run-NAME-vm [env startScripts]",
        [OPT_VM_NAMES] = "machine names, one per --vm-start-scripts entry [env vmNames]",
        [OPT_VM_START_SCRIPTS] = "NixOS VM start scripts [env vmStartScripts]",
        [OPT_CONTAINER_NAMES] = "container names, one per --container-start-scripts entry [env containerNames]",
        [OPT_CONTAINER_START_SCRIPTS] = "NixOS container start scripts, run-NAME-nspawn [env containerStartScripts]",
        [OPT_VLANS] = "VLAN numbers [env vlans]",
        [OPT_CONFIG] = "the JSON driver configuration of newer nixpkgs (vms, vlans, test_script ...)",
        [OPT_DUMP_VSOCKS] = "SSH backdoor: a vhost-vsock device per VM, CIDs N+1, N+2 ... (needs /dev/vhost-vsock)",
        [OPT_IGNORED] = "accepted for compatibility; no effect in vigil",
};

static void opt_metavar(const struct opt *o, char *buf, size_t n) {
        size_t i = 0;

        for (const char *c = o->long_name; *c && i + 1 < n; c++)
                buf[i++] = *c == '-' ? '_' : (char) toupper((unsigned char) *c);
        buf[i] = 0;
}

void run_plan_usage(FILE *f, bool reference) {
        const struct opt *table = reference ? reference_opts : vigil_opts;
        const char *prog = reference ? "nixos-test-driver" : "vigil run";
        size_t col = fprintf(f, "usage: %s", prog) > 0 ? strlen("usage: ") + strlen(prog) : 0;
        char meta[64], item[160];

        for (const struct opt *o = table; o->long_name; o++) {
                opt_metavar(o, meta, sizeof(meta));
                snprintf(item, sizeof(item), " [%s%s%s%s%s%s]", o->short_name ? "-" : "--",
                         o->short_name ? (char[]){o->short_name, 0} : o->long_name, o->arg == ARG_NONE ? "" : " ",
                         o->arg == ARG_LIST ? "[" : "", o->arg == ARG_NONE ? "" : meta,
                         o->arg == ARG_LIST ? " ...]" : "");
                if (col + strlen(item) > 100) {
                        fprintf(f, "\n%*s", (int) strlen("usage: ") + (int) strlen(prog), "");
                        col = strlen("usage: ") + strlen(prog);
                }
                fputs(item, f);
                col += strlen(item);
        }
        fprintf(f, " %s\n\noptions:\n", reference ? "[testscript]" : "SCRIPT");
        for (const struct opt *o = table; o->long_name; o++) {
                int n;

                opt_metavar(o, meta, sizeof(meta));
                n = snprintf(item, sizeof(item), "  %s%s%s--%s%s%s", o->short_name ? "-" : "",
                             o->short_name ? (char[]){o->short_name, 0} : "", o->short_name ? ", " : "", o->long_name,
                             o->arg == ARG_NONE ? "" : " ", o->arg == ARG_NONE ? "" : meta);
                if (n > 22)
                        fprintf(f, "%s\n%24s%s\n", item, "", opt_help[o->id] ?: "");
                else
                        fprintf(f, "%-24s%s\n", item, opt_help[o->id] ?: "");
        }
        if (!reference)
                fprintf(f, "\nWithout --spec, each --node is a tiny QEMU guest on VLAN 1.\n");
}

/* Find an option by exact name, else by unique prefix (argparse semantics). */
static const struct opt *opt_lookup(const struct opt *table, const char *name, size_t len, bool *ret_ambiguous) {
        const struct opt *found = NULL;
        int matches = 0;

        *ret_ambiguous = false;
        for (const struct opt *o = table; o->long_name; o++)
                if (strlen(o->long_name) == len && strncmp(o->long_name, name, len) == 0)
                        return o;
        for (const struct opt *o = table; o->long_name; o++)
                if (strncmp(o->long_name, name, len) == 0 && o->id != (found ? found->id : _OPT_MAX)) {
                        found = o;
                        matches++;
                }
        if (matches > 1) {
                *ret_ambiguous = true;
                return NULL;
        }
        return found;
}

struct parsed_opt {
        const struct opt *opt;
        char **values; /* borrowed argv pointers, NULL-terminated */
        size_t n_values;
};

typedef int (*opt_handler)(struct run_plan *p, const struct parsed_opt *po, void *ctx, char **ret_error);

/* Walk argv with @table, calling @handle for each option and @positional for the rest. */
static int parse_argv(struct run_plan *p, int argc, char **argv, const struct opt *table, opt_handler handle,
                      int (*positional)(struct run_plan *, const char *, char **), void *ctx, char **ret_error) {
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *value = NULL, *eq;
                const struct opt *o = NULL;
                bool ambiguous = false;
                char *vals[RUN_NODES_MAX + 1] = {};
                size_t nv = 0;
                int r;

                if (streq(a, "--")) {
                        for (i++; i < argc; i++) {
                                r = positional(p, argv[i], ret_error);
                                if (r < 0)
                                        return r;
                        }
                        break;
                }
                if (a[0] != '-' || a[1] == 0) {
                        r = positional(p, a, ret_error);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (a[1] == '-') {
                        eq = strchr(a + 2, '=');
                        o = opt_lookup(table, a + 2, eq ? (size_t) (eq - a - 2) : strlen(a + 2), &ambiguous);
                        if (eq)
                                value = eq + 1;
                } else {
                        for (const struct opt *t = table; t->long_name; t++)
                                if (t->short_name == a[1])
                                        o = t;
                        if (o && a[2])
                                value = a + 2;
                }
                if (ambiguous)
                        return errmsg_invalid(ret_error, "ambiguous option '%s'", a);
                if (!o)
                        return errmsg_invalid(ret_error, "unknown option '%s' (see 'vigil help')", a);

                switch (o->arg) {
                case ARG_NONE:
                        if (value)
                                return errmsg_invalid(ret_error, "option '%s' takes no value", a);
                        break;
                case ARG_ONE:
                        if (!value) {
                                if (i + 1 >= argc)
                                        return errmsg_invalid(ret_error, "option '%s' needs a value", a);
                                value = argv[++i];
                        }
                        vals[nv++] = (char *) value;
                        break;
                case ARG_LIST:
                        if (value)
                                vals[nv++] = (char *) value;
                        while (i + 1 < argc && argv[i + 1][0] != '-' && nv < RUN_NODES_MAX)
                                vals[nv++] = argv[++i];
                        break;
                }
                r = handle(p, &(struct parsed_opt){.opt = o, .values = vals, .n_values = nv}, ctx, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int set_script(struct run_plan *p, const char *s, char **ret_error) {
        if (p->script)
                return errmsg_invalid(ret_error, "more than one test script given ('%s' and '%s')", p->script, s);
        set_str(&p->script, s);
        return 0;
}

/* Options both front doors share. Returns 1 if handled. */
static int common_option(struct run_plan *p, const struct parsed_opt *po, char **ret_error) {
        const char *v = po->n_values ? po->values[0] : NULL;
        unsigned u;

        switch (po->opt->id) {
        case OPT_GLOBAL_TIMEOUT:
                if (parse_uint(v, 7u * 24 * 3600, &u) < 0 || u == 0)
                        return errmsg_invalid(ret_error,
                                              "--global-timeout: '%s' is not a number of seconds (1..604800)", v);
                p->global_timeout = u;
                return 1;
        case OPT_BOOT_TIMEOUT:
                if (parse_uint(v, 7u * 24 * 3600, &u) < 0 || u == 0)
                        return errmsg_invalid(ret_error, "--boot-timeout: '%s' is not a number of seconds (1..604800)",
                                              v);
                p->boot_timeout = u;
                return 1;
        case OPT_BOOT_CACHE:
                if (!*v)
                        return errmsg_invalid(ret_error, "--boot-cache: needs a directory");
                set_str(&p->boot_cache, v);
                return 1;
        case OPT_HEARTBEAT:
                if (parse_uint(v, 24u * 3600, &u) < 0)
                        return errmsg_invalid(ret_error,
                                              "--heartbeat: '%s' is not a number of seconds (0 = off, ..86400)", v);
                p->heartbeat = u;
                return 1;
        case OPT_OUT:
                set_str(&p->out_dir, v);
                return 1;
        case OPT_JUNIT:
                set_str(&p->junit, v);
                return 1;
        case OPT_INTERACTIVE:
                p->interactive = true;
                return 1;
        case OPT_NO_INTERACTIVE:
                p->interactive = false;
                return 1;
        case OPT_KEEP:
                p->keep_state = true;
                return 1;
        case OPT_ACCEL:
                if (!streq(v, "auto") && !streq(v, "kvm") && !streq(v, "tcg"))
                        return errmsg_invalid(ret_error, "--accel: '%s' is not one of auto, kvm, tcg", v);
                set_str(&p->accel, v);
                return 1;
        case OPT_GUEST_CHANNEL:
                if (machine_guest_channel_from_string(v) < 0)
                        return errmsg_invalid(ret_error, "--guest-channel: '%s' is not one of fast, reference", v);
                p->guest_channel = machine_guest_channel_from_string(v);
                p->guest_channel_from_cli = true;
                return 1;
        case OPT_LOG_LEVEL:
                if (!streq(v, "debug") && !streq(v, "info") && !streq(v, "warning") && !streq(v, "error"))
                        return errmsg_invalid(ret_error, "--log-level: '%s' is not one of debug, info, warning, error",
                                              v);
                set_str(&p->log_level, v);
                return 1;
        case OPT_NO_PIDNS:
                p->no_pidns = true;
                return 1;
        case OPT_HELP:
                p->help = true;
                return 1;
        case OPT_QUIET:
        case OPT_VERBOSE:
                if (p->verbosity != 0)
                        return errmsg_invalid(ret_error, "--quiet and --verbose exclude each other");
                p->verbosity = po->opt->id == OPT_QUIET ? -1 : 1;
                return 1;
        case OPT_DUMP_VSOCKS: {
                char *end;
                unsigned long off = strtoul(v, &end, 10);
                if (!*v || *end || off > 1000000)
                        return errmsg_invalid(ret_error, "--dump-vsocks: '%s' is not a CID offset", v);
                p->ssh_backdoor = true;
                p->vsock_offset = (unsigned) off;
                return 1;
        }
        case OPT_NODE:
        case OPT_SPEC:
        case OPT_VLAN:
        case OPT_START_SCRIPTS:
        case OPT_VM_NAMES:
        case OPT_VM_START_SCRIPTS:
        case OPT_CONTAINER_NAMES:
        case OPT_CONTAINER_START_SCRIPTS:
        case OPT_VLANS:
        case OPT_CONFIG:
        case OPT_IGNORED:
        case _OPT_MAX:
                break;
        }
        return 0;
}

static int vigil_option(struct run_plan *p, const struct parsed_opt *po, void *ctx, char **ret_error) {
        const char *v = po->n_values ? po->values[0] : NULL;
        struct run_node *n;
        int r = common_option(p, po, ret_error);

        if (r != 0)
                return r < 0 ? r : 0;
        if (po->opt->id == OPT_NODE) {
                _cleanup_free_ char *name = strdup(v);
                char *backend = strchr(name, '=');

                if (backend)
                        *backend++ = 0;
                if (backend && strncmp(backend, "ssh:", 4) == 0) {
                        struct ssh_target t = {};
                        char why[SSH_ERROR_MAX];

                        if (ssh_target_parse_address(backend + 4, &t, why, sizeof why) < 0) {
                                ssh_target_done(&t);
                                return errmsg_invalid(ret_error, "--node %s: %s", v, why);
                        }
                        r = node_add(p, name, &n, ret_error);
                        if (r >= 0) {
                                set_str(&n->backend, "ssh");
                                n->ssh.host = TAKE_PTR(t.host);
                                n->ssh.user = TAKE_PTR(t.user);
                                n->ssh.port = t.port;
                                n->vlans_set = true; /* on none of vigil's VLANs */
                        }
                        ssh_target_done(&t);
                        return r;
                }
                if (backend && !backend_known(backend))
                        return errmsg_invalid(ret_error, "--node %s: unknown backend '%s' (available: %s)", v, backend,
                                              backends_available());
                r = node_add(p, name, &n, ret_error);
                if (r >= 0 && backend)
                        set_str(&n->backend, backend);
                return r;
        }
        if (po->opt->id == OPT_SPEC) {
                set_str(&p->spec_file, v);
                return 0;
        }
        if (po->opt->id == OPT_VLAN) {
                int vl;
                if (vlan_parse(v, &vl) < 0)
                        return errmsg_invalid(ret_error, "--vlan: '%s' is not a VLAN number (1..4094)", v);
                if (p->n_default_vlans >= RUN_NODE_VLANS_MAX)
                        return errmsg_invalid(ret_error, "--vlan: at most %u VLANs per machine", RUN_NODE_VLANS_MAX);
                p->default_vlans[p->n_default_vlans++] = vl;
                return 0;
        }
        return errmsg_invalid(ret_error, "option '--%s' is not available for 'vigil run'", po->opt->long_name);
}

int run_plan_parse_args(struct run_plan *p, int argc, char **argv, char **ret_error) {
        return parse_argv(p, argc, argv, vigil_opts, vigil_option, set_script, NULL, ret_error);
}

/* ---- the reference driver's CLI ---- */

struct reference_lists {
        char *start_scripts[RUN_NODES_MAX + 1];
        size_t n_start_scripts;
        char *vm_names[RUN_NODES_MAX + 1];
        size_t n_vm_names;
        char *container_scripts[RUN_NODES_MAX + 1];
        size_t n_container_scripts;
        char *container_names[RUN_NODES_MAX + 1];
        size_t n_container_names;
        bool vlans_given;
};

static void list_set(char **dst, size_t *n, char **vals, size_t nv) {
        for (size_t i = 0; i < *n; i++)
                free(dst[i]);
        *n = 0;
        for (size_t i = 0; i < nv && i < RUN_NODES_MAX; i++)
                dst[(*n)++] = strdup(vals[i]);
}

static int set_vlans(struct run_plan *p, char **vals, size_t nv, char **ret_error) {
        p->n_default_vlans = 0;
        for (size_t i = 0; i < nv; i++) {
                int vl;
                if (vlan_parse(vals[i], &vl) < 0)
                        return errmsg_invalid(ret_error, "--vlans: '%s' is not a VLAN number (1..4094)", vals[i]);
                if (p->n_default_vlans < RUN_NODE_VLANS_MAX)
                        p->default_vlans[p->n_default_vlans++] = vl;
        }
        return 0;
}

static int reference_option(struct run_plan *p, const struct parsed_opt *po, void *ctx, char **ret_error) {
        struct reference_lists *l = ctx;
        int r = common_option(p, po, ret_error);

        if (r != 0)
                return r < 0 ? r : 0;
        if (po->opt->id == OPT_START_SCRIPTS || po->opt->id == OPT_VM_START_SCRIPTS) {
                list_set(l->start_scripts, &l->n_start_scripts, po->values, po->n_values);
                return 0;
        }
        if (po->opt->id == OPT_VM_NAMES) {
                list_set(l->vm_names, &l->n_vm_names, po->values, po->n_values);
                return 0;
        }
        if (po->opt->id == OPT_CONTAINER_START_SCRIPTS) {
                list_set(l->container_scripts, &l->n_container_scripts, po->values, po->n_values);
                return 0;
        }
        if (po->opt->id == OPT_CONTAINER_NAMES) {
                list_set(l->container_names, &l->n_container_names, po->values, po->n_values);
                return 0;
        }
        if (po->opt->id == OPT_VLANS) {
                l->vlans_given = true;
                return set_vlans(p, po->values, po->n_values, ret_error);
        }
        if (po->opt->id == OPT_CONFIG) {
                set_str(&p->config_file, po->values[0]);
                return 0;
        }
        if (po->opt->id == OPT_IGNORED)
                return 0;
        return errmsg_invalid(ret_error, "option '--%s' is not available here", po->opt->long_name);
}

/* Split an environment list on whitespace into @dst (strdup'ed). */
static void env_split(const char *s, char **dst, size_t *n) {
        _cleanup_free_ char *copy = s ? strdup(s) : NULL;
        char *save = NULL;

        if (!copy)
                return;
        for (char *t = strtok_r(copy, " \t\n", &save); t && *n < RUN_NODES_MAX; t = strtok_r(NULL, " \t\n", &save))
                dst[(*n)++] = strdup(t);
}

/* A NixOS container: an nspawn node run by its run-<name>-nspawn start
 * script, which brings its own interfaces (the backend gives it a TAP on
 * every VLAN of the run, bridged to br<vlan>, as a VM script gets every
 * VLAN's VDE socket). @name NULL: derived from the script's file name. */
static int container_add(struct run_plan *p, const char *name, const char *script, const char *where,
                         char **ret_error) {
        _cleanup_free_ char *derived = NULL;
        struct run_node *n;
        int r;

        if (!name && !(name = derived = container_name_from_script(script)))
                return errmsg_invalid(ret_error,
                                      "%s: cannot name the container of '%s' (the file is not run-<name>-nspawn): "
                                      "give its name (containerNames / --container-names)",
                                      where, script);
        if (script[0] != '/')
                return errmsg_invalid(ret_error, "%s: container start script '%s' is not an absolute path", where,
                                      script);
        r = node_add(p, name, &n, ret_error);
        if (r < 0)
                return r;
        set_str(&n->backend, "nspawn");
        set_str(&n->start_script, script);
        n->vlans_set = true;
        return 0;
}

int run_plan_parse_reference(struct run_plan *p, int argc, char **argv, const char *(*env)(const char *name),
                             char **ret_error) {
        struct reference_lists l = {};
        const char *e;
        int r;

        p->reference_cli = true;
        /* Environment first: argparse uses env vars as defaults that options override. */
        env_split(env("startScripts"), l.start_scripts, &l.n_start_scripts);
        if (l.n_start_scripts == 0)
                env_split(env("vmStartScripts"), l.start_scripts, &l.n_start_scripts);
        env_split(env("vmNames"), l.vm_names, &l.n_vm_names);
        env_split(env("containerStartScripts"), l.container_scripts, &l.n_container_scripts);
        env_split(env("containerNames"), l.container_names, &l.n_container_names);
        if ((e = env("vlans"))) {
                char *vals[RUN_VLANS_MAX + 1] = {};
                size_t nv = 0;
                env_split(e, vals, &nv);
                r = set_vlans(p, vals, nv, ret_error);
                for (size_t i = 0; i < nv; i++)
                        free(vals[i]);
                if (r < 0)
                        goto out;
        }
        if ((e = env("globalTimeout")) && *e) {
                unsigned u;
                if (parse_uint(e, 7u * 24 * 3600, &u) < 0 || u == 0) {
                        r = errmsg_invalid(ret_error, "globalTimeout: '%s' is not a number of seconds", e);
                        goto out;
                }
                p->global_timeout = u;
        }
        if ((e = env("testScript")) && *e)
                set_str(&p->script, e);
        if ((e = env("logLevel")) && *e) {
                if (!streq(e, "debug") && !streq(e, "info") && !streq(e, "warning") && !streq(e, "error")) {
                        r = errmsg_invalid(ret_error, "logLevel: '%s' is not one of debug, info, warning, error", e);
                        goto out;
                }
                set_str(&p->log_level, e);
        }

        r = parse_argv(p, argc, argv, reference_opts, reference_option, set_script, &l, ret_error);
        if (r < 0)
                goto out;
        if (l.n_container_names > 0 && l.n_container_names != l.n_container_scripts) {
                r = errmsg_invalid(ret_error,
                                   "containerNames lists %zu containers but containerStartScripts lists %zu",
                                   l.n_container_names, l.n_container_scripts);
                goto out;
        }
        if (l.n_vm_names > 0 && l.n_vm_names != l.n_start_scripts) {
                r = errmsg_invalid(ret_error, "vmNames lists %zu machines but vmStartScripts lists %zu", l.n_vm_names,
                                   l.n_start_scripts);
                goto out;
        }
        for (size_t i = 0; i < l.n_start_scripts; i++) {
                _cleanup_free_ char *derived = NULL;
                struct run_node *n;
                const char *name =
                        l.n_vm_names ? l.vm_names[i] : (derived = run_plan_name_from_script(l.start_scripts[i]));

                r = node_add(p, name, &n, ret_error);
                if (r < 0)
                        goto out;
                n->start_script = strdup(l.start_scripts[i]);
                /* Start scripts carry their own NICs; VLANs are only needed for the switches. */
                n->vlans_set = true;
        }
        for (size_t i = 0; i < l.n_container_scripts; i++) {
                r = container_add(p, l.n_container_names ? l.container_names[i] : NULL, l.container_scripts[i],
                                  "containerStartScripts", ret_error);
                if (r < 0)
                        goto out;
        }
        if (l.vlans_given || env("vlans"))
                for (size_t i = 0; i < p->n_default_vlans && p->n_vlans < RUN_VLANS_MAX; i++)
                        p->vlans[p->n_vlans++] = p->default_vlans[i];
        r = 0;
out:
        for (size_t i = 0; i < l.n_start_scripts; i++)
                free(l.start_scripts[i]);
        for (size_t i = 0; i < l.n_vm_names; i++)
                free(l.vm_names[i]);
        for (size_t i = 0; i < l.n_container_scripts; i++)
                free(l.container_scripts[i]);
        for (size_t i = 0; i < l.n_container_names; i++)
                free(l.container_names[i]);
        return r;
}

/* ---- JSON inputs ---- */

static int json_vlans(json_object *arr, int *dst, size_t *n, size_t max, const char *where, char **ret_error) {
        if (!json_object_is_type(arr, json_type_array))
                return errmsg_invalid(ret_error, "%s: \"vlans\" must be an array of VLAN numbers", where);
        *n = 0;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *v = json_object_array_get_idx(arr, i);
                int x = json_object_get_int(v);
                if (!json_object_is_type(v, json_type_int) || x < 1 || x > 4094)
                        return errmsg_invalid(ret_error, "%s: \"vlans\"[%zu] is not a VLAN number (1..4094)", where,
                                              i);
                if (*n >= max)
                        return errmsg_invalid(ret_error, "%s: too many VLANs (at most %zu)", where, max);
                dst[(*n)++] = x;
        }
        return 0;
}

/* @key of @j, if present, as seconds (1..604800) into *@ret. */
static int json_seconds(json_object *j, const char *key, const char *what, unsigned *ret, char **ret_error) {
        json_object *o;

        if (!json_object_object_get_ex(j, key, &o))
                return 0;
        if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 1 ||
            json_object_get_int64(o) > 7 * 24 * 3600)
                return errmsg_invalid(ret_error, "%s: \"%s\" must be seconds (1..604800)", what, key);
        *ret = (unsigned) json_object_get_int64(o);
        return 0;
}

static int json_top_common(struct run_plan *p, json_object *j, const char *what, char **ret_error) {
        json_object *o;
        int r;

        if ((r = json_seconds(j, "global_timeout", what, &p->global_timeout, ret_error)) < 0 ||
            (r = json_seconds(j, "boot_timeout", what, &p->boot_timeout, ret_error)) < 0)
                return r;
        if (json_object_object_get_ex(j, "boot_cache", &o)) {
                if (!json_object_is_type(o, json_type_string) || !*json_object_get_string(o))
                        return errmsg_invalid(ret_error, "%s: \"boot_cache\" must be a directory", what);
                if (!p->boot_cache)
                        set_str(&p->boot_cache, json_object_get_string(o));
        }
        if (json_object_object_get_ex(j, "test_script", &o)) {
                if (!json_object_is_type(o, json_type_string))
                        return errmsg_invalid(ret_error, "%s: \"test_script\" must be a path", what);
                if (!p->script)
                        set_str(&p->script, json_object_get_string(o));
        }
        if (json_object_object_get_ex(j, "vlans", &o)) {
                r = json_vlans(o, p->vlans, &p->n_vlans, RUN_VLANS_MAX, what, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int get_opt_string(json_object *node, const char *key, char **dst, const char *where, char **ret_error) {
        json_object *o;

        if (!json_object_object_get_ex(node, key, &o) || json_object_is_type(o, json_type_null))
                return 0;
        if (!json_object_is_type(o, json_type_string))
                return errmsg_invalid(ret_error, "%s: \"%s\" must be a string", where, key);
        set_str(dst, json_object_get_string(o));
        return 0;
}

static int get_opt_uint(json_object *node, const char *key, unsigned max, unsigned *dst, const char *where,
                        char **ret_error) {
        json_object *o;

        if (!json_object_object_get_ex(node, key, &o))
                return 0;
        if (!json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 1 || json_object_get_int64(o) > max)
                return errmsg_invalid(ret_error, "%s: \"%s\" must be an integer in 1..%u", where, key, max);
        *dst = (unsigned) json_object_get_int64(o);
        return 0;
}

static const char *const spec_node_keys[] = {"backend",
                                             "start_script",
                                             "kernel",
                                             "initrd",
                                             "append",
                                             "memory_mb",
                                             "cpus",
                                             "vlans",
                                             "tree",
                                             "host",
                                             "user",
                                             "port",
                                             "identity_file",
                                             "known_hosts",
                                             "proxy_jump",
                                             "ssh_options",
                                             "connect_timeout_s",
                                             "guest_channel",
                                             NULL};
/* Keys that only mean something to a QEMU machine. */
static const char *const spec_qemu_only_keys[] = {"start_script", "kernel", "initrd", "append",
                                                  "memory_mb",    "cpus",   NULL};
static const char *const spec_top_keys[] = {"nodes",      "vlans",       "global_timeout", "boot_timeout",
                                            "boot_cache", "test_script", "guest_channel",  NULL};

/* "guest_channel": "fast" or "reference" into *dst; absent or null leaves it. */
static int get_opt_channel(json_object *j, enum machine_guest_channel *dst, const char *where, char **ret_error) {
        json_object *o;
        enum machine_guest_channel c;

        if (!json_object_object_get_ex(j, "guest_channel", &o) || json_object_is_type(o, json_type_null))
                return 0;
        c = json_object_is_type(o, json_type_string) ? machine_guest_channel_from_string(json_object_get_string(o))
                                                     : _MACHINE_GUEST_CHANNEL_INVALID;
        if (c < 0)
                return errmsg_invalid(ret_error, "%s: \"guest_channel\" must be \"fast\" or \"reference\"", where);
        *dst = c;
        return 0;
}

static int check_keys(json_object *j, const char *const *allowed, const char *where, char **ret_error) {
        json_object_object_foreach(j, key, val) {
                bool ok = false;
                (void) val;
                for (size_t i = 0; allowed[i]; i++)
                        ok = ok || streq(allowed[i], key);
                if (!ok)
                        return errmsg_invalid(ret_error, "%s: unknown key \"%s\"", where, key);
        }
        return 0;
}

/* Keys that only mean something to an SSH machine. */
static const char *const spec_ssh_only_keys[] = {"host",        "user",       "port",        "identity_file",
                                                 "known_hosts", "proxy_jump", "ssh_options", "connect_timeout_s",
                                                 NULL};

/* A key of another backend is a mistake, not something to ignore. */
static int check_backend_keys(json_object *node, const struct run_node *n, const char *where, char **ret_error) {
        bool nspawn = streq(n->backend, "nspawn"), ssh = streq(n->backend, "ssh");

        for (size_t i = 0; !ssh && spec_ssh_only_keys[i]; i++)
                if (json_object_object_get_ex(node, spec_ssh_only_keys[i], NULL))
                        return errmsg_invalid(ret_error, "%s: \"%s\" is for backend \"ssh\" only", where,
                                              spec_ssh_only_keys[i]);
        for (size_t i = 0; ssh && spec_qemu_only_keys[i]; i++)
                if (json_object_object_get_ex(node, spec_qemu_only_keys[i], NULL))
                        return errmsg_invalid(ret_error, "%s: \"%s\" is for backend \"qemu\" only", where,
                                              spec_qemu_only_keys[i]);
        if (ssh && json_object_object_get_ex(node, "vlans", NULL))
                return errmsg_invalid(ret_error,
                                      "%s: an SSH machine is on none of vigil's VLANs (it talks over its own "
                                      "network): drop \"vlans\"",
                                      where);

        if (!nspawn && json_object_object_get_ex(node, "tree", NULL))
                return errmsg_invalid(ret_error, "%s: \"tree\" is for backend \"nspawn\" only", where);
        for (size_t i = 0; nspawn && spec_qemu_only_keys[i]; i++)
                if (json_object_object_get_ex(node, spec_qemu_only_keys[i], NULL))
                        return errmsg_invalid(ret_error, "%s: \"%s\" is for backend \"qemu\" only", where,
                                              spec_qemu_only_keys[i]);
        if (n->tree && n->tree[0] != '/')
                return errmsg_invalid(ret_error, "%s: \"tree\" must be an absolute path", where);
        return 0;
}

/* An ssh node's keys, checked as the worker will check them. */
static int spec_ssh_node(json_object *node, struct run_node *n, const char *where, char **ret_error) {
        struct ssh_target t = {};
        char why[SSH_ERROR_MAX];
        json_object *o;
        int r;

        if ((r = get_opt_string(node, "host", &n->ssh.host, where, ret_error)) < 0 ||
            (r = get_opt_string(node, "user", &n->ssh.user, where, ret_error)) < 0 ||
            (r = get_opt_string(node, "identity_file", &n->ssh.identity_file, where, ret_error)) < 0 ||
            (r = get_opt_string(node, "known_hosts", &n->ssh.known_hosts, where, ret_error)) < 0 ||
            (r = get_opt_string(node, "proxy_jump", &n->ssh.proxy_jump, where, ret_error)) < 0 ||
            (r = get_opt_uint(node, "port", 65535, &n->ssh.port, where, ret_error)) < 0 ||
            (r = get_opt_uint(node, "connect_timeout_s", 3600, &n->ssh.connect_timeout_s, where, ret_error)) < 0)
                return r;
        if (json_object_object_get_ex(node, "ssh_options", &o)) {
                size_t k = json_object_is_type(o, json_type_array) ? json_object_array_length(o) : 0;

                if (!json_object_is_type(o, json_type_array) || k > SSH_OPTIONS_MAX)
                        return errmsg_invalid(ret_error, "%s: \"ssh_options\" must be a list of at most %u strings",
                                              where, SSH_OPTIONS_MAX);
                strv_free(n->ssh.options);
                if (!(n->ssh.options = calloc(k + 1, sizeof(char *))))
                        return -ENOMEM;
                for (size_t i = 0; i < k; i++) {
                        json_object *e = json_object_array_get_idx(o, i);
                        if (!json_object_is_type(e, json_type_string))
                                return errmsg_invalid(ret_error, "%s: ssh_options[%zu] must be a string", where, i);
                        if (!(n->ssh.options[i] = strdup(json_object_get_string(e))))
                                return -ENOMEM;
                }
        }
        if (!n->ssh.host)
                return errmsg_invalid(ret_error, "%s: backend \"ssh\" needs \"host\"", where);
        r = ssh_target_make(&(const struct ssh_settings){.host = n->ssh.host,
                                                         .user = n->ssh.user,
                                                         .port = n->ssh.port,
                                                         .identity_file = n->ssh.identity_file,
                                                         .known_hosts = n->ssh.known_hosts,
                                                         .proxy_jump = n->ssh.proxy_jump,
                                                         .options = n->ssh.options,
                                                         .connect_timeout_s = n->ssh.connect_timeout_s},
                            &t, why, sizeof why);
        if (r == -EINVAL)
                return errmsg_invalid(ret_error, "%s: %s", where, why);
        ssh_target_done(&t);
        n->vlans_set = true; /* on none of vigil's VLANs */
        return r;
}

static void plan_tokener_freep(json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

/* Parse @json as one JSON object. A syntax error names the line and column
 * json-c's tokener stopped at (1-based, columns in bytes), so a hand-edited
 * spec says where it broke; text after the object is refused the same way. */
static int plan_json_parse(const char *json, const char *what, json_object **ret, char **ret_error) {
        _cleanup_(plan_tokener_freep) json_tokener *tok = json_tokener_new();
        enum json_tokener_error e;
        json_object *j;
        size_t len = strlen(json), end, line = 1, col = 1;

        if (!tok)
                return -ENOMEM;
        j = json_tokener_parse_ex(tok, json, (int) MIN(len, (size_t) INT_MAX));
        e = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        if (!j && e == json_tokener_continue) {
                e = json_tokener_error_parse_eof;
                end = len;
        }
        if (j) /* only whitespace may follow the value */
                while (end < len && strchr(" \t\r\n", json[end]))
                        end++;
        for (size_t i = 0; i < end && i < len; i++) {
                if (json[i] == '\n')
                        line++, col = 1;
                else
                        col++;
        }
        if (!j)
                return errmsg_invalid(ret_error, "%s: invalid JSON at line %zu, column %zu: %s", what, line, col,
                                      json_tokener_error_desc(e));
        if (end < len) {
                json_object_put(j);
                return errmsg_invalid(ret_error, "%s: unexpected text after the JSON value at line %zu, column %zu",
                                      what, line, col);
        }
        if (!json_object_is_type(j, json_type_object)) {
                json_object_put(j);
                return errmsg_invalid(ret_error, "%s: not a JSON object (the top level must be {...})", what);
        }
        *ret = j;
        return 0;
}

int run_plan_load_spec(struct run_plan *p, const char *json, char **ret_error) {
        json_object *j = NULL, *nodes;
        int r;

        r = plan_json_parse(json, "spec", &j, ret_error);
        if (r < 0)
                return r;
        r = check_keys(j, spec_top_keys, "spec", ret_error);
        if (r >= 0)
                r = json_top_common(p, j, "spec", ret_error);
        if (r >= 0 && !p->guest_channel_from_cli)
                r = get_opt_channel(j, &p->guest_channel, "spec", ret_error);
        if (r >= 0 && json_object_object_get_ex(j, "nodes", &nodes)) {
                if (!json_object_is_type(nodes, json_type_object))
                        r = errmsg_invalid(ret_error, "spec: \"nodes\" must be an object of name -> node");
                else {
                        json_object_object_foreach(nodes, name, node) {
                                char where[96];
                                struct run_node *n;
                                json_object *v;

                                snprintf(where, sizeof(where), "spec: node \"%s\"", name);
                                if (!json_object_is_type(node, json_type_object)) {
                                        r = errmsg_invalid(ret_error, "%s must be an object", where);
                                        break;
                                }
                                r = check_keys(node, spec_node_keys, where, ret_error);
                                if (r >= 0)
                                        r = node_add(p, name, &n, ret_error);
                                if (r >= 0)
                                        r = get_opt_string(node, "backend", &n->backend, where, ret_error);
                                if (r >= 0 && !backend_known(n->backend))
                                        r = errmsg_invalid(ret_error, "%s: unknown backend \"%s\" (available: %s)",
                                                           where, n->backend, backends_available());
                                if (r >= 0)
                                        r = get_opt_string(node, "tree", &n->tree, where, ret_error);
                                if (r >= 0)
                                        r = check_backend_keys(node, n, where, ret_error);
                                if (r >= 0 && streq(n->backend, "ssh"))
                                        r = spec_ssh_node(node, n, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_string(node, "start_script", &n->start_script, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_string(node, "kernel", &n->kernel, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_string(node, "initrd", &n->initrd, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_string(node, "append", &n->append, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_uint(node, "memory_mb", 65536, &n->memory_mb, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_uint(node, "cpus", 64, &n->cpus, where, ret_error);
                                if (r >= 0)
                                        r = get_opt_channel(node, &n->guest_channel, where, ret_error);
                                if (r >= 0 && json_object_object_get_ex(node, "vlans", &v)) {
                                        r = json_vlans(v, n->vlans, &n->n_vlans, RUN_NODE_VLANS_MAX, where, ret_error);
                                        n->vlans_set = true;
                                }
                                if (r >= 0 && !n->kernel != !n->initrd)
                                        r = errmsg_invalid(ret_error, "%s: \"kernel\" and \"initrd\" go together",
                                                           where);
                                if (r >= 0 && n->kernel && n->start_script)
                                        r = errmsg_invalid(ret_error,
                                                           "%s: give either \"start_script\" or \"kernel\", not both",
                                                           where);
                                if (r < 0)
                                        break;
                        }
                }
        }
        json_object_put(j);
        return r < 0 ? r : 0;
}

int run_plan_load_reference_config(struct run_plan *p, const char *json, char **ret_error) {
        json_object *j = NULL, *vms, *o;
        int r;

        r = plan_json_parse(json, "--config", &j, ret_error);
        if (r < 0)
                return r;
        r = json_top_common(p, j, "--config", ret_error);
        if (r >= 0 && json_object_object_get_ex(j, "enable_ssh_backdoor", &o)) {
                if (!json_object_is_type(o, json_type_boolean))
                        r = errmsg_invalid(ret_error, "--config: \"enable_ssh_backdoor\" must be true or false");
                else if (json_object_get_boolean(o)) {
                        /* vhost-device-vsock numbers the machines' CIDs from 3 */
                        p->ssh_backdoor = true;
                        p->vsock_offset = 2;
                }
        }
        if (r >= 0 && json_object_object_get_ex(j, "containers", &o) && !json_object_is_type(o, json_type_null)) {
                if (!json_object_is_type(o, json_type_object))
                        r = errmsg_invalid(ret_error, "--config: \"containers\" must be an object");
                else {
                        json_object_object_foreach(o, key, ct) {
                                json_object *s, *nm;
                                char where[256];

                                if (!json_object_is_type(ct, json_type_object) ||
                                    !json_object_object_get_ex(ct, "start_script", &s) ||
                                    !json_object_is_type(s, json_type_string)) {
                                        r = errmsg_invalid(
                                                ret_error,
                                                "--config: containers.\"%s\" needs a \"start_script\" string", key);
                                        break;
                                }
                                (void) snprintf(where, sizeof where, "--config: containers.\"%s\"", key);
                                r = container_add(p,
                                                  json_object_object_get_ex(ct, "name", &nm) &&
                                                                  json_object_is_type(nm, json_type_string)
                                                          ? json_object_get_string(nm)
                                                          : key,
                                                  json_object_get_string(s), where, ret_error);
                                if (r < 0)
                                        break;
                        }
                }
        }
        if (r >= 0 && json_object_object_get_ex(j, "vms", &vms)) {
                if (!json_object_is_type(vms, json_type_object))
                        r = errmsg_invalid(ret_error, "--config: \"vms\" must be an object");
                else {
                        json_object_object_foreach(vms, key, vm) {
                                struct run_node *n;
                                json_object *s, *nm;
                                const char *name = key;

                                if (!json_object_is_type(vm, json_type_object) ||
                                    !json_object_object_get_ex(vm, "start_script", &s) ||
                                    !json_object_is_type(s, json_type_string)) {
                                        r = errmsg_invalid(ret_error,
                                                           "--config: vms.\"%s\" needs a \"start_script\" string",
                                                           key);
                                        break;
                                }
                                if (json_object_object_get_ex(vm, "name", &nm) &&
                                    json_object_is_type(nm, json_type_string))
                                        name = json_object_get_string(nm);
                                r = node_add(p, name, &n, ret_error);
                                if (r < 0)
                                        break;
                                n->start_script = strdup(json_object_get_string(s));
                                n->vlans_set = true;
                        }
                }
        }
        json_object_put(j);
        return r < 0 ? r : 0;
}

/* ---- finalize and render ---- */

static int node_cmp(const void *a, const void *b) {
        return strcmp(((const struct run_node *) a)->name, ((const struct run_node *) b)->name);
}

static void vlan_collect(struct run_plan *p, int v) {
        for (size_t i = 0; i < p->n_vlans; i++)
                if (p->vlans[i] == v)
                        return;
        if (p->n_vlans < RUN_VLANS_MAX)
                p->vlans[p->n_vlans++] = v;
}

static int int_cmp(const void *a, const void *b) {
        return *(const int *) a - *(const int *) b;
}

int run_plan_finalize(struct run_plan *p, char **ret_error) {
        if (!p->script)
                return errmsg_invalid(ret_error, "no test script given (vigil run SCRIPT ...)");
        if (p->n_nodes == 0)
                return errmsg_invalid(ret_error, "no machines: add --node NAME (or a spec with \"nodes\")");
        if (p->n_default_vlans == 0)
                p->default_vlans[p->n_default_vlans++] = 1;
        qsort(p->nodes, p->n_nodes, sizeof(p->nodes[0]), node_cmp);
        for (size_t i = 0; i < p->n_nodes; i++) {
                struct run_node *n = &p->nodes[i];

                n->number = (unsigned) i + 1;
                if (!n->vlans_set) {
                        memcpy(n->vlans, p->default_vlans, sizeof(int) * p->n_default_vlans);
                        n->n_vlans = p->n_default_vlans;
                }
                for (size_t k = 0; k < n->n_vlans; k++)
                        vlan_collect(p, n->vlans[k]);
        }
        qsort(p->vlans, p->n_vlans, sizeof(int), int_cmp);
        return 0;
}

int run_plan_add_machine(struct run_plan *p, const char *name, const char *start_script, bool keep_state,
                         size_t *ret_index, char **ret_error) {
        struct run_node *n;
        int r = node_add(p, name, &n, ret_error);

        if (r < 0)
                return r;
        set_str(&n->start_script, start_script);
        n->number = (unsigned) p->n_nodes;
        n->vlans_set = true; /* its start script brings its own NICs */
        n->added_live = true;
        n->keep_state = keep_state;
        *ret_index = p->n_nodes - 1;
        return 0;
}

void run_plan_drop_last(struct run_plan *p) {
        if (p->n_nodes > 0)
                node_done(&p->nodes[--p->n_nodes]);
}

static bool node_is_nspawn(const struct run_node *n) {
        return streq(n->backend, "nspawn");
}

static bool node_is_ssh(const struct run_node *n) {
        return streq(n->backend, "ssh");
}

bool run_plan_needs_guest(const struct run_plan *p) {
        for (size_t i = 0; i < p->n_nodes; i++)
                if (!node_is_nspawn(&p->nodes[i]) && !node_is_ssh(&p->nodes[i]) && !p->nodes[i].start_script &&
                    !p->nodes[i].kernel)
                        return true;
        return false;
}

bool run_plan_needs_debian_tree(const struct run_plan *p) {
        for (size_t i = 0; i < p->n_nodes; i++)
                if (node_is_nspawn(&p->nodes[i]) && !p->nodes[i].tree && !p->nodes[i].start_script)
                        return true;
        return false;
}

void run_plan_tap_name(const char *run_id, int vlan, unsigned number, char *buf, size_t size) {
        snprintf(buf, size, "v%.4s%dn%u", run_id ?: "", vlan, number);
}

static char *json_take_string(json_object *j) {
        char *s =
                j ? strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))
                  : NULL;
        if (j)
                json_object_put(j);
        return s;
}

static void jset_str(json_object *o, const char *k, const char *v) {
        json_object_object_add(o, k, v ? json_object_new_string(v) : json_object_new_null());
}

static void node_address(const struct run_node *n, int vlan, char *buf, size_t size) {
        snprintf(buf, size, "192.168.%d.%u", vlan, n->number);
}

static void node_mac(const struct run_node *n, int vlan, char *buf, size_t size) {
        snprintf(buf, size, "52:54:00:12:%02x:%02x", (unsigned) vlan & 0xff, n->number & 0xff);
}

static void vlan_socket_dir(const struct run_dirs *d, int vlan, char *buf, size_t size) {
        snprintf(buf, size, "%s/vde%d.ctl", d->tmp_dir, vlan);
}

static void machine_dirs(const struct run_dirs *d, const struct run_node *n, char *state, size_t ssize, char *shared,
                         size_t shsize) {
        snprintf(state, ssize, "%s/vm-state-%s", d->tmp_dir, n->name);
        snprintf(shared, shsize, "%s/shared-xchg", d->tmp_dir);
}

/* Kernel parameters of the tiny guest: hostname, addresses by MAC, /etc/hosts. */
static char *guest_append(const struct run_plan *p, const struct run_node *n, const char *base) {
        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return NULL;
        fprintf(f, "%s vigil.hostname=%s", base ?: "console=ttyS0 panic=1", n->name);
        for (size_t k = 0; k < n->n_vlans; k++) {
                char mac[32], addr[32];
                node_mac(n, n->vlans[k], mac, sizeof(mac));
                node_address(n, n->vlans[k], addr, sizeof(addr));
                fprintf(f, " vigil.if=%s,%s/24", mac, addr);
        }
        fprintf(f, " vigil.hosts=");
        for (size_t i = 0, first = 1; i < p->n_nodes; i++) {
                const struct run_node *m = &p->nodes[i];
                char addr[32];
                if (m->n_vlans == 0)
                        continue;
                node_address(m, m->vlans[0], addr, sizeof(addr));
                fprintf(f, "%s%s:%s", first ? "" : ",", addr, m->name);
                first = 0;
        }
        if (n->append)
                fprintf(f, " %s", n->append);
        fclose(f);
        return s;
}

unsigned run_plan_vsock_cid(const struct run_plan *p, const struct run_node *n) {
        return p->vsock_offset + n->number;
}

/* strdup, or keep NULL; false only when out of memory. */
static bool dup_to(char **dst, const char *v) {
        *dst = v ? strdup(v) : NULL;
        return !v || *dst;
}

static bool dupf_to(char **dst, const char *fmt, ...) _printf_(2, 3);
static bool dupf_to(char **dst, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(dst, fmt, ap);
        va_end(ap);
        if (n < 0)
                *dst = NULL;
        return n >= 0;
}

/* The NICs: a start script carries its own and needs QEMU_VDE_SOCKET_<n> for
 * every VLAN of the run (a container's script: a TAP on every VLAN, which its
 * backend bridges to the script's br<n>); other machines get one NIC per VLAN
 * of their own, a VDE socket for QEMU, a TAP the switch makes for a container. */
static bool machine_vlans(const struct run_plan *p, const struct run_node *n, const struct run_dirs *d,
                          struct machine_config *c) {
        size_t count = n->start_script ? p->n_vlans : n->n_vlans;
        char buf[512];
        bool ok = true;

        c->vlans = calloc(MAX(count, (size_t) 1), sizeof *c->vlans);
        if (!c->vlans)
                return false;
        for (size_t k = 0; ok && k < count; k++) {
                struct machine_vlan *v = &c->vlans[c->n_vlans++];
                int nr = n->start_script ? p->vlans[k] : n->vlans[k];

                v->nr = (uint64_t) nr;
                if (node_is_nspawn(n)) {
                        run_plan_tap_name(d->run_id, nr, n->number, buf, sizeof(buf));
                        ok = dup_to(&v->tap, buf);
                } else {
                        vlan_socket_dir(d, nr, buf, sizeof(buf));
                        ok = dup_to(&v->socket, buf);
                }
                if (ok && !n->start_script) {
                        node_mac(n, nr, buf, sizeof(buf));
                        ok = dup_to(&v->mac, buf);
                        node_address(n, nr, buf, sizeof(buf));
                        ok = ok && dupf_to(&v->address, "%s/24", buf);
                }
        }
        return ok;
}

/* Every machine with a NIC, by its first VLAN's address: the /etc/hosts of containers. */
static bool machine_hosts(const struct run_plan *p, struct machine_config *c) {
        char buf[64];
        bool ok = true;

        c->hosts = calloc(MAX(p->n_nodes, (size_t) 1), sizeof *c->hosts);
        if (!c->hosts)
                return false;
        for (size_t i = 0; ok && i < p->n_nodes; i++) {
                const struct run_node *m = &p->nodes[i];
                struct machine_host *h;

                if (m->n_vlans == 0)
                        continue;
                h = &c->hosts[c->n_hosts++];
                node_address(m, m->vlans[0], buf, sizeof(buf));
                ok = dup_to(&h->name, m->name) && dup_to(&h->address, buf);
        }
        return ok;
}

static bool machine_qemu(const struct run_plan *p, const struct run_node *n, const struct run_dirs *d,
                         struct machine_config *c) {
        bool ok = true;

        if (n->start_script)
                ok = dup_to(&c->start_script, n->start_script);
        else if (n->kernel)
                ok = dup_to(&c->kernel, n->kernel) && dup_to(&c->initrd, n->initrd) &&
                     (c->append = guest_append(p, n, NULL));
        else /* the tiny guest */
                ok = dupf_to(&c->kernel, "%s/kernel", d->guest_dir ?: "") &&
                     dupf_to(&c->initrd, "%s/initrd", d->guest_dir ?: "") &&
                     (c->append = guest_append(p, n, d->guest_cmdline));
        if (ok && p->ssh_backdoor && !n->added_live) {
                c->extra_args = calloc(3, sizeof(char *));
                ok = c->extra_args && dup_to(&c->extra_args[0], "-device") &&
                     dupf_to(&c->extra_args[1], "vhost-vsock-pci,guest-cid=%u", run_plan_vsock_cid(p, n));
        }
        return ok;
}

/* The boot cache as an absolute path (the worker's working directory is not ours). */
static bool boot_cache_to(char **dst, const char *dir) {
        char cwd[PATH_MAX];

        if (!dir)
                return true;
        if (dir[0] == '/')
                return dup_to(dst, dir);
        if (!getcwd(cwd, sizeof cwd))
                return false;
        return asprintf(dst, "%s/%s", cwd, dir) >= 0 || (*dst = NULL, false);
}

int run_plan_machine_struct(const struct run_plan *p, size_t node, const struct run_dirs *d,
                            struct machine_config *ret) {
        _cleanup_(machine_config_donep) struct machine_config c = {};
        const struct run_node *n = &p->nodes[node];
        char state[512], shared[512];
        bool ok;

        machine_dirs(d, n, state, sizeof(state), shared, sizeof(shared));
        c.backend_kind = machine_backend_kind_from_string(n->backend);
        c.accel = machine_accel_from_string(p->accel ?: "auto");
        if (c.backend_kind < 0 || c.accel < 0)
                return -EINVAL;
        c.node_number = n->number;
        c.memory_mb = n->memory_mb; /* also for containers: what the worker reads when "qemu" is absent */
        c.cpus = n->cpus;
        c.keep_state = p->keep_state || n->keep_state;
        c.allow_reboot = false;
        c.guest_channel = n->guest_channel >= 0 ? n->guest_channel : p->guest_channel;
        c.connect_s = MIN(p->global_timeout, p->boot_timeout);
        c.output_max = DEFAULT_OUTPUT_MAX;
        ok = dup_to(&c.name, n->name) && dup_to(&c.state_dir, state) && dup_to(&c.shared_dir, shared) &&
             dup_to(&c.out_dir, d->out_dir) && machine_vlans(p, n, d, &c) && machine_hosts(p, &c);
        if (ok && node_is_nspawn(n) && n->start_script)
                ok = dup_to(&c.start_script, n->start_script);
        else if (ok && node_is_nspawn(n))
                ok = dup_to(&c.tree, n->tree ?: d->debian_tree);
        else if (ok && node_is_ssh(n)) {
                c.ssh_port = n->ssh.port;
                c.ssh_connect_timeout_s = n->ssh.connect_timeout_s;
                ok = dup_to(&c.ssh_host, n->ssh.host) && (!n->ssh.user || dup_to(&c.ssh_user, n->ssh.user)) &&
                     (!n->ssh.identity_file || dup_to(&c.ssh_identity_file, n->ssh.identity_file)) &&
                     (!n->ssh.known_hosts || dup_to(&c.ssh_known_hosts, n->ssh.known_hosts)) &&
                     (!n->ssh.proxy_jump || dup_to(&c.ssh_proxy_jump, n->ssh.proxy_jump));
                if (ok && n->ssh.options)
                        ok = (c.ssh_options = strv_copy(n->ssh.options)) != NULL;
        } else if (ok)
                ok = machine_qemu(p, n, d, &c) && boot_cache_to(&c.boot_cache, p->boot_cache);
        if (!ok)
                return -ENOMEM;
        *ret = c;
        c = (struct machine_config){};
        return 0;
}

char *run_plan_machine_config(const struct run_plan *p, size_t node, const struct run_dirs *d) {
        _cleanup_(machine_config_donep) struct machine_config c = {};
        char *json = NULL;

        if (run_plan_machine_struct(p, node, d, &c) < 0 || worker_config_machine_write(&c, &json) < 0)
                return NULL;
        return json;
}

int run_plan_switch_struct(const struct run_plan *p, size_t vlan, const struct run_dirs *d,
                           struct switch_config *ret) {
        _cleanup_(switch_config_donep) struct switch_config c = {.vlan = (uint64_t) p->vlans[vlan], .pcap = true};
        char buf[512];
        bool ok;

        vlan_socket_dir(d, p->vlans[vlan], buf, sizeof(buf));
        ok = dup_to(&c.socket_dir, buf) && dup_to(&c.out_dir, d->out_dir) &&
             (c.machines = calloc(MAX(p->n_nodes, (size_t) 1), sizeof *c.machines));
        /* Every machine's MAC on this VLAN, so fault rules can name machines. Start
         * scripts use the same 52:54:00:12:<vlan>:<node> scheme as NixOS. */
        for (size_t i = 0; ok && i < p->n_nodes; i++) {
                const struct run_node *n = &p->nodes[i];
                bool on = n->start_script != NULL;
                struct switch_machine *m;

                for (size_t k = 0; k < n->n_vlans; k++)
                        on = on || n->vlans[k] == p->vlans[vlan];
                if (!on)
                        continue;
                m = &c.machines[c.n_machines++];
                node_mac(n, p->vlans[vlan], buf, sizeof(buf));
                ok = dup_to(&m->name, n->name) && dup_to(&m->mac, buf);
                if (ok && node_is_nspawn(n)) {
                        run_plan_tap_name(d->run_id, p->vlans[vlan], n->number, buf, sizeof(buf));
                        ok = dup_to(&m->tap, buf);
                }
        }
        if (!ok)
                return -ENOMEM;
        *ret = c;
        c = (struct switch_config){};
        return 0;
}

char *run_plan_switch_config(const struct run_plan *p, size_t vlan, const struct run_dirs *d) {
        _cleanup_(switch_config_donep) struct switch_config c = {};
        char *json = NULL;

        if (run_plan_switch_struct(p, vlan, d, &c) < 0 || worker_config_switch_write(&c, &json) < 0)
                return NULL;
        return json;
}

char *run_plan_script_config(const struct run_plan *p, const struct run_dirs *d) {
        json_object *j = json_object_new_object(), *machines = json_object_new_array(),
                    *vlans = json_object_new_array();
        char state[512], shared[512], buf[512];

        jset_str(j, "test_script", p->script);
        jset_str(j, "out_dir", d->out_dir);
        jset_str(j, "tmp_dir", d->tmp_dir);
        json_object_object_add(j, "global_timeout", json_object_new_int((int) p->global_timeout));
        json_object_object_add(j, "interactive", json_object_new_boolean(p->interactive));
        if (p->junit && p->junit[0] != '/') {
                snprintf(buf, sizeof(buf), "%s/%s", d->out_dir, p->junit);
                jset_str(j, "junit", buf);
        } else
                jset_str(j, "junit", p->junit);
        json_object_object_add(j, "keep_state", json_object_new_boolean(p->keep_state));
        json_object_object_add(j, "enable_ssh_backdoor", json_object_new_boolean(p->ssh_backdoor));
        jset_str(j, "log_level", p->log_level ?: "info");
        json_object_object_add(j, "quiet", json_object_new_boolean(p->verbosity < 0));
        for (size_t i = 0; i < p->n_nodes; i++) {
                const struct run_node *n = &p->nodes[i];
                json_object *m = json_object_new_object(), *mv = json_object_new_array();

                machine_dirs(d, n, state, sizeof(state), shared, sizeof(shared));
                jset_str(m, "name", n->name);
                jset_str(m, "backend", n->backend);
                jset_str(m, "state_dir", state);
                jset_str(m, "shared_dir", shared);
                jset_str(m, "start_command", n->start_script);
                if (p->ssh_backdoor && !node_is_nspawn(n))
                        json_object_object_add(m, "vsock_cid", json_object_new_int((int) run_plan_vsock_cid(p, n)));
                for (size_t k = 0; k < n->n_vlans; k++)
                        json_object_array_add(mv, json_object_new_int(n->vlans[k]));
                /* A start script has a VDE socket (a VM) or a TAP (a container) on every VLAN of the
                 * run: block() and vigil's fault rules reach it on each. */
                for (size_t k = 0; n->start_script && k < p->n_vlans; k++)
                        json_object_array_add(mv, json_object_new_int(p->vlans[k]));
                json_object_object_add(m, "vlans", mv);
                json_object_array_add(machines, m);
        }
        json_object_object_add(j, "machines", machines);
        for (size_t i = 0; i < p->n_vlans; i++) {
                json_object *v = json_object_new_object();
                json_object_object_add(v, "nr", json_object_new_int(p->vlans[i]));
                vlan_socket_dir(d, p->vlans[i], buf, sizeof(buf));
                jset_str(v, "socket_dir", buf);
                json_object_array_add(vlans, v);
        }
        json_object_object_add(j, "vlans", vlans);
        return json_take_string(j);
}
