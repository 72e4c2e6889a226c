/* SPDX-License-Identifier: MIT */
/*
 * test-machine-qemu-snapshot: proves the boot cache's key is the same for the
 * same VM in another run (other state, shared and run directories) and differs
 * when anything that shapes the VM differs: an argument, a QEMU_* variable, a
 * file an argument names (its size or mtime). It matters because a snapshot
 * restored into a different VM is a silently broken test.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "macro.h"
#include "qemu-snapshot.h"
#include "resume-agent.h"
#include "tap.h"

static void key_of(char **argv, char **env, const char *state, const char *shared, char key[17]) {
        int r = qemu_snapshot_key(argv, env, state, shared, key, NULL);
        CHECK(r == 0, "key computed (%d)", r);
}

int main(void) {
        char dir[] = "/tmp/vigil-snapkey-XXXXXX", kernel[128], a[17], b[17], c[17];
        struct timespec ts[2] = {{.tv_sec = 1000000}, {.tv_sec = 1000000}};
        int fd;

        CHECK(mkdtemp(dir) != NULL, "temporary directory");
        (void) snprintf(kernel, sizeof kernel, "%s/kernel", dir);
        fd = open(kernel, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0 && write(fd, "vmlinux", 7) == 7, "a kernel file");
        (void) close(fd);
        (void) utimensat(AT_FDCWD, kernel, ts, 0);

        char *argv1[] = {"qemu-system-x86_64",
                         "-m",
                         "256",
                         "-kernel",
                         kernel,
                         "-virtfs",
                         "local,path=/tmp/run1/vm-state-a/xchg,mount_tag=xchg",
                         "-netdev",
                         "vde,id=v1,sock=/tmp/run1/vde1.ctl",
                         NULL};
        char *argv2[] = {"qemu-system-x86_64",
                         "-m",
                         "256",
                         "-kernel",
                         kernel,
                         "-virtfs",
                         "local,path=/tmp/run2/vm-state-a/xchg,mount_tag=xchg",
                         "-netdev",
                         "vde,id=v1,sock=/tmp/run2/vde1.ctl",
                         NULL};
        char *env1[] = {"PATH=/usr/bin:/bin", "QEMU_OPTS=-smp 1", "TMPDIR=/tmp/run1/vm-state-a", NULL};
        char *env2[] = {"PATH=/bin", "QEMU_OPTS=-smp 1", "TMPDIR=/tmp/run2/vm-state-a", NULL};
        char *env3[] = {"QEMU_OPTS=-smp 2", NULL};

        key_of(argv1, env1, "/tmp/run1/vm-state-a", "/tmp/run1/shared", a);
        key_of(argv2, env2, "/tmp/run2/vm-state-a", "/tmp/run2/shared", b);
        CHECK(strlen(a) == QEMU_SNAPSHOT_KEY_LEN && streq(a, b),
              "the same VM in another run has the same key (%s, %s)", a, b);

        key_of(argv1, env3, "/tmp/run1/vm-state-a", "/tmp/run1/shared", c);
        CHECK(!streq(a, c), "a different QEMU_OPTS gives another key");

        argv1[2] = "512";
        key_of(argv1, env1, "/tmp/run1/vm-state-a", "/tmp/run1/shared", c);
        CHECK(!streq(a, c), "more memory gives another key");
        argv1[2] = "256";

        ts[1].tv_sec = 2000000;
        (void) utimensat(AT_FDCWD, kernel, ts, 0);
        key_of(argv1, env1, "/tmp/run1/vm-state-a", "/tmp/run1/shared", c);
        CHECK(!streq(a, c), "a rebuilt kernel (another mtime) gives another key");

        char in_state[17];
        key_of(argv1, env1, dir, "/tmp/run1/shared", in_state);
        ts[1].tv_sec = 3000000;
        (void) utimensat(AT_FDCWD, kernel, ts, 0);
        key_of(argv1, env1, dir, "/tmp/run1/shared", c);
        CHECK(streq(in_state, c), "a file in the state dir (a disk the snapshot carries, written at every boot) is "
                                  "not part of the key: its mtime changes nothing");

        argv1[4] = "/nonexistent/kernel";
        key_of(argv1, env1, "/tmp/run1/vm-state-a", "/tmp/run1/shared", c);
        CHECK(!streq(a, c), "another kernel path gives another key");

        char *cmd = NULL;
        CHECK(qemu_snapshot_clock_command(1700000000400000ull, true, &cmd) == 0 && cmd &&
                      strstr(cmd, "mount -a -T /run/vigil-9p ||") &&
                      strstr(cmd, "date -u -s @$(((170000000040 + 10#${u1/./} - 10#${u0/./} + 50) / 100))") &&
                      !strstr(cmd, "/proc/mounts") && !strstr(cmd, "date -u -s @1700000000 "),
              "after a restore without the agent: every share mounted with one exec, then the clock, corrected by "
              "the time that took (%s)",
              cmd ?: "");
        free(cmd);
        cmd = NULL;
        CHECK(qemu_snapshot_clock_command(1700000000400000ull, false, &cmd) == 0 && cmd &&
                      strstr(cmd, "date -u -s @1700000000 >/dev/null;") &&
                      strstr(cmd, "date -u -s @$(((170000000040 + 10#${u1/./} - 10#${u0/./} + 50) / 100))") &&
                      strstr(cmd, "/proc/mounts") && strstr(cmd, "mount -a -T /run/vigil-9p.todo"),
              "after a save a re-attached worker finished, or after the agent failed: only the shares not mounted, "
              "and the clock set twice if none was (%s)",
              cmd ?: "");
        free(cmd);
        cmd = NULL;
        CHECK(qemu_snapshot_agent_command(1700000000400000ull, 0, &cmd) == 0 && cmd &&
                      strncmp(cmd, "if read -r p v 2>/dev/null </run/vigil-resume.pid && kill -0 \"$p\"", 64) == 0 &&
                      strstr(cmd, "echo \"1700000000400000 ${u0/./}\" >/run/vigil-resume.in; ") &&
                      strstr(cmd, "read -r a </run/vigil-resume.out") &&
                      strstr(cmd, "then echo '" RESUME_AGENT_DONE "'; exit 0; fi; ") &&
                      strstr(cmd, "exit 4; fi; exit 3") && !strstr(cmd, "mount") && !strstr(cmd, "date") &&
                      strlen(cmd) < 400,
              "the agent's job: it gets the time in microseconds and the uptime; no agent or a failed one exits "
              "with a status of its own, and nothing of the shell's way is in the job for bash to parse (%s)",
              cmd ?: "");
        free(cmd);
        cmd = NULL;
        CHECK(qemu_snapshot_agent_command(1700000000400000ull, 1700000000100000ull, &cmd) == 0 && cmd &&
                      strstr(cmd, "echo \"1700000000400000 ${u0/./}${v:+ 1700000000100000}\" >/run/vigil-resume.in"),
              "with the host's time at cont: only an agent whose pid file gives a version gets it (a session 8 "
              "agent in an older snapshot takes two fields) (%s)",
              cmd ?: "");
        free(cmd);
        cmd = NULL;
        CHECK(qemu_snapshot_prepare_command(NULL, &cmd) == 0 && cmd && streq(cmd, QEMU_SNAPSHOT_UNMOUNT_COMMAND),
              "without the agent the save's prepare command only unmounts the shares");
        free(cmd);
        cmd = NULL;
        CHECK(qemu_snapshot_prepare_command("QUJD", &cmd) == 0 && cmd &&
                      strncmp(cmd, QEMU_SNAPSHOT_UNMOUNT_COMMAND "; ", strlen(QEMU_SNAPSHOT_UNMOUNT_COMMAND) + 2) ==
                              0 &&
                      strstr(cmd, "if [ \"$HOSTTYPE\" = x86_64 ]; then ") &&
                      strstr(cmd, "printf %s 'QUJD' | base64 -d >/run/vigil-resume && ") &&
                      strstr(cmd, "mkfifo -m 600 /run/vigil-resume.in /run/vigil-resume.out && /run/vigil-resume "
                                  "</dev/null >/dev/null 2>&1; } 2>/dev/null || rm -f ") &&
                      !strstr(cmd + strlen(QEMU_SNAPSHOT_UNMOUNT_COMMAND), "exit"),
              "with the agent: the shares unmounted, then the agent put into /run and started on its FIFOs, never "
              "failing the save if it cannot run (%s)",
              cmd ?: "");
        free(cmd);

        char disk[64];
        const char *state = "/run/vigil-1/vm-state-vm";
        CHECK(qemu_snapshot_writable_disk(NULL, NULL, state, disk, sizeof disk) == 0,
              "a start script's own QEMU line is not read: its root disk ($NIX_DISK_IMAGE) is the save's to decide");
        CHECK(qemu_snapshot_writable_disk("-m 2048 -hdb /tmp/extra.img", NULL, state, disk, sizeof disk) == 1 &&
                      streq(disk, "/tmp/extra.img"),
              "a disk in QEMU_OPTS outside the state dir counts (%s)", disk);
        CHECK(qemu_snapshot_writable_disk("-drive file=/run/vigil-1/vm-state-vm/data.img,if=virtio -hdb data2.img",
                                          NULL, state, disk, sizeof disk) == 0,
              "one in the state dir, or a relative name (QEMU's cwd is the state dir), can be carried: the save "
              "decides");
        CHECK(qemu_snapshot_writable_disk("-drive file=/run/vigil-1/vm-state-vm-other/x.img", NULL, state, disk,
                                          sizeof disk) == 1 &&
                      qemu_snapshot_writable_disk("-drive file=/run/vigil-1/vm-state-vm/../x.img", NULL, state, disk,
                                                  sizeof disk) == 1,
              "a sibling of the state dir with its name as prefix, or a path out of it with .., is outside");
        CHECK(qemu_snapshot_writable_disk("-drive file=nbd:localhost:10809,if=virtio", NULL, state, disk,
                                          sizeof disk) == 1 &&
                      qemu_snapshot_writable_disk("-drive file=/tmp/seed.iso,media=cdrom,readonly=on "
                                                  "-drive file=/tmp/scratch.qcow2,snapshot=on "
                                                  "-drive file=/tmp/x/store.img,if=virtio",
                                                  NULL, state, disk, sizeof disk) == 0,
              "a protocol can never be carried; read-only, snapshot=on and NixOS's store image are not written");
        char *extra[] = {"-device", "e1000", "-blockdev", "driver=file,node-name=d,filename=/tmp/d.raw", NULL};
        CHECK(qemu_snapshot_writable_disk(NULL, extra, state, disk, sizeof disk) == 1,
              "a -blockdev in the extra arguments counts");
        char *direct[] = {"qemu-system-x86_64",
                          "-kernel",
                          "k",
                          "-drive",
                          "index=1,id=drive1,if=none,file=/var/tmp/vm.qcow2,format=qcow2,cache=writeback",
                          "-append",
                          "console=ttyS0 -drive",
                          NULL};
        CHECK(qemu_snapshot_writable_disk(NULL, direct, state, disk, sizeof disk) == 1 && strstr(disk, "vm.qcow2"),
              "a direct boot's disk outside the state dir counts (%s)", disk);
        CHECK(qemu_snapshot_writable_disk(NULL, direct, "/var/tmp", disk, sizeof disk) == 0,
              "the same disk inside the state dir does not");
        char *diskless[] = {"qemu-system-x86_64",
                            "-kernel",
                            "k",
                            "-append",
                            "console=ttyS0",
                            "-blockdev",
                            "driver=file,node-name=d,filename=/x,read-only=on",
                            NULL};
        CHECK(qemu_snapshot_writable_disk(NULL, diskless, state, disk, sizeof disk) == 0,
              "no disk, or a read-only -blockdev: none QEMU writes");

        /* The save's rule, disk by disk. */
        const char *rel = NULL;
        CHECK(qemu_snapshot_disk_rule("/run/vigil-1/vm-state-vm/vm.qcow2", true, state, NULL, &rel) ==
                              QEMU_SNAPSHOT_DISK_CARRIED &&
                      rel && streq(rel, "vm.qcow2"),
              "a regular file in the state dir is carried, by its path relative to it (%s)", rel ?: "");
        rel = NULL;
        CHECK(qemu_snapshot_disk_rule("/tmp/real/vm-state-vm/d/x.img", true, state, "/tmp/real/vm-state-vm/", &rel) ==
                              QEMU_SNAPSHOT_DISK_CARRIED &&
                      rel && streq(rel, "d/x.img"),
              "also under the state dir's canonical path (NixOS's readlink -f), in a subdirectory (%s)", rel ?: "");
        CHECK(qemu_snapshot_disk_rule("/run/vigil-1/vm-state-vm/vm.qcow2", false, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_NOT_REGULAR &&
                      qemu_snapshot_disk_rule("/tmp/outside.img", true, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_OUTSIDE &&
                      qemu_snapshot_disk_rule("/run/vigil-1/vm-state-vmx/a.img", true, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_OUTSIDE &&
                      qemu_snapshot_disk_rule("/run/vigil-1/vm-state-vm/../a.img", true, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_OUTSIDE &&
                      qemu_snapshot_disk_rule("/run/vigil-1/vm-state-vm", true, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_OUTSIDE &&
                      qemu_snapshot_disk_rule("json:{\"driver\": \"nbd\"}", true, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_PROTOCOL &&
                      qemu_snapshot_disk_rule("/run/vigil-1/vm-state-vm/store.img", true, state, NULL, NULL) ==
                              QEMU_SNAPSHOT_DISK_SKIPPED,
              "a block device, a file outside (a sibling, a ..), the state dir itself or a protocol is never "
              "carried; NixOS's store image is left alone");
        CHECK(strstr(qemu_snapshot_disk_why(QEMU_SNAPSHOT_DISK_OUTSIDE), "outside the machine's state dir") &&
                      strstr(qemu_snapshot_disk_why(QEMU_SNAPSHOT_DISK_NOT_REGULAR), "not a regular file"),
              "each refusal says why");
        CHECK(qemu_snapshot_disk_rel_ok("a/b.img") && !qemu_snapshot_disk_rel_ok("") &&
                      !qemu_snapshot_disk_rel_ok("/a") && !qemu_snapshot_disk_rel_ok("a/../../b") &&
                      !qemu_snapshot_disk_rel_ok("./a") && !qemu_snapshot_disk_rel_ok("a//b") &&
                      !qemu_snapshot_disk_rel_ok("a/") && !qemu_snapshot_disk_rel_ok("a\nb"),
              "a relative path names a file under the state dir and nothing else");

        /* query-block's answer: the writable disks with a medium. */
        static const char blocks_reply[] =
                "{\"return\": [{\"io-status\": \"ok\", \"device\": \"drive1\", \"locked\": false, \"removable\": "
                "false, \"inserted\": {\"iops_rd\": 0, \"ro\": false, \"drv\": \"raw\", \"file\": "
                "\"/run/vigil-1/vm-state-vm/vm.img\", \"node-name\": \"#block123\"}, \"qdev\": "
                "\"/machine/peripheral-anon/device[2]/virtio-backend\", \"type\": \"unknown\"}, {\"device\": "
                "\"ide1-cd0\", \"locked\": false, \"removable\": true, \"tray_open\": false, \"type\": \"unknown\"}, "
                "{\"device\": \"cd\", \"inserted\": {\"ro\": true, \"file\": \"/tmp/seed.iso\"}}, {\"device\": \"\", "
                "\"inserted\": {\"ro\": false, \"file\": \"json:{\\\"driver\\\": \\\"nbd\\\"}\", \"node-name\": "
                "\"n1\"}}]}";
        struct qemu_snapshot_block *bl = NULL;
        size_t nb = 0;
        CHECK(qemu_snapshot_writable_blocks(blocks_reply, &bl, &nb) == 0 && nb == 2 && streq(bl[0].device, "drive1") &&
                      streq(bl[0].file, "/run/vigil-1/vm-state-vm/vm.img") && streq(bl[1].device, "n1") &&
                      strncmp(bl[1].file, "json:", 5) == 0,
              "query-block: the writable disks with a medium, by device (or node) name; no empty drive, no "
              "read-only one (%zu)",
              nb);
        qemu_snapshot_blocks_free(bl, nb);
        bl = NULL;
        CHECK(qemu_snapshot_writable_blocks("{\"error\": {\"class\": \"GenericError\"}}", &bl, &nb) == -EBADMSG &&
                      qemu_snapshot_writable_blocks("not json", &bl, &nb) == -EBADMSG &&
                      qemu_snapshot_writable_blocks("{\"return\": [{\"inserted\": {\"ro\": false}}]}", &bl, &nb) ==
                              -EBADMSG &&
                      !bl,
              "an error, garbage or a writable disk without a file is not an answer to go by");

        /* The manifest: relative path -> the file beside vmstate. */
        struct qemu_snapshot_disk md[] = {{.rel = "vm.img", .saved = "disk.42.0"},
                                          {.rel = "sub dir/b.qcow2", .saved = "disk.42.1"}};
        struct qemu_snapshot_disk *mp = NULL;
        size_t nm = 0;
        char *mtext = NULL;
        CHECK(qemu_snapshot_manifest_format(md, 2, &mtext) == 0 &&
                      qemu_snapshot_manifest_parse(mtext, &mp, &nm) == 0 && nm == 2 && streq(mp[0].rel, "vm.img") &&
                      streq(mp[0].saved, "disk.42.0") && streq(mp[1].rel, "sub dir/b.qcow2") &&
                      streq(mp[1].saved, "disk.42.1"),
              "the manifest reads back as written, spaces in a path and all (%s)", mtext ?: "");
        qemu_snapshot_disks_free(mp, nm);
        free(mtext);
        mp = NULL;
        struct qemu_snapshot_disk bad1[] = {{.rel = "../x", .saved = "disk.1.0"}},
                                  bad2[] = {{.rel = "x", .saved = "../vmstate"}};
        CHECK(qemu_snapshot_manifest_format(bad1, 1, &mtext) == -EINVAL &&
                      qemu_snapshot_manifest_format(bad2, 1, &mtext) == -EINVAL &&
                      qemu_snapshot_manifest_parse("vigil boot disks 1\ndisk.1.0 /etc/passwd\n", &mp, &nm) ==
                              -EBADMSG &&
                      qemu_snapshot_manifest_parse("vigil boot disks 1\nvmstate vm.img\n", &mp, &nm) == -EBADMSG &&
                      qemu_snapshot_manifest_parse("vigil boot disks 1\ndisk.1.0 vm.img", &mp, &nm) == -EBADMSG &&
                      qemu_snapshot_manifest_parse("disk.1.0 vm.img\n", &mp, &nm) == -EBADMSG && !mp,
              "a manifest never names a file outside the state dir or the snapshot dir, nor vmstate; a truncated "
              "or headless one is refused");
        CHECK(qemu_snapshot_manifest_parse("vigil boot disks 1\n", &mp, &nm) == 0 && nm == 0,
              "an empty manifest: no disks");
        qemu_snapshot_disks_free(mp, nm);

        char **args = NULL;
        CHECK(qemu_snapshot_ram_args(NULL, 256, &args) == 0 && strv_length(args) == 4 && streq(args[0], "-object") &&
                      streq(args[1], "memory-backend-memfd,id=vigil-ram,size=256M,share=on") &&
                      streq(args[2], "-machine") && streq(args[3], "memory-backend=vigil-ram"),
              "a boot that saves has its RAM in a shared memfd (%s)", args ? args[1] : "");
        args = strv_free(args);
        CHECK(qemu_snapshot_ram_args("/c/a,b/ram", 512, &args) == 0 && strv_length(args) == 4 &&
                      streq(args[1], "memory-backend-file,id=vigil-ram,size=512M,share=off,mem-path=/c/a,,b/ram"),
              "a restore maps the snapshot's RAM file private, a comma in its path doubled (%s)", args ? args[1] : "");
        args = strv_free(args);
        char *plain[] = {"-device", "virtio-rng-pci", NULL}, *own_m[] = {"-m", "1G", NULL},
             *own_backend[] = {"-object", "memory-backend-ram,id=m0,size=1G", NULL};
        CHECK(qemu_snapshot_ram_mappable(plain) && qemu_snapshot_ram_mappable(NULL) &&
                      !qemu_snapshot_ram_mappable(own_m) && !qemu_snapshot_ram_mappable(own_backend),
              "extra arguments that choose the memory keep the RAM in the stream");

        /* A NixOS start script (qemu-vm.nix's shape): the RAM can be a file
         * when its QEMU line says -m <MiB> and nothing else chooses. */
        const char *nixos = "#! /bin/sh\nmkdir -m 0700 -p \"$TMPDIR/xchg\"\ninstall -m 755 a b\n"
                            "exec /nix/store/x-qemu/bin/qemu-kvm -cpu max \\\n    -name m \\\n    -m 1024 \\\n"
                            "    -smp 1 \\\n    $QEMU_OPTS \"$@\"\n";
        unsigned long long mb = 0;
        CHECK(qemu_snapshot_script_memory(nixos, NULL, NULL, &mb) == 0 && mb == 1024,
              "a start script's -m is its guest memory; other programs' -m do not count (%llu)", mb);
        mb = 0;
        CHECK(qemu_snapshot_script_memory("exec '/usr/bin/qemu-system-x86_64' -m 256 $QEMU_OPTS", "-smp 2",
                                          (char *[]){"-device", "x", NULL}, &mb) == 0 &&
                      mb == 256,
              "a quoted QEMU path (make-fake-vm's) is found, QEMU_OPTS without memory options allowed (%llu)", mb);
        const char *const refused[] = {
                "exec qemu-kvm -smp 1",                                  /* no -m */
                "exec qemu-kvm -m 1024 -m 2048",                         /* two */
                "exec qemu-kvm -m 1G",                                   /* a unit */
                "exec qemu-kvm -m size=1G,slots=2",                      /* a list */
                "exec qemu-kvm -m $MEM",                                 /* a variable */
                "exec qemu-kvm -m",                                      /* nothing after it */
                "exec qemu-kvm -m 1024 -numa node",                      /* NUMA */
                "exec qemu-kvm -m 1024 -object memory-backend-ram,id=r", /* a backend of its own */
                "mkdir -m 0700 x; qemu-kvm -m 512",                      /* not exec'd: not the line */
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                CHECK(qemu_snapshot_script_memory(refused[i], NULL, NULL, &mb) == -ENOENT,
                      "the RAM stays in the stream for `%s`", refused[i]);
        CHECK(qemu_snapshot_script_memory("exec qemu-kvm -m 1024", "-m 2048", NULL, &mb) == -ENOENT &&
                      qemu_snapshot_script_memory("exec qemu-kvm -m 1024", "-mem-path /x", NULL, &mb) == -ENOENT &&
                      qemu_snapshot_script_memory("exec qemu-kvm -m 1024", NULL, (char *[]){"-m", "2G", NULL}, &mb) ==
                              -ENOENT,
              "QEMU_OPTS or extra arguments choosing the memory keep the RAM in the stream");

        CHECK(qemu_snapshot_migration_of("completed") == QEMU_SNAPSHOT_MIGRATION_COMPLETED &&
                      qemu_snapshot_migration_of("active") == QEMU_SNAPSHOT_MIGRATION_RUNNING &&
                      qemu_snapshot_migration_of("setup") == QEMU_SNAPSHOT_MIGRATION_RUNNING &&
                      qemu_snapshot_migration_of("device") == QEMU_SNAPSHOT_MIGRATION_RUNNING &&
                      qemu_snapshot_migration_of("failed") == QEMU_SNAPSHOT_MIGRATION_NONE &&
                      qemu_snapshot_migration_of("cancelled") == QEMU_SNAPSHOT_MIGRATION_NONE &&
                      qemu_snapshot_migration_of("") == QEMU_SNAPSHOT_MIGRATION_NONE,
              "only a completed migration is a snapshot; one under way is asked about again");

        char *text = NULL, *tmp = NULL, *path = NULL, **disks = NULL;
        CHECK(qemu_snapshot_saving_format("/c/k/vmstate.tmp.42", "/c/k/vmstate", NULL, &text) == 0 &&
                      qemu_snapshot_saving_parse(text, &tmp, &path, &disks) == 0 &&
                      streq(tmp, "/c/k/vmstate.tmp.42") && streq(path, "/c/k/vmstate") && !disks,
              "the saving marker names the temporary file and the snapshot (%s)", text ?: "");
        free(text);
        free(tmp);
        free(path);
        char *carried[] = {"vm.img", "d/e f.qcow2", NULL};
        CHECK(qemu_snapshot_saving_format("/c/k/vmstate.tmp.42", "/c/k/vmstate", carried, &text) == 0 &&
                      qemu_snapshot_saving_parse(text, &tmp, &path, &disks) == 0 && strv_length(disks) == 2 &&
                      streq(disks[0], "vm.img") && streq(disks[1], "d/e f.qcow2"),
              "and the disks the save carries, so a re-attached worker copies them too (%s)", text ?: "");
        free(text);
        free(tmp);
        free(path);
        strv_free(disks);
        tmp = path = NULL;
        disks = NULL;
        CHECK(qemu_snapshot_saving_parse("/c/k/vmstate.tmp", &tmp, &path, &disks) == -EBADMSG &&
                      qemu_snapshot_saving_parse("/a\n/b\nextra", &tmp, &path, &disks) == -EBADMSG &&
                      qemu_snapshot_saving_parse("/a\n/b\ndisk ../x\n", &tmp, &path, &disks) == -EBADMSG &&
                      qemu_snapshot_saving_parse("/a\n/b\ndisk x", &tmp, &path, &disks) == -EBADMSG &&
                      qemu_snapshot_saving_parse("rel\n/b\n", &tmp, &path, &disks) == -EBADMSG && !tmp && !path &&
                      !disks,
              "a truncated or foreign marker, or one naming a disk outside the state dir, is refused");
        CHECK(qemu_snapshot_saving_format("/a\nb", "/c", NULL, &text) == -EINVAL, "a path with a newline is refused");
        CHECK(qemu_snapshot_placed_format(carried, &text) == 0 && qemu_snapshot_placed_parse(text, &disks) == 0 &&
                      strv_length(disks) == 2 && streq(disks[1], "d/e f.qcow2"),
              "the list of disks a restore placed reads back (%s)", text ?: "");
        free(text);
        strv_free(disks);
        disks = NULL;
        CHECK(qemu_snapshot_placed_parse("disk ../../etc/passwd\n", &disks) == -EBADMSG &&
                      qemu_snapshot_placed_parse("disk /etc/passwd\n", &disks) == -EBADMSG && !disks,
              "it never names a file outside the state dir (a plan removes what it names)");

        (void) unlink(kernel);
        (void) rmdir(dir);
        return tap_done();
}
