#!/usr/bin/python3
# Proves the README's first command works: examples/fleet.py on three tiny guests (claims, a node stopping
# and coming back, a partition in vigil's switch and its healing), every subtest passing.
# Why it matters: it is the first thing a new user runs, and it exercises the fleet features end to end.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmrun import SOURCE_ROOT, Tap, skip_unless_ready, vigil_run  # noqa: E402


def main() -> None:
    skip_unless_ready()
    tap = Tap()
    r = vigil_run((SOURCE_ROOT / "examples/fleet.py").read_text(), ["alpha", "beta", "gamma"], "--junit", "junit.xml",
                  timeout=400)
    tap.check(r.rc == 0, "examples/fleet.py passes", r.tail())
    junit = (r.out / "junit.xml").read_text() if (r.out / "junit.xml").exists() else ""
    for sub in ("every node claims its names", "a stopped node's names vanish", "the node comes back and claims again",
                "a partition splits the views", "healing reunites them", "a released name passes to the next claimant"):
        tap.check(f'name="{sub}"' in junit and f"subtest: {sub}" in r.stderr, f"subtest ran: {sub}")
    tap.check("<failure" not in junit and 'failures="0"' in junit, "no subtest failed", junit[-3000:])
    tap.done()


if __name__ == "__main__":
    main()
