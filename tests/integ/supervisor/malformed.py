#!/usr/bin/python3
# Proves that each kind of bad frame (garbage, oversized, unknown type, wrong direction, a flood of unread replies)
# costs only the offender its channel: it is killed and restarted, while an echo pair routed through vigil carries on.
import signal
import sys

from suphelp import check, main, test

REASON = {
    "garbage": "malformed frame",
    "oversized": "frame too big",
    "unknown-type": "unknown message type",
    "wrong-direction": "message not allowed in this direction: CONFIG",
    "flood": "send queue overflow",
}


def body(new_run):
    kind = sys.argv[1]
    run = new_run(None)
    run.set_spec({"strategy": "one_for_one", "intensity": {"max_restarts": 3, "max_seconds": 5},
                  "children": [test("b"),
                               test("a", ["--echo-to", "b", "--count", "40", "--interval-ms", "30"]),
                               test("bad", [f"--{kind}", "--after-ms", "200", "--once-file", run.path("once")])]})
    run.start()
    run.wait_for(lambda: run.worker_events("echo_done", "a"), timeout=20, what="the echo pair to finish")
    run.wait_for(lambda: len(run.events("ready", child="bad")) >= 2, what="the offender to be restarted")
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()

    pe = run.events("protocol_error", child="bad")
    check(len(pe) == 1, f"{kind}: exactly one protocol_error logged for the offender (got {len(pe)})")
    check(REASON[kind] in pe[0]["reason"], f"{kind}: reason '{pe[0]['reason']}' names the fault")
    ex = run.events("exited", child="bad")[0]
    check(ex.get("deliberate") == 0 and ex.get("exit_kind") == "abnormal", f"{kind}: the offender died abnormally")
    check(len(run.events("restarted", child="bad")) == 1, f"{kind}: and was restarted once")
    done = run.worker_events("echo_done", "a")[0]["message"]
    check("ok=40 errors=0" in done, f"{kind}: echo pair unaffected ({done})")
    for c in ("a", "b"):
        check(len(run.events("spawned", child=c)) == 1, f"{kind}: {c} never restarted")
        check(not run.events("protocol_error", child=c), f"{kind}: no protocol error blamed on {c}")
    check(rc == 6, f"{kind}: the supervisor itself survived (exit 6 on SIGTERM, got {rc})")


main(body)
