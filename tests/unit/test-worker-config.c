/* SPDX-License-Identifier: MIT */
/*
 * Proves that the machine and switch configs have one contract: every field the front end writes comes back
 * equal from the worker's parser, and every mistyped or unknown key is refused with the key's name.
 * Why it matters: the two sides used to write and parse the same JSON independently, tested by substrings only.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "defaults.h"
#include "macro.h"
#include "tap.h"
#include "worker-config.h"

static char *xstrdup(const char *s) {
        char *d = strdup(s);
        CHECK(d != NULL, "strdup");
        return d;
}

static char **xstrv(const char *a, const char *b) {
        char **v = calloc(3, sizeof(char *));
        v[0] = xstrdup(a);
        v[1] = xstrdup(b);
        return v;
}

/* Every field set, none left at its default. */
static void machine_full(struct machine_config *c, enum machine_backend_kind kind, bool script) {
        *c = (struct machine_config){
                .name = xstrdup("server"),
                .backend_kind = kind,
                .node_number = 7,
                .state_dir = xstrdup("/tmp/r/vm-state-server"),
                .shared_dir = xstrdup("/tmp/r/shared-xchg"),
                .out_dir = xstrdup("/out"),
                .keep_state = true,
                .accel = MACHINE_ACCEL_TCG,
                .allow_reboot = true,
                .guest_channel = MACHINE_GUEST_CHANNEL_FAST,
                .n_vlans = 2,
                .n_hosts = 1,
                .memory_mb = 512,
                .cpus = 3,
                .binary = xstrdup(kind == MACHINE_BACKEND_QEMU ? "/usr/bin/qemu-kvm" : "/usr/bin/systemd-nspawn"),
                .extra_args = xstrv("-device", "virtio-rng-pci"),
                .connect_s = 45,
                .output_max = 1024,
        };
        c->vlans = calloc(2, sizeof *c->vlans);
        for (size_t i = 0; i < 2; i++) {
                char b[64];
                c->vlans[i].nr = i + 1;
                snprintf(b, sizeof b, "52:54:00:12:%02zx:07", i + 1);
                c->vlans[i].mac = xstrdup(b);
                snprintf(b, sizeof b, "192.168.%zu.7/24", i + 1);
                c->vlans[i].address = xstrdup(b);
                snprintf(b, sizeof b, "/tmp/r/vde%zu.ctl", i + 1);
                c->vlans[i].socket = xstrdup(b);
                snprintf(b, sizeof b, "vr1%zun7", i + 1);
                c->vlans[i].tap = xstrdup(b);
        }
        c->hosts = calloc(1, sizeof *c->hosts);
        c->hosts[0] = (struct machine_host){.name = xstrdup("client"), .address = xstrdup("192.168.1.1")};
        if (kind == MACHINE_BACKEND_NSPAWN) { /* "qemu" is not written: its fields stay at their defaults */
                c->tree = xstrdup("/var/cache/vigil/debian-x");
                c->memory_mb = DEFAULT_MEMORY_MB;
                c->cpus = DEFAULT_CPUS;
        } else if (kind == MACHINE_BACKEND_SSH) { /* neither "qemu" nor "nspawn" is written */
                c->memory_mb = DEFAULT_MEMORY_MB;
                c->cpus = DEFAULT_CPUS;
                free(TAKE_PTR(c->binary));
                c->extra_args = strv_free(c->extra_args);
                c->ssh_host = xstrdup("lab-7.example.org");
                c->ssh_user = xstrdup("ops");
                c->ssh_port = 2222;
                c->ssh_identity_file = xstrdup("/keys/id");
                c->ssh_known_hosts = xstrdup("accept-new");
                c->ssh_proxy_jump = xstrdup("gw@bastion");
                c->ssh_options = xstrv("Compression=yes", "ProxyCommand=socat - UNIX-CONNECT:/s");
                c->ssh_connect_timeout_s = 7;
        } else if (script)
                c->start_script = xstrdup("/nix/store/x/bin/run-server-vm");
        else {
                c->kernel = xstrdup("/g/kernel");
                c->initrd = xstrdup("/g/initrd");
                c->append = xstrdup("console=ttyS0 vigil.hostname=server");
                c->disk = xstrdup("/g/disk.qcow2");
        }
}

