#!/usr/bin/python3
# Proves `vigil shell` gives a person a real root shell (a terminal with job control and window size) in a VM, a
# VM that runs no shell on its debug console (as NixOS; the worker starts one on request), a container and an SSH
# machine of a live run, beside the test's own shell, which keeps running commands meanwhile.
# Why it matters: stepping into a machine of a running test is how people debug one, and it must not break the test.
import json
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from sshfixture import Fixture  # noqa: E402
from vmrun import VIGIL, Tap, _remove_at_exit, junit_cases  # noqa: E402

SCRIPT = r'''
import time
from pathlib import Path

vm.start()
nixvm.start()
box.start()
@AUTHORIZE@
remote.start()
for m in (vm, nixvm, box, remote):
    m.succeed("true")
Path("@READY@").write_text("up\n")
n = 0
deadline = time.monotonic() + 150
with subtest("the test's own shells keep working while people use vigil shell"):
    while not Path("@DONE@").exists() and time.monotonic() < deadline:
        t.assertEqual(box.succeed("echo ok"), "ok\n")
        t.assertEqual(remote.succeed("echo ok"), "ok\n")
        t.assertEqual(vm.succeed("echo ok"), "ok\n")
        n += 1
        Path("@COUNT@.new").write_text(f"{n}\n")
        Path("@COUNT@.new").replace("@COUNT@")  # whole, never half-written
        time.sleep(0.05)
    t.assertTrue(Path("@DONE@").exists(), "the harness finished in time")
    print(f"FIGURE test_rounds_during_shells {n}", flush=True)
    t.assertGreater(n, 0)
'''


class Pty:
    """`vigil shell` on a fresh pty of the given size, as a terminal would run it."""

    def __init__(self, args: list[str], rows: int, cols: int) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.environ["TERM"] = "xterm"
            os.execv(args[0], args)
        self.buf = b""

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, timeout: float = 20) -> re.Match | None:
        end = time.monotonic() + timeout
        rx = re.compile(pattern.encode())
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return rx.search(self.buf)
                if not data:
                    return None
                self.buf += data

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self, timeout: float = 20) -> int | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.expect("(?!)", 0.2)  # keep draining the output
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        return None

    def tail(self) -> str:
        return self.buf[-2000:].decode(errors="replace")


def rounds(count: Path) -> int:
    try:
        return int(count.read_text())
    except (OSError, ValueError):
        return 0


def session(tap: Tap, out: Path, machine: str, hostname: str, count: Path, resize: bool = True) -> None:
    before = rounds(count)
    p = Pty([VIGIL, "shell", str(out), machine], 40, 120)
    tap.check(p.expect(r"[#$] ") is not None, f"{machine}: a prompt", p.tail())
    p.send("echo H-$(hostname)-$((1+1))\n")
    tap.check(p.expect(rf"H-{hostname}-2") is not None, f"{machine}: the shell runs in the machine", p.tail())
    p.send("echo U-$(id -u)-$(tty)\n")
    tap.check(p.expect(r"U-0-/dev/(pts/\d+|hvc1)") is not None, f"{machine}: root, on a terminal", p.tail())
    p.send("stty size; echo S-$((2+2))\n")
    tap.check(p.expect(r"40 120\s+S-4") is not None, f"{machine}: the terminal's window size", p.tail())
    if resize:
        p.resize(50, 132)
        time.sleep(0.3)
        p.send("stty size; echo R-$((2+3))\n")
        tap.check(p.expect(r"50 132\s+R-5") is not None, f"{machine}: a resize reaches it", p.tail())
    p.send("sleep 300 &\n")
    p.send("jobs; echo J-$((3+3))\n")
    tap.check(p.expect(r"\[1\]\+\s+Running\s+sleep 300 &\s+J-6") is not None, f"{machine}: a background job", p.tail())
    p.send("fg\n")
    time.sleep(0.5)
    p.send("\x03")
    p.send("echo C-$((3+4)) $(jobs | wc -l)\n")
    tap.check(p.expect(r"C-7 0") is not None, f"{machine}: fg, then Ctrl-C ends the job and not the shell", p.tail())
    p.send("exit 3\n")
    status = p.wait()
    tap.check(status == 3, f"{machine}: vigil shell exits with the shell's status ({status})", p.tail())
    tap.check(rounds(count) > before, f"{machine}: the test's shells ran commands meanwhile ({before} -> {rounds(count)})")


