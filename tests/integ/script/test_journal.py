#!/usr/bin/python3
# Proves vigil-script journals subtest boundaries when journald is there: begin/end/failed entries with
# VIGIL_SUBTEST, VIGIL_EVENT and stable MESSAGE_IDs, and that nothing extra reaches stderr when it is not.
# Why it matters: `journalctl VIGIL_SUBTEST=<name>` is how a failed subtest's story is found afterwards.
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_script_worker import run  # noqa: E402
from vmrun import Tap  # noqa: E402

JOURNALD = "/lib/systemd/systemd-journald"
SCRIPT = "with subtest('alpha part'):\n    server.succeed('true')\nwith subtest('beta part'):\n    server.succeed('false')\n"


def skip(why: str) -> None:
    print(f"1..0 # SKIP {why}")
    sys.exit(77)


def outer() -> None:
    if os.geteuid() != 0:
        skip("needs root for a private mount namespace")
    if not os.access(JOURNALD, os.X_OK) or not shutil.which("journalctl") or not shutil.which("unshare"):
        skip("systemd-journald, journalctl or unshare missing")
    if subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode != 0:
        skip("cannot create a mount namespace")
    # journald, its socket and files exist only inside the namespace
    sys.exit(subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__, "--inner"]).returncode)


def inner() -> None:
    tap = Tap()
    r = run(SCRIPT)
    tap.check("Subtest" not in r["stderr"], "without journald, no journal lines on stderr", r["stderr"][-2000:])
    for d in ("/run", "/var/log/journal"):
        if os.path.isdir(d):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
    os.makedirs("/run/systemd/journal", exist_ok=True)
    os.makedirs("/run/log/journal", exist_ok=True)
    jd = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists("/run/systemd/journal/socket"):
            if jd.poll() is not None or time.monotonic() > deadline:
                skip("systemd-journald did not start here")
            time.sleep(0.05)
        r = run(SCRIPT)
        tap.check(r["verdict"] == 1, "the script failed in its second subtest")
        entries = []
        for _ in range(50):
            out = subprocess.run(["journalctl", "--directory=/run/log/journal", "--no-pager", "-o", "json",
                                  "SYSLOG_IDENTIFIER=vigil-script"], capture_output=True, text=True).stdout
            entries = [json.loads(line) for line in out.splitlines() if line.strip()]
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
    inner() if sys.argv[1:] == ["--inner"] else outer()
