#!/usr/bin/env python3
# Proves that `vigil run` shows live progress as a status line pinned to the bottom row of a terminal (a pty here),
# and as plain milestone lines without terminal escapes in a pipe; --quiet drops the script's log, not the progress.
# A 40-minute fleet run must say where it is at a glance, and CI logs must stay free of cursor movements.
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time

from runtap import check, done

VIGIL = sys.argv[1]
SCRIPT = 'start_all()\nwith subtest("phase one"):\n    a.succeed("sleep 2; echo progress-marker")\n'


def run_on_pty(argv, rows=24, cols=120):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, out.decode(errors="replace")


with tempfile.TemporaryDirectory(prefix="vigil-run-progress-") as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write(SCRIPT)

    code, out = run_on_pty([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "tty")])
    check(code == 0, f"the run on a pty passed (exit {code})")
    check("\x1b[1;23r" in out, "the rows above the last become a scroll region (24-row terminal)")
    check("\x1b[24;1H\x1b[2K" in out, "the status line is drawn on the bottom row")
    check("machines 1/1 ready" in out and "subtest: phase one" in out, "it counts ready machines and names the subtest")
    check("a: sleep 2; echo progress-marker (exit 0," in out, "it shows the last command with its status")
    check(out.rfind("\x1b[r") > out.rfind("\x1b[1;23r"), "the whole screen scrolls again at the end")

    p = subprocess.run([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "pipe")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=240)
    check(p.returncode == 0, f"the run in a pipe passed (exit {p.returncode})")
    check("\x1b7" not in p.stderr and "\x1b[1;" not in p.stderr and "r\x1b8" not in p.stderr,
          "no cursor movement or scroll region in a pipe")
    check("vigil: progress: a ready (" in p.stderr and "vigil: progress: script subtest begins" in p.stderr,
          "plain progress lines for the milestones instead")
    check("must succeed" in p.stderr, "the script's log is there by default")

    p = subprocess.run([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "quiet"), "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=240)
    check(p.returncode == 0 and "must succeed" not in p.stderr and "vigil: progress: a ready" in p.stderr,
          "--quiet keeps the progress lines and drops the script's log")
    p = subprocess.run([VIGIL, "run", script, "--node", "a", "--quiet", "--verbose"], capture_output=True, text=True)
    check(p.returncode == 2 and "exclude each other" in p.stderr, "--quiet with --verbose: exit 2, saying why")
done()
