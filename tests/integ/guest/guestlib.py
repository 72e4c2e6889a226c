"""What the tiny-guest tests share: TAP-ish checks, the serial console collector, the reference
driver's backdoor shell protocol over a connected `shell` socket, and an accept() that gives up when
QEMU dies first. Self-contained: python3 stdlib only (these tests run before vigil is built)."""

import base64
import os
import re
import select
import shlex
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
READY = b"Spawning backdoor root shell..."
VERBOSE = os.environ.get("VIGIL_TEST_VERBOSE") == "1"
failures = []


def check(ok, what):
        print(f"{'ok' if ok else 'FAIL'} - {what}", flush=True)
        if not ok:
                failures.append(what)


def verdict():
        print("PASS" if not failures else f"FAIL: {len(failures)} check(s) failed")
        return 1 if failures else 0


class Serial(threading.Thread):
        """Collects QEMU's stdout (the guest's ttyS0) as (seconds since @t0, line)."""

        def __init__(self, name, stream, t0):
                super().__init__(daemon=True)
                self.name_, self.stream, self.t0 = name, stream, t0
                self.lines = []
                self.cond = threading.Condition()

        def run(self):
                for raw in self.stream:
                        line = raw.decode(errors="replace").rstrip("\r\n")
                        if VERBOSE:
                                print(f"  {self.name_} {time.monotonic() - self.t0:6.2f}| {line}", flush=True)
                        with self.cond:
                                self.lines.append((time.monotonic() - self.t0, line))
                                self.cond.notify_all()

        def wait_for(self, pattern, timeout):
                end = time.monotonic() + timeout
                with self.cond:
                        while True:
                                for _, line in self.lines:
                                        if re.search(pattern, line):
                                                return line
                                left = end - time.monotonic()
                                if left <= 0:
                                        return None
                                self.cond.wait(left)

        def dump(self, n=40):
                print(f"{self.name_} serial console tail:")
                for ts, line in self.lines[-n:]:
                        print(f"  {ts:7.2f} | {line}")


def accept(listener, proc, deadline, what):
        """accept() that gives up when QEMU dies first (the reference blocks forever there)."""
        while time.monotonic() < deadline:
                r, _, _ = select.select([listener], [], [], 0.2)
                if r:
                        conn, _ = listener.accept()
                        return conn
                if proc.poll() is not None:
                        raise RuntimeError(f"QEMU exited ({proc.returncode}) before connecting {what}")
        raise RuntimeError(f"QEMU did not connect {what}")


class Shell:
        """The reference shell protocol over the `shell` socket, buffered (the reference checks
        per recv() chunk; a buffer cannot miss a marker split across reads)."""

        def __init__(self, sock, cmd_deadline, default_timeout=10):
                self.sock = sock
                self.buf = b""
                self.cmd_deadline = cmd_deadline
                self.default_timeout = default_timeout

        def _fill(self, deadline):
                left = deadline - time.monotonic()
                r, _, _ = select.select([self.sock], [], [], max(left, 0))
                if not r:
                        raise TimeoutError("guest shell timed out")
                chunk = self.sock.recv(4096)
                if not chunk:
                        raise RuntimeError("Shell disconnected")
                self.buf += chunk

        def wait_ready(self, deadline):
                """Reads up to the ready line; returns what came after it in the same reads."""
                while READY not in self.buf:
                        self._fill(deadline)
                tail = self.buf.split(READY, 1)[1]
                self.buf = b""
                return tail

        def _line(self, deadline):
                while b"\n" not in self.buf:
                        self._fill(deadline)
                line, self.buf = self.buf.split(b"\n", 1)
                return line

        def execute(self, command, timeout="default"):
                """Returns (status, stdout); @timeout is the guest-side timeout(1) in seconds, None for none."""
                timeout = self.default_timeout if timeout == "default" else timeout
                wrapped = f"set -euo pipefail; {command}"
                prefix = f"timeout {timeout} " if timeout is not None else ""
                self.sock.sendall(f"{prefix}bash -c {shlex.quote(wrapped)} | (base64 -w 0; echo)\n".encode())
                deadline = time.monotonic() + self.cmd_deadline + (timeout or 0)
                out = base64.b64decode(self._line(deadline))
                self.sock.sendall(b"echo ${PIPESTATUS[0]}\n")
                status = int(self._line(deadline).strip())
                return status, out.decode(errors="replace")
