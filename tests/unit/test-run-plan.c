/* SPDX-License-Identifier: MIT */
/*
 * Proves that every front door (vigil's CLI, the JSON spec, the reference
 * driver's CLI/env/--config) yields the same kind of plan, with the
 * reference's node numbering and addressing, and that each bad input is
 * refused with a message naming it: users swap drivers on these contracts.
 */
#include <stdlib.h>

#include "macro.h"
#include "run-plan.h"
#include "tap.h"
#include "worker-config.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(a)   ((int) (sizeof(a) / sizeof((a)[0]) - 1))

static const char *env_vals[16][2];

static const char *fake_env(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(env_vals) && env_vals[i][0]; i++)
                if (streq(env_vals[i][0], name))
                        return env_vals[i][1];
        return NULL;
}

static bool contains(const char *hay, const char *needle) {
        return hay && needle && strstr(hay, needle);
}

/* A machine's config as its worker will read it: rendered, then parsed by the shared contract. */
static bool machine_of(const struct run_plan *p, size_t i, const struct run_dirs *d, struct machine_config *ret) {
        _cleanup_free_ char *json = run_plan_machine_config(p, i, d);
        char err[WORKER_CONFIG_ERROR_MAX];

        if (!json || worker_config_machine_parse(json, ret, err, sizeof err) < 0) {
                CHECK(false, "machine config %zu parses (%s)", i, json ? err : "not rendered");
                *ret = (struct machine_config){};
                return false;
        }
        return true;
}

static bool switch_of(const struct run_plan *p, size_t i, const struct run_dirs *d, struct switch_config *ret) {
        _cleanup_free_ char *json = run_plan_switch_config(p, i, d);
        char err[WORKER_CONFIG_ERROR_MAX];

        if (!json || worker_config_switch_parse(json, ret, err, sizeof err) < 0) {
                CHECK(false, "switch config %zu parses (%s)", i, json ? err : "not rendered");
                *ret = (struct switch_config){};
                return false;
        }
        return true;
}

static void test_vigil_cli(void) {
        struct run_plan p;
        char *err = NULL;
        char **a = ARGV("run", "t.py", "--node", "server", "--node=client", "--global-timeout", "60", "-o", "out");
        struct run_dirs d = {.run_id = "r1", .tmp_dir = "/tmp/v", .out_dir = "/abs/out", .guest_dir = "/g"};
        int r;

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 9, a, &err);
        CHECK(r == 0, "vigil run CLI parses (%s)", err ?: "");
        r = run_plan_finalize(&p, &err);
        CHECK(r == 0 && p.n_nodes == 2, "two machines");
        CHECK(streq(p.nodes[0].name, "client") && p.nodes[0].number == 1 && p.nodes[1].number == 2,
              "machines numbered by sorted name like the reference");
        CHECK(p.n_vlans == 1 && p.vlans[0] == 1 && p.global_timeout == 60 && streq(p.out_dir, "out"),
              "default VLAN 1, timeout and output dir");
        CHECK(run_plan_needs_guest(&p), "no start script: the tiny guest is needed");

        _cleanup_(machine_config_donep) struct machine_config mc = {};
        machine_of(&p, 1, &d, &mc);
        CHECK(mc.connect_s == 60, "the boot deadline is capped by the global timeout");
        CHECK(mc.n_vlans == 1 && mc.vlans[0].nr == 1 && streq_ptr(mc.vlans[0].address, "192.168.1.2/24") &&
                      streq_ptr(mc.vlans[0].mac, "52:54:00:12:01:02") &&
                      streq_ptr(mc.vlans[0].socket, "/tmp/v/vde1.ctl"),
              "server gets 192.168.1.2 and the reference MAC scheme");
        CHECK(contains(mc.append, "vigil.hosts=192.168.1.1:client,192.168.1.2:server") &&
                      contains(mc.append, "vigil.hostname=server") && streq_ptr(mc.kernel, "/g/kernel") &&
                      streq_ptr(mc.initrd, "/g/initrd") && !mc.start_script,
              "tiny guest kernel parameters name every host");
        CHECK(streq_ptr(mc.state_dir, "/tmp/v/vm-state-server") && streq_ptr(mc.shared_dir, "/tmp/v/shared-xchg") &&
                      streq_ptr(mc.out_dir, "/abs/out") && mc.node_number == 2 && mc.accel == MACHINE_ACCEL_AUTO &&
                      mc.n_hosts == 2 && streq_ptr(mc.hosts[0].name, "client"),
              "state dir follows the reference layout");
        _cleanup_free_ char *sc = run_plan_script_config(&p, &d);
        CHECK(contains(sc, "\"test_script\":\"t.py\"") && contains(sc, "\"socket_dir\":\"/tmp/v/vde1.ctl\""),
              "script config lists script and VLAN sockets");
        _cleanup_(switch_config_donep) struct switch_config wc = {};
        switch_of(&p, 0, &d, &wc);
        CHECK(wc.vlan == 1 && wc.pcap && streq_ptr(wc.socket_dir, "/tmp/v/vde1.ctl") && wc.n_machines == 2 &&
                      streq_ptr(wc.machines[1].name, "server") && streq_ptr(wc.machines[1].mac, "52:54:00:12:01:02") &&
                      !wc.machines[1].tap,
              "switch config names its VLAN and each machine's MAC");
        run_plan_done(&p);
}

