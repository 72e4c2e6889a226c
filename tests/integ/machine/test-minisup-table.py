#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves that minisup.py, the Python stand-in supervisor of the machine worker's VM tests, speaks the protocol
# of proto/msg-table.c: same version, message numbers, final replies and body field order as the compiled table.
# Why it matters: a stand-in that drifted from the real protocol would let those tests pass against a worker
# that the real supervisor could no longer drive.
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minisup  # noqa: E402

n = 0
failed = 0


def check(ok, what):
    global n, failed
    n += 1
    failed += not ok
    print("%s %d - %s" % ("ok" if ok else "not ok", n, what))


table = json.loads(subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout)
msgs = table["messages"]

check(minisup.PROTO_VERSION == table["version"],
      "PROTO_VERSION %s matches the table's %s" % (minisup.PROTO_VERSION, table["version"]))
wrong = sorted(name for name, m in msgs.items() if minisup.T.get(name) != m["type"])
check(not wrong, "every message of the table has its number in minisup.T (wrong or missing: %s)" % wrong)
extra = sorted(set(minisup.T) - set(msgs))
check(not extra, "minisup.T has no message the table lacks (extra: %s)" % extra)
# T_* is the test worker's block: a machine worker never answers with it.
final = {m["type"] for name, m in msgs.items()
         if m["reply"] and m["final"] and m["machine_sends"] and not name.startswith("T_")}
check(minisup.FINAL == final, "minisup.FINAL is the table's final replies from machine workers (%s vs %s)" %
      (sorted(minisup.NAMES[t] for t in minisup.FINAL), sorted(minisup.NAMES.get(t, t) for t in final)))
for name, fields in sorted(minisup.LAYOUT.items()):
    want = msgs.get(name, {}).get("fields")
    check(fields == want, "%s body is %s in minisup, %s in the table" % (name, fields, want))
print("1..%d" % n)
sys.exit(1 if failed else 0)
