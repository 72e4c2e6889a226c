#!/usr/bin/python3
# Proves that vigil's lines survive a journal socket nobody listens on (ECONNREFUSED, as in many containers):
# each process falls back to stderr at its first refused entry and says so once; with a live journald nothing moves.
import os
import signal
import socket
import subprocess
import sys
import time

from suphelp import VIGIL, check, main, test

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "helpers"))
import privjournal  # noqa: E402

SOCKET = "/run/systemd/journal/socket"
NOTE = "refused an entry"


def crash_and_stop(new_run):
    """A run whose worker crashes once and is restarted, then SIGTERM: restart and teardown lines."""
    run = new_run(None, log_target="auto")
    run.set_spec({"children": [test("a", ["--crash-after-ms", "200", "--once-file", run.path("once")])]})
    run.start()
    run.wait_for(lambda: len(run.events("ready", child="a")) == 2, what="a restarted")
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()
    check(rc == 6, f"run ended with exit 6 (rc {rc})")
    return run


def body(new_run):
    # A dead socket: bound once, its owner gone, the file left behind.
    privjournal.mount_private_run()
    os.makedirs(os.path.dirname(SOCKET), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(SOCKET)
    s.close()
    run = crash_and_stop(new_run)
    err = run.stderr
    check(err.count(NOTE) >= 1 and f"vigil[1]: warning: journald at {SOCKET} {NOTE}" in err,
          "the supervisor says once that journald refused its entries and it logs to stderr")
    check(sum(1 for l in err.splitlines() if l.startswith("vigil[") and NOTE in l) == 1,
          "... exactly once")
    check("restart" in err.lower() and "'a'" in err, "the worker's crash and restart reach stderr")

    # A live journald at the same path: entries go there, no fallback.
    os.unlink(SOCKET)
    jd = privjournal.start_journald(mount=False)
    try:
        run = crash_and_stop(new_run)
        check(NOTE not in run.stderr, "with a live journald, no fallback")
        entries = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.get("VIGIL_EVENT") == "run_end" for e in entries):
            entries = privjournal.query(f"VIGIL_RUN={run.run_id}")
            time.sleep(0.1)
        check(any(e.get("VIGIL_EVENT") == "restarted" for e in entries), "the restart is in the journal")

        # `vigil run` with a live journal: its summary line still reaches the terminal.
        d = run.dir
        with open(os.path.join(d, "t.py"), "w") as f:
            f.write("raise Exception('boom')\n")
        p = subprocess.run([VIGIL, "run", os.path.join(d, "t.py"), "--node", "a", "-o", os.path.join(d, "run-out")],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 1 and "test failed" in p.stderr and "logs in " + os.path.join(d, "run-out") in p.stderr,
              f"vigil run's summary is on stderr with journald up (rc {p.returncode})")
        if "logs in" not in p.stderr:
            print("#   " + p.stderr.strip().replace("\n", "\n#   "))
    finally:
        jd.terminate()
        jd.wait()


if privjournal.is_inner():
    main(body)
else:
    privjournal.run_in_private_namespace(__file__)