static void expect_cli_error(char **argv, int argc, const char *needle) {
        struct run_plan p;
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_parse_args(&p, argc, argv, &err);
        if (r == 0)
                r = run_plan_finalize(&p, &err);
        CHECK(r == -EINVAL && contains(err, needle), "refused with a message naming '%s' (got: %s)", needle,
              err ?: "nothing");
        free(err);
        run_plan_done(&p);
}

static void test_vigil_cli_errors(void) {
        expect_cli_error(ARGV("run", "t.py", "--node", "bad name"), 4, "bad name");
        expect_cli_error(ARGV("run", "t.py", "--node", "a", "--node", "a"), 6, "defined twice");
        expect_cli_error(ARGV("run", "t.py", "--node", "a", "--global-timeout", "soon"), 6, "--global-timeout");
        expect_cli_error(ARGV("run", "t.py", "--node", "a", "--boot-timeout", "0"), 6, "--boot-timeout");
        expect_cli_error(ARGV("run", "t.py", "--frobnicate"), 3, "--frobnicate");
        expect_cli_error(ARGV("run", "t.py"), 2, "--node");
        expect_cli_error(ARGV("run", "--node", "a"), 3, "test script");
        expect_cli_error(ARGV("run", "t.py", "--node", "a=vmware"), 4, "vmware");
        expect_cli_error(ARGV("run", "t.py", "--node", "a", "--vlan", "0"), 6, "--vlan");
        expect_cli_error(ARGV("run", "t.py", "--node", "a", "--global-timeout"), 5, "needs a value");
        expect_cli_error(ARGV("run", "t.py", "--node", "a", "-q", "--verbose"), 6, "exclude each other");
}

static void test_verbosity(void) {
        struct run_plan p;
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 5, ARGV("run", "t.py", "--node", "a", "--quiet"), &err);
        CHECK(r == 0 && p.verbosity == -1, "--quiet lowers the verbosity");
        run_plan_done(&p);
        run_plan_init(&p);
        r = run_plan_parse_args(&p, 5, ARGV("run", "t.py", "--node", "a", "-v"), &err);
        CHECK(r == 0 && p.verbosity == 1, "-v raises it");
        run_plan_done(&p);
        run_plan_init(&p);
        r = run_plan_parse_args(&p, 4, ARGV("run", "t.py", "--node", "a"), &err);
        CHECK(r == 0 && p.verbosity == 0, "neither: the default");
        run_plan_done(&p);
        CHECK(err == NULL, "no error message");
}

