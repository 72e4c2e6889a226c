/* SPDX-License-Identifier: MIT */
/*
 * qemu-argv.c: QEMU command lines and environments (see qemu-argv.h). Pure.
 */
#include <json-c/json.h>
#include <stdarg.h>

#include "macro.h"
#include "qemu-argv.h"
#include "strv-builder.h"

void qemu_cmd_done(struct qemu_cmd *c) {
        strv_free(c->argv);
        strv_free(c->env);
        free(c->cwd);
        *c = (struct qemu_cmd){};
}

/* Whether the environment entry @entry ("NAME=value") sets @name. */
static bool env_sets(const char *entry, const char *name) {
        size_t n = strlen(name);
        return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

const char *qemu_env_get(char *const *env, const char *name) {
        for (; env && *env; env++)
                if (env_sets(*env, name))
                        return *env + strlen(name) + 1;
        return NULL;
}

int qemu_control_args(const char *state_dir, bool allow_reboot, bool nographic, char ***ret) {
        struct strv_builder b = {};

        strv_builder_add(&b, "-qmp");
        strv_builder_addf(&b, "unix:%s/" QEMU_QMP_NAME ",server=on,wait=off", state_dir);
        strv_builder_add(&b, "-monitor");
        strv_builder_addf(&b, "unix:%s/" QEMU_MONITOR_NAME, state_dir);
        strv_builder_add(&b, "-S");
        strv_builder_add(&b, "-device");
        strv_builder_add(&b, "virtio-serial,id=" QEMU_VSERIAL_ID);
        strv_builder_add(&b, "-device");
        strv_builder_add(&b, "virtio-rng-pci");
        strv_builder_add(&b, "-serial");
        strv_builder_add(&b, "stdio");
        if (!allow_reboot)
                strv_builder_add(&b, "-no-reboot");
        if (nographic)
                strv_builder_add(&b, "-nographic");
        return strv_builder_finish(&b, ret);
}

/* One QMP command line: {"execute": @cmd, "arguments": @args} (takes @args). */
static char *qmp_command(const char *cmd, json_object *args) {
        json_object *o = json_object_new_object();
        char *text = NULL;

        if (o && json_object_object_add(o, "execute", json_object_new_string(cmd)) == 0 &&
            (!args || json_object_object_add(o, "arguments", args) == 0)) {
                args = NULL;
                text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        }
        json_object_put(args);
        json_object_put(o);
        return text;
}

int qemu_shell_setup_commands(const char *state_dir, char ***ret) {
        struct strv_builder b = {};
        json_object *chardev = NULL, *file = NULL, *device = NULL;
        char path[4096];

        /* chardev-add {id: shell, backend: {type: file, data: {in, out, append}}} */
        chardev = json_object_new_object();
        file = json_object_new_object();
        if (chardev && file) {
                json_object *backend = json_object_new_object();
                (void) snprintf(path, sizeof path, "%s/" QEMU_SHELL_IN, state_dir);
                json_object_object_add(file, "in", json_object_new_string(path));
                (void) snprintf(path, sizeof path, "%s/" QEMU_SHELL_NAME, state_dir);
                json_object_object_add(file, "out", json_object_new_string(path));
                json_object_object_add(file, "append", json_object_new_boolean(true));
                json_object_object_add(backend, "type", json_object_new_string("file"));
                json_object_object_add(backend, "data", TAKE_PTR(file));
                json_object_object_add(chardev, "id", json_object_new_string("shell"));
                json_object_object_add(chardev, "backend", backend);
        }
        json_object_put(file);
        strv_builder_add_owned(&b, chardev ? qmp_command("chardev-add", TAKE_PTR(chardev)) : NULL);

        device = json_object_new_object();
        if (device) {
                json_object_object_add(device, "driver", json_object_new_string("virtconsole"));
                json_object_object_add(device, "chardev", json_object_new_string("shell"));
                json_object_object_add(device, "bus", json_object_new_string(QEMU_VSERIAL_ID ".0"));
        }
        strv_builder_add_owned(&b, device ? qmp_command("device_add", TAKE_PTR(device)) : NULL);

        /* A second virtconsole, hvc1, for people: a guest that runs a shell
         * there (vigil's tiny guest does) is reachable with `vigil shell`
         * beside the test's own shell. A socket server that does not wait: with
         * nobody connected, QEMU drops what the guest writes to it. */
        chardev = json_object_new_object();
        if (chardev) {
                json_object *backend = json_object_new_object(), *data = json_object_new_object(),
                            *addr = json_object_new_object(), *unix_data = json_object_new_object();
                (void) snprintf(path, sizeof path, "%s/" QEMU_DEBUG_NAME, state_dir);
                json_object_object_add(unix_data, "path", json_object_new_string(path));
                json_object_object_add(addr, "type", json_object_new_string("unix"));
                json_object_object_add(addr, "data", unix_data);
                json_object_object_add(data, "addr", addr);
                json_object_object_add(data, "server", json_object_new_boolean(true));
                json_object_object_add(data, "wait", json_object_new_boolean(false));
                json_object_object_add(backend, "type", json_object_new_string("socket"));
                json_object_object_add(backend, "data", data);
                json_object_object_add(chardev, "id", json_object_new_string("vigil-debug"));
                json_object_object_add(chardev, "backend", backend);
        }
        strv_builder_add_owned(&b, chardev ? qmp_command("chardev-add", TAKE_PTR(chardev)) : NULL);
        device = json_object_new_object();
        if (device) {
                json_object_object_add(device, "driver", json_object_new_string("virtconsole"));
                json_object_object_add(device, "chardev", json_object_new_string("vigil-debug"));
                json_object_object_add(device, "bus", json_object_new_string(QEMU_VSERIAL_ID ".0"));
        }
        strv_builder_add_owned(&b, device ? qmp_command("device_add", TAKE_PTR(device)) : NULL);
        strv_builder_add_owned(&b, qmp_command("cont", NULL));
        return strv_builder_finish(&b, ret);
}

/* glibc puts QEMU's large allocations (the kernel and initrd it reads,
 * tens of MB) on transparent huge pages: ~20 ms less from spawn to a loaded
 * snapshot or the first guest instruction (median of 12, 0.150 -> 0.131 s
 * for QEMU with the tiny guest's 60 MB kernel). */
#define QEMU_MALLOC_TUNABLE "glibc.malloc.hugetlb=1"

/* The environment both kinds get: host env with our variables replacing any
 * inherited ones, and QEMU_MALLOC_TUNABLE added to GLIBC_TUNABLES unless it
 * says otherwise. */
static int build_env(const struct machine_config *c, char *const *host_env, char ***ret) {
        struct strv_builder b = {};
        static const char *const ours[] = {"TMPDIR", "SHARED_DIR", "USE_TMPDIR", "GLIBC_TUNABLES"};
        const char *tunables = qemu_env_get(host_env, "GLIBC_TUNABLES");

        for (char *const *e = host_env; e && *e; e++) {
                bool skip = strncmp(*e, "QEMU_VDE_SOCKET_", 16) == 0 && c->n_vlans > 0;
                for (size_t i = 0; i < ELEMENTSOF(ours) && !skip; i++)
                        skip = env_sets(*e, ours[i]);
                if (!skip)
                        strv_builder_add(&b, *e);
        }
        strv_builder_addf(&b, "TMPDIR=%s", c->state_dir);
        strv_builder_addf(&b, "SHARED_DIR=%s", c->shared_dir);
        strv_builder_add(&b, "USE_TMPDIR=1");
        if (!tunables || !*tunables)
                strv_builder_add(&b, "GLIBC_TUNABLES=" QEMU_MALLOC_TUNABLE);
        else if (strstr(tunables, "glibc.malloc.hugetlb="))
                strv_builder_addf(&b, "GLIBC_TUNABLES=%s", tunables);
        else
                strv_builder_addf(&b, "GLIBC_TUNABLES=%s:" QEMU_MALLOC_TUNABLE, tunables);
        for (size_t i = 0; i < c->n_vlans; i++)
                strv_builder_addf(&b, "QEMU_VDE_SOCKET_%llu=%s", (unsigned long long) c->vlans[i].nr,
                                  c->vlans[i].socket);
        return strv_builder_finish(&b, ret);
}

/* Both kinds of VM run in the state dir with the same environment. Takes
 * the argv built in @argv (and frees it on failure). */
static int cmd_finish(const struct machine_config *c, char *const *host_env, struct strv_builder *argv,
                      struct qemu_cmd *ret) {
        struct qemu_cmd cmd = {};
        int r = strv_builder_finish(argv, &cmd.argv);

        if (r >= 0)
                r = build_env(c, host_env, &cmd.env);
        if (r >= 0) {
                cmd.cwd = strdup(c->state_dir);
                r = cmd.cwd ? 0 : -ENOMEM;
        }
        if (r < 0) {
                qemu_cmd_done(&cmd);
                return r;
        }
        *ret = cmd;
        return 0;
}

int qemu_build_start_script(const struct machine_config *c, bool allow_reboot, char *const *host_env,
                            struct qemu_cmd *ret) {
        _cleanup_strv_free_ char **ctl = NULL;
        struct strv_builder b = {};
        size_t len;
        char *line, *p;
        bool nographic = !qemu_env_get(host_env, "DISPLAY") && !qemu_env_get(host_env, "WAYLAND_DISPLAY");
        int r;

        r = qemu_control_args(c->state_dir, allow_reboot, nographic, &ctl);
        if (r < 0)
                return r;
        /* The reference joins with single spaces, unquoted: "<script> -qmp ... -nographic"
         * (then its vsock arguments: vigil's extra_args). */
        len = strlen("exec ") + strlen(c->start_script) + 1;
        for (char **a = ctl; *a; a++)
                len += strlen(*a) + 1;
        for (char **a = c->extra_args; a && *a; a++)
                len += strlen(*a) + 1;
        line = malloc(len);
        if (!line)
                return -ENOMEM;
        /* exec: QEMU (the script execs it) keeps the pid the supervisor tracks. */
        p = stpcpy(stpcpy(line, "exec "), c->start_script);
        for (char **a = ctl; *a; a++) {
                *p++ = ' ';
                p = stpcpy(p, *a);
        }
        for (char **a = c->extra_args; a && *a; a++) {
                *p++ = ' ';
                p = stpcpy(p, *a);
        }
        strv_builder_add(&b, "/bin/sh");
        strv_builder_add(&b, "-c");
        strv_builder_add_owned(&b, line);
        return cmd_finish(c, host_env, &b, ret);
}

static const char *disk_format(const char *path) {
        size_t n = strlen(path);
        if (n > 6 && streq(path + n - 6, ".qcow2"))
                return "qcow2";
        return "raw";
}

int qemu_build_direct(const struct machine_config *c, const char *accel, bool allow_reboot, char *const *host_env,
                      struct qemu_cmd *ret) {
        _cleanup_strv_free_ char **ctl = NULL;
        struct strv_builder b = {};
        int r;

        r = qemu_control_args(c->state_dir, allow_reboot, true, &ctl);
        if (r < 0)
                return r;
        strv_builder_add(&b, c->binary);
        strv_builder_add(&b, "-name");
        strv_builder_add(&b, c->name);
        /* -nodefaults: no default NIC (user-mode networking could reach off-host),
         * no default serial/monitor competing with ours. */
        strv_builder_add(&b, "-nodefaults");
        strv_builder_add(&b, "-accel");
        strv_builder_add(&b, accel);
        strv_builder_add(&b, "-m");
        strv_builder_addf(&b, "%llu", (unsigned long long) c->memory_mb);
        strv_builder_add(&b, "-smp");
        strv_builder_addf(&b, "%llu", (unsigned long long) c->cpus);
        strv_builder_add(&b, "-kernel");
        strv_builder_add(&b, c->kernel);
        if (c->initrd) {
                strv_builder_add(&b, "-initrd");
                strv_builder_add(&b, c->initrd);
        }
        if (c->append) {
                strv_builder_add(&b, "-append");
                strv_builder_add(&b, c->append);
        }
        if (c->disk) {
                strv_builder_add(&b, "-drive");
                strv_builder_addf(&b, "index=1,id=drive1,if=none,file=%s,format=%s,cache=writeback,werror=report",
                                  c->disk, disk_format(c->disk));
                strv_builder_add(&b, "-device");
                strv_builder_add(&b, "virtio-blk-pci,bootindex=1,serial=root,drive=drive1");
        }
        for (size_t i = 0, k = 1; i < c->n_vlans; i++) {
                if (!c->vlans[i].mac)
                        continue;
                strv_builder_add(&b, "-device");
                /* romfile=: no iPXE option ROM, the kernel is loaded directly. */
                strv_builder_addf(&b, "virtio-net-pci,netdev=vlan%zu,mac=%s,id=nic%zu,romfile=", k, c->vlans[i].mac,
                                  k);
                strv_builder_add(&b, "-netdev");
                strv_builder_addf(&b, "vde,id=vlan%zu,sock=%s", k, c->vlans[i].socket);
                k++;
        }
        strv_builder_add(&b, "-virtfs");
        strv_builder_addf(&b, "local,path=%s,security_model=none,mount_tag=shared", c->shared_dir);
        strv_builder_add(&b, "-virtfs");
        strv_builder_addf(&b, "local,path=%s/xchg,security_model=none,mount_tag=xchg", c->state_dir);
        strv_builder_addv(&b, ctl);
        strv_builder_addv(&b, c->extra_args);
        return cmd_finish(c, host_env, &b, ret);
}

const char *qemu_default_nic(const struct machine_config *c) {
        return c->start_script ? "virtio-net-pci.1" : "nic1";
}

/* clang-format off */
static const char *const probe_names[_QEMU_KVM_PROBE_MAX] = {
        [QEMU_KVM_UNTESTED] = "untested",
        [QEMU_KVM_WORKS] = "works",
        [QEMU_KVM_MISSING] = "missing",
        [QEMU_KVM_HANGS] = "hangs",
        [QEMU_KVM_FAILED] = "failed",
};
/* clang-format on */

const char *qemu_kvm_probe_to_string(enum qemu_kvm_probe p) {
        if (p < 0 || p >= _QEMU_KVM_PROBE_MAX)
                return NULL;
        return probe_names[p];
}

enum qemu_kvm_probe qemu_kvm_probe_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(probe_names); i++)
                if (streq(probe_names[i], s))
                        return (enum qemu_kvm_probe) i;
        return _QEMU_KVM_PROBE_INVALID;
}

