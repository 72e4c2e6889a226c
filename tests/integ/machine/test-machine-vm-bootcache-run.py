#!/usr/bin/python3
# Proves the boot cache through `vigil run --boot-cache`: a first run boots a tiny guest and a NixOS-shaped
# start-script VM cold and saves their snapshots, a second run restores both, and in both runs the script
# sees correct guest clocks and mounted 9p shares. It matters because this is the flag users turn on.
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
import time
start_all()
for m in (tiny, fake):
    before = time.time()
    now = int(m.succeed("date +%s"))
    assert before - 1.5 <= now <= time.time() + 1, (m.name, now, before, time.time())
    assert m.succeed("grep -c ' 9p ' /proc/mounts").strip() != "0", m.name
    m.succeed("ls /tmp/xchg")
print("BOOTCACHE-RUN-OK")
'''


def main():
    n = 0
    failed = 0

    def check(cond, what, detail=""):
        nonlocal n, failed
        n += 1
        failed += not cond
        print("%sok %d - %s" % ("" if cond else "not ", n, what), flush=True)
        if not cond:
            for line in str(detail).splitlines()[-40:]:
                print("#   " + line)

    if not VIGIL or not shutil.which("qemu-system-x86_64"):
        print("1..0 # SKIP no vigil binary or no QEMU")
        sys.exit(77)
    guest = minisup.find_guest(SOURCE_ROOT)
    if not guest:
        print("1..0 # SKIP no tiny guest")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="vigil-bc-", dir="/tmp")
    try:
        subprocess.run(["sh", os.path.join(SOURCE_ROOT, "tests/helpers/make-fake-vm"), "fake", guest,
                        os.path.join(tmp, "fake"), "--node-number", "1"], check=True)
        spec = {"nodes": {"fake": {"start_script": os.path.join(tmp, "fake", "bin", "run-fake-vm")}, "tiny": {}},
                "boot_cache": os.path.join(tmp, "cache")}
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f)
        with open(os.path.join(tmp, "test.py"), "w") as f:
            f.write(SCRIPT)
        env = dict(os.environ, TMPDIR=tmp)
        outs = []
        for run in (1, 2):
            r = subprocess.run([VIGIL, "run", os.path.join(tmp, "test.py"), "--spec", os.path.join(tmp, "spec.json"),
                                "-o", os.path.join(tmp, "out%d" % run), "--global-timeout", "240", "--log-level",
                                "info"], cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", timeout=280)
            outs.append(r.stdout)
            if os.environ.get("VIGIL_TEST_VERBOSE"):
                print(r.stdout)
            check(r.returncode == 0 and "BOOTCACHE-RUN-OK" in r.stdout,
                  "run %d passes: clocks right, 9p mounted (exit %d)" % (run, r.returncode), r.stdout)
        check(outs[0].count("booting cold, saving one") == 2 and outs[0].count("Boot cache: saved") == 2,
              "the first run boots both cold and saves two snapshots", outs[0])
        check(outs[1].count("Boot cache: restored in") == 2, "the second run restores both", outs[1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n)
    sys.exit(1 if failed else 0)


main()
