#!/usr/bin/python3
# Proves three nspawn nodes on one VLAN reach each other by name through vigil's switch (ICMP and TCP to real systemd
# services), and that vigil.partition/heal cut and restore exactly the links between groups.
# Why it matters: fleet tests of real services on many light nodes are what containers make affordable.
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

tic = time.monotonic()
start_all()
for m in machines:
    m.wait_for_unit("multi-user.target")
print(f"FIGURE three_nodes_up_s {time.monotonic() - tic:.2f}", flush=True)

with subtest("every node reaches every other by name"):
    for a in machines:
        for b in machines:
            if a is not b:
                a.succeed(f"ping -c 1 -W 2 {b.name}")

with subtest("a service on each node answers the others"):
    for m in machines:
        m.succeed("systemd-run --unit=srv python3 -m http.server 8000")
    for m in machines:
        m.wait_for_unit("srv.service")
        m.wait_for_open_port(8000)
    for a in machines:
        for b in machines:
            if a is not b:
                a.succeed(f"nc -z -w 2 {b.name} 8000")

with subtest("a partition isolates alpha, both ways"):
    vigil.partition([alpha])
    alpha.fail("ping -c 1 -W 1 beta", "ping -c 1 -W 1 gamma", "nc -z -w 1 beta 8000")
    beta.fail("ping -c 1 -W 1 alpha", "nc -z -w 1 alpha 8000")
    gamma.fail("ping -c 1 -W 1 alpha")
    beta.succeed("ping -c 1 -W 2 gamma", "nc -z -w 2 gamma 8000")
    gamma.succeed("ping -c 1 -W 2 beta")

with subtest("healing reunites them"):
    vigil.heal()
    tic = time.monotonic()
    alpha.wait_until_succeeds("ping -c 1 -W 1 beta", timeout=30)
    print(f"FIGURE heal_to_ping_s {time.monotonic() - tic:.2f}", flush=True)
    gamma.succeed("nc -z -w 2 alpha 8000")
    beta.succeed("ping -c 1 -W 2 alpha")

with subtest("the switch counted every node's frames"):
    stats = vigil.vlan_stats(1)
    ports = {p["machine"]: p for p in stats["ports"]}
    t.assertEqual(sorted(ports), ["alpha", "beta", "gamma"])
    for name, p in ports.items():
        t.assertGreater(p["rx"], 0, name)
        t.assertGreater(p["tx"], 0, name)
    t.assertGreater(sum(p["dropped"] for p in ports.values()), 0)
'''


def main() -> None:
    skip_unless_nspawn()
    tap = Tap()
    tic = time.monotonic()
    r = vigil_run(SCRIPT, ["alpha=nspawn", "beta=nspawn", "gamma=nspawn"], "--junit", "junit.xml", timeout=300)
    print(f"# vigil run took {time.monotonic() - tic:.1f} s", flush=True)
    for m in re.finditer(r"^FIGURE (\S+) (\S+)$", r.stdout, re.M):
        print(f"# {m[1]} = {m[2]}", flush=True)
    tap.check(r.rc == 0, "the cluster test passes", r.tail())
    cases = junit_cases(r.out / "junit.xml")
    for sub in ("every node reaches every other by name", "a service on each node answers the others",
                "a partition isolates alpha, both ways", "healing reunites them",
                "the switch counted every node's frames"):
        tap.check(cases.get(sub) is False, f"subtest passed: {sub}", str(cases))
    tap.done()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
