#!/usr/bin/python3
# Proves the boot cache keeps the disks a boot creates in its state dir: a NixOS-shaped start script whose root
# disk ($NIX_DISK_IMAGE, made by the script in the state dir when missing, as qemu-vm.nix does) is saved with its
# disk, restored in the next run onto that disk (the script makes none, the guest reads the first run's token and
# writes to it), never restored over a disk kept by -K nor left behind by a restore that fails or is dropped, and
# a VM whose disk lives outside the state dir is refused at its save and then at plan time. It matters because
# every default NixOS test VM has such a disk: without this the cache would not apply to them, and restored over a
# fresh disk a guest would find a disk it never wrote.
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minisup  # noqa: E402

SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT", ".")
VIGIL = os.environ.get("VIGIL") or (sys.argv[1] if len(sys.argv) > 1 else None)

# The guest reads its disk past its page cache (a restored guest has run 1's in RAM).
READ = "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=64 count=1 2>/dev/null | head -n 1"
SCRIPT = r'''
%s
print("TOKEN=" + disk.succeed("%s").strip())
%s
for m in machines:
    m.succeed("true")  # the other machine's save (or refusal) is over before the run ends
print("BOOTCACHE-DISK-OK")
'''
WRITE = r'''
disk.succeed("printf 'written-after-%s' | dd of=/dev/vda bs=4096 seek=1 conv=notrunc,fsync 2>/dev/null")
print("READBACK=" + disk.succeed("echo 3 > /proc/sys/vm/drop_caches; "
                                 "dd if=/dev/vda bs=4096 skip=1 count=1 2>/dev/null | head -c 40").strip("\0\n"))
'''


