/* SPDX-License-Identifier: MIT */
/*
 * test-machine-qemu-argv: the machine config decoder (good and bad JSON), the
 * QEMU command lines for start scripts (reference env and extra args) and
 * kernel+initrd VMs, the default NIC, and the acceleration decision table.
 */
#include <stdio.h>

#include "argv-check.h"
#include "machine-config.h"
#include "macro.h"
#include "qemu-argv.h"
#include "tap.h"

static const char *script_json =
        "{\"name\":\"server\",\"backend\":\"qemu\",\"node_number\":2,\"state_dir\":\"/tmp/r/vm-state-server\","
        "\"shared_dir\":\"/tmp/r/shared-xchg\",\"out_dir\":\"/tmp/out\",\"accel\":\"auto\","
        "\"vlans\":[{\"nr\":1,\"socket\":\"/tmp/r/vde1.ctl\",\"mac\":\"52:54:00:12:01:02\",\"address\":\"192.168.1.2/"
        "24\"}],"
        "\"hosts\":[{\"name\":\"server\",\"address\":\"192.168.1.2\"}],"
        "\"qemu\":{\"start_script\":\"/nix/store/x/bin/run-server-vm\"},\"timeouts\":{\"connect_s\":60}}";

static const char *kernel_json =
        "{\"name\":\"tiny\",\"state_dir\":\"/tmp/r/vm-state-tiny\",\"shared_dir\":\"/tmp/r/shared-xchg\","
        "\"out_dir\":\"/tmp/out\",\"accel\":\"tcg\",\"allow_reboot\":true,"
        "\"vlans\":[{\"nr\":1,\"socket\":\"/tmp/r/vde1.ctl\",\"mac\":\"52:54:00:12:01:01\"},"
        "{\"nr\":2,\"socket\":\"/tmp/r/vde2.ctl\",\"mac\":\"52:54:00:12:02:01\"}],"
        "\"qemu\":{\"kernel\":\"/k\",\"initrd\":\"/i\",\"append\":\"console=ttyS0 vigil.hostname=tiny\","
        "\"disk\":\"/d.qcow2\",\"memory_mb\":300,\"cpus\":2,\"extra_args\":[\"-cpu\",\"max\"]}}";

static void test_config(void) {
        struct machine_config c;
        char err[MACHINE_CONFIG_ERROR_MAX];

        CHECK(machine_config_parse(script_json, &c, err, sizeof err) == 0, "config: start-script config parses");
        CHECK(streq(c.name, "server") && c.node_number == 2 && c.n_vlans == 1 && c.vlans[0].nr == 1 &&
                      streq(c.start_script, "/nix/store/x/bin/run-server-vm") && c.connect_s == 60 &&
                      streq(c.binary, "qemu-system-x86_64") && c.accel == MACHINE_ACCEL_AUTO && c.memory_mb == 256,
              "config: fields and defaults");
        machine_config_done(&c);

        static const struct {
                const char *json;
                const char *needle;
        } bad[] = {
                {"[]", "not a JSON object"},
                {"{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"guest_channel\":\"turbo\",\"qemu\":{"
                 "\"kernel\":\"/k\"}}",
                 "\"guest_channel\" must be"},
                {"{\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"qemu\":{\"kernel\":\"/k\"}}", "missing \"name\""},
                {"{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"qemu\":{}}", "exactly one of"},
                {"{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"qemu\":{\"kernel\":\"/k\","
                 "\"start_script\":\"/s\"}}",
                 "exactly one of"},
                {"{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"accel\":\"fast\",\"qemu\":{\"kernel\":"
                 "\"/k\"}}",
                 "\"accel\" must be"},
                {"{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"qemu\":{\"kernel\":\"/k\","
                 "\"memory_mb\":\"lots\"}}",
                 "must be an integer"},
                {"{\"name\":\"a\",\"backend\":\"lxc\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"qemu\":{}}",
                 "\"backend\" must be"},
                {"{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"vlans\":[{\"socket\":\"/v\"}],"
                 "\"qemu\":{\"kernel\":\"/k\"}}",
                 "lacks \"nr\""},
                {"{\"name\":\"a\",\"state_dir\":\"/sssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
                 "ssssssssssssssssssssssssssssssssssssssssssss\",\"out_dir\":\"/o\",\"qemu\":{\"kernel\":\"/k\"}}",
                 "too long for unix socket"},
        };
        CHECK(machine_config_parse(
                      "{\"name\":\"a\",\"state_dir\":\"/s\",\"out_dir\":\"/o\",\"guest_channel\":\"fast\","
                      "\"qemu\":{\"kernel\":\"/k\"}}",
                      &c, err, sizeof err) == 0 &&
                      c.fast_path,
              "config: guest_channel fast");
        machine_config_done(&c);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char what[96];
                int r = machine_config_parse(bad[i].json, &c, err, sizeof err);
                snprintf(what, sizeof what, "config: bad case %zu names the problem (%s)", i, bad[i].needle);
                CHECK(r == -EINVAL && strstr(err, bad[i].needle), "%s", what);
                if (r == 0)
                        machine_config_done(&c);
        }
}

