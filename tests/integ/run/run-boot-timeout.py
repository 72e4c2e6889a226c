#!/usr/bin/env python3
# Proves that a machine that never boots fails within its own boot deadline (--boot-timeout / "boot_timeout"),
# naming the machine, how long it waited and what it printed last, instead of stalling until the global timeout.
# It matters because a broken start script used to hold a run for 15 minutes with no word of which machine.
import os
import subprocess
import sys
import tempfile
import time

from runtap import check, done

VIGIL = sys.argv[1]

with tempfile.TemporaryDirectory() as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write("start_all()\nstuck.succeed('true')\n")
    # A start script that prints and then never starts QEMU (a wrong path, a hung wrapper, ...).
    start = os.path.join(d, "run-stuck-vm")
    with open(start, "w") as f:
        f.write("#!/bin/sh\necho 'wrapper: waiting for a lock that never comes'\nexec sleep 600\n")
    os.chmod(start, 0o755)
    spec = os.path.join(d, "spec.json")
    with open(spec, "w") as f:
        f.write('{"nodes": {"stuck": {"start_script": "%s"}}, "boot_timeout": 3}' % start)
    out = os.path.join(d, "out")
    t0 = time.monotonic()
    p = subprocess.run([VIGIL, "run", script, "--spec", spec, "-o", out, "--no-pidns"], capture_output=True,
                       text=True, timeout=300)
    took = time.monotonic() - t0
    check(p.returncode == 1, f"the run fails as a test failure (exit {p.returncode})")
    check(took < 120, f"within the boot deadline's bound, not the global timeout ({took:.0f} s)")
    named = "machine 'stuck' did not start" in p.stderr
    if not check(named, "the error names the machine and what did not happen"):
        print("#   " + p.stderr[-2000:].replace("\n", "\n#   "))
    check("waiting for a lock that never comes" in p.stderr, "and shows what it printed last")
    check(os.path.exists(os.path.join(out, "stuck-console.log")), "the output directory has its console log")
    # The same through the CLI flag, which overrides the spec.
    with open(spec, "w") as f:
        f.write('{"nodes": {"stuck": {"start_script": "%s"}}}' % start)
    t0 = time.monotonic()
    p = subprocess.run([VIGIL, "run", script, "--spec", spec, "-o", out, "--boot-timeout", "2", "--no-pidns"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 1 and "machine 'stuck' did not start" in p.stderr and time.monotonic() - t0 < 120,
          f"--boot-timeout does the same (exit {p.returncode}, {time.monotonic() - t0:.0f} s)")
done()
