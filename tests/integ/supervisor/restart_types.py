#!/usr/bin/python3
# Proves the restart types against the worker exit-code contract: which of exit 0 / crash / 75 (restart me) /
# 76 (permanent failure) come back for permanent, transient and temporary children, and that 78 (bad config) fails the run.
import signal
import sys
import time

from suphelp import check, main, test

CODES = {"e0": 0, "e1": 1, "e75": 75, "e76": 76}
RESTARTED = {
    "permanent": {"e0", "e1", "e75"},
    "transient": {"e1", "e75"},
    "temporary": set(),
}
REMOVED = {
    "permanent": {"e76"},
    "transient": {"e76"},
    "temporary": {"e0", "e1", "e75", "e76"},
}


def matrix(new_run, rtype):
    run = new_run(None)
    children = [test("keep")]
    for name, code in CODES.items():
        c = test(name, ["--exit-code", str(code), "--after-ms", "200", "--once-file", run.path(name)])
        c["restart"] = rtype
        children.append(c)
    run.set_spec({"strategy": "one_for_one", "intensity": {"max_restarts": 10, "max_seconds": 5},
                  "children": children})
    run.start()
    run.wait_for(lambda: len(run.events("exited")) >= 4, what="four exits")
    time.sleep(0.8)
    tl = run.timeline()
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()
    for name, code in CODES.items():
        ex = [e for e in tl if e["event"] == "exited" and e["child"] == name]
        check(ex and ex[0].get("exit_code") == code, f"{rtype}: {name} exited with {code}")
        spawned = len([e for e in tl if e["event"] == "spawned" and e["child"] == name])
        want = 2 if name in RESTARTED[rtype] else 1
        check(spawned == want, f"{rtype}: {name} started {spawned} time(s), expected {want}")
        removed = any(e["event"] == "removed" and e["child"] == name for e in tl)
        check(removed == (name in REMOVED[rtype]), f"{rtype}: {name} {'is' if removed else 'is not'} removed")
    check(rc == 6, f"{rtype}: interrupted run exits 6 (got {rc})")


def config(new_run):
    run = new_run({"children": [test("keep"), test("cfg", ["--exit-code", "78", "--after-ms", "100"])]})
    rc = run.run(timeout=20)
    check(rc == 2, f"a worker exiting 78 (bad config) fails the run with exit 2 (got {rc})")
    check(len(run.events("spawned", child="cfg")) == 1, "it is not restarted")
    check(run.events("gave_up", reason="config"), "gave_up event with reason config")


def significant(new_run):
    main_child = test("main", ["--exit-code", "0", "--after-ms", "200"])
    main_child["restart"] = "temporary"
    main_child["significant"] = True
    run = new_run({"children": [test("keep"), main_child, test("after")]})
    rc = run.run(timeout=20)
    check(rc == 0, f"a significant child ending ends the run, exit 0 (got {rc})")
    stops = [e["child"] for e in run.events("exited") if e.get("deliberate") == 1]
    check(stops == ["after", "keep"], f"the others are stopped in reverse start order ({stops})")
    check("significant child 'main' ended" in run.stderr, "the log says why the run ended")


def body(new_run):
    if sys.argv[1] == "significant":
        significant(new_run)
    elif sys.argv[1] == "config":
        config(new_run)
    else:
        matrix(new_run, sys.argv[1])


main(body)
