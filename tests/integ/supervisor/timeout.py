#!/usr/bin/python3
# Proves the global timeout always fires and ends the run with exit 3, even while a worker hangs (stops reading,
# ignores SIGTERM): the supervisor owns the timer, and the hung worker is SIGKILLed after its shutdown timeout.
import sys
import time

from suphelp import check, main, test


def start_timeout(new_run):
    slow = test("slow", ["--ready-delay-ms", "10000"])
    slow["start_timeout"] = 300
    run = new_run({"children": [slow, test("after")]})
    t0 = time.monotonic()
    rc = run.run(timeout=20)
    took = time.monotonic() - t0
    check(rc == 4, f"a worker never ready within start_timeout crash-loops into give-up, exit 4 (got {rc})")
    k = run.events("killed", child="slow")
    check(len(k) == 2 and all(e["reason"] == "not ready within 300 ms" for e in k),
          "it was killed twice for not being ready within 300 ms")
    check(all(e.get("exit_kind") == "abnormal" for e in run.events("exited", child="slow")), "each counted as a crash")
    after = run.events("spawned", child="after")
    check(after and after[0]["t"] >= k[0]["t"], "the next child started only once the hung start was dealt with")
    check(took < 5, f"the hung start held the tree for {took:.2f} s only")


def body(new_run):
    if len(sys.argv) > 1 and sys.argv[1] == "start":
        start_timeout(new_run)
        return
    hung = test("hung", ["--hang", "--after-ms", "100"])
    hung["shutdown"] = 300
    run = new_run({"children": [test("ok"), hung]}, args=["--global-timeout", "1", "--heartbeat", "0.3"])
    t0 = time.monotonic()
    rc = run.run(timeout=20)
    took = time.monotonic() - t0
    check(rc == 3, f"global timeout: exit 3 (got {rc})")
    check(run.events("timeout"), "a timeout event is in the timeline")
    check(run.worker_events("misbehave", "hung"), "the worker was hanging")
    check(run.events("killed", child="hung"), "the hung worker was SIGKILLed")
    check(run.stderr.count("still running after") >= 2, "heartbeat lines on stderr while it ran")
    check(1.0 <= took < 4, f"the run ended {took:.2f} s after it began (timeout 1 s + 0.3 s shutdown)")


main(body)
