#!/usr/bin/python3
# Proves restart intensity: more than max_restarts restarts within max_seconds makes vigil give up, tear the tree down
# in reverse start order and exit 4; restarts spaced just outside the period never give up (OTP's multiple_restarts).
import signal
import sys

from suphelp import check, main, test


def give_up(new_run):
    run = new_run({"strategy": "one_for_one", "intensity": {"max_restarts": 2, "max_seconds": 5},
                   "children": [test("keep"), test("bad", ["--crash-after-ms", "100"]), test("last")]})
    rc = run.run(timeout=20)
    check(rc == 4, f"gave up with exit 4 (got {rc})")
    gave = run.events("gave_up")
    check(len(gave) == 1 and gave[0]["child"] == "bad", "one gave_up event, naming the child that crashed")
    check(len(run.events("restarted", child="bad")) == 2, "bad was restarted exactly max_restarts=2 times")
    check(len(run.events("exited", child="bad")) == 3, "bad crashed three times")
    stops = [e["child"] for e in run.events("exited") if e.get("deliberate") == 1]
    check(stops == ["last", "keep"], f"teardown stopped last, then keep (got {stops})")
    check(run.events("run_end")[0]["exit_code"] == 4, "run_end records exit code 4")
    check("Giving up" in run.stderr, "the log says it gave up")


def below_threshold(new_run):
    run = new_run({"strategy": "one_for_one", "intensity": {"max_restarts": 1, "max_seconds": 1},
                   "children": [test("slow", ["--crash-after-ms", "1300"])]},
                  args=["--global-timeout", "3.6"])
    rc = run.run(timeout=20)
    check(rc == 3, f"a crash every 1.3 s with 1 restart per 1 s never gives up; the global timeout ends it (rc {rc})")
    check(not run.events("gave_up"), "no gave_up event")
    check(len(run.events("restarted", child="slow")) >= 2, "it was restarted at least twice")


def body(new_run):
    {"give-up": give_up, "below": below_threshold}[sys.argv[1]](new_run)


main(body)
