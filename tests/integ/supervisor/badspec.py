#!/usr/bin/python3
# Proves a bad spec is refused before anything starts, with exit 2 and a message naming the offending key, so a typo
# in a supervision spec never turns into a restart policy nobody asked for.
import os
import subprocess
import tempfile

from suphelp import VIGIL, check, main

CASES = [
    ('{"children": [{"id": "a", "kind": "test", "restart": "sometimes"}]}', "children[0].restart"),
    ('{"children": [{"id": "a", "kind": "test"}], "intensity": {"max_seconds": 0}}', "intensity.max_seconds"),
    ('{"children": [{"id": "a", "kind": "test", "shutdwn": 5}]}', "children[0].shutdwn: unknown key"),
    ('{"strategy": "all_for_one", "children": [{"id": "a", "kind": "test"}]}', "strategy"),
    ('{"children": [{"id": "a", "kind": "vm"}]}', "children[0].kind"),
    ('{"children": [', "not valid JSON"),
]


def body(new_run):
    with tempfile.TemporaryDirectory() as d:
        for text, key in CASES:
            p = os.path.join(d, "spec.json")
            with open(p, "w") as f:
                f.write(text)
            r = subprocess.run([VIGIL, "supervise", p, "--no-pidns"], capture_output=True, text=True, timeout=10)
            check(r.returncode == 2 and key in r.stderr, f"exit 2 naming '{key}' (got {r.returncode}: {r.stderr.strip()})")
        r = subprocess.run([VIGIL, "supervise", os.path.join(d, "missing.json")], capture_output=True, text=True)
        check(r.returncode == 2 and "missing.json" in r.stderr, "a missing spec file: exit 2 naming it")
        r = subprocess.run([VIGIL, "supervise"], capture_output=True, text=True)
        check(r.returncode == 2, "no spec at all: exit 2")


main(body)
