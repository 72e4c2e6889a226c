#!/usr/bin/python3
# Proves vigil-machine's journal story against a real systemd-journald (private mount namespace): the serial
# console lines, the QEMU lifecycle events and the commands with their exit status carry VIGIL_MACHINE, and a console flood is rate-limited with a note.
# It matters because `journalctl VIGIL_MACHINE=<name>` is how users read one machine's story (design.md §8).
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpers"))
import privjournal  # noqa: E402
from privjournal import query  # noqa: E402


def inner():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from vmtest import Test

    jd = privjournal.start_journald()

    def body(t):
        m = t.machine("jm")
        m.connect()
        m.execute("echo journal-marker-$((6*7)) > /dev/ttyS0")
        m.wait_for_console("journal-marker-42")
        m.execute("(for i in $(seq 1 3000); do echo flood-line-$i; done > /dev/ttyS0) >/dev/null 2>&1")
        m.execute("sleep 1.2; echo after-flood > /dev/ttyS0")
        m.wait_for_console("after-flood")
        m.call("M_CRASH")
        subprocess.run(["journalctl", "--directory=/run/log/journal", "--sync"], capture_output=True)
        time.sleep(0.5)
        console = query("VIGIL_MACHINE=jm", "VIGIL_EVENT=console")
        texts = [e.get("MESSAGE", "") for e in console]
        t.check(any("jm # journal-marker-42" == x for x in texts),
                "console line in the journal as 'name # line' (%d console entries)" % len(texts))
        t.check(all(e.get("SYSLOG_IDENTIFIER") == "vigil-machine" for e in console), "SYSLOG_IDENTIFIER vigil-machine")
        floods = sum(1 for x in texts if "flood-line-" in x)
        t.check(0 < floods < 3000, "flood rate-limited in the journal (%d of 3000 lines)" % floods)
        t.check(any("console lines suppressed" in x for x in texts), "suppression noted with a count")
        t.check(any("after-flood" in x for x in texts), "lines after the flood logged again")
        events = {e.get("VIGIL_EVENT") for e in query("VIGIL_MACHINE=jm")}
        t.check({"spawned", "ready", "exited"} <= events, "lifecycle events with VIGIL_MACHINE (%s)" % sorted(
            x for x in events if x))
        t.check("flood-line-3000" in t.console_log("jm"), "the console file has every line")
        commands = query("VIGIL_MACHINE=jm", "VIGIL_EVENT=command")
        texts = [e.get("MESSAGE", "") for e in commands]
        t.check(any(x.startswith("execute: echo journal-marker-") for x in texts) and
                any(e.get("VIGIL_EXIT_STATUS") == "0" and e.get("VIGIL_DURATION_MS", "").isdigit() for e in commands),
                "each command and its exit status are in the machine's journal (%d command entries)" % len(commands))

    try:
        Test().run(body)
    finally:
        jd.terminate()


if __name__ == "__main__":
    if privjournal.is_inner():
        inner()
    else:
        privjournal.run_in_private_namespace(__file__)
