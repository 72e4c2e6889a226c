#!/usr/bin/python3
# Proves the global timeout always fires and ends the run with exit 3, even while a worker hangs (stops reading,
# ignores SIGTERM): the supervisor owns the timer, and the hung worker is SIGKILLed after its shutdown timeout.
import time

from suphelp import check, main, test


def body(new_run):
    hung = test("hung", ["--hang", "--after-ms", "100"])
    hung["shutdown"] = 300
    run = new_run({"children": [test("ok"), hung]}, args=["--global-timeout", "1"])
    t0 = time.monotonic()
    rc = run.run(timeout=20)
    took = time.monotonic() - t0
    check(rc == 3, f"global timeout: exit 3 (got {rc})")
    check(run.events("timeout"), "a timeout event is in the timeline")
    check(run.worker_events("misbehave", "hung"), "the worker was hanging")
    check(run.events("killed", child="hung"), "the hung worker was SIGKILLed")
    check(1.0 <= took < 4, f"the run ended {took:.2f} s after it began (timeout 1 s + 0.3 s shutdown)")


main(body)
