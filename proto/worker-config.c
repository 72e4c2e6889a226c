/* SPDX-License-Identifier: MIT */
/*
 * worker-config.c owns the field tables of the machine and switch configs
 * and the three walks over them: JSON -> struct (parse, strict: every key
 * known, typed and bounded), struct -> JSON (write), and free/compare. A key
 * added to a config is one row in its table; the front end's writer, the
 * worker's parser and the round-trip test (tests/unit/test-worker-config.c)
 * all follow. Pure.
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defaults.h"
#include "macro.h"
#include "msg.h"
#include "worker-config.h"

/* clang-format off */
static const char *const backend_kind_names[_MACHINE_BACKEND_KIND_MAX] = {
        [MACHINE_BACKEND_QEMU] = "qemu",
        [MACHINE_BACKEND_NSPAWN] = "nspawn",
        [MACHINE_BACKEND_SSH] = "ssh",
};

static const char *const accel_names[_MACHINE_ACCEL_MAX] = {
        [MACHINE_ACCEL_AUTO] = "auto",
        [MACHINE_ACCEL_KVM] = "kvm",
        [MACHINE_ACCEL_TCG] = "tcg",
};

static const char *const guest_channel_names[_MACHINE_GUEST_CHANNEL_MAX] = {
        [MACHINE_GUEST_CHANNEL_REFERENCE] = "reference",
        [MACHINE_GUEST_CHANNEL_FAST] = "fast",
};
/* clang-format on */