static void test_reference_env(void) {
        struct run_plan p;
        char *err = NULL;
        int r;

        env_vals[0][0] = "startScripts";
        env_vals[0][1] = "/nix/store/aaa-nixos-vm/bin/run-server-vm /nix/store/bbb-nixos-vm/bin/run-client-vm";
        env_vals[1][0] = "vlans";
        env_vals[1][1] = "1 2";
        env_vals[2][0] = "testScript";
        env_vals[2][1] = "/nix/store/ccc-test-script";
        env_vals[3][0] = "globalTimeout";
        env_vals[3][1] = "120";
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, ARGC(ARGV("nixos-test-driver", "-o", "/out", "--keep")),
                                     ARGV("nixos-test-driver", "-o", "/out", "--keep"), fake_env, &err);
        CHECK(r == 0, "reference env contract parses (%s)", err ?: "");
        r = run_plan_finalize(&p, &err);
        CHECK(r == 0 && p.n_nodes == 2 && streq(p.nodes[1].name, "server") &&
                      contains(p.nodes[1].start_script, "run-server-vm"),
              "machines named after run-<name>-vm");
        CHECK(p.n_vlans == 2 && p.vlans[1] == 2 && p.global_timeout == 120 && p.keep_state &&
                      streq(p.script, "/nix/store/ccc-test-script"),
              "vlans, timeout, keep-state (by prefix) and script from env and argv");
        CHECK(!run_plan_needs_guest(&p), "start scripts need no tiny guest");
        run_plan_done(&p);

        env_vals[0][0] = "vmStartScripts";
        env_vals[4][0] = "vmNames";
        env_vals[4][1] = "only-one";
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 1, ARGV("nixos-test-driver"), fake_env, &err);
        CHECK(r == -EINVAL && contains(err, "vmNames"), "vmNames/vmStartScripts mismatch refused (%s)", err ?: "");
        free(err);
        err = NULL;
        run_plan_done(&p);
        memset(env_vals, 0, sizeof(env_vals));
}

static void test_reference_config(void) {
        struct run_plan p;
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_load_reference_config(
                &p,
                "{\"vms\": {\"web\": {\"name\": \"web\", \"start_script\": \"/s/bin/run-web-vm\"}}, \"containers\": "
                "{},"
                " \"vlans\": [1], \"global_timeout\": 30, \"enable_ssh_backdoor\": false, \"test_script\": \"/s/t\"}",
                &err);
        CHECK(r == 0, "--config JSON loads (%s)", err ?: "");
        r = run_plan_finalize(&p, &err);
        CHECK(r == 0 && p.n_nodes == 1 && streq(p.nodes[0].name, "web") && p.global_timeout == 30 &&
                      streq(p.script, "/s/t"),
              "--config machine, timeout and script");
        run_plan_done(&p);
}

/* NixOS containers (run-<name>-nspawn): nspawn nodes run by their start script, with a switch TAP on every VLAN. */
static void test_reference_containers(void) {
        struct run_plan p;
        struct run_dirs d = {.run_id = "c0ffee12", .tmp_dir = "/tmp/r", .out_dir = "/out"};
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_load_reference_config(
                &p,
                "{\"vms\": {\"vm\": {\"name\": \"vm\", \"start_script\": \"/s/bin/run-vm-vm\"}}, \"containers\": "
                "{\"box\": {\"name\": \"box\", \"start_script\": \"/s/bin/run-box-nspawn\"}}, \"vlans\": [1, 2], "
                "\"test_script\": \"/s/t\"}",
                &err);
        CHECK(r == 0 && run_plan_finalize(&p, &err) == 0, "--config with containers loads (%s)", err ?: "");
        CHECK(p.n_nodes == 2 && streq(p.nodes[0].name, "box") && streq(p.nodes[0].backend, "nspawn") &&
                      streq_ptr(p.nodes[0].start_script, "/s/bin/run-box-nspawn") && streq(p.nodes[1].backend, "qemu"),
              "a container is an nspawn node with its start script, numbered with the VMs by name");
        CHECK(!run_plan_needs_debian_tree(&p) && !run_plan_needs_guest(&p),
              "it needs neither the Debian tree nor the guest");
        _cleanup_(machine_config_donep) struct machine_config mc = {};
        CHECK(machine_of(&p, 0, &d, &mc) && mc.backend_kind == MACHINE_BACKEND_NSPAWN &&
                      streq_ptr(mc.start_script, "/s/bin/run-box-nspawn") && !mc.tree && mc.n_vlans == 2 &&
                      streq_ptr(mc.vlans[0].tap, "vc0ff1n1") && streq_ptr(mc.vlans[1].tap, "vc0ff2n1") &&
                      !mc.vlans[0].socket,
              "its machine config: nspawn.start_script and a TAP on every VLAN of the run");
        _cleanup_(switch_config_donep) struct switch_config sw = {};
        CHECK(switch_of(&p, 1, &d, &sw) && sw.n_machines == 2 && streq_ptr(sw.machines[0].tap, "vc0ff2n1") &&
                      !sw.machines[1].tap,
              "VLAN 2's switch makes the container's TAP");
        _cleanup_free_ char *sc = run_plan_script_config(&p, &d);
        CHECK(contains(sc, "\"backend\":\"nspawn\"") && contains(sc, "\"start_command\":\"/s/bin/run-box-nspawn\"") &&
                      contains(sc, "\"vlans\":[1,2]"),
              "the script worker sees an nspawn machine on every VLAN (%s)", sc ?: "");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_load_reference_config(&p, "{\"containers\": {\"box\": {\"name\": \"box\"}}}", &err);
        CHECK(r == -EINVAL && contains(err, "containers.\"box\" needs a \"start_script\""),
              "a container without a start script is refused (%s)", err ?: "");
        free(err);
        err = NULL;
        run_plan_done(&p);

        /* The environment form: names given, or derived from run-<name>-nspawn. */
        env_vals[0][0] = "containerStartScripts";
        env_vals[0][1] = "/nix/store/a/bin/run-alpha-nspawn /nix/store/b/bin/run-beta-nspawn";
        env_vals[1][0] = "testScript";
        env_vals[1][1] = "/t";
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 1, ARGV("nixos-test-driver"), fake_env, &err);
        CHECK(r == 0 && run_plan_finalize(&p, &err) == 0 && p.n_nodes == 2 && streq(p.nodes[0].name, "alpha") &&
                      streq(p.nodes[1].name, "beta") && streq(p.nodes[1].backend, "nspawn"),
              "containerStartScripts alone: names from run-<name>-nspawn (%s)", err ?: "");
        run_plan_done(&p);
        env_vals[2][0] = "containerNames";
        env_vals[2][1] = "one";
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 1, ARGV("nixos-test-driver"), fake_env, &err);
        CHECK(r == -EINVAL && contains(err, "containerNames lists 1 containers but containerStartScripts lists 2"),
              "names and scripts that do not pair up are refused (%s)", err ?: "");
        free(err);
        err = NULL;
        run_plan_done(&p);
        memset(env_vals, 0, sizeof(env_vals));
        run_plan_init(&p);
        r = run_plan_parse_reference(
                &p, ARGC(ARGV("nixos-test-driver", "--container-start-scripts", "/x/start", "--", "/t")),
                ARGV("nixos-test-driver", "--container-start-scripts", "/x/start", "--", "/t"), fake_env, &err);
        CHECK(r == -EINVAL && contains(err, "cannot name the container of '/x/start'"),
              "a script not named run-<name>-nspawn needs a name (%s)", err ?: "");
        free(err);
        err = NULL;
        run_plan_done(&p);
}

