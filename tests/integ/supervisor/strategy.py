#!/usr/bin/python3
# Proves, for one_for_one / one_for_all / rest_for_one, exactly which children a crash restarts and in what order
# (stops in reverse start order, then starts in start order), read from the run's timeline. OTP semantics are the contract.
import os
import signal
import sys
import time

from suphelp import check, main, test

EXPECT = {
    # after b's crash: (event, child) in order
    "one_for_one": [("restarted", "b"), ("spawned", "b"), ("ready", "b")],
    "one_for_all": [("stopping", "c"), ("exited", "c"), ("stopping", "a"), ("exited", "a"),
                    ("restarted", "a"), ("spawned", "a"), ("ready", "a"),
                    ("restarted", "b"), ("spawned", "b"), ("ready", "b"),
                    ("restarted", "c"), ("spawned", "c"), ("ready", "c")],
    "rest_for_one": [("stopping", "c"), ("exited", "c"),
                     ("restarted", "b"), ("spawned", "b"), ("ready", "b"),
                     ("restarted", "c"), ("spawned", "c"), ("ready", "c")],
}
KEEP = {"stopping", "exited", "restarted", "spawned", "ready", "killed"}


def body(new_run):
    strategy = sys.argv[1]
    run = new_run(None)
    once = run.path("b-crashed")
    spec = {"strategy": strategy, "intensity": {"max_restarts": 3, "max_seconds": 5},
            "children": [test("a"), test("b", ["--crash-after-ms", "300", "--once-file", once]), test("c")]}
    run.set_spec(spec)
    run.start()
    readies = 3 + sum(1 for e, _ in EXPECT[strategy] if e == "ready")
    run.wait_for(lambda: len(run.events("ready")) >= readies, what=f"{readies} ready events")
    time.sleep(0.4)  # nothing else may restart
    tl = run.timeline()
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()

    crash = next(i for i, e in enumerate(tl) if e["event"] == "exited" and e.get("child") == "b")
    check(tl[crash]["exit_code"] == 1 and tl[crash]["deliberate"] == 0, f"{strategy}: b crashed with exit 1")
    after = [(e["event"], e.get("child")) for e in tl[crash + 1:] if e["event"] in KEEP]
    check(after == EXPECT[strategy], f"{strategy}: after the crash {after} == {EXPECT[strategy]}")
    for child in "abc":
        n = len([e for e in tl if e["event"] == "spawned" and e.get("child") == child])
        want = 1 + sum(1 for e, c in EXPECT[strategy] if e == "spawned" and c == child)
        check(n == want, f"{strategy}: {child} spawned {n} time(s), expected {want}")
    check(rc == 6, f"{strategy}: SIGTERM ends the run with exit 6 (got {rc})")
    down = [(e["child"]) for e in run.events("exited") if e.get("deliberate") == 1][-3:]
    check(down == ["c", "b", "a"], f"{strategy}: teardown stops c, b, a in reverse start order (got {down})")


main(body)