static void test_machine_roundtrip(void) {
        static const struct {
                enum machine_backend_kind kind;
                bool script;
                const char *what;
        } cases[] = {
                {MACHINE_BACKEND_QEMU, false, "qemu kernel+initrd"},
                {MACHINE_BACKEND_QEMU, true, "qemu start script"},
                {MACHINE_BACKEND_NSPAWN, false, "nspawn"},
                {MACHINE_BACKEND_SSH, false, "ssh"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(machine_config_donep) struct machine_config a = {}, b = {};
                char err[WORKER_CONFIG_ERROR_MAX];
                _cleanup_free_ char *json = NULL;

                machine_full(&a, cases[i].kind, cases[i].script);
                CHECK(worker_config_machine_write(&a, &json) == 0, "%s: written", cases[i].what);
                CHECK(worker_config_machine_parse(json, &b, err, sizeof err) == 0, "%s: parsed back (%s)",
                      cases[i].what, err);
                CHECK(worker_config_equal(&worker_config_machine, &a, &b), "%s: every field round-trips: %s",
                      cases[i].what, json);
                CHECK(b.fast_path && b.n_vlans == 2 && streq(b.vlans[1].tap, "vr12n7") &&
                              (cases[i].kind == MACHINE_BACKEND_SSH ? streq(b.ssh_options[1], a.ssh_options[1])
                                                                    : streq(b.extra_args[1], "virtio-rng-pci")) &&
                              b.memory_mb == a.memory_mb,
                      "%s: spot checks", cases[i].what);
                CHECK((cases[i].kind == MACHINE_BACKEND_QEMU) == !!strstr(json, "\"qemu\"") &&
                              (cases[i].kind == MACHINE_BACKEND_NSPAWN) == !!strstr(json, "\"nspawn\"") &&
                              (cases[i].kind == MACHINE_BACKEND_SSH) == !!strstr(json, "\"ssh\""),
                      "%s: only its own backend's section is written", cases[i].what);
                b.vlans[1].nr = 9;
                CHECK(!worker_config_equal(&worker_config_machine, &a, &b), "%s: a changed vlan is seen",
                      cases[i].what);
        }
}

static void test_switch_roundtrip(void) {
        _cleanup_(switch_config_donep) struct switch_config a = {}, b = {};
        char err[WORKER_CONFIG_ERROR_MAX];
        _cleanup_free_ char *json = NULL;

        a = (struct switch_config){.vlan = 3,
                                   .socket_dir = xstrdup("/tmp/r/vde3.ctl"),
                                   .out_dir = xstrdup("/out"),
                                   .pcap = false,
                                   .n_machines = 2};
        a.machines = calloc(2, sizeof *a.machines);
        a.machines[0] = (struct switch_machine){.name = xstrdup("vm"), .mac = xstrdup("52:54:00:12:03:01")};
        a.machines[1] = (struct switch_machine){
                .name = xstrdup("ct"), .mac = xstrdup("52:54:00:12:03:02"), .tap = xstrdup("vr13n2")};
        CHECK(worker_config_switch_write(&a, &json) == 0, "switch: written");
        CHECK(worker_config_switch_parse(json, &b, err, sizeof err) == 0, "switch: parsed back (%s)", err);
        CHECK(worker_config_equal(&worker_config_switch, &a, &b), "switch: every field round-trips: %s", json);
        CHECK(!b.pcap && b.n_machines == 2 && !b.machines[0].tap && streq(b.machines[1].tap, "vr13n2"),
              "switch: spot checks");
}

/* What the worker assumes when a key is absent comes from defaults.h. */
static void test_defaults(void) {
        _cleanup_(machine_config_donep) struct machine_config m = {};
        _cleanup_(switch_config_donep) struct switch_config s = {};
        char err[WORKER_CONFIG_ERROR_MAX];

        CHECK(worker_config_machine_parse("{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\","
                                          "\"qemu\":{\"kernel\":\"/k\"}}",
                                          &m, err, sizeof err) == 0,
              "minimal machine config (%s)", err);
        CHECK(m.backend_kind == MACHINE_BACKEND_QEMU && m.accel == MACHINE_ACCEL_AUTO && m.node_number == 1 &&
                      m.memory_mb == DEFAULT_MEMORY_MB && m.cpus == DEFAULT_CPUS && m.connect_s == DEFAULT_CONNECT_S &&
                      m.output_max == DEFAULT_OUTPUT_MAX && !m.fast_path && m.n_vlans == 0,
              "machine defaults");
        CHECK(worker_config_switch_parse("{\"vlan\":1,\"socket_dir\":\"/v\"}", &s, err, sizeof err) == 0 && s.pcap &&
                      !s.out_dir && s.n_machines == 0,
              "switch defaults (%s)", err);
}

/* Replace @key of @o by @v, parse the whole of @root, expect a refusal naming @name. */
static void expect_refused(const struct worker_config_object *table, json_object *root, json_object *o,
                           const char *key, json_object *v, const char *name, const char *why) {
        json_object *old = NULL;
        char err[WORKER_CONFIG_ERROR_MAX], needle[256];
        _cleanup_free_ void *c = calloc(1, table->size);
        bool had = json_object_object_get_ex(o, key, &old);
        int r;

        if (had)
                json_object_get(old);
        json_object_object_add(o, key, v);
        r = worker_config_parse(table, "config", json_object_to_json_string(root), c, err, sizeof err);
        snprintf(needle, sizeof needle, "\"%s\"", name);
        CHECK(r == -EINVAL && strstr(err, needle), "%s %s refused naming it (%s)", why, name, err);
        if (r == 0)
                worker_config_done(table, c);
        if (had)
                json_object_object_add(o, key, old);
        else
                json_object_object_del(o, key);
}

static json_object *wrong_value(enum worker_config_type t) {
        return t == WORKER_CONFIG_STRING ? json_object_new_int(42) : json_object_new_string("wrong");
}

/* Walk @t over the JSON object @o (inside @root): every field present gets a
 * wrong type, every object an unknown key. */
static void walk(const struct worker_config_object *table, json_object *root, const struct worker_config_object *t,
                 json_object *o, const char *path) {
        char name[192];

        snprintf(name, sizeof name, "%s%sbogus_key", path, *path ? "." : "");
        expect_refused(table, root, o, "bogus_key", json_object_new_int(1), name, "an unknown key");
        for (size_t i = 0; i < t->n_fields; i++) {
                const struct worker_config_field *f = &t->fields[i];
                json_object *v;

                if (!json_object_object_get_ex(o, f->key, &v))
                        continue;
                snprintf(name, sizeof name, "%s%s%s", path, *path ? "." : "", f->key);
                expect_refused(table, root, o, f->key, wrong_value(f->type), name, "a mistyped");
                if (f->type == WORKER_CONFIG_OBJECT)
                        walk(table, root, f->object, v, name);
                else if (f->type == WORKER_CONFIG_ARRAY && json_object_array_length(v) > 0) {
                        char elem[200];
                        snprintf(elem, sizeof elem, "%s[0]", name);
                        walk(table, root, f->object, json_object_array_get_idx(v, 0), elem);
                }
        }
}

static void test_refusals(void) {
        for (int kind = 0; kind < _MACHINE_BACKEND_KIND_MAX; kind++) {
                _cleanup_(machine_config_donep) struct machine_config a = {};
                _cleanup_free_ char *json = NULL;
                json_object *root;

                machine_full(&a, (enum machine_backend_kind) kind, false);
                CHECK(worker_config_machine_write(&a, &json) == 0, "written");
                root = json_tokener_parse(json);
                walk(&worker_config_machine, root, &worker_config_machine, root, "");
                json_object_put(root);
        }

        _cleanup_(switch_config_donep) struct switch_config s = {
                .vlan = 1, .socket_dir = xstrdup("/v"), .n_machines = 1};
        _cleanup_free_ char *json = NULL;
        json_object *root;

        s.machines = calloc(1, sizeof *s.machines);
        s.machines[0] = (struct switch_machine){
                .name = xstrdup("a"), .mac = xstrdup("52:54:00:12:01:01"), .tap = xstrdup("t")};
        CHECK(worker_config_switch_write(&s, &json) == 0, "written");
        root = json_tokener_parse(json);
        walk(&worker_config_switch, root, &worker_config_switch, root, "");
        json_object_put(root);

        char err[WORKER_CONFIG_ERROR_MAX];
        struct machine_config m;
        CHECK(worker_config_machine_parse("{\"name\":\"a\",\"backend\":\"nspawn\",\"state_dir\":\"/s\",\"out_dir\":"
                                          "\"/o\",\"nspawn\":{\"tree\":\"/t\"},\"qemu\":{\"kernel\":\"/k\"}}",
                                          &m, err, sizeof err) == -EINVAL &&
                      strstr(err, "\"qemu\" is only for backend \"qemu\""),
              "the other backend's section is refused (%s)", err);
        CHECK(worker_config_machine_parse("{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"vlans\":[{\"nr\":"
                                          "1}],\"qemu\":{\"kernel\":\"/k\"}}",
                                          &m, err, sizeof err) == -EINVAL &&
                      strstr(err, "vlans[0] lacks \"socket\""),
              "a qemu NIC needs its VDE socket (%s)", err);
        CHECK(worker_config_machine_parse("{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"qemu\":{\"cpus\":"
                                          "0,\"kernel\":\"/k\"}}",
                                          &m, err, sizeof err) == -EINVAL &&
                      strstr(err, "\"qemu.cpus\" must be between 1 and 1024"),
              "a bound names the key and the range (%s)", err);
        CHECK(worker_config_switch_parse("{\"socket_dir\":\"/v\"}", &s, err, sizeof err) == -EINVAL &&
                      strstr(err, "switch config: missing \"vlan\""),
              "a missing key is named (%s)", err);
}

/* The docs quote the defaults; they must quote these. */
static void test_docs_quote_defaults(void) {
        static const struct {
                const char *file;
                const char *text;
        } quotes[] = {
                {"docs/cli.md", "after S seconds (default " DEFAULT_TEXT(DEFAULT_GLOBAL_TIMEOUT_S) ")"},
                {"docs/cli.md", "default " DEFAULT_TEXT(DEFAULT_BOOT_TIMEOUT_S) ", never above the global timeout"},
                {"docs/spec.md", "seconds (default " DEFAULT_TEXT(DEFAULT_GLOBAL_TIMEOUT_S) ")"},
                {"docs/spec.md", "defaults " DEFAULT_TEXT(DEFAULT_MEMORY_MB) " and " DEFAULT_TEXT(DEFAULT_CPUS)},
                {"docs/restart-semantics.md",
                 "default " DEFAULT_TEXT(DEFAULT_INTENSITY_MAX_RESTARTS) " in " DEFAULT_TEXT(
                         DEFAULT_INTENSITY_MAX_SECONDS) " s"},
                {"docs/machine.md", "\"timeouts\": {\"connect_s\": " DEFAULT_TEXT(DEFAULT_CONNECT_S) "}"},
                {"docs/architecture.md", "default " DEFAULT_TEXT(DEFAULT_GLOBAL_TIMEOUT_S) " s"},
        };

        CHECK(DEFAULT_OUTPUT_MAX == 64u * 1024 * 1024, "docs/machine.md says 64 MiB");
        for (size_t i = 0; i < ELEMENTSOF(quotes); i++) {
                char path[512], *text = NULL;
                size_t n = 0;
                FILE *f;

                snprintf(path, sizeof path, "%s/%s", VIGIL_SOURCE_ROOT, quotes[i].file);
                f = fopen(path, "re");
                CHECK(f && getdelim(&text, &n, 0, f) > 0 && strstr(text, quotes[i].text), "%s quotes '%s'",
                      quotes[i].file, quotes[i].text);
                if (f)
                        fclose(f);
                free(text);
        }
}

int main(void) {
        test_machine_roundtrip();
        test_switch_roundtrip();
        test_defaults();
        test_refusals();
        test_docs_quote_defaults();
        return tap_done();
}