/* sshBackdoor: each QEMU machine gets a vhost-vsock device whose CID the script worker also learns. */
static void test_reference_ssh_backdoor(void) {
        struct run_plan p;
        struct run_dirs d = {.run_id = "r1", .tmp_dir = "/tmp/r", .out_dir = "/out"};
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_load_reference_config(
                &p,
                "{\"vms\": {\"b\": {\"start_script\": \"/s/bin/run-b-vm\"}, \"a\": {\"start_script\": "
                "\"/s/bin/run-a-vm\"}}, \"vlans\": [1], \"enable_ssh_backdoor\": true, \"test_script\": \"/s/t\"}",
                &err);
        CHECK(r == 0 && run_plan_finalize(&p, &err) == 0, "--config with enable_ssh_backdoor loads (%s)", err ?: "");
        CHECK(p.ssh_backdoor && run_plan_vsock_cid(&p, &p.nodes[0]) == 3 && run_plan_vsock_cid(&p, &p.nodes[1]) == 4,
              "CIDs count from 3 in name order, like vhost-device-vsock's");
        _cleanup_(machine_config_donep) struct machine_config mc = {};
        machine_of(&p, 1, &d, &mc);
        CHECK(mc.extra_args && strv_length(mc.extra_args) == 2 && streq(mc.extra_args[0], "-device") &&
                      streq(mc.extra_args[1], "vhost-vsock-pci,guest-cid=4") &&
                      streq_ptr(mc.start_script, "/s/bin/run-b-vm") && mc.n_vlans == 1 &&
                      streq_ptr(mc.vlans[0].socket, "/tmp/r/vde1.ctl") && !mc.vlans[0].mac,
              "machine config carries the vhost-vsock device");
        _cleanup_free_ char *sc = run_plan_script_config(&p, &d);
        CHECK(contains(sc, "\"enable_ssh_backdoor\":true") && contains(sc, "\"vsock_cid\":3"),
              "script config has the backdoor and the CIDs");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_load_reference_config(&p, "{\"enable_ssh_backdoor\": \"yes\"}", &err);
        CHECK(r == -EINVAL && contains(err, "enable_ssh_backdoor"), "a non-boolean backdoor is refused");
        free(err);
        err = NULL;
        run_plan_done(&p);
}

