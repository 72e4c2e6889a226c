/* SPDX-License-Identifier: MIT */
/*
 * machine-config.c: MSG_CONFIG JSON -> struct machine_config (see
 * machine-config.h) for both backends: the "qemu" object, or the "nspawn"
 * object with per-VLAN TAP names and the hosts list. Pure.
 */
#include <ctype.h>
#include <json-c/json.h>
#include <stdarg.h>

#include "guest-proto.h"
#include "machine-config.h"
#include "macro.h"
#include "msg.h"

/* clang-format off */
static const char *const backend_kind_names[_MACHINE_BACKEND_KIND_MAX] = {
        [MACHINE_BACKEND_QEMU] = "qemu",
        [MACHINE_BACKEND_NSPAWN] = "nspawn",
};

static const char *const accel_names[_MACHINE_ACCEL_MAX] = {
        [MACHINE_ACCEL_AUTO] = "auto",
        [MACHINE_ACCEL_KVM] = "kvm",
        [MACHINE_ACCEL_TCG] = "tcg",
};
/* clang-format on */

const char *machine_accel_to_string(enum machine_accel a) {
        if (a < 0 || a >= _MACHINE_ACCEL_MAX)
                return NULL;
        return accel_names[a];
}

enum machine_accel machine_accel_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(accel_names); i++)
                if (streq(accel_names[i], s))
                        return (enum machine_accel) i;
        return _MACHINE_ACCEL_INVALID;
}

const char *machine_backend_kind_to_string(enum machine_backend_kind k) {
        if (k < 0 || k >= _MACHINE_BACKEND_KIND_MAX)
                return NULL;
        return backend_kind_names[k];
}

enum machine_backend_kind machine_backend_kind_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(backend_kind_names); i++)
                if (streq(backend_kind_names[i], s))
                        return (enum machine_backend_kind) i;
        return _MACHINE_BACKEND_KIND_INVALID;
}

struct ctx {
        char *error;
        size_t size;
};

_printf_(2, 3) static int bad(struct ctx *c, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(c->error, c->size, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* Optional string: absent or null leaves *ret NULL. */
static int get_str(struct ctx *c, json_object *o, const char *key, bool required, char **ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required)
                        return bad(c, "machine config: missing \"%s\"", key);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return bad(c, "machine config: \"%s\" must be a string", key);
        const char *s = json_object_get_string(v);
        if (strlen(s) > MSG_STR_MAX)
                return bad(c, "machine config: \"%s\" is longer than %u bytes", key, MSG_STR_MAX);
        if (required && !*s)
                return bad(c, "machine config: \"%s\" must not be empty", key);
        *ret = strdup(s);
        if (!*ret)
                return -ENOMEM;
        return 0;
}

static int get_u64(struct ctx *c, json_object *o, const char *key, uint64_t min, uint64_t max, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_int))
                return bad(c, "machine config: \"%s\" must be an integer", key);
        int64_t i = json_object_get_int64(v);
        if (i < 0 || (uint64_t) i < min || (uint64_t) i > max)
                return bad(c, "machine config: \"%s\" must be between %llu and %llu", key, (unsigned long long) min,
                           (unsigned long long) max);
        *ret = (uint64_t) i;
        return 0;
}

static int get_bool(struct ctx *c, json_object *o, const char *key, bool *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return bad(c, "machine config: \"%s\" must be true or false", key);
        *ret = json_object_get_boolean(v);
        return 0;
}

/* IFNAMSIZ is 16 with the NUL. Stricter than the kernel: the name also goes
 * into the setup script and nspawn's argv. */
static bool ifname_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 15 || streq(s, ".") || streq(s, ".."))
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("._-", *s))
                        return false;
        return true;
}