/* Only what a probe found: /dev/kvm missing is cheap to see again, and may
 * change within a boot (modprobe kvm). */
static bool probe_verdict(enum qemu_kvm_probe p) {
        return p == QEMU_KVM_WORKS || p == QEMU_KVM_HANGS || p == QEMU_KVM_FAILED;
}

int qemu_kvm_probe_host_line(const char *key, enum qemu_kvm_probe p, char *ret, size_t size) {
        int n;

        if (!key || !*key || strpbrk(key, " \t\n") || !probe_verdict(p))
                return -EINVAL;
        n = snprintf(ret, size, "%s %s\n", key, qemu_kvm_probe_to_string(p));
        return n < 0 || (size_t) n >= size ? -ENOBUFS : 0;
}

enum qemu_kvm_probe qemu_kvm_probe_host_parse(const char *text, const char *key) {
        size_t k = key ? strlen(key) : 0;
        char verdict[16];
        const char *v;
        size_t len;

        if (!text || k == 0 || strncmp(text, key, k) != 0 || text[k] != ' ')
                return QEMU_KVM_UNTESTED;
        v = text + k + 1;
        len = strcspn(v, "\n");
        if (len == 0 || len >= sizeof verdict || (v[len] == '\n' && v[len + 1] != 0))
                return QEMU_KVM_UNTESTED;
        memcpy(verdict, v, len);
        verdict[len] = 0;
        enum qemu_kvm_probe p = qemu_kvm_probe_from_string(verdict);
        return probe_verdict(p) ? p : QEMU_KVM_UNTESTED;
}