static void expect_spec_error(const char *json, const char *needle) {
        struct run_plan p;
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_load_spec(&p, json, &err);
        CHECK(r == -EINVAL && contains(err, needle), "spec refused naming '%s' (got: %s)", needle, err ?: "nothing");
        free(err);
        run_plan_done(&p);
}

static void test_spec(void) {
        struct run_plan p;
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_load_spec(&p,
                               "{\"nodes\": {\"router\": {\"vlans\": [1, 2], \"memory_mb\": 384},"
                               " \"a\": {\"vlans\": [1]}, \"b\": {\"vlans\": [2]}}, \"global_timeout\": 90, "
                               "\"test_script\": \"t.py\"}",
                               &err);
        CHECK(r == 0, "spec loads (%s)", err ?: "");
        r = run_plan_finalize(&p, &err);
        CHECK(r == 0 && p.n_vlans == 2 && p.nodes[2].n_vlans == 2 && p.nodes[2].memory_mb == 384,
              "multi-VLAN router from the spec");
        run_plan_done(&p);

        struct run_dirs d = {.run_id = "r1", .tmp_dir = "/tmp/v", .out_dir = "/abs/out", .guest_dir = "/g"};
        run_plan_init(&p);
        r = run_plan_load_spec(&p, "{\"nodes\": {\"a\": {}}, \"boot_timeout\": 45, \"test_script\": \"t.py\"}", &err);
        if (r == 0)
                r = run_plan_finalize(&p, &err);
        _cleanup_(machine_config_donep) struct machine_config mc = {};
        CHECK(r == 0 && p.boot_timeout == 45 && machine_of(&p, 0, &d, &mc) && mc.connect_s == 45,
              "spec boot_timeout becomes the machine's boot deadline (%s)", err ?: "");
        run_plan_done(&p);

        expect_spec_error("[1]", "not a JSON object");
        /* A syntax error says where: json-c's tokener stops there. */
        expect_spec_error("{\"nodes\": {\n  \"a\": {\"vlans\": [1 2]}}}", "line 2, column 21");
        expect_spec_error("{\"nodes\": {}", "line 1, column 13: unexpected end of data");
        expect_spec_error("{} x", "unexpected text after the JSON value at line 1, column 4");
        expect_spec_error("{\"nodez\": {}}", "nodez");
        expect_spec_error("{\"nodes\": {\"a\": {\"memroy_mb\": 1}}}", "memroy_mb");
        expect_spec_error("{\"nodes\": {\"a\": {\"kernel\": \"/k\"}}}", "initrd");
        expect_spec_error("{\"nodes\": {\"a\": {\"vlans\": [\"x\"]}}}", "vlans");
        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"firecracker\"}}}", "firecracker");
        expect_spec_error("{\"global_timeout\": -5}", "global_timeout");
        expect_spec_error("{\"boot_timeout\": \"soon\"}", "boot_timeout");
        expect_spec_error("{\"nodes\": {\"a b\": {}}}", "a b");
}

/* The guest channel: fast by default, a run-wide choice by spec or flag (the
 * flag wins), a node's own key over both; bad values are named. */
