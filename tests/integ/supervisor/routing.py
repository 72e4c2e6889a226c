#!/usr/bin/python3
# Proves hub-and-spoke routing: requests to a worker that is not READY yet wait and are delivered, idempotent requests
# in flight when the target dies are replayed to its restarted worker, requests to a child gone for good fail, and a
# producer far faster than its consumer is slowed down (flow control) instead of overflowing the supervisor's queue
# and getting the slow consumer killed. And that a brokered channel takes the supervisor out of the path: echoes over
# it go on while the supervisor is stopped (routed ones wait for it), so the hop costs nothing per request.
import os
import signal
import sys
import time

from suphelp import check, host_pid, main, proc_status, test


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


def echo_outcome(run):
    """Wait for a's echo_done, end the run; a's summary and its echo errors."""
    run.wait_for(lambda: run.worker_events("echo_done", "a"), what="echo_done")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    errs = [e["message"] for e in run.worker_events("echo_error", "a")]
    return run.worker_events("echo_done", "a")[0]["message"], errs


def partial(new_run):
    # b streams each echo's reply as 4 CHUNKs of the payload; in its first life it dies after 2 of them.
    run = new_run(None)
    b = test("b", ["--reply-chunks", "4", "--crash-mid-reply", "--once-file", run.path("once")])
    a = test("a", ["--echo-to", "b", "--count", "3", "--interval-ms", "300", "--payload", "1000",
                   "--expect-chunk-bytes", "4000"])
    run.set_spec({"children": [b, a]})
    done, errs = echo_outcome(run.start())
    check(len(run.events("spawned", child="b")) == 2, "b died mid-reply and was restarted")
    check(not any("chunk bytes" in m for m in errs), f"no reply came with a part twice or missing ({errs})")
    check(len(errs) == 1 and "part of it was delivered" in errs[0] and "not repeated" in errs[0],
          f"the echo whose reply was cut fails, naming why it is not repeated ({errs})")
    check("ok=2 errors=1" in done, f"the other echoes were answered whole ({done})")


def gone(new_run):
    b = test("b", ["--exit-code", "1", "--after-ms", "150"])
    b["restart"] = "temporary"
    run = new_run({"children": [b, test("a", ["--echo-to", "b", "--count", "8", "--interval-ms", "50"])]})
    done, errs = echo_outcome(run.start())
    check(run.events("removed", child="b"), "the temporary b was removed after it exited")
    check(errs and "errors=0" not in done, f"requests after b's end failed ({done})")
    check(all("'b'" in m and ("not running" in m or "will not be restarted" in m) for m in errs),
          f"each error names b and says it is gone ({errs[0] if errs else ''})")
    noone = [m for m in errs]
    check(len(noone) + int(done.split("ok=")[1].split()[0]) == 8, "every request got exactly one answer")


def supervisor_hwm_kib(pid):
    """Peak RSS of the supervisor: the `vigil` processes from @pid down (the one in the run's PID namespace)."""
    best, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            st = proc_status(p)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            continue
        if st.get("Name") == "vigil":
            best = max(best, int(st.get("VmHWM", "0 kB").split()[0]))
    return best


def backpressure(new_run):
    # 400 requests of 96 KiB (37.5 MiB) with all of them allowed in flight, to a worker that reads one request per
    # 2 ms: the supervisor's queue towards b would pass its old 1 MiB cap within the first few milliseconds.
    slow = test("b", ["--slow-read-ms", "2"])
    fast = test("a", ["--echo-to", "b", "--count", "400", "--window", "400", "--payload", "98304"])
    # Under ASan freed memory sits in a quarantine and counts in RSS: turn it off, so the peak RSS is what was live.
    asan = os.environ.get("ASAN_OPTIONS", "")
    run = new_run({"children": [slow, fast]},
                  env={"ASAN_OPTIONS": asan + (":" if asan else "") + "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"})
    run.start()
    run.wait_for(lambda: run.worker_events("echo_done", "a"), what="echo_done", timeout=120)
    hwm = supervisor_hwm_kib(run.proc.pid)
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    done = run.worker_events("echo_done", "a")[0]["message"]
    check("ok=400 errors=0" in done, f"every request was answered ({done})")
    check(not run.events("protocol_error"), "nobody was killed for a full queue (no protocol_error)")
    check(len(run.events("spawned", child="b")) == 1, "the slow consumer was never restarted")
    # Held in the supervisor's queue, the 37.5 MiB would take its peak well past 40 MiB (70 MiB measured).
    check(hwm < 32 * 1024, f"the supervisor's memory stayed bounded while 37.5 MiB went through (VmHWM {hwm} KiB)")


def brokered(new_run):
    p99 = {}
    for mode in ("routed", "direct"):
        args = ["--echo-to", "b", "--count", "150", "--interval-ms", "10"] + (["--direct"] if mode == "direct" else [])
        run = new_run({"children": [test("b"), test("a", args)]}, pidns=False)
        run.start()
        if mode == "direct":
            run.wait_for(lambda: run.worker_events("channel_open", "a"), what="the brokered channel")
        else:
            run.wait_for(lambda: run.events("ready", child="a"), what="a ready")
        time.sleep(0.2)
        os.kill(run.proc.pid, signal.SIGSTOP)  # the supervisor itself (--no-pidns)
        time.sleep(1.0)
        os.kill(run.proc.pid, signal.SIGCONT)
        run.wait_for(lambda: run.worker_events("echo_done", "a"), what="echo_done")
        run.proc.send_signal(signal.SIGTERM)
        run.wait()
        done = run.worker_events("echo_done", "a")[0]["message"]
        check("ok=150 errors=0" in done, f"{mode}: every echo was answered ({done})")
        p99[mode] = int(done.split("p99_us=")[1].split()[0])
        if mode == "direct":
            check(not run.worker_events("channel_error", "a") and not run.worker_events("channel_lost", "a"),
                  "the channel was brokered and stayed open")
    check(p99["routed"] >= 600_000, f"routed echoes waited for the stopped supervisor (p99 {p99['routed']} us)")
    check(p99["direct"] < 400_000, f"brokered echoes went on while it was stopped (p99 {p99['direct']} us)")


def body(new_run):
    {"queued": queued, "replay": replay, "gone": gone, "backpressure": backpressure,
     "brokered": brokered, "partial": partial}[sys.argv[1]](new_run)


main(body)