static void test_start_script(void) {
        struct machine_config c;
        struct qemu_cmd q;
        char err[MACHINE_CONFIG_ERROR_MAX];
        char *env[] = {"PATH=/bin", "QEMU_OPTS=-m 512", "TMPDIR=/elsewhere", "QEMU_VDE_SOCKET_1=/old", NULL};
        char *env_x[] = {"DISPLAY=:0", NULL};

        machine_config_parse(script_json, &c, err, sizeof err);
        CHECK(qemu_build_start_script(&c, false, env, &q) == 0, "script: builds");
        CHECK(strv_length(q.argv) == 3 && streq(q.argv[0], "/bin/sh") && streq(q.argv[1], "-c") &&
                      streq(q.argv[2],
                            "exec /nix/store/x/bin/run-server-vm -qmp unix:/tmp/r/vm-state-server/qmp,server=on,"
                            "wait=off -monitor unix:/tmp/r/vm-state-server/monitor -S -device "
                            "virtio-serial,id=vigil-vser "
                            "-device virtio-rng-pci -serial stdio -no-reboot -nographic"),
              "script: the reference command string");
        CHECK(argv_has(q.env, "PATH=/bin") && argv_has(q.env, "QEMU_OPTS=-m 512") &&
                      argv_has(q.env, "TMPDIR=/tmp/r/vm-state-server") && !argv_has(q.env, "TMPDIR=/elsewhere") &&
                      argv_has(q.env, "USE_TMPDIR=1") && argv_has(q.env, "SHARED_DIR=/tmp/r/shared-xchg") &&
                      argv_has(q.env, "QEMU_VDE_SOCKET_1=/tmp/r/vde1.ctl") &&
                      !argv_has(q.env, "QEMU_VDE_SOCKET_1=/old"),
              "script: environment like the reference");
        CHECK(streq(q.cwd, "/tmp/r/vm-state-server"), "script: cwd is the state dir");
        CHECK(argv_has(q.env, "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"),
              "script: QEMU's big allocations on huge pages");
        qemu_cmd_done(&q);
        CHECK(qemu_build_start_script(&c, true, env_x, &q) == 0 && !strstr(q.argv[2], "-no-reboot") &&
                      !strstr(q.argv[2], "-nographic"),
              "script: allow_reboot and DISPLAY drop -no-reboot/-nographic");
        qemu_cmd_done(&q);
        char *env_t[] = {"GLIBC_TUNABLES=glibc.malloc.arena_max=2", NULL},
             *env_h[] = {"GLIBC_TUNABLES=glibc.malloc.hugetlb=0", NULL};
        CHECK(qemu_build_start_script(&c, false, env_t, &q) == 0 &&
                      argv_has(q.env, "GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1") &&
                      !argv_has(q.env, "GLIBC_TUNABLES=glibc.malloc.arena_max=2"),
              "script: the user's tunables kept, ours added to them (one GLIBC_TUNABLES)");
        qemu_cmd_done(&q);
        CHECK(qemu_build_start_script(&c, false, env_h, &q) == 0 &&
                      argv_has(q.env, "GLIBC_TUNABLES=glibc.malloc.hugetlb=0") &&
                      !argv_has(q.env, "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"),
              "script: a user who chose glibc.malloc.hugetlb keeps that choice");
        qemu_cmd_done(&q);
        CHECK(streq(qemu_default_nic(&c), "virtio-net-pci.1"), "script: default NIC is virtio-net-pci.1");
        machine_config_done(&c);

        /* The SSH backdoor's device rides at the end, as the reference appends its vsock args. */
        CHECK(machine_config_parse(
                      "{\"name\":\"server\",\"backend\":\"qemu\",\"state_dir\":\"/tmp/r/vm-state-server\","
                      "\"shared_dir\":\"/tmp/r/shared-xchg\",\"out_dir\":\"/tmp/out\",\"qemu\":{"
                      "\"start_script\":\"/s/run-server-vm\",\"extra_args\":[\"-device\","
                      "\"vhost-vsock-pci,guest-cid=3\"]}}",
                      &c, err, sizeof err) == 0,
              "script: config with extra_args parses (%s)", err);
        CHECK(qemu_build_start_script(&c, false, env, &q) == 0 &&
                      strstr(q.argv[2], " -nographic -device vhost-vsock-pci,guest-cid=3"),
              "script: extra_args follow the control arguments (%s)", err);
        qemu_cmd_done(&q);
        machine_config_done(&c);
}

