#!/usr/bin/python3
# Proves a QEMU tiny guest and an nspawn container share one VLAN: they ping each other by name, the VM fetches a page
# from a systemd service in the container, and a partition in vigil's switch cuts both backends alike.
# Why it matters: real fleets mix VMs (kernels, boot) and containers (many cheap services) in one test.
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from vmrun import Tap, junit_cases, skip_unless_nspawn, vigil_run  # noqa: E402

SCRIPT = r'''
import time

import vigil
from test_driver.errors import RequestedAssertionFailed

tic = time.monotonic()
start_all()
box.wait_for_unit("multi-user.target")
vm.succeed("true")
print(f"FIGURE both_up_s {time.monotonic() - tic:.2f}", flush=True)
t.assertEqual([m.__class__.__name__ for m in (box, vm)], ["NspawnMachine", "QemuMachine"])

with subtest("the VM and the container ping each other"):
    box.succeed("ping -c 1 -W 2 vm")
    vm.succeed("ping -c 1 -W 2 box")

with subtest("the VM reads a page from a service in the container"):
    box.succeed("mkdir -p /srv/www && echo vigil-mixed-page > /srv/www/index.html",
                "systemd-run --unit=www python3 -m http.server 8000 --directory /srv/www")
    box.wait_for_unit("www.service")
    box.wait_for_open_port(8000)
    t.assertIn("vigil-mixed-page", vm.succeed("wget -q -O - http://box:8000/"))

with subtest("a partition cuts the VM from the container"):
    vigil.partition([vm])
    vm.fail("ping -c 1 -W 1 box")
    box.fail("ping -c 1 -W 1 vm")
    vigil.heal()
    vm.wait_until_succeeds("ping -c 1 -W 1 box", timeout=30)

with subtest("block() of the container cuts it at the switch, unblock() restores it"):
    box.block()
    vm.fail("ping -c 1 -W 1 box")
    t.assertIn(",UP,", box.succeed("ip -o link show eth1"))  # its own link stays up, as with QEMU
    box.unblock()
    vm.wait_until_succeeds("ping -c 1 -W 1 box", timeout=30)

with subtest("diagnostics on a machine without systemd say so"):
    with t.assertRaises(RequestedAssertionFailed) as cm:
        vm.wait_for_open_port(9999, timeout=2)
    t.assertIn("not available on this machine", cm.exception.diagnostics)
    t.assertIn("console lines (no systemd tools on this machine):", cm.exception.diagnostics)
'''


def main() -> None:
    skip_unless_nspawn(qemu=True)
    tap = Tap()
    tic = time.monotonic()
    r = vigil_run(SCRIPT, ["vm", "box=nspawn"], "--junit", "junit.xml", timeout=300)
    print(f"# vigil run took {time.monotonic() - tic:.1f} s", flush=True)
    for m in re.finditer(r"^FIGURE (\S+) (\S+)$", r.stdout, re.M):
        print(f"# {m[1]} = {m[2]}", flush=True)
    tap.check(r.rc == 0, "the mixed test passes", r.tail())
    cases = junit_cases(r.out / "junit.xml")
    for sub in ("the VM and the container ping each other", "the VM reads a page from a service in the container",
                "a partition cuts the VM from the container",
                "block() of the container cuts it at the switch, unblock() restores it",
                "diagnostics on a machine without systemd say so"):
        tap.check(cases.get(sub) is False, f"subtest passed: {sub}", str(cases))
    tap.done()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
