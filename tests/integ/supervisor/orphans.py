#!/usr/bin/python3
# Proves "no orphans": after kill -9 of vigil, no process of the run survives (workers, a grandchild a worker detached
# with setsid, a process spawned through the supervisor), found by scanning /proc for VIGIL_RUN=<id>, not assumed.
import os
import signal
import sys
import time

from suphelp import check, main, pid_alive, run_pids, test


def start(new_run, pidns):
    run = new_run({"children": [test("w1", ["--spawn-grandchild", "--spawn-via-supervisor"]), test("w2")]},
                  pidns=pidns)
    run.start()
    run.wait_for(lambda: run.worker_events("grandchild", "w1") and run.worker_events("spawned", "w1")
                 and len(run.events("ready")) == 2, what="the grandchild and the spawned sleep")
    grand = int(run.worker_events("grandchild", "w1")[0]["message"])
    spawned = run.events("proc_spawned", child="w1")[0]["pid"]
    pids = run.wait_for(lambda: (lambda p: p if len(p) >= 4 else None)(run_pids(run.run_id)),
                        what="four processes carrying VIGIL_RUN")
    return run, grand, spawned, pids


def kill9(new_run):
    run, grand, spawned, pids = start(new_run, pidns=True)
    check(len(pids) >= 4, f"before: {len(pids)} processes carry VIGIL_RUN (2 workers, grandchild, spawned sleep)")
    inner = [int(d) for d in os.listdir("/proc") if d.isdigit() and ppid(int(d)) == run.proc.pid]
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait()
    deadline = time.monotonic() + 5
    while (run_pids(run.run_id) or any(pid_alive(p) for p in inner)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = run_pids(run.run_id)
    check(left == [], f"after kill -9 of vigil nothing of the run is alive (left: {left})")
    check(inner and not any(pid_alive(p) for p in inner), "the supervisor (PID 1 of the run's namespace) is gone too")


def ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def term_no_pidns(new_run):
    run, grand, spawned, pids = start(new_run, pidns=False)
    check("PID namespace disabled" in run.read_stderr(), "the log says which no-orphans mode is in use")
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()
    check(rc == 6, f"SIGTERM: exit 6 (got {rc})")
    left = run_pids(run.run_id)
    check(left == [], f"without a PID namespace, an orderly teardown still leaves nothing (left: {left})")
    check(not pid_alive(grand), "the detached grandchild was killed (reparented to the subreaper)")


def body(new_run):
    {"kill9": kill9, "term-no-pidns": term_no_pidns}[sys.argv[1]](new_run)


main(body)