static void test_guest_channel(void) {
        struct run_dirs d = {.run_id = "r1", .tmp_dir = "/tmp/v", .out_dir = "/abs/out", .guest_dir = "/g"};
        struct run_plan p;
        char *err = NULL;
        int r;

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 4, ARGV("run", "t.py", "--node", "a"), &err);
        if (r == 0)
                r = run_plan_finalize(&p, &err);
        _cleanup_(machine_config_donep) struct machine_config m1 = {};
        CHECK(r == 0 && machine_of(&p, 0, &d, &m1) && m1.guest_channel == MACHINE_GUEST_CHANNEL_FAST,
              "guest channel: fast by default (%s)", err ?: "");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 6, ARGV("run", "t.py", "--node", "a", "--guest-channel", "reference"), &err);
        if (r == 0)
                r = run_plan_finalize(&p, &err);
        _cleanup_(machine_config_donep) struct machine_config m2 = {};
        CHECK(r == 0 && machine_of(&p, 0, &d, &m2) && m2.guest_channel == MACHINE_GUEST_CHANNEL_REFERENCE,
              "guest channel: --guest-channel reference (%s)", err ?: "");
        run_plan_done(&p);

        static const char spec[] = "{\"nodes\": {\"a\": {}, \"b\": {\"guest_channel\": \"fast\"}}, "
                                   "\"guest_channel\": \"reference\", \"test_script\": \"t.py\"}";
        run_plan_init(&p);
        r = run_plan_load_spec(&p, spec, &err);
        if (r == 0)
                r = run_plan_finalize(&p, &err);
        _cleanup_(machine_config_donep) struct machine_config m3 = {}, m4 = {};
        CHECK(r == 0 && machine_of(&p, 0, &d, &m3) && m3.guest_channel == MACHINE_GUEST_CHANNEL_REFERENCE &&
                      machine_of(&p, 1, &d, &m4) && m4.guest_channel == MACHINE_GUEST_CHANNEL_FAST,
              "guest channel: the spec's run-wide key, a node's own key over it (%s)", err ?: "");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 4, ARGV("run", "t.py", "--guest-channel", "fast"), &err);
        if (r == 0)
                r = run_plan_load_spec(&p, spec, &err);
        if (r == 0)
                r = run_plan_finalize(&p, &err);
        _cleanup_(machine_config_donep) struct machine_config m5 = {};
        CHECK(r == 0 && machine_of(&p, 0, &d, &m5) && m5.guest_channel == MACHINE_GUEST_CHANNEL_FAST,
              "guest channel: --guest-channel wins over the spec's run-wide key (%s)", err ?: "");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 4, ARGV("nixos-test-driver", "--guest-channel", "reference", "t.py"),
                                     fake_env, &err);
        CHECK(r == 0 && p.guest_channel == MACHINE_GUEST_CHANNEL_REFERENCE,
              "guest channel: the reference front door takes --guest-channel (%s)", err ?: "");
        run_plan_done(&p);

        expect_cli_error(ARGV("run", "t.py", "--node", "a", "--guest-channel", "quick"), 6, "--guest-channel");
        expect_spec_error("{\"guest_channel\": \"quick\"}", "\"guest_channel\" must be");
        expect_spec_error("{\"nodes\": {\"a\": {\"guest_channel\": 1}}}", "node \"a\": \"guest_channel\"");
}

static void test_spec_nspawn(void) {
        struct run_plan p;
        char *err = NULL;
        struct run_dirs d = {.run_id = "c0ffee12",
                             .tmp_dir = "/tmp/v",
                             .out_dir = "/o",
                             .guest_dir = "/g",
                             .debian_tree = "/cache/debian-abc"};
        int r;

        run_plan_init(&p);
        r = run_plan_load_spec(&p,
                               "{\"nodes\": {\"c1\": {\"backend\": \"nspawn\", \"vlans\": [1, 2]},"
                               " \"c2\": {\"backend\": \"nspawn\", \"tree\": \"/srv/tree\"},"
                               " \"vm\": {}}, \"test_script\": \"t.py\"}",
                               &err);
        CHECK(r == 0, "nspawn spec loads (%s)", err ?: "");
        r = run_plan_finalize(&p, &err);
        CHECK(r == 0 && p.n_nodes == 3, "three machines");
        CHECK(run_plan_needs_debian_tree(&p) && run_plan_needs_guest(&p),
              "c1 needs the Debian tree, vm the tiny guest");

        _cleanup_free_ char *mcj = run_plan_machine_config(&p, 0, &d);
        _cleanup_(machine_config_donep) struct machine_config mc = {}, mc2 = {};
        machine_of(&p, 0, &d, &mc);
        CHECK(mc.backend_kind == MACHINE_BACKEND_NSPAWN && streq_ptr(mc.tree, "/cache/debian-abc") &&
                      !contains(mcj, "\"qemu\"") && !mc.kernel,
              "a container without a tree boots mkdebian's, and has no qemu section");
        CHECK(mc.n_vlans == 2 && mc.vlans[1].nr == 2 && streq_ptr(mc.vlans[1].tap, "vc0ff2n1") &&
                      !mc.vlans[1].socket && streq_ptr(mc.vlans[1].mac, "52:54:00:12:02:01") &&
                      streq_ptr(mc.vlans[1].address, "192.168.2.1/24"),
              "container NICs are switch TAPs named v<run4><vlan>n<node>, with the reference MAC and address");
        machine_of(&p, 1, &d, &mc2);
        CHECK(streq_ptr(mc2.tree, "/srv/tree"), "a node's own tree wins");
        _cleanup_(switch_config_donep) struct switch_config wc = {}, wc1 = {};
        switch_of(&p, 1, &d, &wc);
        CHECK(wc.vlan == 2 && wc.n_machines == 1 && streq_ptr(wc.machines[0].name, "c1") &&
                      streq_ptr(wc.machines[0].mac, "52:54:00:12:02:01") && streq_ptr(wc.machines[0].tap, "vc0ff2n1"),
              "VLAN 2's switch makes c1's TAP and only c1 is on it");
        switch_of(&p, 0, &d, &wc1);
        CHECK(wc1.n_machines == 3 && streq_ptr(wc1.machines[2].name, "vm") &&
                      streq_ptr(wc1.machines[2].mac, "52:54:00:12:01:03") && !wc1.machines[2].tap,
              "a VM on the same VLAN has no TAP");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 4, ARGV("run", "t.py", "--node", "box=nspawn"), &err);
        CHECK(r == 0 && p.n_nodes == 1 && streq(p.nodes[0].backend, "nspawn"), "--node NAME=nspawn (%s)", err ?: "");
        run_plan_done(&p);

        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"nspawn\", \"kernel\": \"/k\", \"initrd\": \"/i\"}}}",
                          "\"kernel\" is for backend \"qemu\"");
        expect_spec_error("{\"nodes\": {\"a\": {\"tree\": \"/t\"}}}", "\"tree\" is for backend \"nspawn\"");
        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"nspawn\", \"tree\": \"rel\"}}}", "absolute");
}