static int names_lookup(const char *const *names, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (streq(names[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *machine_accel_to_string(enum machine_accel a) {
        return a >= 0 && a < _MACHINE_ACCEL_MAX ? accel_names[a] : NULL;
}

enum machine_accel machine_accel_from_string(const char *s) {
        return (enum machine_accel) names_lookup(accel_names, ELEMENTSOF(accel_names), s);
}

const char *machine_guest_channel_to_string(enum machine_guest_channel c) {
        return c >= 0 && c < _MACHINE_GUEST_CHANNEL_MAX ? guest_channel_names[c] : NULL;
}

enum machine_guest_channel machine_guest_channel_from_string(const char *s) {
        return (enum machine_guest_channel) names_lookup(guest_channel_names, ELEMENTSOF(guest_channel_names), s);
}

const char *machine_backend_kind_to_string(enum machine_backend_kind k) {
        return k >= 0 && k < _MACHINE_BACKEND_KIND_MAX ? backend_kind_names[k] : NULL;
}

enum machine_backend_kind machine_backend_kind_from_string(const char *s) {
        return (enum machine_backend_kind) names_lookup(backend_kind_names, ELEMENTSOF(backend_kind_names), s);
}

/* ---- the tables ---- */

/* clang-format off */
#define STR(k, s, f, ...)  {.key = k, .type = WORKER_CONFIG_STRING, .offset = offsetof(s, f), __VA_ARGS__}
#define U64(k, s, f, ...)  {.key = k, .type = WORKER_CONFIG_U64, .offset = offsetof(s, f), __VA_ARGS__}
#define BOOL(k, s, f, ...) {.key = k, .type = WORKER_CONFIG_BOOL, .offset = offsetof(s, f), __VA_ARGS__}
#define STRV(k, s, f, ...) {.key = k, .type = WORKER_CONFIG_STRV, .offset = offsetof(s, f), __VA_ARGS__}
#define ENUM(k, s, f, n, ...) \
        {.key = k, .type = WORKER_CONFIG_ENUM, .offset = offsetof(s, f), .names = n, .n_names = ELEMENTSOF(n), \
         __VA_ARGS__}
#define OBJECT(k, o, ...)  {.key = k, .type = WORKER_CONFIG_OBJECT, .object = &(o), __VA_ARGS__}
#define ARRAY(k, s, f, o, ...) \
        {.key = k, .type = WORKER_CONFIG_ARRAY, .offset = offsetof(s, f), .count_offset = offsetof(s, n_##f), \
         .object = &(o), __VA_ARGS__}
#define TABLE(s, fields)   {fields, ELEMENTSOF(fields), sizeof(s)}
/* clang-format on */

static bool machine_is_qemu(const void *base) {
        return ((const struct machine_config *) base)->backend_kind == MACHINE_BACKEND_QEMU;
}

static bool machine_is_nspawn(const void *base) {
        return ((const struct machine_config *) base)->backend_kind == MACHINE_BACKEND_NSPAWN;
}

static bool machine_is_ssh(const void *base) {
        return ((const struct machine_config *) base)->backend_kind == MACHINE_BACKEND_SSH;
}

/* clang-format off */
static const struct worker_config_field machine_vlan_fields[] = {
        U64("nr", struct machine_vlan, nr, .required = true, .max = 4095),
        STR("socket", struct machine_vlan, socket),
        STR("tap", struct machine_vlan, tap),
        STR("mac", struct machine_vlan, mac),
        STR("address", struct machine_vlan, address),
};
static const struct worker_config_object machine_vlan_object = TABLE(struct machine_vlan, machine_vlan_fields);

static const struct worker_config_field machine_host_fields[] = {
        STR("name", struct machine_host, name, .required = true),
        STR("address", struct machine_host, address, .required = true),
};
static const struct worker_config_object machine_host_object = TABLE(struct machine_host, machine_host_fields);

static const struct worker_config_field machine_qemu_fields[] = {
        STR("start_script", struct machine_config, start_script),
        STR("kernel", struct machine_config, kernel),
        STR("initrd", struct machine_config, initrd),
        STR("append", struct machine_config, append),
        STR("disk", struct machine_config, disk),
        STR("binary", struct machine_config, binary),
        U64("memory_mb", struct machine_config, memory_mb, .min = 16, .max = 1024 * 1024, .def = DEFAULT_MEMORY_MB),
        U64("cpus", struct machine_config, cpus, .min = 1, .max = 1024, .def = DEFAULT_CPUS),
        STRV("extra_args", struct machine_config, extra_args, .max = MSG_STRV_MAX),
};
static const struct worker_config_object machine_qemu_object = TABLE(struct machine_config, machine_qemu_fields);

static const struct worker_config_field machine_nspawn_fields[] = {
        STR("tree", struct machine_config, tree),
        STR("start_script", struct machine_config, start_script), /* a NixOS run-<name>-nspawn instead of a tree */
        STR("binary", struct machine_config, binary),
        STRV("extra_args", struct machine_config, extra_args, .max = MSG_STRV_MAX),
};
static const struct worker_config_object machine_nspawn_object = TABLE(struct machine_config, machine_nspawn_fields);

static const struct worker_config_field machine_ssh_fields[] = {
        STR("host", struct machine_config, ssh_host, .required = true),
        STR("user", struct machine_config, ssh_user),
        U64("port", struct machine_config, ssh_port, .max = 65535),
        STR("identity_file", struct machine_config, ssh_identity_file),
        STR("known_hosts", struct machine_config, ssh_known_hosts),
        STR("proxy_jump", struct machine_config, ssh_proxy_jump),
        STRV("options", struct machine_config, ssh_options, .max = 64),
        U64("connect_timeout_s", struct machine_config, ssh_connect_timeout_s, .max = 3600),
};
static const struct worker_config_object machine_ssh_object = TABLE(struct machine_config, machine_ssh_fields);

static const struct worker_config_field machine_timeouts_fields[] = {
        U64("connect_s", struct machine_config, connect_s, .max = UINT32_MAX, .def = DEFAULT_CONNECT_S),
};
static const struct worker_config_object machine_timeouts_object =
        TABLE(struct machine_config, machine_timeouts_fields);

static const struct worker_config_field machine_limits_fields[] = {
        U64("output_max", struct machine_config, output_max, .min = 1, .max = 1024ull * 1024 * 1024,
            .def = DEFAULT_OUTPUT_MAX),
};
static const struct worker_config_object machine_limits_object = TABLE(struct machine_config, machine_limits_fields);

static const struct worker_config_field machine_fields[] = {
        STR("name", struct machine_config, name, .required = true, .max = NAME_MAX_LEN),
        ENUM("backend", struct machine_config, backend_kind, backend_kind_names, .def = MACHINE_BACKEND_QEMU),
        U64("node_number", struct machine_config, node_number, .min = 1, .max = 254, .def = 1),
        STR("state_dir", struct machine_config, state_dir, .required = true),
        STR("shared_dir", struct machine_config, shared_dir),
        STR("out_dir", struct machine_config, out_dir, .required = true),
        BOOL("keep_state", struct machine_config, keep_state),
        BOOL("allow_reboot", struct machine_config, allow_reboot),
        ENUM("accel", struct machine_config, accel, accel_names, .def = MACHINE_ACCEL_AUTO),
        ENUM("guest_channel", struct machine_config, guest_channel, guest_channel_names,
             .def = MACHINE_GUEST_CHANNEL_REFERENCE),
        STR("boot_cache", struct machine_config, boot_cache),
        ARRAY("vlans", struct machine_config, vlans, machine_vlan_object, .max = 64),
        ARRAY("hosts", struct machine_config, hosts, machine_host_object, .max = 1024),
        OBJECT("qemu", machine_qemu_object, .required = true, .when = machine_is_qemu,
               .when_text = "backend \"qemu\""),
        OBJECT("nspawn", machine_nspawn_object, .required = true, .when = machine_is_nspawn,
               .when_text = "backend \"nspawn\""),
        OBJECT("ssh", machine_ssh_object, .required = true, .when = machine_is_ssh, .when_text = "backend \"ssh\""),
        OBJECT("timeouts", machine_timeouts_object),
        OBJECT("limits", machine_limits_object),
};
const struct worker_config_object worker_config_machine = TABLE(struct machine_config, machine_fields);

static const struct worker_config_field switch_machine_fields[] = {
        STR("name", struct switch_machine, name, .required = true, .max = NAME_MAX_LEN),
        STR("mac", struct switch_machine, mac, .required = true),
        STR("tap", struct switch_machine, tap),
};
static const struct worker_config_object switch_machine_object = TABLE(struct switch_machine, switch_machine_fields);

static const struct worker_config_field switch_fields[] = {
        U64("vlan", struct switch_config, vlan, .required = true, .max = 4095),
        STR("socket_dir", struct switch_config, socket_dir, .required = true),
        STR("out_dir", struct switch_config, out_dir),
        BOOL("pcap", struct switch_config, pcap, .def = true),
        ARRAY("machines", struct switch_config, machines, switch_machine_object, .max = 256),
};
const struct worker_config_object worker_config_switch = TABLE(struct switch_config, switch_fields);
/* clang-format on */

/* ---- parse ---- */

struct wc_parse {
        const char *what;
        char *error;
        size_t size;
};

_printf_(2, 3) static int wc_bad(struct wc_parse *p, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(p->error, p->size, "%s: ", p->what);

        va_start(ap, fmt);
        if (n >= 0 && (size_t) n < p->size)
                (void) vsnprintf(p->error + n, p->size - (size_t) n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

#define AT(base, off, type) ((type *) ((char *) (base) + (off)))

static void wc_path(char *buf, size_t size, const char *path, const char *key) {
        snprintf(buf, size, "%s%s%s", path, *path ? "." : "", key);
}

/* "a", "b" or "c" */
static void wc_names_text(const struct worker_config_field *f, char *buf, size_t size) {
        buf[0] = 0;
        for (size_t i = 0; i < f->n_names; i++)
                snprintf(buf + strlen(buf), size - strlen(buf), "%s\"%s\"",
                         i == 0                ? ""
                         : i + 1 == f->n_names ? " or "
                                               : ", ",
                         f->names[i]);
}

static int wc_set_defaults(const struct worker_config_object *t, void *base) {
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct worker_config_field *f = &t->fields[i];
                int r;

                switch (f->type) {
                case WORKER_CONFIG_STRING:
                        if (f->def_string && !*AT(base, f->offset, char *) &&
                            !(*AT(base, f->offset, char *) = strdup(f->def_string)))
                                return -ENOMEM;
                        break;
                case WORKER_CONFIG_U64:
                        *AT(base, f->offset, uint64_t) = f->def;
                        break;
                case WORKER_CONFIG_BOOL:
                        *AT(base, f->offset, bool) = f->def != 0;
                        break;
                case WORKER_CONFIG_ENUM:
                        *AT(base, f->offset, int) = (int) f->def;
                        break;
                case WORKER_CONFIG_OBJECT:
                        r = wc_set_defaults(f->object, base);
                        if (r < 0)
                                return r;
                        break;
                case WORKER_CONFIG_ARRAY:
                case WORKER_CONFIG_STRV:
                case _WORKER_CONFIG_TYPE_MAX:
                        break;
                }
        }
        return 0;
}

static int wc_parse_object(struct wc_parse *p, const struct worker_config_object *t, json_object *o, void *base,
                           const char *path);

static int wc_parse_string(struct wc_parse *p, const struct worker_config_field *f, json_object *v, const char *key,
                           char **ret) {
        size_t max = f->max ?: MSG_STR_MAX;
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return wc_bad(p, "\"%s\" must be a string", key);
        s = json_object_get_string(v);
        if (strlen(s) > max)
                return wc_bad(p, "\"%s\" is longer than %zu bytes", key, max);
        if (f->required && !*s)
                return wc_bad(p, "\"%s\" must not be empty", key);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int wc_parse_array(struct wc_parse *p, const struct worker_config_field *f, json_object *v, void *base,
                          const char *key) {
        size_t n;
        char *elems;

        if (!json_object_is_type(v, json_type_array))
                return wc_bad(p, "\"%s\" must be an array of objects", key);
        n = json_object_array_length(v);
        if (n > f->max)
                return wc_bad(p, "\"%s\" has more than %llu elements", key, (unsigned long long) f->max);
        elems = calloc(MAX(n, (size_t) 1), f->object->size);
        if (!elems)
                return -ENOMEM;
        *AT(base, f->offset, void *) = elems;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                char where[224];
                int r;

                *AT(base, f->count_offset, size_t) = i + 1; /* so that a failure frees what was parsed */
                snprintf(where, sizeof where, "%s[%zu]", key, i);
                if (!json_object_is_type(e, json_type_object))
                        return wc_bad(p, "%s must be an object", where);
                r = wc_parse_object(p, f->object, e, elems + i * f->object->size, where);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int wc_parse_strv(struct wc_parse *p, const struct worker_config_field *f, json_object *v, const char *key,
                         char ***ret) {
        size_t n;
        char **strv;

        if (!json_object_is_type(v, json_type_array))
                return wc_bad(p, "\"%s\" must be an array of strings", key);
        n = json_object_array_length(v);
        if (n > f->max)
                return wc_bad(p, "\"%s\" has more than %llu elements", key, (unsigned long long) f->max);
        strv = calloc(n + 1, sizeof *strv);
        if (!strv)
                return -ENOMEM;
        *ret = strv;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);

                if (!json_object_is_type(e, json_type_string) || strlen(json_object_get_string(e)) > MSG_STR_MAX)
                        return wc_bad(p, "\"%s\"[%zu] must be a string of at most %u bytes", key, i, MSG_STR_MAX);
                strv[i] = strdup(json_object_get_string(e));
                if (!strv[i])
                        return -ENOMEM;
        }
        return 0;
}

static int wc_parse_value(struct wc_parse *p, const struct worker_config_field *f, json_object *v, void *base,
                          const char *key) {
        char names[128];
        int64_t i;
        int e;

        switch (f->type) {
        case WORKER_CONFIG_STRING:
                return wc_parse_string(p, f, v, key, AT(base, f->offset, char *));
        case WORKER_CONFIG_U64:
                if (!json_object_is_type(v, json_type_int))
                        return wc_bad(p, "\"%s\" must be an integer", key);
                i = json_object_get_int64(v);
                if (i < 0 || (uint64_t) i < f->min || (uint64_t) i > f->max)
                        return wc_bad(p, "\"%s\" must be between %llu and %llu", key, (unsigned long long) f->min,
                                      (unsigned long long) f->max);
                *AT(base, f->offset, uint64_t) = (uint64_t) i;
                return 0;
        case WORKER_CONFIG_BOOL:
                if (!json_object_is_type(v, json_type_boolean))
                        return wc_bad(p, "\"%s\" must be true or false", key);
                *AT(base, f->offset, bool) = json_object_get_boolean(v);
                return 0;
        case WORKER_CONFIG_ENUM:
                wc_names_text(f, names, sizeof names);
                e = json_object_is_type(v, json_type_string)
                            ? names_lookup(f->names, f->n_names, json_object_get_string(v))
                            : -EINVAL;
                if (e < 0)
                        return wc_bad(p, "\"%s\" must be %s, not %s", key, names,
                                      json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
                *AT(base, f->offset, int) = e;
                return 0;
        case WORKER_CONFIG_OBJECT:
                if (!json_object_is_type(v, json_type_object))
                        return wc_bad(p, "\"%s\" must be an object", key);
                return wc_parse_object(p, f->object, v, base, key);
        case WORKER_CONFIG_ARRAY:
                return wc_parse_array(p, f, v, base, key);
        case WORKER_CONFIG_STRV:
                return wc_parse_strv(p, f, v, key, AT(base, f->offset, char **));
        case _WORKER_CONFIG_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

static const struct worker_config_field *wc_field_find(const struct worker_config_object *t, const char *key) {
        for (size_t i = 0; i < t->n_fields; i++)
                if (streq(t->fields[i].key, key))
                        return &t->fields[i];
        return NULL;
}

/* Fields in table order (a "when" sees those before it), then every key must
 * have been one of them: a typo is refused, not ignored. Null = absent. */
static int wc_parse_object(struct wc_parse *p, const struct worker_config_object *t, json_object *o, void *base,
                           const char *path) {
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct worker_config_field *f = &t->fields[i];
                json_object *v = NULL;
                bool present = json_object_object_get_ex(o, f->key, &v) && !json_object_is_type(v, json_type_null);
                char key[192];
                int r;

                wc_path(key, sizeof key, path, f->key);
                if (f->when && !f->when(base)) {
                        if (present)
                                return wc_bad(p, "\"%s\" is only for %s", key, f->when_text);
                        continue;
                }
                if (!present) {
                        if (f->required && *path)
                                return wc_bad(p, "%s lacks \"%s\"", path, f->key);
                        if (f->required)
                                return wc_bad(p, "missing \"%s\"%s%s%s", f->key, f->when_text ? " (" : "",
                                              f->when_text ?: "", f->when_text ? " needs it)" : "");
                        continue;
                }
                r = wc_parse_value(p, f, v, base, key);
                if (r < 0)
                        return r;
        }
        json_object_object_foreach(o, k, v) {
                char key[192];

                (void) v;
                if (!wc_field_find(t, k)) {
                        wc_path(key, sizeof key, path, k);
                        return wc_bad(p, "unknown key \"%s\"", key);
                }
        }
        return 0;
}

int worker_config_parse(const struct worker_config_object *table, const char *what, const char *json, void *ret,
                        char *error, size_t error_size) {
        struct wc_parse p = {.what = what, .error = error, .size = error_size};
        _cleanup_free_ void *c = calloc(1, table->size);
        json_object *root;
        int r;

        if (error_size > 0)
                error[0] = 0;
        if (!c)
                return -ENOMEM;
        root = json_tokener_parse(json);
        if (!root || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                return wc_bad(&p, "not a JSON object");
        }
        r = wc_set_defaults(table, c);
        if (r >= 0)
                r = wc_parse_object(&p, table, root, c, "");
        json_object_put(root);
        if (r < 0) {
                if (r == -ENOMEM)
                        (void) snprintf(error, error_size, "%s: out of memory", what);
                worker_config_done(table, c);
                return r;
        }
        memcpy(ret, c, table->size);
        return 0;
}

/* ---- write ---- */

static int wc_add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int wc_write_object(const struct worker_config_object *t, const void *base, json_object *o);

static int wc_write_field(const struct worker_config_field *f, const void *base, json_object *o) {
        const void *at = (const char *) base + f->offset;
        json_object *v;
        int e, r;

        switch (f->type) {
        case WORKER_CONFIG_STRING:
                if (!*(char *const *) at)
                        return 0;
                return wc_add(o, f->key, json_object_new_string(*(char *const *) at));
        case WORKER_CONFIG_U64:
                return wc_add(o, f->key, json_object_new_int64((int64_t) * (const uint64_t *) at));
        case WORKER_CONFIG_BOOL:
                return wc_add(o, f->key, json_object_new_boolean(*(const bool *) at));
        case WORKER_CONFIG_ENUM:
                e = *(const int *) at;
                if (e < 0 || (size_t) e >= f->n_names)
                        return -EINVAL;
                return wc_add(o, f->key, json_object_new_string(f->names[e]));
        case WORKER_CONFIG_OBJECT:
                v = json_object_new_object();
                r = v ? wc_write_object(f->object, base, v) : -ENOMEM;
                if (r < 0) {
                        json_object_put(v);
                        return r;
                }
                return wc_add(o, f->key, v);
        case WORKER_CONFIG_ARRAY: {
                const char *elems = *(char *const *) at;
                size_t n = *(const size_t *) ((const char *) base + f->count_offset);

                v = json_object_new_array();
                r = v ? 0 : -ENOMEM;
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        json_object *e_obj = json_object_new_object();

                        r = e_obj ? wc_write_object(f->object, elems + i * f->object->size, e_obj) : -ENOMEM;
                        if (r >= 0 && json_object_array_add(v, e_obj) < 0)
                                r = -ENOMEM;
                        if (r < 0)
                                json_object_put(e_obj);
                }
                if (r < 0) {
                        json_object_put(v);
                        return r;
                }
                return wc_add(o, f->key, v);
        }
        case WORKER_CONFIG_STRV: {
                char *const *strv = *(char **const *) at;

                if (!strv)
                        return 0;
                v = json_object_new_array();
                r = v ? 0 : -ENOMEM;
                for (size_t i = 0; r >= 0 && strv[i]; i++) {
                        json_object *s = json_object_new_string(strv[i]);

                        if (!s || json_object_array_add(v, s) < 0) {
                                json_object_put(s);
                                r = -ENOMEM;
                        }
                }
                if (r < 0) {
                        json_object_put(v);
                        return r;
                }
                return wc_add(o, f->key, v);
        }
        case _WORKER_CONFIG_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

static int wc_write_object(const struct worker_config_object *t, const void *base, json_object *o) {
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct worker_config_field *f = &t->fields[i];
                int r;

                if (f->when && !f->when(base))
                        continue;
                r = wc_write_field(f, base, o);
                if (r < 0)
                        return r;
        }
        return 0;
}

int worker_config_write(const struct worker_config_object *table, const void *c, char **ret_json) {
        json_object *j = json_object_new_object();
        char *s;
        int r;

        r = j ? wc_write_object(table, c, j) : -ENOMEM;
        if (r < 0) {
                json_object_put(j);
                return r;
        }
        s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
        if (!s)
                return -ENOMEM;
        *ret_json = s;
        return 0;
}

/* ---- free, compare ---- */

static void wc_done_object(const struct worker_config_object *t, void *base) {
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct worker_config_field *f = &t->fields[i];

                switch (f->type) {
                case WORKER_CONFIG_STRING:
                        free(*AT(base, f->offset, char *));
                        *AT(base, f->offset, char *) = NULL;
                        break;
                case WORKER_CONFIG_OBJECT:
                        wc_done_object(f->object, base);
                        break;
                case WORKER_CONFIG_ARRAY: {
                        char *elems = *AT(base, f->offset, char *);
                        size_t n = *AT(base, f->count_offset, size_t);

                        for (size_t k = 0; elems && k < n; k++)
                                wc_done_object(f->object, elems + k * f->object->size);
                        free(elems);
                        *AT(base, f->offset, char *) = NULL;
                        *AT(base, f->count_offset, size_t) = 0;
                        break;
                }
                case WORKER_CONFIG_STRV:
                        *AT(base, f->offset, char **) = strv_free(*AT(base, f->offset, char **));
                        break;
                case WORKER_CONFIG_U64:
                case WORKER_CONFIG_BOOL:
                case WORKER_CONFIG_ENUM:
                case _WORKER_CONFIG_TYPE_MAX:
                        break;
                }
        }
}

void worker_config_done(const struct worker_config_object *table, void *c) {
        if (!c)
                return;
        wc_done_object(table, c);
        memset(c, 0, table->size);
}

static bool wc_equal_object(const struct worker_config_object *t, const void *a, const void *b) {
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct worker_config_field *f = &t->fields[i];
                const char *pa = (const char *) a + f->offset, *pb = (const char *) b + f->offset;

                switch (f->type) {
                case WORKER_CONFIG_STRING:
                        if (!streq_ptr(*(char *const *) pa, *(char *const *) pb))
                                return false;
                        break;
                case WORKER_CONFIG_U64:
                        if (*(const uint64_t *) pa != *(const uint64_t *) pb)
                                return false;
                        break;
                case WORKER_CONFIG_BOOL:
                        if (*(const bool *) pa != *(const bool *) pb)
                                return false;
                        break;
                case WORKER_CONFIG_ENUM:
                        if (*(const int *) pa != *(const int *) pb)
                                return false;
                        break;
                case WORKER_CONFIG_OBJECT:
                        if (!wc_equal_object(f->object, a, b))
                                return false;
                        break;
                case WORKER_CONFIG_ARRAY: {
                        size_t n = *(const size_t *) ((const char *) a + f->count_offset);
                        const char *ea = *(char *const *) pa, *eb = *(char *const *) pb;

                        if (n != *(const size_t *) ((const char *) b + f->count_offset))
                                return false;
                        for (size_t k = 0; k < n; k++)
                                if (!wc_equal_object(f->object, ea + k * f->object->size, eb + k * f->object->size))
                                        return false;
                        break;
                }
                case WORKER_CONFIG_STRV: {
                        char *const *va = *(char **const *) pa, *const *vb = *(char **const *) pb;
                        size_t n = strv_length(va);

                        if (!va != !vb || n != strv_length(vb))
                                return false;
                        for (size_t k = 0; k < n; k++)
                                if (!streq(va[k], vb[k]))
                                        return false;
                        break;
                }
                case _WORKER_CONFIG_TYPE_MAX:
                        break;
                }
        }
        return true;
}

bool worker_config_equal(const struct worker_config_object *table, const void *a, const void *b) {
        return wc_equal_object(table, a, b);
}

/* ---- the configs' own rules ---- */

int worker_config_machine_parse(const char *json, struct machine_config *ret, char *error, size_t error_size) {
        struct wc_parse p = {.what = "machine config", .error = error, .size = error_size};
        struct machine_config m;
        int r;

        r = worker_config_parse(&worker_config_machine, p.what, json, &m, error, error_size);
        if (r < 0)
                return r;
        if (m.backend_kind == MACHINE_BACKEND_QEMU && !!m.start_script == !!m.kernel)
                r = wc_bad(&p, "\"qemu\" needs exactly one of \"start_script\" or \"kernel\"");
        else if (m.backend_kind == MACHINE_BACKEND_NSPAWN && !!m.start_script == !!m.tree)
                r = wc_bad(&p, "\"nspawn\" needs exactly one of \"tree\" or \"start_script\"");
        else if (m.start_script && !*m.start_script)
                r = wc_bad(&p, "\"start_script\" must not be empty");
        /* A NIC is a VDE socket for QEMU, a TAP made by the switch for a container. */
        for (size_t i = 0; r >= 0 && i < m.n_vlans; i++) {
                const char *need = m.backend_kind == MACHINE_BACKEND_QEMU ? "socket" : "tap";
                const char *have = m.backend_kind == MACHINE_BACKEND_QEMU ? m.vlans[i].socket : m.vlans[i].tap;

                if (!have || !*have)
                        r = wc_bad(&p, "vlans[%zu] lacks \"%s\"", i, need);
        }
        if (r < 0) {
                worker_config_done(&worker_config_machine, &m);
                return r;
        }
        m.fast_path = m.guest_channel == MACHINE_GUEST_CHANNEL_FAST;
        *ret = m;
        return 0;
}

int worker_config_machine_write(const struct machine_config *c, char **ret_json) {
        return worker_config_write(&worker_config_machine, c, ret_json);
}

int worker_config_switch_parse(const char *json, struct switch_config *ret, char *error, size_t error_size) {
        return worker_config_parse(&worker_config_switch, "switch config", json, ret, error, error_size);
}

int worker_config_switch_write(const struct switch_config *c, char **ret_json) {
        return worker_config_write(&worker_config_switch, c, ret_json);
}