def main():
    t = minisup.TapChecks()
    t.n = t.failed = 0
    check = t.check
    if not VIGIL or not shutil.which("qemu-system-x86_64"):
        print("1..0 # SKIP no vigil binary or no QEMU")
        sys.exit(77)
    guest = minisup.find_guest(SOURCE_ROOT)
    if not guest:
        print("1..0 # SKIP no tiny guest (tools/mkguest)")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="vigil-bcd-", dir="/tmp")
    env = dict(os.environ, TMPDIR=tmp)
    env.pop("XDG_RUNTIME_DIR", None)  # -K keeps state under $TMPDIR/vigil-keep-<uid>: the test's own
    try:
        fake = os.path.join(SOURCE_ROOT, "tests/helpers/make-fake-vm")
        subprocess.run(["sh", fake, "disk", guest, os.path.join(tmp, "disk"), "--disk"], check=True)
        outside_img = os.path.join(tmp, "outside.img")
        subprocess.run(["sh", fake, "outside", guest, os.path.join(tmp, "outside"), "--disk-image", outside_img],
                       check=True)
        cache = os.path.join(tmp, "cache")
        disk_node = {"start_script": os.path.join(tmp, "disk", "bin", "run-disk-vm")}
        specs = {"both": {"nodes": {"disk": disk_node,
                                    "outside": {"start_script": os.path.join(tmp, "outside", "bin", "run-outside-vm")}},
                          "boot_cache": cache},
                 "disk": {"nodes": {"disk": disk_node}, "boot_cache": cache}}
        for name, spec in specs.items():
            with open(os.path.join(tmp, name + ".json"), "w") as f:
                json.dump(spec, f)

        def run(n, spec, extra="", keep=False, start="start_all()"):
            test = os.path.join(tmp, "test%s.py" % n)
            with open(test, "w") as f:
                f.write(SCRIPT % (start, READ, extra))
            r = subprocess.run([VIGIL, "run", test, "--spec", os.path.join(tmp, spec + ".json"), "-o",
                                os.path.join(tmp, "out%s" % n), "--global-timeout", "120", "--log-level", "info"] +
                               (["-K"] if keep else []), cwd=tmp, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", timeout=160)
            check(r.returncode == 0 and "BOOTCACHE-DISK-OK" in r.stdout, "run %s passes (exit %d)" % (n, r.returncode),
                  r.stdout[-3000:])
            token = [ln[6:] for ln in r.stdout.splitlines() if ln.startswith("TOKEN=")]
            return r.stdout, token[0] if token else None

        # Run 1: both boot cold; the disk machine's snapshot carries its disk, the other is refused at its save.
        out1, token1 = run(1, "both")
        check("Boot cache: no snapshot for this VM" in out1 and
              "with 1 disk (" in out1 and out1.count("Boot cache: saved ") == 1,
              "run 1: the disk machine boots cold and saves a snapshot with its disk", out1)
        check(token1 and token1.isdigit(), "run 1: the guest reads the fresh disk's token (%s)" % token1, out1)
        refused = "Boot cache: not saving a snapshot: it has a disk QEMU writes that a snapshot cannot carry: drive1 (%s)" \
            % outside_img
        check(refused in out1 and "outside the machine's state dir" in out1,
              "run 1: the machine whose disk is outside its state dir saves nothing, the log naming the disk", out1)
        check(len(glob.glob(os.path.join(cache, "*", "no-snapshot"))) == 1 and
              len(glob.glob(os.path.join(cache, "*", "vmstate"))) == 1 and
              len(glob.glob(os.path.join(cache, "*", "disks"))) == 1,
              "the cache holds one snapshot with its manifest, and the refusal",
              "\n".join(glob.glob(os.path.join(cache, "*", "*"))))

        # Run 2: restored onto run 1's disk, which the guest then writes; the refusal is read at plan time.
        out2, token2 = run(2, "both", WRITE % "2")
        check("Boot cache: restoring the snapshot" in out2 and "Boot cache: put the disk disk.img back" in out2 and
              "Boot cache: restored in" in out2 and "Boot cache: no snapshot" not in out2,
              "run 2: the disk goes back into the state dir and the snapshot is restored", out2)
        check(token2 == token1, "run 2: the start script made no disk: the guest reads run 1's token (%s, %s)"
              % (token2, token1), out2)
        check("READBACK=written-after-2" in out2, "run 2: the restored guest writes its disk and reads it back", out2)
        check("Boot cache: off for this VM: it has a disk QEMU writes that a snapshot cannot carry: drive1" in out2 and
              "not saving a snapshot" not in out2,
              "run 2: the outside-disk machine's cache is off at plan time, from the recorded refusal", out2)

        # Run 3: with -K twice: the first restores and leaves the disk, the next finds it and keeps it.
        out3, token3 = run("3a", "disk", WRITE % "3a", keep=True)
        check("Boot cache: restored in" in out3 and token3 == token1 and "READBACK=written-after-3a" in out3,
              "run 3a (-K): restored onto the snapshot's disk, which the guest writes", out3)
        kept = os.path.join(tmp, "vigil-keep-%d" % os.getuid(), "vm-state-disk", "disk.img")
        before = hashlib.sha256(open(kept, "rb").read()).hexdigest() if os.path.exists(kept) else None
        out4, token4 = run("3b", "disk", r'print("KEPT=" + disk.succeed("echo 3 > /proc/sys/vm/drop_caches; '
                           r'dd if=/dev/vda bs=4096 skip=1 count=1 2>/dev/null | head -c 40").strip("\0\n"))',
                           keep=True)
        after = hashlib.sha256(open(kept, "rb").read()).hexdigest() if os.path.exists(kept) else None
        check("Boot cache: not restoring the snapshot" in out4 and "its disk disk.img exists in the state dir" in out4
              and "Boot cache: restored in" not in out4 and "Boot cache: saved" not in out4,
              "run 3b (-K): the kept disk is there, so the machine boots cold and saves nothing", out4)
        check(before is not None and before == after and "KEPT=written-after-3a" in out4 and token4 == token1,
              "run 3b: the kept disk's bytes are untouched, the cold boot uses it", out4)

        # Run 4: a snapshot that does not load: the disk its restore placed goes, the cold boot makes a fresh one.
        for state in glob.glob(os.path.join(cache, "*", "disks")):
            with open(os.path.join(os.path.dirname(state), "vmstate"), "r+b") as f:
                f.write(b"not a migration stream" * 64)
        out5, token5 = run(4, "disk")
        check("Boot cache: put the disk disk.img back" in out5 and "failed (QEMU" in out5 and
              "which a restore had put in place for a guest that never ran on it" in out5 and token5 and
              token5 != token1 and
              "with 1 disk (" in out5,
              "run 4: the restore fails, its disk is removed, the cold boot's start script makes a fresh one (%s, "
              "not %s) and saves anew" % (token5, token1), out5)

        # Run 5: the restore loaded ahead of start() is dropped (start() asks for another reboot policy, another
        # key): the disk it placed goes too, and the cold boot makes a fresh one.
        out6, token6 = run(5, "disk", start="disk.start(allow_reboot=True)")
        check("loaded ahead of start()" in out6 and "start() asks for another reboot policy" in out6 and
              "which a restore had put in place for a guest that never ran on it" in out6 and token6 and
              token6 != token5,
              "run 5: a restore dropped before it ran takes its disk away, the cold boot makes a fresh one (%s, "
              "not %s)" % (token6, token5), out6)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % t.n)
    sys.exit(1 if t.failed else 0)


main()
