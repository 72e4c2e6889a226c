#!/usr/bin/env python3
# Proves the routing promise across a machine worker's SIGKILL in a whole `vigil run`: idempotent requests in
# flight (wait_until_succeeds, and the read-only calls copy_from_vm, wait_for_file, ...) are replayed to the
# restarted worker and succeed, while a non-idempotent one (execute) fails with "request not repeated" and its
# command ran exactly once. A hiccup must never run twice, and a read must never fail for it.
import os
import subprocess
import sys
import tempfile

from runtap import check, done, failed

VIGIL = sys.argv[1]

SCRIPT = r'''
import hashlib, os, signal, threading, time
import vigil

def kill_worker_after(seconds):
    pid = vigil.machine_worker_pid(a)
    threading.Timer(seconds, os.kill, (pid, signal.SIGKILL)).start()
    return pid

start_all()
a.succeed("true")

with subtest("non-idempotent: execute is not repeated"):
    first = kill_worker_after(1.0)
    try:
        a.succeed("echo ran >> /tmp/count; sleep 4")
        print("EXECUTE: returned")
    except Exception as e:
        print("EXECUTE: raised:", str(e).splitlines()[0])
    print("COUNT:", a.succeed("wc -l < /tmp/count").strip())
    print("NEW-WORKER:", vigil.machine_worker_pid(a) != first)

with subtest("idempotent: wait_until_succeeds is replayed"):
    a.succeed("(sleep 4; touch /tmp/flag) >/dev/null 2>&1 &")
    second = kill_worker_after(1.0)
    a.wait_until_succeeds("test -e /tmp/flag", timeout=60)
    print("WAIT: succeeded, new worker:", vigil.machine_worker_pid(a) != second)

with subtest("read-only: copy_from_vm in flight is replayed"):
    a.succeed("head -c 60000000 /dev/urandom > /tmp/big")
    want = a.succeed("sha256sum /tmp/big").split()[0]
    third = kill_worker_after(0.3)
    t0 = time.monotonic()
    a.copy_from_vm("/tmp/big", "copied")
    took = time.monotonic() - t0
    with open(os.path.join(a.out_dir, "copied", "big"), "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    print("COPY: took %.1f s, exact %s, new worker %s" % (took, got == want, vigil.machine_worker_pid(a) != third))
'''


with tempfile.TemporaryDirectory(prefix="vigil-run-restart-") as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    p = subprocess.run([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "out")], capture_output=True,
                       text=True, timeout=400)
    out = p.stdout + p.stderr
    check(p.returncode == 0, f"the run passed (exit {p.returncode})")
    check("EXECUTE: raised:" in out and "request not repeated" in out,
          "execute in flight fails with 'request not repeated'")
    check("COUNT: 1" in out, "the interrupted command ran exactly once")
    check("NEW-WORKER: True" in out, "a new machine worker answered afterwards (re-attached to the same VM)")
    check("WAIT: succeeded, new worker: True" in out, "wait_until_succeeds was replayed to the restarted worker")
    copy = [line for line in out.splitlines() if line.startswith("COPY:")]
    took = float(copy[0].split()[2]) if copy else 0
    check(copy and "exact True, new worker True" in copy[0] and took > 0.3,
          f"copy_from_vm in flight when the worker died was replayed and is exact ({copy[0] if copy else 'none'})")
    if failed():
        print("# output tail:\n# " + out[-3000:].replace("\n", "\n# "))
done()
