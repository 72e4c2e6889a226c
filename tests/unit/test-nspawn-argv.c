/* SPDX-License-Identifier: MIT */
/*
 * test-nspawn-argv: the nspawn half of the machine config (the "nspawn"
 * object, per-VLAN TAPs, hosts, and every refusal naming its field), the
 * systemd-nspawn argv, machine names and hostnames, and the per-node setup
 * script vigil-setup.service runs in the container.
 */
#include <string.h>

#include "argv-check.h"
#include "machine-config.h"
#include "macro.h"
#include "nspawn-argv.h"
#include "tap.h"

static const char *good_json =
        "{\"name\":\"alpha\",\"backend\":\"nspawn\",\"node_number\":3,\"state_dir\":\"/tmp/r/vm-state-alpha\","
        "\"shared_dir\":\"/tmp/r/shared-xchg\",\"out_dir\":\"/tmp/out\","
        "\"vlans\":[{\"nr\":1,\"tap\":\"vg1n3\",\"mac\":\"52:54:00:12:01:03\",\"address\":\"192.168.1.3/24\"},"
        "{\"nr\":2,\"tap\":\"vg2n3\",\"mac\":\"52:54:00:12:02:03\",\"address\":\"192.168.2.3/24\"}],"
        "\"hosts\":[{\"name\":\"alpha\",\"address\":\"192.168.1.3\"},{\"name\":\"beta\",\"address\":\"192.168.1.4\"}],"
        "\"nspawn\":{\"tree\":\"/var/cache/vigil/debian-x\",\"extra_args\":[\"--setenv=FOO=1\"]}}";

static int parse_with(const char *json, char *err, size_t size) {
        struct machine_config c;
        int r = machine_config_parse(json, &c, err, size);
        if (r >= 0)
                machine_config_done(&c);
        return r;
}

/* good_json with one substring replaced. */
static int parse_variant(const char *from, const char *to, char *err, size_t size) {
        char buf[4096];
        const char *p = strstr(good_json, from);

        if (!p)
                return 12345;
        (void) snprintf(buf, sizeof buf, "%.*s%s%s", (int) (p - good_json), good_json, to, p + strlen(from));
        return parse_with(buf, err, size);
}

