#!/usr/bin/python3
# Proves hub-and-spoke routing: requests to a worker that is not READY yet wait and are delivered, idempotent requests
# in flight when the target dies are replayed to its restarted worker, and requests to a child gone for good fail.
import os
import signal
import sys
import time

from suphelp import check, host_pid, main, test


def queued(new_run):
    slow = test("b", ["--ready-delay-ms", "500"])
    run = new_run({"children": [test("a", ["--echo-to", "b", "--count", "5"]), slow]})
    run.start()
    run.wait_for(lambda: run.worker_events("echo_done", "a"), what="echo_done")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    done = run.worker_events("echo_done", "a")[0]
    ready_b = run.events("ready", child="b")[0]
    ready_a = run.events("ready", child="a")[0]
    check(ready_a["t"] < ready_b["t"], "a was ready (and sending) before b existed")
    check("ok=5 errors=0" in done["message"], f"all 5 requests waited for b and were answered ({done['message']})")
    check(done["t"] >= ready_b["t"], "the answers came after b became ready")


def replay(new_run):
    run = new_run(None)
    hang = test("b", ["--hang", "--after-ms", "150", "--once-file", run.path("once")])
    run.set_spec({"children": [hang, test("a", ["--echo-to", "b", "--count", "8", "--interval-ms", "50"])]})
    run.start()
    run.wait_for(lambda: run.worker_events("misbehave", "b"), what="b to hang")
    time.sleep(0.5)  # requests pile up in flight, unanswered
    pid = host_pid(run.run_id, run.events("spawned", child="b")[0]["pid"])
    check(pid is not None, "found the hung worker in /proc")
    os.kill(pid, signal.SIGKILL)
    run.wait_for(lambda: run.worker_events("echo_done", "a"), what="echo_done")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    done = run.worker_events("echo_done", "a")[0]["message"]
    check(len(run.events("spawned", child="b")) == 2, "b was restarted after being killed")
    check("ok=8 errors=0" in done, f"every echo was answered: the in-flight ones were replayed ({done})")
    check("waiting request(s) to 'b'" in run.read_stderr(), "the log says requests were delivered after the restart")


def gone(new_run):
    b = test("b", ["--exit-code", "1", "--after-ms", "150"])
    b["restart"] = "temporary"
    run = new_run({"children": [b, test("a", ["--echo-to", "b", "--count", "8", "--interval-ms", "50"])]})
    run.start()
    run.wait_for(lambda: run.worker_events("echo_done", "a"), what="echo_done")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    done = run.worker_events("echo_done", "a")[0]["message"]
    errs = [e["message"] for e in run.worker_events("echo_error", "a")]
    check(run.events("removed", child="b"), "the temporary b was removed after it exited")
    check(errs and "errors=0" not in done, f"requests after b's end failed ({done})")
    check(all("'b'" in m and ("not running" in m or "will not be restarted" in m) for m in errs),
          f"each error names b and says it is gone ({errs[0] if errs else ''})")
    noone = [m for m in errs]
    check(len(noone) + int(done.split("ok=")[1].split()[0]) == 8, "every request got exactly one answer")


def body(new_run):
    {"queued": queued, "replay": replay, "gone": gone}[sys.argv[1]](new_run)


main(body)
