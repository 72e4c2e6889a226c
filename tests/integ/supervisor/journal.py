#!/usr/bin/python3
# Proves structured journald logging against a real systemd-journald started by the test (in a private mount
# namespace): `journalctl VIGIL_RUN=<id>` returns the spawn, exit and restart events with their VIGIL_* fields.
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from suphelp import check, main, test

JOURNALD = "/lib/systemd/systemd-journald"


def skip(why):
    print(f"1..0 # SKIP {why}")
    sys.exit(77)


def outer():
    if os.geteuid() != 0:
        skip("needs root for a private mount namespace")
    if not os.access(JOURNALD, os.X_OK) or not shutil.which("journalctl") or not shutil.which("unshare"):
        skip("systemd-journald, journalctl or unshare missing")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        skip(f"cannot create a mount namespace: {probe.stderr.decode().strip()}")
    # The journald, its sockets and files live only in the namespace: nothing touches the host's /run or /var/log.
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__, "--inner"])
    sys.exit(r.returncode)


def start_journald():
    for d in ("/run", "/var/log/journal"):
        if os.path.isdir(d):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
    os.makedirs("/run/systemd/journal", exist_ok=True)
    os.makedirs("/run/log/journal", exist_ok=True)
    jd = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists("/run/systemd/journal/socket"):
        if jd.poll() is not None or time.monotonic() > deadline:
            skip("systemd-journald did not start here")
        time.sleep(0.05)
    return jd


def query(run_id, *matches):
    r = subprocess.run(["journalctl", "--directory=/run/log/journal", "--no-pager", "-o", "json",
                        f"VIGIL_RUN={run_id}", *matches], capture_output=True, text=True)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def body(new_run):
    jd = start_journald()
    try:
        run = new_run(None, log_target="journal")
        run.set_spec({"children": [test("a", ["--crash-after-ms", "200", "--once-file", run.path("once")]),
                                   test("b")]})
        run.start()
        run.wait_for(lambda: len(run.events("ready", child="a")) == 2, what="a restarted")
        run.proc.send_signal(signal.SIGTERM)
        rc = run.wait()
        check(rc == 6, f"run ended (rc {rc})")
        entries = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            entries = query(run.run_id)
            if any(e.get("VIGIL_EVENT") == "run_end" for e in entries):
                break
            time.sleep(0.1)
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


if len(sys.argv) > 1 and sys.argv[1] == "--inner":
    main(body)
else:
    outer()
