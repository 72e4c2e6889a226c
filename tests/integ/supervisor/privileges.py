#!/usr/bin/python3
# Proves that, started as root, vigil runs a test worker and the processes it spawns with no capabilities at all
# (effective, permitted, bounding, ambient) and no_new_privs set: a confused worker cannot use root's kernel powers.
import os
import signal
import sys

from suphelp import check, host_pid, main, proc_status, test


def body(new_run):
    if os.geteuid() != 0:
        print("1..0 # SKIP not root")
        sys.exit(77)
    run = new_run({"children": [test("w", ["--spawn-via-supervisor"])]})
    run.start()
    run.wait_for(lambda: run.events("proc_spawned", child="w"), what="the spawned process")
    w = host_pid(run.run_id, run.events("spawned", child="w")[0]["pid"])
    p = host_pid(run.run_id, run.events("proc_spawned", child="w")[0]["pid"])
    for what, pid in (("worker", w), ("spawned process", p)):
        st = proc_status(pid)
        for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
            check(int(st[k], 16) == 0, f"{what}: {k} is empty ({st[k]})")
        check(st["NoNewPrivs"] == "1", f"{what}: no_new_privs is set")
        check(st["Uid"].split()[0] == "0", f"{what}: still uid 0 (only capabilities are dropped)")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()


main(body)
