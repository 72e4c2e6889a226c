#!/usr/bin/env python3
# Proves that `vigil run` speaks sd_notify as systemd-run -p Type=notify expects: READY=1 once the run is up,
# STATUS= naming the running subtest, WATCHDOG=1 pings, and --heartbeat lines on stderr for nix's silence timeout;
# and it sweeps the state directory a SIGKILLed run left (VM disks must not pile up on CI machines). `systemctl status` of a long fleet test must say where it is.
import os
import socket
import subprocess
import sys
import tempfile
import time

from runtap import check, done, failed

VIGIL = sys.argv[1]


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


with tempfile.TemporaryDirectory(prefix="vigil-run-notify-") as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write('start_all()\nwith subtest("phase one"):\n    a.succeed("sleep 2")\n')
    path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    # A killed run's directory (its owner is gone) and a live one's (owner: this process) in the run's TMPDIR.
    tmpdir = os.path.join(d, "tmp")
    for name, pid, start in (("vigil-dead0001", 2 ** 22 + 7, 1), ("vigil-a11e0002", os.getpid(), start_time(os.getpid()))):
        os.makedirs(os.path.join(tmpdir, name, "vm-state-x"))
        with open(os.path.join(tmpdir, name, "owner"), "w") as f:
            f.write(f"{pid} {start}\n")
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="500000", TMPDIR=tmpdir)
    env.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.Popen([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "out"),
                             "--heartbeat", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    got = []
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            got.extend(sock.recv(4096).decode().splitlines())
        except socket.timeout:
            pass
    if proc.poll() is None:
        proc.kill()
    err = proc.communicate()[1]
    check(proc.returncode == 0, f"the run passed (exit {proc.returncode})")
    ready = next((i for i, g in enumerate(got) if g == "READY=1"), None)
    sub = next((i for i, g in enumerate(got) if g.startswith("STATUS=") and "subtest: phase one" in g), None)
    check(ready is not None, "READY=1 received")
    check(sub is not None, "STATUS= names the running subtest")
    check(ready is not None and sub is not None and ready < sub, "READY=1 came before the subtest ran")
    check(sub is not None and any(g.startswith("STATUS=") and "subtest" not in g for g in got[sub + 1:]),
          "STATUS= drops the subtest once it ended")
    check(sum(g == "WATCHDOG=1" for g in got) >= 2, "WATCHDOG=1 pings received")
    check("still running after" in err and "; subtest: phase one" in err,
          "--heartbeat 1 prints 'still running' lines on stderr, naming the subtest (nix max-silent-time)")
    check(not os.path.exists(os.path.join(tmpdir, "vigil-dead0001")) and
          os.path.isdir(os.path.join(tmpdir, "vigil-a11e0002")) and sorted(os.listdir(tmpdir)) == ["vigil-a11e0002"],
          "a killed run's state directory is swept, a live run's is kept, this run's own is gone at the end")
    if failed():
        print("# notify lines: " + repr(got[:40]))
        print("# stderr: " + err[-2000:].replace("\n", "\n# "))
done()
