#!/usr/bin/python3
# Proves structured journald logging against a real systemd-journald started by the test (in a private mount
# namespace): `journalctl VIGIL_RUN=<id>` returns the spawn, exit and restart events with their VIGIL_* fields.
import os
import subprocess
import sys

from suphelp import check, main, restart_into_journal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpers"))
import privjournal  # noqa: E402



def query(run_id, *matches):
    return privjournal.query(f"VIGIL_RUN={run_id}", *matches)


def body(new_run):
    jd = privjournal.start_journald()
    try:
        run, rc, entries = restart_into_journal(new_run, query)
        check(rc == 6, f"run ended (rc {rc})")
        ev = lambda name, child=None: [e for e in entries if e.get("VIGIL_EVENT") == name and
                                       (child is None or e.get("VIGIL_CHILD") == child)]
        check(len(ev("spawned", "a")) == 2 and len(ev("spawned", "b")) == 1, "spawned events: a twice, b once")
        sp = ev("spawned", "a")[0]
        check(sp.get("VIGIL_KIND") == "test" and sp.get("VIGIL_PID", "").isdigit() and
              sp.get("SYSLOG_IDENTIFIER") == "vigil" and len(sp.get("MESSAGE_ID", "")) == 32,
              "spawned carries VIGIL_KIND, VIGIL_PID, SYSLOG_IDENTIFIER and a MESSAGE_ID")
        crash = [e for e in ev("exited", "a") if e.get("VIGIL_DELIBERATE") == "0"]
        check(crash and crash[0].get("VIGIL_EXIT_CODE") == "1" and crash[0].get("PRIORITY") == "4",
              "the crash is an exited event with VIGIL_EXIT_CODE=1 at warning priority")
        rs = ev("restarted", "a")
        check(rs and rs[0].get("VIGIL_RESTARTS") == "1", "restarted event with VIGIL_RESTARTS=1")
        ids = {e["MESSAGE_ID"] for e in ev("spawned")} | {e["MESSAGE_ID"] for e in ev("restarted")}
        check(len(ids) == 2, "spawned and restarted have distinct, stable MESSAGE_IDs")
        by_id = query(run.run_id, f"MESSAGE_ID={sp['MESSAGE_ID']}")
        check(len(by_id) == 3, "journalctl MESSAGE_ID=<spawned> finds exactly the three spawns")
        by_child = query(run.run_id, "VIGIL_CHILD=a")
        check(any(e.get("SYSLOG_IDENTIFIER") == "vigil-test" for e in by_child),
              "VIGIL_CHILD=a also finds the worker's own entries (vigil-test)")
    finally:
        jd.terminate()
        jd.wait()


if privjournal.is_inner():
    main(body)
else:
    privjournal.run_in_private_namespace(__file__)
