# SPDX-License-Identifier: MIT
"""Machine objects: the reference driver's Machine API (reference §1.3) on
top of vigil's machine workers.

A Machine holds no sockets and no QEMU process: every operation becomes a
MSG_M_* request routed by the supervisor to the machine worker named like
the node. What the reference computes in Python (succeed/fail, the systemd
helpers, every wait_* built on retry(), wait_for_console_text, the copy_*
helpers, the log lines) is computed here the same way, so messages, timing
and exceptions match. Differences are listed in docs/python-api.md.
"""

import base64
import contextlib
import datetime
import functools
import io
import json
import math
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from queue import Queue
from typing import IO, Any, TypeVar, cast

from test_driver import efi, netfaults
from test_driver.channel import Channel, ChannelError, ChannelLost, NullChannel, Reply
from test_driver.errors import MachineError, RequestedAssertionFailed
from test_driver.logger import AbstractLogger

from . import diagnostics
from .ocr import perform_ocr_on_screenshot, perform_ocr_variants_on_screenshot
from .ppm import PPMError, ppm_to_png
from .qmp import QMPAPIError, QMPSession

__all__ = [
    "BaseMachine",
    "QemuMachine",
    "NspawnMachine",
    "SshMachine",
    "Machine",
    "retry",
    "make_command",
    "CHAR_TO_KEY",
    "QMPAPIError",
    "Timeout",
]

# A timeout as the reference's helpers take it: seconds (int or float) or, as
# in newer nixpkgs, a datetime.timedelta.
Timeout = int | float | datetime.timedelta

# Single characters send_key() translates to QEMU key names (reference §1.6).
CHAR_TO_KEY = {
    **{chr(c): f"shift-{chr(c).lower()}" for c in range(ord("A"), ord("Z") + 1)},
    " ": "spc",
    "\n": "ret",
    "-": "0x0C", "_": "shift-0x0C",
    "=": "0x0D", "+": "shift-0x0D",
    "[": "0x1A", "{": "shift-0x1A",
    "]": "0x1B", "}": "shift-0x1B",
    ";": "0x27", ":": "shift-0x27",
    "'": "0x28", '"': "shift-0x28",
    "`": "0x29", "~": "shift-0x29",
    "\\": "0x2B", "|": "shift-0x2B",
    ",": "0x33", "<": "shift-0x33",
    ".": "0x34", ">": "shift-0x34",
    "/": "0x35", "?": "shift-0x35",
    "!": "shift-0x02", "@": "shift-0x03", "#": "shift-0x04", "$": "shift-0x05",
    "%": "shift-0x06", "^": "shift-0x07", "&": "shift-0x08", "*": "shift-0x09",
    "(": "shift-0x0A", ")": "shift-0x0B",
}  # fmt: skip


def make_command(args: list) -> str:
    return " ".join(shlex.quote(str(a)) for a in args)


def seconds(timeout: "Timeout | None") -> int | float | None:
    """A timeout in seconds: a timedelta becomes its (possibly fractional)
    number of seconds, a whole float becomes an int, so messages read
    `timeout=20` whichever way it was given."""
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, float) and timeout.is_integer():
        return int(timeout)
    return timeout


def retry(fn: Callable, timeout_seconds: Timeout = 900, timeout: Timeout | None = None) -> None:
    """Call fn(False) once a second until it returns something truthy or
    `timeout_seconds` have passed, then make a final fn(True) call (for "last
    chance" logging) and raise if that fails too. `timeout=` is the pre-2026
    name of the same argument and is accepted as an alias; either may be a
    number of seconds or a datetime.timedelta. The elapsed time in the
    message includes the final attempt's start, as in the reference."""
    if timeout is not None:
        timeout_seconds = timeout
    budget = seconds(timeout_seconds)
    assert budget is not None
    start = time.monotonic()
    while time.monotonic() - start < budget:
        if fn(False):
            return
        time.sleep(1)
    elapsed = time.monotonic() - start
    if not fn(True):
        raise RequestedAssertionFailed(f"action timed out after {elapsed:.2f} seconds (timeout={budget})")


def _whole_seconds(timeout: "Timeout | None") -> int:
    """The protocol's timeout_s: whole seconds, -1 for none. A fractional
    timeout is rounded up here (the worker's own bound) and enforced exactly
    in the guest by _bounded_command()."""
    t = seconds(timeout)
    if t is None:
        return -1
    return max(0, int(math.ceil(t)))


def _bounded_command(command: str, timeout: "Timeout | None") -> str:
    """A fractional timeout cannot travel as timeout_s: wrap the command in
    its own guest-side `timeout` (what the reference's `timeout {t} bash -c`
    does with t=0.5), so it is honoured, not rounded up. Whole timeouts leave
    the command as it is."""
    t = seconds(timeout)
    if t is None or isinstance(t, int):
        return command
    return f"timeout {t!r} bash -c {shlex.quote('set -euo pipefail; ' + command)}"


def _console_lines(data: bytes) -> list[str]:
    # The reference's serial reader: decode ignoring errors, drop every \r,
    # strip trailing whitespace. Idempotent on lines the worker cleaned already.
    text = data.decode(errors="ignore")
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return [p.replace("\r", "").rstrip() for p in parts]


class _ConsoleFollower:
    """Follows one machine's serial console with long-polling
    MSG_M_CONSOLE_READ requests, feeding full_console_log, last_lines and the
    `name # line` log, like the reference's serial reader thread. The worker
    numbers console lines across the machine's whole life; every start()
    begins a new "generation" at the then-current end, so the logs restart
    as in the reference, and lines of an older generation that arrive late
    are dropped."""

    POLL_MS = 1000

    def __init__(self, machine: "BaseMachine") -> None:
        self.machine = machine
        self.cond = threading.Condition()
        self.generation = 0
        self.cursor = 0
        self.active = False
        self.drain = False
        self.thread: threading.Thread | None = None

    def end(self) -> int:
        """The worker's current end of the console (a read from beyond it
        returns nothing and the end)."""
        m = self.machine
        try:
            reply = m._channel.request("M_CONSOLE_READ", m.name, from_line=2**63, timeout_ms=0)
        except ChannelError:
            return 0
        return int(reply.fields.get("next_line", 0))

    def restart(self, cursor: int) -> None:
        with self.cond:
            self.generation += 1
            self.cursor = cursor
            self.active = True
            self.drain = False
            self.cond.notify_all()
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name=f"console-{self.machine.name}", daemon=True
                )
                self.thread.start()

    def stop(self) -> None:
        """The machine is down: read what is left once, then idle."""
        with self.cond:
            self.active = False
            self.drain = True
            self.cond.notify_all()

    def _run(self) -> None:
        m = self.machine
        while True:
            with self.cond:
                while not self.active and not self.drain:
                    self.cond.wait()
                gen, cursor, active = self.generation, self.cursor, self.active
                if not active:
                    self.drain = False
            tic = time.monotonic()
            try:
                reply = m._channel.request(
                    "M_CONSOLE_READ", m.name, from_line=cursor, timeout_ms=self.POLL_MS if active else 0
                )
            except ChannelLost:
                return
            except ChannelError:
                if active:
                    time.sleep(0.5)
                continue
            lines = _console_lines(reply.data)
            with self.cond:
                if gen != self.generation:
                    continue
                for line in lines:
                    m._console_line(line)
                self.cursor = int(reply.fields.get("next_line", cursor + len(lines)))
            # A worker that answers at once even with nothing new must not make
            # this a busy loop.
            if active and not lines and time.monotonic() - tic < 0.1:
                time.sleep(0.2)


