#!/usr/bin/python3
# Proves the boot cache leaves alone a VM with a disk QEMU writes: a NixOS-shaped start script with a root
# disk image ($NIX_DISK_IMAGE, made afresh in each run's state dir, as qemu-vm.nix does) boots cold under
# `vigil run --boot-cache` with a log line saying why, saves nothing and boots cold again in the next run,
# while a diskless machine of the same run is saved and then restored. It matters because a snapshot holds
# the guest's RAM and not its disks: restored over a fresh disk image, a guest would find under its mounted
# file systems a disk they were never written to.
import glob
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

SCRIPT = r'''
start_all()
disk.succeed("test -b /dev/vda || test -e /sys/block/vda")
tiny.succeed("true")
print("BOOTCACHE-DISK-OK")
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
    try:
        subprocess.run(["sh", os.path.join(SOURCE_ROOT, "tests/helpers/make-fake-vm"), "disk", guest,
                        os.path.join(tmp, "disk"), "--node-number", "1", "--disk"], check=True)
        cache = os.path.join(tmp, "cache")
        spec = {"nodes": {"disk": {"start_script": os.path.join(tmp, "disk", "bin", "run-disk-vm")}, "tiny": {}},
                "boot_cache": cache}
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f)
        with open(os.path.join(tmp, "test.py"), "w") as f:
            f.write(SCRIPT)
        outs = []
        for run in (1, 2):
            r = subprocess.run([VIGIL, "run", os.path.join(tmp, "test.py"), "--spec", os.path.join(tmp, "spec.json"),
                                "-o", os.path.join(tmp, "out%d" % run), "--global-timeout", "240", "--log-level",
                                "info"], cwd=tmp, env=dict(os.environ, TMPDIR=tmp), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", timeout=280)
            outs.append(r.stdout)
            check(r.returncode == 0 and "BOOTCACHE-DISK-OK" in r.stdout,
                  "run %d passes, the disk machine sees its disk (exit %d)" % (run, r.returncode), r.stdout)
        off = "Boot cache: off for this VM: it has a disk QEMU writes (cache=writeback,file=\"$NIX_DISK_IMAGE\""
        check(all(o.count(off) == 1 for o in outs),
              "in both runs the disk machine's boot cache is off, the log naming the disk", outs[0] + outs[1])
        check(len(glob.glob(os.path.join(cache, "*", "vmstate"))) == 1,
              "only the diskless machine saved a snapshot", "\n".join(glob.glob(os.path.join(cache, "*", "*"))))
        check(outs[0].count("Boot cache: saved") == 1 and outs[1].count("Boot cache: restored in") == 1 and
              "Boot cache: no snapshot for this VM" not in outs[1],
              "the diskless machine saves in run 1 and is restored in run 2; the disk machine never comes to it",
              outs[0] + outs[1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % t.n)
    sys.exit(1 if t.failed else 0)


main()