static void test_direct(void) {
        struct machine_config c;
        struct qemu_cmd q;
        char err[MACHINE_CONFIG_ERROR_MAX];
        char *env[] = {"PATH=/bin", NULL};

        CHECK(machine_config_parse(kernel_json, &c, err, sizeof err) == 0, "direct: config parses");
        CHECK(qemu_build_direct(&c, "tcg", c.allow_reboot, env, &q) == 0, "direct: builds");
        ssize_t a = argv_index(q.argv, "-accel");
        CHECK(streq(q.argv[0], "qemu-system-x86_64") && a > 0 && streq(q.argv[a + 1], "tcg"),
              "direct: binary and accel");
        CHECK(streq(q.argv[argv_index(q.argv, "-m") + 1], "300") &&
                      streq(q.argv[argv_index(q.argv, "-smp") + 1], "2") &&
                      streq(q.argv[argv_index(q.argv, "-kernel") + 1], "/k") &&
                      streq(q.argv[argv_index(q.argv, "-initrd") + 1], "/i") &&
                      streq(q.argv[argv_index(q.argv, "-append") + 1], "console=ttyS0 vigil.hostname=tiny"),
              "direct: memory, cpus, kernel, initrd, append");
        CHECK(argv_has(q.argv, "virtio-net-pci,netdev=vlan1,mac=52:54:00:12:01:01,id=nic1,romfile=") &&
                      argv_has(q.argv, "vde,id=vlan1,sock=/tmp/r/vde1.ctl") &&
                      argv_has(q.argv, "virtio-net-pci,netdev=vlan2,mac=52:54:00:12:02:01,id=nic2,romfile=") &&
                      argv_has(q.argv, "vde,id=vlan2,sock=/tmp/r/vde2.ctl"),
              "direct: one virtio NIC + vde netdev per VLAN");
        CHECK(argv_has(q.argv, "local,path=/tmp/r/shared-xchg,security_model=none,mount_tag=shared") &&
                      argv_has(q.argv, "local,path=/tmp/r/vm-state-tiny/xchg,security_model=none,mount_tag=xchg"),
              "direct: 9p shared and xchg");
        CHECK(argv_has(q.argv, "index=1,id=drive1,if=none,file=/d.qcow2,format=qcow2,cache=writeback,werror=report"),
              "direct: disk with its format");
        CHECK(argv_has(q.argv, "unix:/tmp/r/vm-state-tiny/qmp,server=on,wait=off") &&
                      argv_has(q.argv, "virtio-serial,id=vigil-vser") && argv_has(q.argv, "-S") &&
                      !argv_has(q.argv, "-no-reboot") && argv_has(q.argv, "-nographic") &&
                      argv_has(q.argv, "-nodefaults"),
              "direct: control args, reboot allowed");
        CHECK(streq(q.argv[strv_length(q.argv) - 2], "-cpu") && streq(q.argv[strv_length(q.argv) - 1], "max"),
              "direct: extra args last");
        CHECK(streq(qemu_default_nic(&c), "nic1"), "direct: default NIC is nic1");
        qemu_cmd_done(&q);
        machine_config_done(&c);
}

