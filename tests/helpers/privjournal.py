"""A real systemd-journald private to one test: the test re-executes itself in a new mount namespace
(`run_in_private_namespace`), mounts tmpfs on /run and /var/log/journal there, and starts journald
(`start_journald`), so nothing touches the host's journal. `query` reads it back as JSON entries."""
import json
import os
import shutil
import subprocess
import sys
import time

JOURNALD = "/lib/systemd/systemd-journald"
INNER_FLAG = "--inner"


def skip(why):
    print(f"1..0 # SKIP {why}")
    sys.exit(77)


def is_inner():
    return len(sys.argv) > 1 and sys.argv[1] == INNER_FLAG


def run_in_private_namespace(script):
    """Outer half: check the prerequisites, then run `script --inner` in a private mount namespace; exits."""
    if os.geteuid() != 0:
        skip("needs root for a private mount namespace")
    if not os.access(JOURNALD, os.X_OK) or not shutil.which("journalctl") or not shutil.which("unshare"):
        skip("systemd-journald, journalctl or unshare missing")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        skip(f"cannot create a mount namespace: {probe.stderr.decode().strip()}")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, script, INNER_FLAG,
                        *sys.argv[1:]])
    sys.exit(r.returncode)


def mount_private_run():
    """Inner half: tmpfs on /run and /var/log/journal, so nothing touches the host's journal."""
    for d in ("/run", "/var/log/journal"):
        if os.path.isdir(d):
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)


def start_journald(mount=True):
    """Inner half: a fresh journald on tmpfs; returns its Popen (terminate it when done)."""
    if mount:
        mount_private_run()
    os.makedirs("/run/systemd/journal", exist_ok=True)
    os.makedirs("/run/log/journal", exist_ok=True)
    jd = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists("/run/systemd/journal/socket"):
        if jd.poll() is not None or time.monotonic() > deadline:
            skip("systemd-journald did not start here")
        time.sleep(0.05)
    return jd


def query(*matches):
    r = subprocess.run(["journalctl", "--directory=/run/log/journal", "--no-pager", "-o", "json", *matches],
                       capture_output=True, text=True)
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