_reads = threading.local()
_F = TypeVar("_F", bound=Callable[..., Any])


def _read_only(method: _F) -> _F:
    """Mark a method whose guest commands only read (waits, queries, copies
    out): they go as M_READ, which the supervisor replays to a machine
    worker that restarted meanwhile, where an M_EXECUTE fails with "request
    not repeated" (it may have side effects). Nested calls stay read-only."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _reads.depth = getattr(_reads, "depth", 0) + 1
        try:
            return method(self, *args, **kwargs)
        finally:
            _reads.depth -= 1

    return cast(_F, wrapper)


class BaseMachine:
    """One node of the test. Constructed by the Driver from vigil's
    configuration; scripts get them as globals named after the nodes."""

    # Text that differs per backend (the reference's QemuMachine / NspawnMachine).
    _starting_message: str | None = "starting vm"
    _running_label = "QEMU"
    _power_off_header = "waiting for the VM to power off"

    def __init__(
        self,
        out_dir: Path,
        name: str,
        logger: AbstractLogger,
        tmp_dir: Path,
        callbacks: list[Callable] | None = None,
        keep_machine_state: bool = False,
        *,
        channel: Channel | None = None,
        state_dir: str | Path | None = None,
        shared_dir: str | Path | None = None,
        start_command: str | None = None,
        backend: str = "qemu",
        polling_active: Callable[[], bool] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.name = name
        self.logger = logger
        self.callbacks = callbacks if callbacks is not None else []
        self._builtin_callbacks = list(self.callbacks)
        self._polling_active = polling_active
        self.tmp_dir = Path(tmp_dir)
        self.keep_machine_state = keep_machine_state
        self.backend = backend
        self.start_command = start_command
        self._channel: Channel = channel if channel is not None else NullChannel()

        # vigil's supervisor created (and, unless keep_state, emptied) these.
        # The worker runs the machine in _worker_state_dir; a script may point
        # state_dir elsewhere (the installer tests do), see _adopt_state_dir().
        self._worker_state_dir = Path(state_dir) if state_dir else self.tmp_dir / f"vm-state-{name}"
        self._state_dir = self._worker_state_dir
        self.shared_dir = Path(shared_dir) if shared_dir else self.tmp_dir / "shared-xchg"
        self.monitor_path = self.state_dir / "monitor"
        self.qmp_path = self.state_dir / "qmp"
        self.shell_path = self.state_dir / "shell"

        # The hypervisor and its sockets belong to the machine worker.
        self.process = None
        self.shell = None
        self.monitor = None
        self.serial_thread = None
        self.qmp_client: QMPSession | None = None
        self.pid: int | None = None
        self.worker_pid: int | None = None
        self.booted = False
        self.connected = False
        self.full_console_log: list[str] = []
        self.last_lines: Queue = Queue()
        self._console = _ConsoleFollower(self)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} '{self.name}'>"

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @state_dir.setter
    def state_dir(self, path: str | Path) -> None:
        # Takes effect at the next start(), as with the reference's QEMU cwd.
        self._state_dir = Path(path)

    # -- the pre-2026 spelling of keep_machine_state
    @property
    def keep_vm_state(self) -> bool:
        return self.keep_machine_state

    # ---------------------------------------------------------------- plumbing

    def _unsupported(self, feature: str, why: str = "") -> MachineError:
        text = f"{self.name}: {feature} is not supported by this backend ({self.backend})"
        return MachineError(text + (f": {why}" if why else ""))

    def _call(self, kind: str, **fields: Any) -> Reply:
        try:
            return self._channel.request(kind, self.name, **fields)
        except ChannelLost as e:
            raise MachineError(f"{self.name}: lost the vigil supervisor ({e.message})") from None
        except ChannelError as e:
            raise MachineError(f"{self.name}: {e.message}") from None

    def _refresh_state(self) -> dict[str, Any]:
        st = self._call("M_STATE").fields
        pid = int(st.get("pid", 0) or 0)
        self.pid = pid if pid > 0 else None
        wpid = int(st.get("worker_pid", 0) or 0)
        self.worker_pid = wpid if wpid > 0 else None
        return st

    def _console_line(self, line: str) -> None:
        self.full_console_log.append(line)
        # after full_console_log, so a matched line is always in get_console_log()
        self.last_lines.put(line)
        self.log_serial(line)

    def _needs_python_retry(self) -> bool:
        """wait_until_* poll in the machine worker, unless something must run
        before every single attempt (polling conditions, extra callbacks)."""
        if self.callbacks != self._builtin_callbacks:
            return True
        return self._polling_active is not None and self._polling_active()

    # ----------------------------------------------------------------- logging

    def log(self, msg: str) -> None:
        self.logger.log(msg, {"machine": self.name})

    def log_serial(self, msg: str) -> None:
        self.logger.log_serial(msg, self.name)

    def nested(self, msg: str, attrs: dict[str, str] = {}) -> Any:
        my_attrs = {"machine": self.name}
        my_attrs.update(attrs)
        return self.logger.nested(msg, my_attrs)

    # --------------------------------------------------------------- lifecycle

    def is_up(self) -> bool:
        if not (self.booted and self.connected):
            return False
        # The VM may have died on its own (guest panic, poweroff in a command).
        try:
            st = self._refresh_state()
        except MachineError:
            return True
        if not st.get("booted", True):
            self.booted = self.connected = False
        return self.booted and self.connected

    def start(self, allow_reboot: bool = False) -> None:
        """Start the machine without waiting for it to boot."""
        if self.booted:
            return
        if self._starting_message:
            self.log(self._starting_message)
        if self._state_dir.resolve() != self._worker_state_dir.resolve():
            self._adopt_state_dir()
        console_start = self._console.end()
        self._call("M_START", allow_reboot=bool(allow_reboot))
        self.last_lines = Queue()
        self.full_console_log = []
        self._console.restart(console_start)
        self._refresh_state()
        self.booted = True
        self.qmp_client = QMPSession(self._qmp_request, self._qmp_events)
        self.log(f"{self._running_label} running (pid {self.pid})")

    # The worker's own sockets in its state directory; never replaced.
    _STATE_SOCKETS = frozenset({"monitor", "qmp", "shell", "host"})

    def _adopt_state_dir(self) -> None:
        """Honour `machine.state_dir = P`: the machine runs with the worker's
        state directory as its cwd, so every entry of P (disk images, EFI
        variables, xchg/ ...) is linked into it, replacing what the worker
        directory had under that name; files the machine creates afresh
        stay in the worker directory."""
        target = self._state_dir
        if not target.is_dir():
            raise MachineError(f"{self.name}: state_dir {target} is not a directory")
        work = self._worker_state_dir
        work.mkdir(mode=0o700, parents=True, exist_ok=True)
        for entry in sorted(target.iterdir()):
            if entry.name in self._STATE_SOCKETS:
                continue
            link = work / entry.name
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            link.symlink_to(entry.resolve())
        self.log(f"using state directory {target} (linked into {work})")

    def cleanup_statedir(self) -> None:
        """Delete the machine's state directory (disk images, EFI vars ...);
        vigil recreates it empty, since its worker keeps running there."""
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.log(f"deleting machine state directory {self.state_dir}")
        self.log("if you want to keep the machine state, pass --keep-machine-state")
        if self.state_dir.resolve() == self._worker_state_dir.resolve() or not self.state_dir.exists():
            self._worker_state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def connect(self) -> None:
        """Wait until the guest's root shell is ready (starting it if needed)."""
        if self.connected:
            return
        with self.nested("waiting for the VM to finish booting"):
            self.start()
            tic = time.time()
            while True:
                try:
                    self._channel.request("M_CONNECT", self.name, timeout_ms=30_000)
                    break
                except ChannelLost as e:
                    raise MachineError(f"{self.name}: lost the vigil supervisor ({e.message})") from None
                except ChannelError as e:
                    if not e.timed_out:
                        raise MachineError(f"{self.name}: {e.message}") from None
                self.log("Guest root shell did not produce any data yet...")
                self.log("  To debug, enter the VM and run 'systemctl status backdoor.service'.")
                if not self._refresh_state().get("booted", True):
                    self.booted = False
                    raise MachineError(f"{self.name}: the machine stopped before its shell connected")
            toc = time.time()
            self.log("connected to guest root shell")
            self.log(f"(connecting took {toc - tic:.2f} seconds)")
            self.connected = True

    def shutdown(self) -> None:
        """Power the machine off from inside and wait until it has stopped."""
        if not self.booted:
            return
        self._call("M_SHUTDOWN")
        self.wait_for_shutdown()

    def crash(self) -> None:
        """Simulate a sudden power failure."""
        if not self.booted:
            return
        self.log("forced crash")
        self.run_callbacks()
        self._call("M_CRASH")
        self.wait_for_shutdown()

    def reboot(self) -> None:
        """Press Ctrl+Alt+Delete; the next command waits for the shell again.
        Only useful after start(allow_reboot=True)."""
        with self.nested(f"sending key {repr('ctrl-alt-delete')}"):
            self.run_callbacks()
            self._call("M_REBOOT")
            time.sleep(0.01)
        self.connected = False

    def wait_for_shutdown(self) -> None:
        """Wait for the machine to stop (does not initiate a shutdown)."""
        if not self.booted:
            return
        with self.nested(self._power_off_header):
            sys.stdout.flush()
            self._call("M_WAIT_SHUTDOWN", timeout_ms=-1)
            self.pid = None
            self.booted = False
            self.connected = False
            self._console.stop()

    def release(self) -> None:
        """Kill the machine now (the reference's cleanup step; in vigil the
        supervisor does this at the end of every run anyway)."""
        if self.pid is None:
            return
        self.logger.info(f"kill {self.__class__.__name__} (pid {self.pid})")
        self._call("M_CRASH")
        self.pid = None
        self.booted = self.connected = False
        self._console.stop()

    def switch_root(self) -> None:
        """Go from the initrd backdoor (testing.initrdBackdoor) to stage 2."""
        self.wait_for_unit("initrd.target")
        self.execute(
            "systemctl isolate --no-block initrd-switch-root.target 2>/dev/null >/dev/null",
            check_return=False,
            check_output=False,
        )
        self.connected = False
        self.connect()

    # ---------------------------------------------------------------- commands

    def run_callbacks(self) -> None:
        for callback in self.callbacks:
            callback()

    def execute(
        self,
        command: str,
        check_return: bool = True,
        check_output: bool = True,
        timeout: Timeout | None = 900,
    ) -> tuple[int, str]:
        """Run a shell command (`set -euo pipefail` applies) and return
        (status, stdout). See the reference for check_return/check_output.
        `timeout` is seconds (fractions honoured) or a timedelta; None: none."""
        self.run_callbacks()
        return self._execute(command, check_return=check_return, check_output=check_output, timeout=timeout)

    def _execute(
        self,
        command: str,
        check_return: bool = True,
        check_output: bool = True,
        timeout: Timeout | None = 900,
    ) -> tuple[int, str]:
        self.connect()
        reply = self._call(
            "M_READ" if getattr(_reads, "depth", 0) > 0 else "M_EXECUTE",
            command=_bounded_command(command, timeout),
            timeout_s=_whole_seconds(timeout),
            check_return=bool(check_return),
            check_output=bool(check_output),
        )
        if not check_output:
            return (-2, "")
        if not check_return:
            return (-1, reply.data.decode())
        return (int(reply.fields["status"]), reply.data.decode(errors="replace"))

    def succeed(self, *commands: str, timeout: Timeout | None = None) -> str:
        """Run each command; raise if one exits non-zero; return all stdout."""
        output = ""
        for command in commands:
            with self.nested(f"must succeed: {command}"):
                (status, out) = self.execute(command, timeout=timeout)
                if status != 0:
                    self.log(f"output: {out}")
                    raise RequestedAssertionFailed(f"command `{command}` failed (exit code {status})")
                output += out
        return output

    def fail(self, *commands: str, timeout: Timeout | None = None) -> str:
        """Like succeed(), but every command must exit non-zero."""
        output = ""
        for command in commands:
            with self.nested(f"must fail: {command}"):
                (status, out) = self.execute(command, timeout=timeout)
                if status == 0:
                    raise RequestedAssertionFailed(f"command `{command}` unexpectedly succeeded")
                output += out
        return output

    @_read_only
    def _wait_until(self, command: str, timeout: Timeout, want_success: bool, attempt_timeout: Timeout | None) -> str:
        budget = seconds(timeout)
        assert budget is not None
        # Each attempt is bounded by attempt_timeout, else (as in the
        # reference) by the whole budget.
        per_attempt = seconds(attempt_timeout) if attempt_timeout is not None else budget
        if self._needs_python_retry() or not isinstance(budget, int) or not isinstance(per_attempt, int):
            output = ""

            def check(_last_try: bool) -> bool:
                nonlocal output
                status, output = self.execute(command, timeout=per_attempt)
                return (status == 0) == want_success

            retry(check, budget)
            return output

        # The 1 s polling loop runs in the machine worker: one request instead
        # of two round trips per attempt. Its timeout_s is both the budget and
        # each attempt's bound, so a shorter attempt_timeout goes into the
        # command itself.
        self.connect()
        start = time.monotonic()
        bounded = command if per_attempt == budget else f"timeout {per_attempt} bash -c {shlex.quote('set -euo pipefail; ' + command)}"
        try:
            reply = self._channel.request(
                "M_WAIT_UNTIL",
                self.name,
                command=bounded,
                timeout_s=_whole_seconds(budget),
                want_success=want_success,
            )
        except ChannelLost as e:
            raise MachineError(f"{self.name}: lost the vigil supervisor ({e.message})") from None
        except ChannelError as e:
            if not e.timed_out:
                raise MachineError(f"{self.name}: {e.message}") from None
            reply = None
        if reply is None or (int(reply.fields["status"]) == 0) != want_success:
            elapsed = time.monotonic() - start
            raise RequestedAssertionFailed(f"action timed out after {elapsed:.2f} seconds (timeout={budget})")
        return reply.data.decode(errors="replace")

    def wait_until_succeeds(self, command: str, timeout: Timeout = 900, attempt_timeout: Timeout | None = None) -> str:
        """Repeat a command once a second until it succeeds; return its output.
        `attempt_timeout` bounds each attempt (default: the whole `timeout`)."""
        with self.nested(f"waiting for success: {command}"):
            return self._wait_until(command, timeout, True, attempt_timeout)

    def wait_until_fails(self, command: str, timeout: Timeout = 900, attempt_timeout: Timeout | None = None) -> str:
        """Repeat a command once a second until it fails; return its output."""
        with self.nested(f"waiting for failure: {command}"):
            return self._wait_until(command, timeout, False, attempt_timeout)

    def sleep(self, secs: int) -> None:
        # guest time, not host time
        self.succeed(f"sleep {secs}")

    # ----------------------------------------------------------------- systemd

    def systemctl(self, q: str, user: str | None = None) -> tuple[int, str]:
        return self.execute(diagnostics.systemctl_command(q, user))

    def start_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        return self.systemctl(f"start {jobname}", user)

    def stop_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        return self.systemctl(f"stop {jobname}", user)

    @_read_only
    def get_unit_info(self, unit: str, user: str | None = None) -> dict[str, str]:
        status, lines = self.systemctl(f'--no-pager show "{unit}"', user)
        if status != 0:
            raise RequestedAssertionFailed(
                f'retrieving systemctl info for unit "{unit}"'
                + ("" if user is None else f' under user "{user}"')
                + f" failed with exit code {status}"
            )
        pattern = re.compile(r"^([^=]+)=(.*)$")
        info: dict[str, str] = {}
        for line in lines.split("\n"):
            m = pattern.match(line)
            if m:
                info[m[1]] = m[2]
        return info

    @_read_only
    def get_unit_property(self, unit: str, property: str, user: str | None = None) -> str:
        status, lines = self.systemctl(f'--no-pager show "{unit}" --property="{property}"', user)
        if status != 0:
            raise RequestedAssertionFailed(
                f'retrieving systemctl property "{property}" for unit "{unit}"'
                + ("" if user is None else f' under user "{user}"')
                + f" failed with exit code {status}"
            )
        invalid = f'systemctl show --property "{property}" "{unit}"produced invalid output: {lines}'
        m = re.compile(r"^([^=]+)=(.*)$").match(lines)
        assert m is not None, invalid
        assert m[1] == property, invalid
        return m[2]

    @_read_only
    def wait_for_unit(self, unit: str, user: str | None = None, timeout: Timeout = 900) -> None:
        """Wait for a unit to become active; raise if it fails or is inactive
        with no jobs pending. vigil: the error carries diagnostics (the
        unit's state, the failed units, the unit's last journal lines)."""

        def check_active(_last_try: bool) -> bool:
            state = self.get_unit_property(unit, "ActiveState", user)
            if state == "failed":
                raise RequestedAssertionFailed(f'unit "{unit}" reached state "{state}"')
            if state == "inactive":
                _status, jobs = self.systemctl("list-jobs --full 2>&1", user)
                if "No jobs" in jobs:
                    info = self.get_unit_info(unit, user)
                    if info["ActiveState"] == state:
                        raise RequestedAssertionFailed(f'unit "{unit}" is inactive and there are no pending jobs')
            return state == "active"

        with self.nested(f"waiting for unit {unit}" + (f" with user {user}" if user is not None else "")):
            with self._diagnosed(lambda: diagnostics.unit_sections(unit, user)):
                retry(check_active, timeout)

    def wait_for_job(self, jobname: str) -> None:
        """Pre-2025 alias of wait_for_unit()."""
        self.wait_for_unit(jobname)

    @_read_only
    def require_unit_state(self, unit: str, require_state: str = "active") -> None:
        with self.nested(f"checking if unit '{unit}' has reached state '{require_state}'"):
            info = self.get_unit_info(unit)
            state = info["ActiveState"]
            if state != require_state:
                with self._diagnosed(lambda: diagnostics.unit_sections(unit)):
                    raise RequestedAssertionFailed(
                        f"Expected unit '{unit}' to to be in state "
                        f"'{require_state}' but it is in state '{state}'"
                    )

    @_read_only
    def wait_for_unit_active_state(
        self, unit: str, state: str, user: str | None = None, timeout: Timeout = 900
    ) -> None:
        """Wait until the unit's ActiveState is exactly `state` (any state:
        "inactive", "activating", "reloading", "failed", ...). Unlike
        wait_for_unit() a failed or inactive unit is not an error here."""

        def check_state(last_try: bool) -> bool:
            current = self.get_unit_property(unit, "ActiveState", user)
            if last_try:
                self.log(f'Last chance: unit "{unit}" is in state "{current}"')
            return current == state

        with self.nested(
            f"waiting for unit {unit} to reach state {state}" + (f" with user {user}" if user is not None else "")
        ):
            retry(check_state, timeout)

    # ------------------------------------------------------ failure diagnostics

    # vigil.set_failure_diagnostics() switches them off (e.g. for a script that
    # expects many waits to fail and wants them quick).
    failure_diagnostics = True

    def _diagnose(self, sections: list[diagnostics.Section]) -> str:
        """Run the diagnostic sections in the guest (one command, bounded in
        the guest by `timeout` and here by wait_ms) and return the report.
        Never raises: what went wrong is the report. No callbacks, no
        polling conditions, no log lines: this runs while an error is
        already on its way up."""
        if not (self.booted and self.connected):
            return diagnostics.format_report(self.name, [], error="the machine is not connected")
        nonce = diagnostics.new_nonce()
        tic = time.monotonic()
        try:
            reply = self._channel.request(
                "M_READ",
                self.name,
                command=diagnostics.build_command(sections, nonce),
                timeout_s=diagnostics.TOTAL_TIMEOUT_S,
                check_return=True,
                check_output=True,
                wait_ms=(diagnostics.TOTAL_TIMEOUT_S + 3) * 1000,
            )
        except ChannelError as e:
            what = "no answer in time" if e.timed_out else e.message
            return diagnostics.format_report(self.name, [], error=what)
        except Exception as e:  # a diagnostic must never replace the error it explains
            return diagnostics.format_report(self.name, [], error=f"{type(e).__name__}: {e}")
        results = diagnostics.parse_output(sections, nonce, reply.data.decode(errors="replace"))
        results += diagnostics.console_fallback(results, self.full_console_log)
        return diagnostics.format_report(self.name, results, time.monotonic() - tic)

    @contextmanager
    def _diagnosed(self, sections: Callable[[], list[diagnostics.Section]]) -> Iterator[None]:
        """A RequestedAssertionFailed raised inside gets the diagnostics
        appended to its message (same exception object and traceback, so the
        filtered `!!!` traceback still points at the script's line) and keeps
        the report in `.diagnostics`."""
        try:
            yield
        except RequestedAssertionFailed as e:
            if self.failure_diagnostics and not hasattr(e, "diagnostics") and len(e.args) == 1:
                try:
                    report = self._diagnose(sections())
                except Exception as d:  # belt and braces: _diagnose() does not raise
                    report = diagnostics.format_report(self.name, [], error=f"{type(d).__name__}: {d}")
                e.args = (diagnostics.with_diagnostics(str(e.args[0]), report),)
                e.diagnostics = report  # type: ignore[attr-defined]
            raise

    # ------------------------------------------------------------ wait helpers

    @_read_only
    def wait_for_file(self, filename: str, timeout: Timeout = 900, attempt_timeout: Timeout | None = None) -> None:
        """Wait until `filename` exists in the guest. Each probe is bounded by
        `attempt_timeout`, else by the whole `timeout` (the reference's
        attempt-timeout contract)."""
        bound = attempt_timeout if attempt_timeout is not None else timeout

        def check_file(_last_try: bool) -> bool:
            status, _ = self.execute(f"test -e {filename}", timeout=bound)
            return status == 0

        with self.nested(f"waiting for file '{filename}'"):
            retry(check_file, timeout)

    @_read_only
    def wait_for_open_port(
        self, port: int, addr: str = "localhost", timeout: Timeout = 900, attempt_timeout: Timeout | None = None
    ) -> None:
        bound = attempt_timeout if attempt_timeout is not None else timeout

        def port_is_open(_last_try: bool) -> bool:
            status, _ = self.execute(f"nc -z {addr} {port}", timeout=bound)
            return status == 0

        with self.nested(f"waiting for TCP port {port} on {addr}"):
            with self._diagnosed(diagnostics.port_sections):
                retry(port_is_open, timeout)

    @_read_only
    def wait_for_closed_port(
        self, port: int, addr: str = "localhost", timeout: Timeout = 900, attempt_timeout: Timeout | None = None
    ) -> None:
        bound = attempt_timeout if attempt_timeout is not None else timeout

        def port_is_closed(_last_try: bool) -> bool:
            status, _ = self.execute(f"nc -z {addr} {port}", timeout=bound)
            return status != 0

        with self.nested(f"waiting for TCP port {port} on {addr} to be closed"):
            retry(port_is_closed, timeout)

    @_read_only
    def wait_for_open_unix_socket(
        self, addr: str, is_datagram: bool = False, timeout: Timeout = 900, attempt_timeout: Timeout | None = None
    ) -> None:
        nc_flags = ["-z", "-uU" if is_datagram else "-U"]
        bound = attempt_timeout if attempt_timeout is not None else timeout

        def socket_is_open(_last_try: bool) -> bool:
            status, _ = self.execute(f"nc {' '.join(nc_flags)} {addr}", timeout=bound)
            return status == 0

        kind = "datagram" if is_datagram else "stream"
        with self.nested(f"waiting for UNIX-domain {kind} on '{addr}'"):
            retry(socket_is_open, timeout)

    @_read_only
    def get_tty_text(self, tty: str) -> str:
        _status, output = self.execute(f"fold -w$(stty -F /dev/tty{tty} size | awk '{{print $2}}') /dev/vcs{tty}")
        return output

    @_read_only
    def wait_until_tty_matches(self, tty: str, regexp: str, timeout: Timeout = 900) -> None:
        matcher = re.compile(regexp)

        def tty_matches(last_try: bool) -> bool:
            text = self.get_tty_text(tty)
            if last_try:
                self.log(f"Last chance to match /{regexp}/ on TTY{tty}, which currently contains: {text}")
            return len(matcher.findall(text)) > 0

        with self.nested(f"waiting for {regexp} to appear on tty {tty}"):
            retry(tty_matches, timeout)

    def dump_tty_contents(self, tty: str) -> None:
        self.execute(f"fold -w 80 /dev/vcs{tty} | systemd-cat")

    @_read_only
    def wait_for_x(self, timeout: Timeout = 900) -> None:
        def check_x(_last_try: bool) -> bool:
            cmd = 'journalctl -b SYSLOG_IDENTIFIER=systemd | grep "Reached target Current graphical"'
            status, _ = self.execute(cmd)
            if status != 0:
                return False
            status, _ = self.execute("[ -e /tmp/.X11-unix/X0 ]")
            return status == 0

        with self.nested("waiting for the X11 server"):
            retry(check_x, timeout)

    @_read_only
    def get_window_names(self) -> list[str]:
        return self.succeed(r"xwininfo -root -tree | sed 's/.*0x[0-9a-f]* \"\([^\"]*\)\".*/\1/; t; d'").splitlines()

    @_read_only
    def wait_for_window(self, regexp: str, timeout: Timeout = 900) -> None:
        pattern = re.compile(regexp)

        def window_is_visible(last_try: bool) -> bool:
            names = self.get_window_names()
            if last_try:
                self.log(
                    f"Last chance to match {regexp} on the window list,"
                    + " which currently contains: "
                    + ", ".join(names)
                )
            return any(pattern.search(name) for name in names)

        with self.nested("waiting for a window to appear"):
            retry(window_is_visible, timeout)

    # ----------------------------------------------------------------- console

    def wait_for_console_text(self, regex: str, timeout: Timeout | None = None) -> None:
        """Wait until `regex` matches the serial output collected so far. Each
        check takes at most one new line (appended without a separator, as in
        the reference), so with a timeout one line is consumed per second."""
        console = io.StringIO()

        def console_matches(_last_try: bool, block: float = 0.0) -> bool:
            try:
                if block:
                    console.write(self.last_lines.get(timeout=block))
                else:
                    console.write(self.last_lines.get(block=False))
            except queue.Empty:
                pass
            console.seek(0)
            return re.search(regex, console.read()) is not None

        with self.nested(f"waiting for {regex} to appear on console"):
            if timeout is not None:
                retry(console_matches, timeout)
            else:
                # The reference spins here; blocking on the queue is the same
                # without burning a CPU.
                while not console_matches(False, block=0.2):
                    pass

    def get_console_log(self) -> str:
        return "\n".join(self.full_console_log)

    def send_console(self, chars: str) -> None:
        """Write to the guest's serial console (QEMU's stdin)."""
        self._call("M_SEND_CONSOLE", text=chars)

    def console_interact(self) -> None:
        """Forward this terminal's input to the serial console (interactive use)."""
        self.log("Terminal is ready (there is no prompt):")
        while True:
            try:
                char = sys.stdin.buffer.read(1)
            except KeyboardInterrupt:
                break
            if char == b"":
                self.log("Closing connection to the console")
                break
            self.send_console(char.decode(errors="replace"))

    def shell_interact(self, address: str | None = None) -> None:
        """Type commands into the guest's root shell (interactive use). The
        shell socket belongs to the machine worker, so each line read is run
        with execute() and its output written back. With `address` (a socat
        address, as in the reference) socat connects that end instead of this
        terminal; EOF or Ctrl-C ends the session, the guest shell stays."""
        self.connect()
        proc = None
        reader: IO[str]
        writer: IO[str]
        if address is None:
            self.log("Terminal is ready (there is no initial prompt):")
            reader, writer = sys.stdin, sys.stdout
        else:
            if shutil.which("socat") is None:
                raise MachineError(f"{self.name}: shell_interact(address=...) needs `socat` on PATH")
            proc = subprocess.Popen(
                ["socat", address, "STDIO"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert proc.stdout is not None and proc.stdin is not None
            reader, writer = proc.stdout, proc.stdin
        try:
            for line in reader:
                if not line.strip():
                    continue
                _status, out = self.execute(line.rstrip("\n"), timeout=None)
                try:
                    writer.write(out)
                    writer.flush()
                except BrokenPipeError:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            if proc is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()  # type: ignore[union-attr]
                proc.wait()

    # ----------------------------------------------------------------- monitor

    def send_monitor_command(self, command: str) -> str:
        """Send a command to the QEMU monitor (HMP); return its raw reply."""
        self.run_callbacks()
        return self._call("M_MONITOR", text=command).data.decode(errors="replace")

    def _qmp_request(self, json_text: str) -> str:
        return self._call("M_QMP", text=json_text).data.decode(errors="replace")

    def _qmp_events(self) -> list[dict[str, Any]]:
        """The QMP events the worker queued since the last call (it keeps
        the latest 256 while nobody asks)."""
        text = self._call("M_QMP", text="").data.decode(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_for_qmp_event(
        self, event_filter: Callable[[dict[str, Any]], bool], timeout: Timeout = 60 * 10
    ) -> dict[str, Any]:
        """Wait for a QMP event for which `event_filter(event)` is true and
        return it; events that do not match are skipped (as in the
        reference). `timeout` is seconds or a timedelta (the reference's own
        version breaks on an int); TimeoutError when it passes."""
        if self.qmp_client is None:
            raise RuntimeError("QMP API is not ready yet, is the VM ready?")
        budget = seconds(timeout)
        assert budget is not None
        deadline = time.monotonic() + budget
        while True:
            remaining = deadline - time.monotonic()
            try:
                evt = self.qmp_client.wait_for_event(timeout=datetime.timedelta(seconds=max(0.0, remaining)))
            except queue.Empty:
                raise TimeoutError(f"no matching QMP event within {budget} seconds") from None
            if event_filter(evt):
                return evt
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching QMP event within {budget} seconds")

    def send_key(self, key: str, delay: float | None = 0.01, log: bool | None = True) -> None:
        key = CHAR_TO_KEY.get(key, key)
        context = self.nested(f"sending key {repr(key)}") if log else nullcontext()
        with context:
            self.send_monitor_command(f"sendkey {key}")
            if delay is not None:
                time.sleep(delay)

    def send_chars(self, chars: str, delay: float | None = 0.01) -> None:
        with self.nested(f"sending keys {repr(chars)}"):
            for char in chars:
                self.send_key(char, delay, log=False)

    def forward_port(self, host_port: int = 8080, guest_port: int = 80) -> None:
        self.send_monitor_command(f"hostfwd_add tcp::{host_port}-:{guest_port}")

    def block(self) -> None:
        """Unplug the first VLAN NIC (the reference's virtio-net-pci.1); a container's first VLAN
        is cut at the switch instead (netfaults._isolate)."""
        self.run_callbacks()
        netfaults._block_event(self.name, True)
        if self.backend == "nspawn":
            netfaults._isolate(self.name, True)
            return
        self._call("M_SET_LINK", nic="", up=False)

    def unblock(self) -> None:
        self.run_callbacks()
        netfaults._block_event(self.name, False)
        if self.backend == "nspawn":
            netfaults._isolate(self.name, False)
            return
        self._call("M_SET_LINK", nic="", up=True)

    # ------------------------------------------------------ screen and OCR

    @contextmanager
    def _managed_screenshot(self) -> Iterator[Path]:
        # QEMU writes the file: use a directory it can certainly write to.
        base = self.state_dir if self.state_dir.is_dir() else None
        with tempfile.TemporaryDirectory(dir=base) as tmpdir:
            path = Path(tmpdir) / "ppm"
            reply = self.send_monitor_command(f"screendump {path}")
            if not path.exists():
                said = " ".join(line.strip() for line in reply.splitlines()[1:] if line.strip() != "(qemu)")
                raise MachineError(f"Cannot take a screenshot (QEMU wrote no image: {said or 'no reason given'})")
            yield path

    def screenshot(self, filename: str) -> None:
        """Save a PNG of the display (into out_dir unless the name has a /)."""
        if "." not in filename:
            filename += ".png"
        if "/" not in filename:
            filename = os.path.join(self.out_dir, filename)
        with self.nested(f"making screenshot {filename}", {"image": os.path.basename(filename)}):
            with self._managed_screenshot() as ppm:
                try:
                    png = ppm_to_png(ppm.read_bytes())
                    Path(filename).write_bytes(png)
                except (PPMError, OSError) as e:
                    raise MachineError(f"Cannot convert screenshot ({e})") from None

    @_read_only
    def get_screen_text_variants(self) -> list[str]:
        if shutil.which("tesseract") is None:
            raise MachineError("OCR requested but `tesseract` is not available")
        with self._managed_screenshot() as path:
            return perform_ocr_variants_on_screenshot(path)

    @_read_only
    def get_screen_text(self) -> str:
        if shutil.which("tesseract") is None:
            raise MachineError("OCR requested but `tesseract` is not available")
        with self._managed_screenshot() as path:
            return perform_ocr_on_screenshot(path)

    @_read_only
    def wait_for_text(self, regex: str, timeout: Timeout = 900) -> None:
        def screen_matches(last_try: bool) -> bool:
            variants = self.get_screen_text_variants()
            for text in variants:
                if re.search(regex, text) is not None:
                    return True
            if last_try:
                self.log(f"Last OCR attempt failed. Text was: {variants}")
            return False

        with self.nested(f"waiting for {regex} to appear on screen"):
            retry(screen_matches, timeout)

    # ------------------------------------------------------------------- files

    # Raw bytes per shell command: base64 makes them 4/3 as many, which must
    # stay under the protocol's 64 KiB command cap with room for the wrapper.
    VIA_SHELL_CHUNK = 36 * 1024

    def copy_from_host_via_shell(self, source: str, target: str) -> None:
        """Copy a host file into the guest through the shell (no shared dir).
        What fits one command runs as in the reference; a larger file goes in
        base64 chunks appended to a temporary file renamed onto `target` at
        the end, so a failed copy never leaves a half-written target."""
        with open(source, "rb") as fh:
            content = fh.read()
        if len(content) <= self.VIA_SHELL_CHUNK:
            content_b64 = base64.b64encode(content).decode()
            self.succeed(
                f"mkdir -p $(dirname {target})",
                f"echo -n {content_b64} | base64 -d > {target}",
            )
            return
        chunks = [content[i : i + self.VIA_SHELL_CHUNK] for i in range(0, len(content), self.VIA_SHELL_CHUNK)]
        partial = f"{target}.vigil-partial"
        with self.nested(f"copying {source} to {target} via the shell ({len(content)} bytes, {len(chunks)} commands)"):
            self.succeed(f"mkdir -p $(dirname {target})")
            for k, chunk in enumerate(chunks):
                b64 = base64.b64encode(chunk).decode()
                redirect = ">" if k == 0 else ">>"
                status, _ = self.execute(f"echo -n {b64} | base64 -d {redirect} {partial}")
                if status != 0:
                    self.execute(f"rm -f {partial}")
                    raise RequestedAssertionFailed(
                        f"copy of {source} to {target} failed at chunk {k + 1} of {len(chunks)} (exit code {status})"
                    )
            self.succeed(f"mv {partial} {target}")

    def copy_from_host(self, source: str, target: str) -> None:
        """Copy a host file or directory to `target` in the guest, through the
        shared directory (guest /tmp/shared)."""
        host_src = Path(source)
        vm_target = Path(target)
        self.shared_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.shared_dir) as shared_td:
            shared_temp = Path(shared_td)
            host_intermediate = shared_temp / host_src.name
            vm_shared_temp = Path("/tmp/shared") / shared_temp.name
            vm_intermediate = vm_shared_temp / host_src.name
            self.succeed(make_command(["mkdir", "-p", vm_shared_temp]))
            if host_src.is_dir():
                shutil.copytree(host_src, host_intermediate)
            else:
                shutil.copy(host_src, host_intermediate)
            self.succeed(make_command(["mkdir", "-p", vm_target.parent]))
            self.succeed(make_command(["cp", "-r", vm_intermediate, vm_target]))

    @_read_only
    def copy_from_machine(self, source: str, target_dir: str = "") -> None:
        """Copy a guest file or directory to out_dir/target_dir/, through the
        shared directory."""
        vm_src = Path(source)
        self.shared_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.shared_dir) as shared_td:
            shared_temp = Path(shared_td)
            vm_shared_temp = Path("/tmp/shared") / shared_temp.name
            vm_intermediate = vm_shared_temp / vm_src.name
            intermediate = shared_temp / vm_src.name
            self.succeed(make_command(["mkdir", "-p", vm_shared_temp]))
            self.succeed(make_command(["cp", "-r", vm_src, vm_intermediate]))
            abs_target = self.out_dir / target_dir / vm_src.name
            abs_target.parent.mkdir(exist_ok=True, parents=True)
            if intermediate.is_dir():
                shutil.copytree(intermediate, abs_target)
            else:
                shutil.copy(intermediate, abs_target)

    def copy_from_vm(self, source: str, target_dir: str = "") -> None:
        warnings.warn("Use copy_from_machine() instead", DeprecationWarning, stacklevel=2)
        self.copy_from_machine(source, target_dir)

    # ------------------------------------------------------- EFI variables

    @property
    def efi_vars_path(self) -> Path:
        """The OVMF variable store a NixOS start script uses by default
        (NIX_EFI_VARS=<name>-efi-vars.fd in the state directory)."""
        return self.state_dir / f"{self.name}-efi-vars.fd"

    def _efi_vars(self) -> "efi.EfiVars":
        return efi.EfiVars(self.efi_vars_path, self)

    def create_efi_vars(self) -> None:
        """Create an empty OVMF variable store (the machine must be stopped;
        RequestedAssertionFailed if one exists)."""
        self._efi_vars().create_empty()

    def write_efi_vars(self, add: "list[efi.EfiVariable]") -> None:
        """Add (or replace) variables in the store (machine stopped)."""
        self._efi_vars().write(add)

    def read_efi_vars(self) -> "list[efi.EfiVariable]":
        """Every live variable of the store ([] when there is none)."""
        content = self._efi_vars().read_content() or {}
        return [v for vendor in content.values() for v in vendor.values()]

    def dump_efi_vars(self) -> None:
        """Log the store's variables, one line each."""
        with self.nested(f"dumping EFI variables from {self.efi_vars_path}"):
            content = self._efi_vars().read_content()
            if content is None:
                self.log("no EFI variable store")
                return
            for vendor in content.values():
                for v in vendor.values():
                    self.log(v.describe())

    # The guest CID of this machine's vhost-vsock device when the run has the
    # SSH backdoor on (set by the Driver), else None.
    vsock_cid: int | None = None

    def ssh_backdoor_command(self, index: int | None = None) -> str:
        """How to ssh into the machine over the vsock backdoor. vigil uses the
        kernel's vhost-vsock (QEMU here has no vhost-user-vsock daemon), so
        the address is `vsock/<cid>`; `index` is the pre-2026 form."""
        cid = index if index is not None else self.vsock_cid
        if cid is None:
            raise MachineError(f"{self.name}: the SSH backdoor is not enabled for this run")
        return f"ssh -o User=root vsock/{cid}"


class QemuMachine(BaseMachine):
    """A QEMU virtual machine (a NixOS start script or kernel + initrd)."""


class NspawnMachine(BaseMachine):
    """A systemd-nspawn container."""

    _starting_message = None
    _running_label = "systemd-nspawn"
    _power_off_header = "waiting for the container to power off"


class SshMachine(BaseMachine):
    """An existing host reached over SSH (docs/machine.md, "ssh"). vigil did not
    start it and does not own it: start() connects, shutdown() disconnects and
    leaves the host running, crash() and reboot() refuse. It shares no
    directory with the host running vigil, so files travel through its shell,
    and it is not on vigil's switch, so block() refuses too."""

    _starting_message = None
    _running_label = "ssh"
    _power_off_header = "disconnecting"

    def crash(self) -> None:
        raise self._unsupported(
            "crash()", "vigil cannot pull the plug of a host it did not start (shutdown() disconnects)"
        )

    def reboot(self) -> None:
        raise self._unsupported("reboot()", "vigil does not reset a host it did not start")

    def block(self) -> None:
        raise self._unsupported("block()", "an SSH machine is not on vigil's switch")

    def unblock(self) -> None:
        raise self._unsupported("unblock()", "an SSH machine is not on vigil's switch")

    def release(self) -> None:
        """Disconnect (the reference's cleanup kills a VM; a host keeps running)."""
        if self.booted:
            self._call("M_SHUTDOWN")

    def copy_from_host(self, source: str, target: str) -> None:
        """Copy a host file or directory to `target` on the machine, through the
        shell (as `cp -r`: a directory lands inside an existing directory)."""
        host_src = Path(source)
        if not host_src.is_dir():
            self.copy_from_host_via_shell(str(host_src), target)
            return
        with tempfile.TemporaryDirectory() as td:
            archive = Path(td) / "copy.tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(host_src, arcname=".")
            remote_tar = f"/tmp/.vigil-copy-{os.getpid()}-{time.monotonic_ns()}.tar"
            self.copy_from_host_via_shell(str(archive), remote_tar)
        t = shlex.quote(target)
        inner = shlex.quote(str(Path(target) / host_src.name))
        self.succeed(
            f"if [ -d {t} ]; then mkdir -p {inner} && tar -x -f {remote_tar} -C {inner}; "
            f"else mkdir -p {t} && tar -x -f {remote_tar} -C {t}; fi; rm -f {remote_tar}"
        )

    @_read_only
    def copy_from_machine(self, source: str, target_dir: str = "") -> None:
        """Copy a file or directory of the machine to out_dir/target_dir/,
        through the shell (a tar stream, base64 in the command's output)."""
        src = Path(source)
        out = self.succeed(
            make_command(["tar", "-C", src.parent, "-cf", "-", src.name]) + " | base64 -w 0"
        )
        abs_target = self.out_dir / target_dir
        abs_target.mkdir(exist_ok=True, parents=True)
        base = abs_target.resolve()
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(out)), mode="r") as tar:
            # The stream comes from the machine: nothing may land outside the
            # target, not even through a link it sent first.
            for member in tar.getmembers():
                parts = Path(member.name).parts
                parent = (abs_target / member.name).parent.resolve()
                bad = member.name.startswith("/") or ".." in parts or not (member.isreg() or member.isdir() or member.issym())
                if bad or (parent != base and base not in parent.parents):
                    raise MachineError(f"{self.name}: copy_from_machine({source!r}): refusing {member.name!r} in the archive")
                tar.extract(member, abs_target)


# The pre-2026 class name, for scripts that annotate with it.
Machine = QemuMachine

MACHINE_CLASSES: dict[str, type[BaseMachine]] = {
    "qemu": QemuMachine,
    "nspawn": NspawnMachine,
    "ssh": SshMachine,
}
