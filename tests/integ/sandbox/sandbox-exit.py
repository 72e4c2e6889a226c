#!/usr/bin/env python3
# Proves vigil's defaults and exit codes in a nix-build-like sandbox (uid 65534, HOME=/homeless-shelter, empty /run,
# own network namespace, no KVM): the tiny guest is built and cached, state dirs come and go under TMPDIR, logs go to
# stderr, a NixOS-style start script runs under `nixos-test-driver`, and pass/failure/bad input/timeout end with
# 0/1/2/3; nspawn says why it cannot run. A nix build sees only these exit codes and stderr.
import json
import os
import sys
import time

import sandbox
import sbtest
from runtap import check, done

VIGIL = sbtest.setup(sys.argv[1])


def show(p):
    print(sbtest.tail(p.stdout + p.stderr, 2500))


# nix's HOME: a path that does not exist and cannot be created.
sb = sandbox.Sandbox(home="/homeless-shelter")
try:
    p = sbtest.run_vigil(sb, VIGIL, 'start_all()\nprint("ID", a.succeed("id -u").strip())\n', ["--node", "a"],
                         timeout=300)
    if not check(p.returncode == 0, f"pass: a one-VM run with every default exits 0 (got {p.returncode})"):
        show(p)
    check("ID 0" in p.stdout, "the guest's backdoor shell answers (root in the guest)")
    tmp = os.path.join(sb.work, "tmp")
    cached = os.path.join(tmp, "vigil-cache-%d" % sandbox.UID, "guest")
    check(os.path.isdir(cached) and any(os.path.exists(os.path.join(cached, g, "initrd")) for g in os.listdir(cached)),
          "the tiny guest is built and cached under TMPDIR (HOME=/homeless-shelter)")
    check(not [n for n in os.listdir(tmp) if n.startswith("vigil-") and not n.startswith("vigil-cache-")],
          "the run's state directory under TMPDIR is gone after the run")
    check("test passed (exit 0)" in p.stderr and "vigil[" in p.stderr,
          "lifecycle logging goes to stderr (no journald socket in /run)")
    check(os.path.getsize(os.path.join(sb.work, "files", "vigil-out", "a-console.log")) > 0,
          "the default output dir (./vigil-out) holds the console log")

    # What a nix build runs: the driver as `nixos-test-driver`, a NixOS-style start script, -o $out.
    guest = [g for g in os.listdir(cached) if os.path.exists(os.path.join(cached, g, "initrd"))][0]
    p = sb.run(["sh", os.path.join(sbtest.SOURCE_ROOT, "tests", "helpers", "make-fake-vm"), "m",
                sb.inside(os.path.join(cached, guest)), sb.inside(sb.path("m"))], timeout=60)
    os.symlink(VIGIL, sb.path("nixos-test-driver"))
    os.mkdir(sb.path("out"))
    os.chown(sb.path("out"), sandbox.UID, sandbox.UID)
    ts = sb.write("nix-test.py", 'm.start()\nprint("NIX", m.succeed("echo via-start-script").strip())\n')
    p = sb.run([sb.inside(sb.path("nixos-test-driver")), "-o", sb.inside(sb.path("out"))], timeout=300,
               env={"startScripts": sb.inside(sb.path("m", "bin", "run-m-vm")), "testScript": ts, "vlans": ""})
    if not check(p.returncode == 0 and "NIX via-start-script" in p.stdout,
                 f"nix: nixos-test-driver with startScripts/testScript passes (exit {p.returncode})"):
        show(p)

    p = sbtest.run_vigil(sb, VIGIL, 'assert False, "deliberate failure"\n', ["--node", "a"], timeout=120)
    if not check(p.returncode == 1 and "deliberate failure" in p.stdout + p.stderr,
                 f"failure: a failing script exits 1 and shows its message (got {p.returncode})"):
        show(p)

    p = sbtest.run_vigil(sb, VIGIL, "pass\n", ["--node", "a", "--frob"], timeout=60)
    if not check(p.returncode == 2 and "--frob" in p.stderr, f"bad input: an unknown option exits 2 naming it "
                 f"(got {p.returncode})"):
        show(p)
    spec = sb.write("typo.json", json.dumps({"nodes": {"a": {"memroy_mb": 512}}}))
    p = sbtest.run_vigil(sb, VIGIL, "pass\n", ["--spec", spec], timeout=60)
    if not check(p.returncode == 2 and "memroy_mb" in p.stderr, f"bad input: a spec typo exits 2 naming the key "
                 f"(got {p.returncode})"):
        show(p)

    t0 = time.monotonic()
    p = sbtest.run_vigil(sb, VIGIL, 'import time\nstart_all()\ntime.sleep(600)\n',
                         ["--node", "a", "--global-timeout", "20"], timeout=180)
    took = time.monotonic() - t0
    if not check(p.returncode == 3 and took < 90, f"global timeout: a script sleeping past --global-timeout 20 exits 3 "
                 f"(got {p.returncode} after {took:.0f} s)"):
        show(p)
    check(not [n for n in os.listdir(tmp) if n.startswith("vigil-") and not n.startswith("vigil-cache-")],
          "a timed-out run leaves no state directory behind")

    spec = sb.write("nspawn.json", json.dumps({"nodes": {"c": {"backend": "nspawn"}}}))
    p = sbtest.run_vigil(sb, VIGIL, "start_all()\n", ["--spec", spec], timeout=60)
    if not check(p.returncode == 2 and "nspawn" in p.stderr and "root" in p.stderr,
                 f"nspawn: refused with exit 2 and the reason (needs root) (got {p.returncode}: {p.stderr.strip()!r})"):
        show(p)
finally:
    sb.cleanup()
done()