/* SSH machines: the spec's keys and --node NAME=ssh:..., checked by the worker's own rules, on no VLAN. */
static void test_spec_ssh(void) {
        struct run_plan p;
        char *err = NULL;
        struct run_dirs d = {.run_id = "c0ffee12", .tmp_dir = "/tmp/v", .out_dir = "/o", .guest_dir = "/g"};
        int r;

        run_plan_init(&p);
        r = run_plan_load_spec(&p,
                               "{\"nodes\": {\"lab\": {\"backend\": \"ssh\", \"host\": \"lab-7.example.org\", "
                               "\"user\": \"ops\", \"port\": 2222, \"identity_file\": \"/keys/id\", "
                               "\"known_hosts\": \"accept-new\", \"proxy_jump\": \"gw@bastion\", "
                               "\"ssh_options\": [\"Compression=yes\"], \"connect_timeout_s\": 5},"
                               " \"vm\": {}}, \"test_script\": \"t.py\"}",
                               &err);
        CHECK(r == 0, "ssh spec loads (%s)", err ?: "");
        r = run_plan_finalize(&p, &err);
        CHECK(r == 0 && p.n_nodes == 2 && p.nodes[0].n_vlans == 0 && p.nodes[1].n_vlans == 1,
              "the SSH machine is on no VLAN, the VM on the default one");
        _cleanup_free_ char *json = run_plan_machine_config(&p, 0, &d);
        _cleanup_(machine_config_donep) struct machine_config mc = {};
        machine_of(&p, 0, &d, &mc);
        CHECK(mc.backend_kind == MACHINE_BACKEND_SSH && streq_ptr(mc.ssh_host, "lab-7.example.org") &&
                      streq_ptr(mc.ssh_user, "ops") && mc.ssh_port == 2222 &&
                      streq_ptr(mc.ssh_identity_file, "/keys/id") && streq_ptr(mc.ssh_known_hosts, "accept-new") &&
                      streq_ptr(mc.ssh_proxy_jump, "gw@bastion") && mc.ssh_options &&
                      streq(mc.ssh_options[0], "Compression=yes") && mc.ssh_connect_timeout_s == 5 &&
                      mc.n_vlans == 0 && !contains(json, "\"qemu\"") && !contains(json, "\"nspawn\""),
              "every ssh key reaches the worker's \"ssh\" object, and nothing of qemu or nspawn: %s", json);
        _cleanup_(switch_config_donep) struct switch_config wc = {};
        switch_of(&p, 0, &d, &wc);
        CHECK(wc.n_machines == 1 && streq_ptr(wc.machines[0].name, "vm"), "the switch does not know the SSH machine");
        run_plan_done(&p);

        run_plan_init(&p);
        r = run_plan_parse_args(&p, 4, ARGV("run", "t.py", "--node", "r=ssh:alice@[fd00::5]:2200"), &err);
        CHECK(r == 0 && p.n_nodes == 1 && streq(p.nodes[0].backend, "ssh") &&
                      streq_ptr(p.nodes[0].ssh.host, "fd00::5") && streq_ptr(p.nodes[0].ssh.user, "alice") &&
                      p.nodes[0].ssh.port == 2200,
              "--node NAME=ssh:user@[v6]:port (%s)", err ?: "");
        run_plan_done(&p);
        run_plan_init(&p);
        free(err);
        err = NULL;
        r = run_plan_parse_args(&p, 4, ARGV("run", "t.py", "--node", "r=ssh:-oProxyCommand=x"), &err);
        CHECK(r < 0 && contains(err, "--node r=ssh:-oProxyCommand=x") && contains(err, "not a host name"),
              "--node with a host ssh would take for an option is refused: %s", err ?: "");
        run_plan_done(&p);
        free(err);

        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"ssh\"}}}", "backend \"ssh\" needs \"host\"");
        expect_spec_error("{\"nodes\": {\"a\": {\"host\": \"h\"}}}", "\"host\" is for backend \"ssh\"");
        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"ssh\", \"host\": \"h\", \"memory_mb\": 9}}}",
                          "\"memory_mb\" is for backend \"qemu\"");
        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"ssh\", \"host\": \"h\", \"vlans\": [1]}}}",
                          "on none of vigil's VLANs");
        expect_spec_error("{\"nodes\": {\"a\": {\"backend\": \"ssh\", \"host\": \"h\", \"known_hosts\": \"x\"}}}",
                          "\"known_hosts\" must be");
        expect_spec_error(
                "{\"nodes\": {\"a\": {\"backend\": \"ssh\", \"host\": \"h\", \"ssh_options\": [\"BatchMode=no\"]}}}",
                "\"BatchMode\" is set by vigil");
}