static int parse_vlans(struct ctx *c, json_object *root, struct machine_config *m) {
        json_object *arr;

        if (!json_object_object_get_ex(root, "vlans", &arr) || json_object_is_type(arr, json_type_null))
                return 0;
        if (!json_object_is_type(arr, json_type_array))
                return bad(c, "machine config: \"vlans\" must be an array");
        size_t n = json_object_array_length(arr);
        if (n > 64)
                return bad(c, "machine config: more than 64 vlans");
        m->vlans = calloc(MAX(n, (size_t) 1), sizeof *m->vlans);
        if (!m->vlans)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(arr, i);
                struct machine_vlan *vl = &m->vlans[i];
                int r;

                m->n_vlans = i + 1;
                if (!json_object_is_type(v, json_type_object))
                        return bad(c, "machine config: vlans[%zu] must be an object", i);
                vl->nr = UINT64_MAX;
                if ((r = get_u64(c, v, "nr", 0, 4095, &vl->nr)) < 0 ||
                    (r = get_str(c, v, "socket", m->backend_kind == MACHINE_BACKEND_QEMU, &vl->socket)) < 0 ||
                    (r = get_str(c, v, "tap", m->backend_kind == MACHINE_BACKEND_NSPAWN, &vl->tap)) < 0 ||
                    (r = get_str(c, v, "mac", false, &vl->mac)) < 0 ||
                    (r = get_str(c, v, "address", false, &vl->address)) < 0)
                        return r;
                if (vl->nr == UINT64_MAX)
                        return bad(c, "machine config: vlans[%zu] lacks \"nr\"", i);
                /* IFNAMSIZ is 16 with the NUL; '/', ':' and blanks are not allowed in names. */
                if (vl->tap && !ifname_valid(vl->tap))
                        return bad(c,
                                   "machine config: vlans[%zu].tap \"%s\" is not an interface name (1-15 of "
                                   "A-Z a-z 0-9 . _ -)",
                                   i, vl->tap);
                if (vl->mac && !machine_mac_valid(vl->mac))
                        return bad(c,
                                   "machine config: vlans[%zu].mac \"%s\" is not a MAC address like 52:54:00:12:01:03",
                                   i, vl->mac);
        }
        return 0;
}

bool machine_mac_valid(const char *s) {
        for (size_t i = 0; i < 17; i++) {
                bool colon = i % 3 == 2;
                if (colon ? s[i] != ':' : !isxdigit((unsigned char) s[i]))
                        return false;
        }
        return s[17] == 0;
}

/* Hostnames and addresses land in a shell script and /etc/hosts: keep them to
 * what a hostname or an address can hold. */
static bool host_word_valid(const char *s, bool address) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr(address ? ".:/" : "-._", *s))
                        return false;
        return true;
}

static int parse_hosts(struct ctx *c, json_object *root, struct machine_config *m) {
        json_object *arr;

        if (!json_object_object_get_ex(root, "hosts", &arr) || json_object_is_type(arr, json_type_null))
                return 0;
        if (!json_object_is_type(arr, json_type_array))
                return bad(c, "machine config: \"hosts\" must be an array");
        size_t n = json_object_array_length(arr);
        if (n > 1024)
                return bad(c, "machine config: more than 1024 hosts");
        m->hosts = calloc(MAX(n, (size_t) 1), sizeof *m->hosts);
        if (!m->hosts)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *h = json_object_array_get_idx(arr, i);
                struct machine_host *e = &m->hosts[i];
                int r;

                m->n_hosts = i + 1;
                if (!json_object_is_type(h, json_type_object))
                        return bad(c, "machine config: hosts[%zu] must be an object", i);
                if ((r = get_str(c, h, "name", true, &e->name)) < 0 ||
                    (r = get_str(c, h, "address", true, &e->address)) < 0)
                        return r;
                if (!host_word_valid(e->name, false) || !host_word_valid(e->address, true))
                        return bad(c, "machine config: hosts[%zu] (\"%s\" \"%s\") is not a hostname and an address", i,
                                   e->name, e->address);
        }
        return 0;
}

static int parse_strv(struct ctx *c, json_object *o, const char *key, char ***ret) {
        json_object *arr;
        char **v;

        if (!json_object_object_get_ex(o, key, &arr) || json_object_is_type(arr, json_type_null))
                return 0;
        if (!json_object_is_type(arr, json_type_array))
                return bad(c, "machine config: \"%s\" must be an array of strings", key);
        size_t n = json_object_array_length(arr);
        if (n > MSG_STRV_MAX)
                return bad(c, "machine config: \"%s\" has more than %u elements", key, MSG_STRV_MAX);
        v = calloc(n + 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        *ret = v;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(e, json_type_string))
                        return bad(c, "machine config: \"%s\"[%zu] must be a string", key, i);
                v[i] = strdup(json_object_get_string(e));
                if (!v[i])
                        return -ENOMEM;
        }
        return 0;
}