bool qemu_accel_needs_probe(enum machine_accel requested) {
        return requested == MACHINE_ACCEL_AUTO;
}

struct accel_rule {
        const char *accel;
        const char *reason;
};

/* auto: KVM only when a probe guest actually ran under it. */
static const struct accel_rule auto_rules[_QEMU_KVM_PROBE_MAX] = {
        [QEMU_KVM_UNTESTED] = {"tcg", "KVM was not probed"},
        [QEMU_KVM_WORKS] = {"kvm", "/dev/kvm works (probe guest ran)"},
        [QEMU_KVM_MISSING] = {"tcg", "/dev/kvm is not available"},
        [QEMU_KVM_HANGS] = {"tcg", "/dev/kvm exists but a KVM guest made no progress (probe timed out)"},
        [QEMU_KVM_FAILED] = {"tcg", "QEMU could not use KVM (probe failed)"},
};

const char *qemu_accel_decide(enum machine_accel requested, enum qemu_kvm_probe probe, const char **ret_reason) {
        const char *reason;
        const char *accel;

        switch (requested) {
        case MACHINE_ACCEL_KVM:
                accel = "kvm";
                reason = "accel \"kvm\" configured";
                break;
        case MACHINE_ACCEL_TCG:
                accel = "tcg";
                reason = "accel \"tcg\" configured";
                break;
        case MACHINE_ACCEL_AUTO:
        case _MACHINE_ACCEL_MAX:
        case _MACHINE_ACCEL_INVALID:
        default:
                if (probe < 0 || probe >= _QEMU_KVM_PROBE_MAX)
                        probe = QEMU_KVM_UNTESTED;
                accel = auto_rules[probe].accel;
                reason = auto_rules[probe].reason;
                break;
        }
        if (ret_reason)
                *ret_reason = reason;
        return accel;
}
