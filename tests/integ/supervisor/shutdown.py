#!/usr/bin/python3
# Proves shutdown specs on teardown: a polite worker exits on SIGTERM, one ignoring SIGTERM is SIGKILLed once its
# timeout passes (not before), brutal_kill is SIGKILL at once. A stuck worker must never hold a run hostage.
import signal

from suphelp import check, main, test


def body(new_run):
    polite = test("polite")
    polite["shutdown"] = 2000
    stubborn = test("stubborn", ["--ignore-sigterm"])
    stubborn["shutdown"] = 400
    brutal = test("brutal")
    brutal["shutdown"] = "brutal_kill"
    run = new_run({"children": [polite, stubborn, brutal]})
    run.start()
    run.wait_for(lambda: run.worker_events("misbehave", "stubborn") and len(run.events("ready")) == 3,
                 what="three ready workers")
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()
    check(rc == 6, f"SIGTERM: exit 6 (got {rc})")

    b = run.events("exited", child="brutal")[0]
    check(b.get("signal") == 9, "brutal_kill: killed by SIGKILL")
    check(run.events("killed", child="brutal", reason="shutdown is brutal_kill"), "brutal_kill: logged as such")

    st = run.events("stopping", child="stubborn")[0]
    k = run.events("killed", child="stubborn")[0]
    ex = run.events("exited", child="stubborn")[0]
    check(ex.get("signal") == 9, "stubborn: ended by SIGKILL")
    check(k["t"] - st["t"] >= 0.38, f"stubborn: SIGKILL came {k['t'] - st['t']:.3f} s after SIGTERM (>= 0.4)")
    check(k["t"] - st["t"] < 1.5, "stubborn: ... and not much later")
    check("did not stop within 400 ms" in k["reason"], "stubborn: the reason names the timeout")

    p = run.events("exited", child="polite")[0]
    check(p.get("exit_code") == 0 and p.get("deliberate") == 1, "polite: exited 0 on SIGTERM")
    order = [e["child"] for e in run.events("exited")]
    check(order == ["brutal", "stubborn", "polite"], f"reverse start order (got {order})")


main(body)