static int parse_qemu(struct ctx *c, json_object *root, struct machine_config *m) {
        json_object *q;
        int r;

        if (!json_object_object_get_ex(root, "qemu", &q) || !json_object_is_type(q, json_type_object))
                return bad(c, "machine config: backend \"qemu\" needs a \"qemu\" object");
        if ((r = get_str(c, q, "start_script", false, &m->start_script)) < 0 ||
            (r = get_str(c, q, "kernel", false, &m->kernel)) < 0 ||
            (r = get_str(c, q, "initrd", false, &m->initrd)) < 0 ||
            (r = get_str(c, q, "append", false, &m->append)) < 0 || (r = get_str(c, q, "disk", false, &m->disk)) < 0 ||
            (r = get_str(c, q, "binary", false, &m->binary)) < 0 ||
            (r = get_u64(c, q, "memory_mb", 16, 1024 * 1024, &m->memory_mb)) < 0 ||
            (r = get_u64(c, q, "cpus", 1, 1024, &m->cpus)) < 0 ||
            (r = parse_strv(c, q, "extra_args", &m->extra_args)) < 0)
                return r;
        if (!!m->start_script == !!m->kernel)
                return bad(c, "machine config: \"qemu\" needs exactly one of \"start_script\" or \"kernel\"");
        if (m->start_script && !*m->start_script)
                return bad(c, "machine config: \"start_script\" must not be empty");
        if (!m->binary && !(m->binary = strdup("qemu-system-x86_64")))
                return -ENOMEM;
        return 0;
}

static int parse_nspawn(struct ctx *c, json_object *root, struct machine_config *m) {
        json_object *o;
        int r;

        if (!json_object_object_get_ex(root, "nspawn", &o) || !json_object_is_type(o, json_type_object))
                return bad(c, "machine config: backend \"nspawn\" needs an \"nspawn\" object");
        if ((r = get_str(c, o, "tree", true, &m->tree)) < 0 || (r = get_str(c, o, "binary", false, &m->binary)) < 0 ||
            (r = parse_strv(c, o, "extra_args", &m->extra_args)) < 0)
                return r;
        /* sun_path holds 108 bytes; "<state_dir>/host/backdoor.sock" must fit. */
        if (strlen(m->state_dir) + strlen("/host/backdoor.sock") >= 108)
                return bad(c,
                           "machine config: state_dir \"%s\" is too long for the backdoor socket path (max 88 "
                           "bytes)",
                           m->state_dir);
        if (m->tree[0] != '/')
                return bad(c, "machine config: \"nspawn.tree\" must be an absolute path, not \"%s\"", m->tree);
        if (!host_word_valid(m->name, false))
                return bad(c,
                           "machine config: \"name\" \"%s\" cannot be a container's hostname (letters, digits, "
                           "'-', '.', '_')",
                           m->name);
        if (!m->binary && !(m->binary = strdup("systemd-nspawn")))
                return -ENOMEM;
        return 0;
}