/* The shell is added over QMP: a file for output (QEMU cannot drop what a
 * regular file takes), a FIFO for input, on the bus the command line made. */
static void test_shell_setup(void) {
        _cleanup_strv_free_ char **cmds = NULL;

        CHECK(qemu_shell_setup_commands("/tmp/r/vm-state-a\"b", &cmds) == 0 && strv_length(cmds) == 5,
              "shell setup: five QMP commands");
        if (strv_length(cmds) != 5)
                return;
        CHECK(streq(cmds[0], "{\"execute\":\"chardev-add\",\"arguments\":{\"id\":\"shell\",\"backend\":{\"type\":"
                             "\"file\",\"data\":{\"in\":\"\\/tmp\\/r\\/vm-state-a\\\"b\\/shell.in\",\"out\":"
                             "\"\\/tmp\\/r\\/vm-state-a\\\"b\\/shell\",\"append\":true}}}}"),
              "shell setup: chardev-add of a file chardev, paths escaped");
        CHECK(streq(cmds[1], "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"virtconsole\",\"chardev\":"
                             "\"shell\",\"bus\":\"vigil-vser.0\"}}"),
              "shell setup: a virtconsole (hvc0 in the guest) on vigil's bus");
        CHECK(streq(cmds[2], "{\"execute\":\"chardev-add\",\"arguments\":{\"id\":\"vigil-debug\",\"backend\":{"
                             "\"type\":\"socket\",\"data\":{\"addr\":{\"type\":\"unix\",\"data\":{\"path\":"
                             "\"\\/tmp\\/r\\/vm-state-a\\\"b\\/dbg\"}},\"server\":true,\"wait\":false}}}}"),
              "debug console: a unix socket server that does not wait for a client (%s)", cmds[2]);
        CHECK(streq(cmds[3], "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"virtconsole\",\"chardev\":"
                             "\"vigil-debug\",\"bus\":\"vigil-vser.0\"}}"),
              "debug console: a second virtconsole (hvc1), after the shell's");
        CHECK(streq(cmds[4], "{\"execute\":\"cont\"}"), "shell setup: then the guest runs");
}

