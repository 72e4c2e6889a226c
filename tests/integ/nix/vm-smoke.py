#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves the command of nix's checks.<system>.vm-smoke passes under sandbox-like conditions: `vigil run` of
# tests/integ/nix/smoke.py on two tiny guests handed over by VIGIL_MKGUEST, as uid 65534 (when started as root) with
# an empty environment, --no-pidns, HOME and TMPDIR in a private directory. Why it matters: the flake check runs
# exactly this inside the nix build sandbox, where nothing of the host's setup is available.
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("VIGIL_SOURCE_ROOT") or HERE.parents[2])
sys.path.insert(0, str(SRC / "tests/integ/script"))
from vmrun import VIGIL, Tap, skip_unless_ready  # noqa: E402


def main() -> None:
    skip_unless_ready()
    tap = Tap()
    guest = subprocess.run([str(SRC / "tools/mkguest")], capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-nix-smoke-"))
    try:
        tmp.chmod(0o777)
        printer = tmp / "print-guest"  # what nix's writeShellScript "vigil-nix-guest" does
        printer.write_text(f"#!/bin/sh\necho {guest}\n")
        printer.chmod(0o755)
        out = tmp / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        cmd = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={tmp}", f"TMPDIR={tmp}", f"VIGIL_MKGUEST={printer}",
               VIGIL, "run", str(HERE / "smoke.py"), "--node", "alpha", "--node", "beta",
               "--global-timeout", "600", "--no-pidns", "-o", str(out)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
        log = "\n".join(line for line in r.stderr.splitlines() if " # " not in line)
        tap.check(r.returncode == 0, f"vm-smoke's command passes (uid {65534 if os.geteuid() == 0 else os.geteuid()})",
                  log[-5000:])
        tap.check("subtest: VLAN 1 connects them" in log, "both subtests ran", log[-2000:])
    finally:
        if os.environ.get("VIGIL_TEST_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