def main() -> None:
    tap = Tap()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-shell-"))
    _remove_at_exit(tmp)
    os.chmod(tmp, 0o755)
    fx = Fixture(tmp)
    spec = {"nodes": {"vm": {}, "nixvm": {"append": "vigil.debugshell=none"}, "box": {"backend": "nspawn"},
                      "sshbox": fx.host_node(), "remote": fx.ssh_node()}}
    ready, done, out, count = tmp / "ready", tmp / "done", tmp / "out", tmp / "count"
    out.mkdir()
    script = SCRIPT.replace("@AUTHORIZE@", fx.authorize()).replace("@READY@", str(ready)).replace("@DONE@", str(done)).replace("@COUNT@", str(count))
    (tmp / "t.py").write_text(script)
    import json

    (tmp / "spec.json").write_text(json.dumps(spec))
    # Files, not pipes: nobody reads a pipe while the sessions run, and a full one would stall the run.
    run_out, run_err = open(tmp / "run.stdout", "w+"), open(tmp / "run.stderr", "w+")
    run = subprocess.Popen([VIGIL, "run", str(tmp / "t.py"), "--spec", str(tmp / "spec.json"), "-o", str(out),
                            "--junit", "junit.xml", "--global-timeout", "300"], cwd=tmp, stdout=run_out,
                           stderr=run_err, text=True)
    end = time.monotonic() + 240
    while not ready.exists() and run.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
    if tap.check(ready.exists(), "the run is up"):
        session(tap, out, "box", "box", count)
        session(tap, out, "remote", "sshbox", count)
        session(tap, out, "vm", "vm", count, resize=False)
        # No shell on its hvc1 (vigil.debugshell=none): vigil shell asks the worker, which starts one.
        session(tap, out, "nixvm", "nixvm", count, resize=False)
        r = subprocess.run([VIGIL, "shell", str(out), "vm", "--", "true"], capture_output=True, text=True,
                           timeout=20)
        tap.check(r.returncode == 2 and "is a VM" in r.stderr, "-- COMMAND is refused for a VM (exit 2)", r.stderr)
        r = subprocess.run([VIGIL, "shell", str(out), "nosuch"], capture_output=True, text=True, timeout=20)
        tap.check(r.returncode == 7 and "has no machine 'nosuch'" in r.stderr, "an unknown machine: exit 7",
                  r.stderr)
        ps = subprocess.run([VIGIL, "ps", "--json", str(out)], capture_output=True, text=True, timeout=20)
        run_id = json.loads(ps.stdout)["runs"][0]["run_id"] if ps.returncode == 0 else "ffffffff"
        r = subprocess.run([VIGIL, "shell", run_id[:6], "box", "--", "sh", "-c", "exit 5"], capture_output=True,
                           text=True, timeout=20)
        tap.check(r.returncode == 5, "the run named by 6 hex digits of its id, as vigil ps shows it",
                  ps.stdout + ps.stderr + r.stderr)
        r = subprocess.run([VIGIL, "shell", str(out), "box", "--", "sh", "-c", "cat /proc/1/comm; exit 4"],
                           capture_output=True, text=True, timeout=20)
        tap.check(r.returncode == 4 and r.stdout.strip() == "systemd", "a command instead of a login shell",
                  r.stdout + r.stderr)
    done.write_text("done\n")
    try:
        run.wait(timeout=120)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
    stdout, stderr = (tmp / "run.stdout").read_text(), (tmp / "run.stderr").read_text()
    for m in re.finditer(r"^FIGURE (\S+) (\S+)$", stdout, re.M):
        print(f"# {m[1]} = {m[2]}", flush=True)
    tap.check(run.returncode == 0, "the test passes: its shells were not disturbed", (stdout + stderr)[-4000:])
    cases = junit_cases(out / "junit.xml")
    tap.check(cases.get("the test's own shells keep working while people use vigil shell") is False,
              "subtest passed", str(cases))
    r = subprocess.run([VIGIL, "shell", str(out), "box"], capture_output=True, text=True, timeout=20)
    tap.check(r.returncode == 7 and "no running vigil run" in r.stderr, "after the run: exit 7, named", r.stderr)
    tap.done()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