static void test_config(void) {
        struct machine_config c;
        char err[MACHINE_CONFIG_ERROR_MAX];

        CHECK(machine_config_parse(good_json, &c, err, sizeof err) == 0, "nspawn config parses (%s)", err);
        CHECK(c.backend_kind == MACHINE_BACKEND_NSPAWN && streq(c.tree, "/var/cache/vigil/debian-x") &&
                      streq(c.binary, "systemd-nspawn") && c.n_vlans == 2 && streq(c.vlans[1].tap, "vg2n3") &&
                      !c.vlans[0].socket && c.n_hosts == 2 && streq(c.hosts[1].name, "beta") &&
                      streq(c.extra_args[0], "--setenv=FOO=1") && !c.start_script && !c.kernel,
              "fields, default binary, no qemu fields");
        machine_config_done(&c);

        CHECK(parse_variant("\"nspawn\":{", "\"nspawx\":{", err, sizeof err) == -EINVAL &&
                      strstr(err, "missing \"nspawn\""),
              "missing nspawn object: %s", err);
        CHECK(parse_variant("\"tree\":\"/var/cache/vigil/debian-x\",", "", err, sizeof err) == -EINVAL &&
                      strstr(err, "\"tree\""),
              "missing tree named: %s", err);
        CHECK(parse_variant("\"tree\":\"/var/cache/vigil/debian-x\",\"extra_args\":[\"--setenv=FOO=1\"]",
                            "\"start_script\":\"/nix/store/x/bin/run-alpha-nspawn\"", err, sizeof err) == 0,
              "a NixOS start script instead of a tree: %s", err);
        CHECK(parse_variant("\"tree\":\"/var/cache/vigil/debian-x\",", "\"tree\":\"/t\",\"start_script\":\"/s\",", err,
                            sizeof err) == -EINVAL &&
                      strstr(err, "exactly one of \"tree\" or \"start_script\""),
              "tree and start_script together refused: %s", err);
        CHECK(parse_variant("\"tree\":\"/var/cache/vigil/debian-x\",\"extra_args\":[\"--setenv=FOO=1\"]",
                            "\"start_script\":\"bin/run-alpha-nspawn\"", err, sizeof err) == -EINVAL &&
                      strstr(err, "nspawn.start_script"),
              "relative start_script refused: %s", err);
        CHECK(parse_variant("\"tree\":\"/var/cache/vigil/debian-x\",", "\"start_script\":\"/s\",", err, sizeof err) ==
                              -EINVAL &&
                      strstr(err, "nspawn.extra_args"),
              "extra_args with a start script refused: %s", err);
        CHECK(parse_variant("\"tree\":\"/var", "\"tree\":\"var", err, sizeof err) == -EINVAL &&
                      strstr(err, "nspawn.tree"),
              "relative tree refused: %s", err);
        CHECK(parse_variant("\"tap\":\"vg1n3\",", "", err, sizeof err) == -EINVAL && strstr(err, "\"tap\""),
              "a vlan without tap refused: %s", err);
        CHECK(parse_variant("vg1n3", "vg1n3-much-too-long", err, sizeof err) == -EINVAL && strstr(err, "vlans[0].tap"),
              "tap longer than 15 bytes refused: %s", err);
        CHECK(parse_variant("vg1n3", "vg1;rm", err, sizeof err) == -EINVAL && strstr(err, "vlans[0].tap"),
              "tap with a shell metacharacter refused: %s", err);
        CHECK(parse_variant("52:54:00:12:01:03", "52:54:00:12:01:0$", err, sizeof err) == -EINVAL &&
                      strstr(err, "vlans[0].mac"),
              "bad mac refused: %s", err);
        CHECK(parse_variant("\"192.168.1.4\"", "\"1.2.3.4; reboot\"", err, sizeof err) == -EINVAL &&
                      strstr(err, "hosts[1]"),
              "host address with blanks refused: %s", err);
        CHECK(parse_variant("\"backend\":\"nspawn\"", "\"backend\":\"lxc\"", err, sizeof err) == -EINVAL &&
                      strstr(err, "\"lxc\""),
              "unknown backend named: %s", err);
        CHECK(parse_variant(
                      "/tmp/r/vm-state-alpha",
                      "/tmp/rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
                      err, sizeof err) == -EINVAL &&
                      strstr(err, "backdoor socket"),
              "state_dir too long for the backdoor socket: %s", err);
        CHECK(parse_variant("\"name\":\"alpha\"", "\"name\":\"al pha\"", err, sizeof err) == -EINVAL &&
                      strstr(err, "hostname"),
              "a name that cannot be a hostname: %s", err);
        /* qemu configs still need their socket per VLAN. */
        CHECK(parse_with("{\"name\":\"q\",\"state_dir\":\"/tmp/q\",\"out_dir\":\"/tmp/o\",\"vlans\":[{\"nr\":1,"
                         "\"tap\":\"vg1n1\"}],\"qemu\":{\"kernel\":\"/k\"}}",
                         err, sizeof err) == -EINVAL &&
                      strstr(err, "\"socket\""),
              "qemu vlan without socket still refused: %s", err);
}

static void test_names(void) {
        char a[80], b[80], h[80];

        CHECK(nspawn_hostname("client_1", h, sizeof h) == 0 && streq(h, "client-1"), "hostname: '_' -> '-' (%s)", h);
        CHECK(nspawn_machine_name("/tmp/vigil-A/vm-state-alpha", "alpha", a, sizeof a) == 0 &&
                      nspawn_machine_name("/tmp/vigil-B/vm-state-alpha", "alpha", b, sizeof b) == 0 && !streq(a, b) &&
                      strncmp(a, "vigil-", 6) == 0 && strlen(a) == strlen("vigil-12345678-alpha") &&
                      strstr(a, "-alpha"),
              "machine names differ per run (%s, %s)", a, b);
        CHECK(nspawn_machine_name("/s", "n23456789012345678901234567890123456789012345678901234567890123", a,
                                  sizeof a) == 0 &&
                      strlen(a) <= 64,
              "machine name capped at 64 bytes (%zu)", strlen(a));
}