int machine_config_parse(const char *json, struct machine_config *ret, char *error, size_t error_size) {
        struct ctx c = {.error = error, .size = error_size};
        struct machine_config m = {
                .node_number = 1,
                .memory_mb = 256,
                .cpus = 1,
                .connect_s = 300,
                .output_max = GUEST_OUTPUT_MAX_DEFAULT,
        };
        _cleanup_free_ char *accel = NULL, *channel = NULL;
        json_object *root, *t;
        int r;

        if (error_size > 0)
                error[0] = 0;
        root = json_tokener_parse(json);
        if (!root || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                return bad(&c, "machine config: not a JSON object");
        }
        if ((r = get_str(&c, root, "name", true, &m.name)) < 0 ||
            (r = get_str(&c, root, "backend", false, &m.backend)) < 0 ||
            (r = get_u64(&c, root, "node_number", 1, 254, &m.node_number)) < 0 ||
            (r = get_str(&c, root, "state_dir", true, &m.state_dir)) < 0 ||
            (r = get_str(&c, root, "shared_dir", false, &m.shared_dir)) < 0 ||
            (r = get_str(&c, root, "out_dir", true, &m.out_dir)) < 0 ||
            (r = get_bool(&c, root, "keep_state", &m.keep_state)) < 0 ||
            (r = get_bool(&c, root, "allow_reboot", &m.allow_reboot)) < 0 ||
            (r = get_str(&c, root, "accel", false, &accel)) < 0)
                goto fail;
        if (strlen(m.name) > NAME_MAX_LEN) {
                r = bad(&c, "machine config: \"name\" is longer than %u bytes", NAME_MAX_LEN);
                goto fail;
        }
        /* sun_path holds 108 bytes; "<state_dir>/monitor" must fit. */
        if (strlen(m.state_dir) + strlen("/monitor") >= 108) {
                r = bad(&c, "machine config: state_dir \"%s\" is too long for unix socket paths (max 99 bytes)",
                        m.state_dir);
                goto fail;
        }
        if (!m.backend && !(m.backend = strdup("qemu"))) {
                r = -ENOMEM;
                goto fail;
        }
        m.backend_kind = machine_backend_kind_from_string(m.backend);
        if (m.backend_kind < 0) {
                r = bad(&c, "machine config: backend \"%s\" is not supported by this worker (\"qemu\" or \"nspawn\")",
                        m.backend);
                goto fail;
        }
        if ((r = parse_vlans(&c, root, &m)) < 0 || (r = parse_hosts(&c, root, &m)) < 0)
                goto fail;
        m.accel = accel ? machine_accel_from_string(accel) : MACHINE_ACCEL_AUTO;
        if (m.accel < 0) {
                r = bad(&c, "machine config: \"accel\" must be \"auto\", \"kvm\" or \"tcg\", not \"%s\"", accel);
                goto fail;
        }
        if (!m.shared_dir && asprintf(&m.shared_dir, "%s/xchg", m.state_dir) < 0) {
                m.shared_dir = NULL;
                r = -ENOMEM;
                goto fail;
        }
        if ((r = m.backend_kind == MACHINE_BACKEND_NSPAWN ? parse_nspawn(&c, root, &m) : parse_qemu(&c, root, &m)) < 0)
                goto fail;
        if ((r = get_str(&c, root, "guest_channel", false, &channel)) < 0)
                goto fail;
        if (channel && !streq(channel, "reference") && !streq(channel, "fast")) {
                r = bad(&c, "machine config: \"guest_channel\" must be \"reference\" or \"fast\", not \"%s\"",
                        channel);
                goto fail;
        }
        m.fast_path = channel && streq(channel, "fast");
        if (json_object_object_get_ex(root, "timeouts", &t) && json_object_is_type(t, json_type_object) &&
            (r = get_u64(&c, t, "connect_s", 0, UINT32_MAX, &m.connect_s)) < 0)
                goto fail;
        if (json_object_object_get_ex(root, "limits", &t) && json_object_is_type(t, json_type_object) &&
            (r = get_u64(&c, t, "output_max", 1, 1024ull * 1024 * 1024, &m.output_max)) < 0)
                goto fail;

        json_object_put(root);
        *ret = m;
        return 0;
fail:
        json_object_put(root);
        machine_config_done(&m);
        if (r == -ENOMEM)
                (void) snprintf(error, error_size, "machine config: out of memory");
        return r;
}

void machine_config_done(struct machine_config *c) {
        free(c->name);
        free(c->backend);
        free(c->state_dir);
        free(c->shared_dir);
        free(c->out_dir);
        for (size_t i = 0; i < c->n_vlans; i++) {
                free(c->vlans[i].socket);
                free(c->vlans[i].tap);
                free(c->vlans[i].mac);
                free(c->vlans[i].address);
        }
        free(c->vlans);
        for (size_t i = 0; i < c->n_hosts; i++) {
                free(c->hosts[i].name);
                free(c->hosts[i].address);
        }
        free(c->hosts);
        free(c->tree);
        free(c->start_script);
        free(c->kernel);
        free(c->initrd);
        free(c->append);
        free(c->disk);
        free(c->binary);
        strv_free(c->extra_args);
        *c = (struct machine_config){};
}