/* --help is argparse's: any position, both front doors, exit 0; logLevel is an env default like the others. */
static void test_help_and_log_level(void) {
        struct run_plan p;
        char *err = NULL, *text = NULL;
        size_t n = 0;
        FILE *f;
        int r;

        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 4, ARGV("nixos-test-driver", "--config", "/c.json", "--help"), fake_env,
                                     &err);
        CHECK(r == 0 && p.help, "reference --help after --config sets help");
        run_plan_done(&p);
        run_plan_init(&p);
        r = run_plan_parse_args(&p, 3, ARGV("run", "-h", "t.py"), &err);
        CHECK(r == 0 && p.help, "vigil run -h sets help");
        run_plan_done(&p);

        f = open_memstream(&text, &n);
        run_plan_usage(f, true);
        fclose(f);
        CHECK(contains(text, "usage: nixos-test-driver") && contains(text, "-c, --config CONFIG") &&
                      contains(text, "[--vlans [VLANS ...]]") && contains(text, "[testscript]"),
              "reference usage names its options argparse-style");
        free(text);
        text = NULL;
        f = open_memstream(&text, &n);
        run_plan_usage(f, false);
        fclose(f);
        CHECK(contains(text, "usage: vigil run") && contains(text, "--node NODE") && !contains(text, "--config"),
              "vigil run usage lists vigil's options only");
        free(text);

        env_vals[0][0] = "logLevel";
        env_vals[0][1] = "warning";
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 1, ARGV("nixos-test-driver"), fake_env, &err);
        CHECK(r == 0 && streq(p.log_level, "warning"), "logLevel from the environment");
        run_plan_done(&p);
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 3, ARGV("nixos-test-driver", "--log-level", "debug"), fake_env, &err);
        CHECK(r == 0 && streq(p.log_level, "debug"), "--log-level overrides logLevel");
        run_plan_done(&p);
        env_vals[0][1] = "loud";
        run_plan_init(&p);
        r = run_plan_parse_reference(&p, 1, ARGV("nixos-test-driver"), fake_env, &err);
        CHECK(r == -EINVAL && contains(err, "logLevel: 'loud'"), "a bad logLevel is refused (%s)", err ?: "");
        free(err);
        run_plan_done(&p);
        memset(env_vals, 0, sizeof(env_vals));
}

int main(void) {
        test_help_and_log_level();
        test_vigil_cli();
        test_spec_nspawn();
        test_spec_ssh();
        test_vigil_cli_errors();
        test_verbosity();
        test_reference_env();
        test_reference_config();
        test_reference_containers();
        test_reference_ssh_backdoor();
        test_spec();
        test_guest_channel();
        return tap_done();
}