static void test_accel(void) {
        const char *why;

        CHECK(!strcmp(qemu_accel_decide(MACHINE_ACCEL_AUTO, QEMU_KVM_WORKS, &why), "kvm"),
              "accel: auto + works = kvm");
        CHECK(!strcmp(qemu_accel_decide(MACHINE_ACCEL_AUTO, QEMU_KVM_HANGS, &why), "tcg") &&
                      strstr(why, "no progress"),
              "accel: auto + hangs = tcg, says why");
        CHECK(!strcmp(qemu_accel_decide(MACHINE_ACCEL_AUTO, QEMU_KVM_MISSING, &why), "tcg"),
              "accel: auto + missing = tcg");
        CHECK(!strcmp(qemu_accel_decide(MACHINE_ACCEL_AUTO, QEMU_KVM_FAILED, &why), "tcg"),
              "accel: auto + failed = tcg");
        CHECK(!strcmp(qemu_accel_decide(MACHINE_ACCEL_KVM, QEMU_KVM_UNTESTED, &why), "kvm"), "accel: kvm honoured");
        CHECK(!strcmp(qemu_accel_decide(MACHINE_ACCEL_TCG, QEMU_KVM_WORKS, &why), "tcg"), "accel: tcg honoured");
        CHECK(qemu_accel_needs_probe(MACHINE_ACCEL_AUTO) && !qemu_accel_needs_probe(MACHINE_ACCEL_TCG),
              "accel: only auto probes");
        CHECK(qemu_kvm_probe_from_string(qemu_kvm_probe_to_string(QEMU_KVM_HANGS)) == QEMU_KVM_HANGS,
              "accel: probe names round-trip");
}

static void test_probe_host_cache(void) {
        const char *key = "boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86_64";
        char line[256];

        CHECK(qemu_kvm_probe_host_line(key, QEMU_KVM_HANGS, line, sizeof line) == 0 &&
                      streq(line, "boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86_64 hangs\n") &&
                      qemu_kvm_probe_host_parse(line, key) == QEMU_KVM_HANGS,
              "probe cache: a verdict round-trips for its key");
        CHECK(qemu_kvm_probe_host_line(key, QEMU_KVM_WORKS, line, sizeof line) == 0 &&
                      qemu_kvm_probe_host_parse(line, key) == QEMU_KVM_WORKS,
              "probe cache: works too");
        CHECK(qemu_kvm_probe_host_parse(line, "boot=9999-abcd,kvm=10:232,qemu=qemu-system-x86_64") ==
                              QEMU_KVM_UNTESTED &&
                      qemu_kvm_probe_host_parse(line, "boot=1234-abcd,kvm=10:232,qemu=/usr/bin/qemu") ==
                              QEMU_KVM_UNTESTED &&
                      qemu_kvm_probe_host_parse(line, "boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86") ==
                              QEMU_KVM_UNTESTED,
              "probe cache: another boot or another QEMU (even a prefix of the key) probes anew");
        CHECK(qemu_kvm_probe_host_line(key, QEMU_KVM_MISSING, line, sizeof line) == -EINVAL &&
                      qemu_kvm_probe_host_line(key, QEMU_KVM_UNTESTED, line, sizeof line) == -EINVAL &&
                      qemu_kvm_probe_host_parse("boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86_64 missing\n", key) ==
                              QEMU_KVM_UNTESTED,
              "probe cache: only a probe's verdicts are kept (no /dev/kvm may change within a boot)");
        CHECK(qemu_kvm_probe_host_line("a b", QEMU_KVM_HANGS, line, sizeof line) == -EINVAL &&
                      qemu_kvm_probe_host_line(key, QEMU_KVM_HANGS, line, 10) == -ENOBUFS,
              "probe cache: a key with a space, a line that does not fit");
        CHECK(qemu_kvm_probe_host_parse("boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86_64 hangs\nmore\n", key) ==
                              QEMU_KVM_UNTESTED &&
                      qemu_kvm_probe_host_parse("boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86_64 \n", key) ==
                              QEMU_KVM_UNTESTED &&
                      qemu_kvm_probe_host_parse("boot=1234-abcd,kvm=10:232,qemu=qemu-system-x86_64 bogus", key) ==
                              QEMU_KVM_UNTESTED &&
                      qemu_kvm_probe_host_parse(NULL, key) == QEMU_KVM_UNTESTED,
              "probe cache: anything else is no verdict");
}

int main(void) {
        test_config();
        test_start_script();
        test_direct();
        test_shell_setup();
        test_accel();
        test_probe_host_cache();
        return tap_done();
}