static void test_argv(void) {
        struct machine_config c;
        char err[MACHINE_CONFIG_ERROR_MAX];
        char **argv = NULL;

        (void) machine_config_parse(good_json, &c, err, sizeof err);
        CHECK(nspawn_build_argv(&c, "vigil-0000abcd-alpha", &argv) == 0, "argv builds");
        CHECK(streq(argv[0], "systemd-nspawn"), "argv[0] is the binary (the supervisor keeps capabilities for it)");
        CHECK(argv_has(argv, "--boot") && argv_has(argv, "--directory=/var/cache/vigil/debian-x") &&
                      argv_has(argv, "--volatile=overlay") && argv_has(argv, "--machine=vigil-0000abcd-alpha") &&
                      argv_has(argv, "--hostname=alpha") && argv_has(argv, "--register=no") &&
                      argv_has(argv, "--keep-unit") && argv_has(argv, "--console=read-only") &&
                      argv_has(argv, "--private-network") && argv_has(argv, "--link-journal=no"),
              "boot flags");
        CHECK(argv_index(argv, "--network-interface=vg1n3") >= 0 &&
                      argv_index(argv, "--network-interface=vg1n3") < argv_index(argv, "--network-interface=vg2n3"),
              "TAPs in VLAN order");
        CHECK(argv_has(argv, "--bind=/tmp/r/vm-state-alpha/host:/run/vigil-host") &&
                      argv_has(argv, "--bind-ro=/tmp/r/vm-state-alpha/host/hostname:/etc/hostname") &&
                      argv_has(argv, "--bind=/tmp/r/shared-xchg:/tmp/shared") &&
                      argv_has(argv, "--bind=/tmp/r/vm-state-alpha/xchg:/tmp/xchg"),
              "binds: host dir, hostname, shared, xchg");
        CHECK(streq(argv[strv_length(argv) - 1], "--setenv=FOO=1"), "extra_args last");
        strv_free(argv);
        machine_config_done(&c);
}

static void test_setup(void) {
        struct machine_config c;
        char err[MACHINE_CONFIG_ERROR_MAX];
        char *s = NULL;

        (void) machine_config_parse(good_json, &c, err, sizeof err);
        CHECK(nspawn_build_setup(&c, &s) == 0, "setup script builds");
        CHECK(strstr(s, "set -e\n") && strstr(s, "ip link set dev lo up\n"), "set -e, loopback up");
        CHECK(strstr(s, "ip link set dev vg1n3 name eth1") && strstr(s, "ip link set dev vg2n3 name eth2") &&
                      strstr(s, "vg1n3 name eth1") < strstr(s, "vg2n3 name eth2"),
              "TAPs renamed eth1, eth2 in VLAN order");
        CHECK(strstr(s, "ip link set dev eth1 address 52:54:00:12:01:03\n") &&
                      strstr(s, "ip addr replace 192.168.1.3/24 dev eth1\n") && strstr(s, "ip link set dev eth2 up\n"),
              "contract MAC, address, link up");
        CHECK(strstr(s, "192.168.1.3 alpha\n192.168.1.4 beta\n") && strstr(s, "<<'VIGIL_HOSTS'"),
              "/etc/hosts lines in a quoted here-document");
        CHECK(strstr(s, "if ip link show dev vg1n3"), "rename only if the TAP is there (setup may run again)");
        CHECK(strstr(s, "if [ \"${1:-}\" = stop ]; then\n") && strstr(s, "ip link set dev eth1 name vg1n3") &&
                      strstr(s, "ip link set dev eth2 name vg2n3") &&
                      strstr(s, "exit 0\nfi\n") < strstr(s, "set -e\n"),
              "\"stop\" gives the TAPs their host names back, before anything else");
        free(s);
        machine_config_done(&c);
}

int main(void) {
        test_config();
        test_names();
        test_argv();
        test_setup();
        return tap_done();
}
