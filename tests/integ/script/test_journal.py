#!/usr/bin/python3
# Proves vigil-script journals subtest boundaries when journald is there: begin/end/failed entries with
# VIGIL_SUBTEST, VIGIL_EVENT and stable MESSAGE_IDs, and that nothing extra reaches stderr when it is not.
# Why it matters: `journalctl VIGIL_SUBTEST=<name>` is how a failed subtest's story is found afterwards.
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_script_worker import run  # noqa: E402
from vmrun import Tap  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpers"))
import privjournal  # noqa: E402

SCRIPT = "with subtest('alpha part'):\n    server.succeed('true')\nwith subtest('beta part'):\n    server.succeed('false')\n"


def inner() -> None:
    tap = Tap()
    r = run(SCRIPT)
    tap.check("Subtest" not in r["stderr"], "without journald, no journal lines on stderr", r["stderr"][-2000:])
    jd = privjournal.start_journald()
    try:
        r = run(SCRIPT)
        tap.check(r["verdict"] == 1, "the script failed in its second subtest")
        entries = []
        for _ in range(50):
            entries = privjournal.query("SYSLOG_IDENTIFIER=vigil-script")
            if len([e for e in entries if e.get("VIGIL_SUBTEST")]) >= 4:
                break
            time.sleep(0.1)
        sub = [(e.get("VIGIL_EVENT"), e.get("VIGIL_SUBTEST"), e.get("PRIORITY")) for e in entries if e.get("VIGIL_SUBTEST")]
        tap.check(("subtest_begin", "alpha part", "6") in sub and ("subtest_end", "alpha part", "6") in sub,
                  "alpha part: begin and end entries", sub)
        tap.check(("subtest_end", "beta part", "4") in sub, "beta part: its end is a warning (failed)", sub)
        ids = {e.get("MESSAGE_ID") for e in entries if e.get("VIGIL_EVENT") == "subtest_begin"}
        tap.check(len(ids) == 1 and len(next(iter(ids))) == 32, "subtest_begin has one stable MESSAGE_ID", ids)
        tap.check(all(e.get("VIGIL_RUN") == "fake-run" for e in entries if e.get("VIGIL_SUBTEST")),
                  "entries carry the run id from CONFIG")
    finally:
        jd.terminate()
        jd.wait()
    tap.done()


if __name__ == "__main__":
    inner() if privjournal.is_inner() else privjournal.run_in_private_namespace(__file__)
