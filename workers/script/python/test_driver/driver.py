# SPDX-License-Identifier: MIT
"""The Driver: the machines and VLANs of one run, the globals a test script
sees (test_symbols), and the top-level failure handling of test_script()
(reference §1.1-1.5). vigil's supervisor, not this object, owns processes,
cleanup and the global timeout; the Driver only talks to machine workers.
"""

import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import TestCase

from test_driver.channel import Channel, ChannelError, NullChannel
from test_driver.debug import DebugAbstract, DebugNop
from test_driver.errors import MachineError, RequestedAssertionFailed
from test_driver.logger import AbstractLogger
from test_driver.machine import (
    MACHINE_CLASSES,
    BaseMachine,
    Machine,
    NspawnMachine,
    QemuMachine,
    retry,
)
from test_driver.polling_condition import PollingCondition
from test_driver.vlan import VLan


class AssertionTester(TestCase):
    """`t`: unittest assertions whose failures are RequestedAssertionFailed,
    so they are reported like a failed succeed()."""

    failureException = RequestedAssertionFailed


def pythonize_name(name: str) -> str:
    return re.sub(r"^[^A-Za-z_]|[^A-Za-z0-9_]", "_", name)


class _SupervisorTimer:
    """Stands in for the reference's race_timer: vigil's supervisor owns the
    global timeout (it fires even when Python is stuck), so start/cancel only
    keep scripts that touch driver.race_timer working."""

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        pass


@dataclass
class VsockPair:
    """The reference's per-machine vsock record. vigil uses the kernel's
    vhost-vsock, so there are no unix sockets (guest/host are None) and the
    machine is reached at `vsock/<cid>`."""

    guest: Path | None
    host: Path | None
    cid: int


@dataclass
class VHostVsock:
    """`driver.vhost_vsock` when the SSH backdoor is on: machine name -> VsockPair."""

    sockets: dict[str, VsockPair]


class Driver:
    """A handle to the machines of this run and the test script."""

    tests: str
    vlans: list[VLan]
    machines_qemu: list[QemuMachine]
    machines_nspawn: list[NspawnMachine]
    polling_conditions: list[PollingCondition]
    global_timeout: int
    logger: AbstractLogger

    def __init__(
        self,
        machines: list[dict[str, Any]],
        vlans: list[dict[str, Any]],
        tests: str,
        out_dir: Path,
        logger: AbstractLogger,
        tmp_dir: Path | None = None,
        keep_machine_state: bool = False,
        global_timeout: int = 24 * 60 * 60 * 7,
        debug: DebugAbstract = DebugNop(),
        channel: Channel | None = None,
        enable_ssh_backdoor: bool = False,
    ):
        self.tests = tests
        self.out_dir = Path(out_dir)
        self.global_timeout = global_timeout
        self.race_timer = _SupervisorTimer()
        self.logger = logger
        self.debug = debug
        self.channel = channel if channel is not None else NullChannel()
        self.tmp_dir = Path(tmp_dir) if tmp_dir else Path(os.environ.get("TMPDIR", "/tmp"))
        self.keep_machine_state = keep_machine_state
        self.polling_conditions = []
        # Set when the script fails, for the verdict message sent to the supervisor.
        self.failure: str | None = None

        self.vlans = [VLan(int(v["nr"]), v.get("socket_dir") or self.tmp_dir / f"vde{v['nr']}.ctl") for v in vlans]
        for v in self.vlans:
            # Start scripts read it; harmless elsewhere (the reference exports it too).
            os.environ.setdefault(f"QEMU_VDE_SOCKET_{v.nr}", str(v.socket_dir))

        # vigil: which VLANs each machine is on (None: not said, assume all)
        self.machine_vlans: dict[str, list[int] | None] = {
            m["name"]: [int(v) for v in m["vlans"]] if isinstance(m.get("vlans"), list) else None for m in machines
        }
        self._machines: list[BaseMachine] = []
        for m in machines:
            backend = m.get("backend", "qemu")
            cls = MACHINE_CLASSES.get(backend, QemuMachine)
            self._machines.append(
                cls(
                    out_dir=self.out_dir,
                    name=m["name"],
                    logger=self.logger,
                    tmp_dir=self.tmp_dir,
                    callbacks=[self.check_polling_conditions],
                    keep_machine_state=keep_machine_state,
                    channel=self.channel,
                    state_dir=m.get("state_dir"),
                    shared_dir=m.get("shared_dir"),
                    start_command=m.get("start_command"),
                    backend=backend,
                    polling_active=lambda: bool(self.polling_conditions),
                )
            )
        self._machines.sort(key=lambda machine: machine.name)
        # SSH over vsock: the supervisor gave each QEMU machine a guest CID.
        self.enable_ssh_backdoor = enable_ssh_backdoor
        self.vhost_vsock: VHostVsock | None = None
        if enable_ssh_backdoor:
            for spec, machine in zip(sorted(machines, key=lambda m: m["name"]), self._machines):
                if spec.get("vsock_cid") is not None:
                    machine.vsock_cid = int(spec["vsock_cid"])
            self.vhost_vsock = VHostVsock(
                {m.name: VsockPair(None, None, m.vsock_cid) for m in self._machines if m.vsock_cid is not None}
            )
        self.machines_qemu = [m for m in self._machines if isinstance(m, QemuMachine)]
        self.machines_nspawn = [m for m in self._machines if isinstance(m, NspawnMachine)]

    @property
    def machines(self) -> list[BaseMachine]:
        return self._machines

    def __enter__(self) -> "Driver":
        return self

    def __exit__(self, *_: Any) -> None:
        # Teardown is the supervisor's: it stops every worker after the verdict.
        pass

    # ----------------------------------------------------------------- symbols

    def _subtest(self, name: str) -> Iterator[None]:
        with self.logger.subtest(name):
            try:
                yield
            except Exception as e:
                self.logger.log_test_error(f'Test "{name}" failed with error: "{e}"')
                raise e

    def subtest(self, name: str) -> AbstractContextManager[None]:
        """Group logs under a given test name."""
        return contextmanager(self._subtest)(name)

    def test_symbols(self) -> dict[str, Any]:
        general_symbols = dict(
            start_all=self.start_all,
            test_script=self.test_script,
            machines=self.machines,
            machines_qemu=self.machines_qemu,
            machines_nspawn=self.machines_nspawn,
            vlans=self.vlans,
            driver=self,
            log=self.logger,
            os=os,
            create_machine=self.create_machine,
            subtest=self.subtest,
            run_tests=self.run_tests,
            join_all=self.join_all,
            retry=retry,
            serial_stdout_off=self.serial_stdout_off,
            serial_stdout_on=self.serial_stdout_on,
            polling_condition=self.polling_condition,
            Machine=Machine,  # for typing (E1/E2 name)
            BaseMachine=BaseMachine,
            QemuMachine=QemuMachine,
            NspawnMachine=NspawnMachine,
            t=AssertionTester(),
            debug=self.debug,
            dump_machine_ssh=self.dump_machine_ssh,
        )
        machine_symbols: dict[str, Any] = {pythonize_name(m.name): m for m in self.machines}
        # The only machine is also `machine`, whatever its name.
        if len(self.machines) == 1:
            (machine_symbols["machine"],) = self.machines
        vlan_symbols = {f"vlan{v.nr}": v for v in self.vlans}
        print(
            "additionally exposed symbols:\n    "
            + ", ".join(m.name for m in self.machines)
            + ",\n    "
            + ", ".join(f"vlan{v.nr}" for v in self.vlans)
            + ",\n    "
            + ", ".join(general_symbols.keys()),
            flush=True,
        )
        return {**general_symbols, **machine_symbols, **vlan_symbols}

    def dump_machine_ssh(self) -> None:
        """Print how to reach each machine over the SSH backdoor (the
        reference prints this at start when sshBackdoor is enabled)."""
        if not self.enable_ssh_backdoor:
            return
        reachable = [m for m in self.machines if m.vsock_cid is not None]
        if not reachable:
            print("SSH backdoor enabled, but no machines defined")
            return
        bright, reset = "\x1b[1m", "\x1b[0m"
        print("SSH backdoor enabled, the machines can be accessed like this:")
        print(
            f"{bright}Note:{reset} this requires {bright}systemd-ssh-proxy(1){reset} to be enabled "
            "(default on NixOS 25.05 and newer)."
        )
        longest = max(len(m.name) for m in reachable)
        for m in reachable:
            spaces = " " * (longest - len(m.name) + 2)
            print(f"    {m.name}:{spaces}{bright}{m.ssh_backdoor_command()}{reset}")

    # ----------------------------------------------------------------- running

    def test_script(self) -> None:
        """Run the test script."""
        with self.logger.nested("run the VM test script"):
            symbols = self.test_symbols()
            try:
                exec(self.tests, symbols, None)
            except MachineError as e:
                self.failure = f"{type(e).__name__}: {e}"
                self._failure_event(traceback.format_exc())
                self.logger.log_test_errors(traceback.format_exc().splitlines())
                sys.exit(1)
            except RequestedAssertionFailed as e:
                self.failure = f"{type(e).__name__}: {e}"
                _exc_type, _exc, tb = sys.exc_info()
                # Only the script's own frames: it runs from a string, hence "<string>".
                filtered = [frame for frame in traceback.extract_tb(tb) if frame.filename == "<string>"]
                code = self.tests.splitlines()
                told = ["Traceback (most recent call last):"]
                for frame, line in zip(filtered, traceback.format_list(filtered)):
                    told.append(line.rstrip())
                    if frame.lineno and 0 < frame.lineno <= len(code):
                        told.append(f"    {code[frame.lineno - 1].strip()}")
                message = f"{type(e).__name__}: {e}".splitlines()
                # One block: a progress line of vigil's cannot split it.
                self.logger.log_test_errors([*told, "", *message])
                self._failure_event("\n".join(told + message))
                self.debug.breakpoint()
                sys.exit(1)
            except Exception as e:
                self.failure = f"{type(e).__name__}: {e}"
                self._failure_event(traceback.format_exc())
                self.debug.breakpoint()
                raise

    def _failure_event(self, text: str) -> None:
        """The failure and its traceback for the run's timeline (report.html
        highlights it); the tail is kept when it is long."""
        self.channel.event("failure", text[-3500:])

    def run_tests(self) -> None:
        """Run the test script (the non-interactive path)."""
        self.logger.info(f"Test will time out and terminate in {self.global_timeout} seconds")
        self.race_timer.start()
        self.test_script()
        for machine in self.machines:
            if machine.is_up():
                machine.execute("sync")

    def start_all(self) -> None:
        """Start all machines, in parallel (each start() releases the GIL while
        it waits for its worker)."""
        with self.logger.nested("start all VMs"):
            errors: list[tuple[str, BaseException]] = []

            def start_machine(machine: BaseMachine) -> None:
                try:
                    machine.start()
                except Exception as e:
                    errors.append((machine.name, e))

            threads = [
                threading.Thread(target=start_machine, args=(m,), name=f"start-{m.name}") for m in self.machines
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                messages = [f"{name}: {e}" for name, e in errors]
                raise MachineError("Failed to start the following machines:\n" + "\n".join(messages))

    def join_all(self) -> None:
        """Wait for all machines to shut down."""
        with self.logger.nested("wait for all VMs to finish"):
            for machine in self.machines:
                machine.wait_for_shutdown()
            self.race_timer.cancel()

    def terminate_test(self) -> None:
        with self.logger.nested("timeout reached; test terminating..."):
            for machine in self.machines:
                machine.release()
            os.kill(os.getpid(), signal.SIGTERM)

    def create_machine(
        self,
        start_command: str | dict,
        *,
        name: str | None = None,
        keep_machine_state: bool = False,
        keep_vm_state: bool = False,
    ) -> QemuMachine:
        """One more QEMU machine from a start command (a NixOS run-<name>-vm
        script, or a QEMU command line as the boot tests give). The supervisor
        adds its machine worker to the running test; as in the reference it is
        not in `machines` and polling conditions do not guard it. Its name
        comes from `run-(.+)-vm$` in the command, else "machine". The
        pre-2024 dict form {startCommand, name, keep_vm_state} is accepted."""
        if isinstance(start_command, dict):
            legacy = start_command
            if "startCommand" not in legacy:
                raise MachineError(
                    "create_machine: the legacy dict form needs 'startCommand' (vigil does not build QEMU "
                    "command lines from qemuBinary/qemuFlags/hda...)"
                )
            name = name or legacy.get("name")
            keep_vm_state = keep_vm_state or bool(legacy.get("keep_vm_state", False))
            start_command = str(legacy["startCommand"])
        keep = keep_machine_state or keep_vm_state
        if name is None:
            match = re.search("run-(.+)-vm$", start_command)
            name = match.group(1) if match else "machine"
        if self.enable_ssh_backdoor:
            self.logger.warning(
                f"create_machine({name}): not enabling SSH backdoor, this is not supported for VMs created with "
                "create_machine!"
            )
        state_dir = self.tmp_dir / f"vm-state-{name}"
        if not keep and state_dir.exists():
            # the supervisor deletes it; the lines are the reference's QemuMachine constructor's
            self.logger.log(f"deleting machine state directory {state_dir}", {"machine": name})
            self.logger.log("if you want to keep the machine state, pass --keep-machine-state", {"machine": name})
        try:
            self.channel.add_machine(name, start_command, keep)
        except ChannelError as e:
            raise MachineError(f"create_machine({name}): {e.message}") from None
        return QemuMachine(
            out_dir=self.out_dir,
            name=name,
            logger=self.logger,
            tmp_dir=self.tmp_dir,
            callbacks=[],
            keep_machine_state=keep,
            channel=self.channel,
            state_dir=state_dir,
            shared_dir=self.machines[0].shared_dir if self.machines else self.tmp_dir / "shared-xchg",
            start_command=start_command,
            backend="qemu",
        )

    def serial_stdout_on(self) -> None:
        self.logger.print_serial_logs(True)

    def serial_stdout_off(self) -> None:
        self.logger.print_serial_logs(False)

    def check_polling_conditions(self) -> None:
        for condition in self.polling_conditions:
            condition.maybe_raise()

    def polling_condition(
        self,
        fun_: Callable | None = None,
        *,
        seconds_interval: float = 2.0,
        description: str | None = None,
    ) -> Any:
        driver = self

        class Poll:
            def __init__(self, fun: Callable):
                self.condition = PollingCondition(fun, driver.logger, seconds_interval, description)

            def __enter__(self) -> None:
                driver.polling_conditions.append(self.condition)

            def __exit__(self, a, b, c) -> None:  # type: ignore[no-untyped-def]
                res = driver.polling_conditions.pop()
                assert res is self.condition

            def wait(self, timeout: int = 900) -> None:
                def condition(last: bool) -> bool:
                    if last:
                        driver.logger.info(f"Last chance for {self.condition.description}")
                    ret = self.condition.check(force=True)
                    if not ret and not last:
                        driver.logger.info(f"({self.condition.description} failure not fatal yet)")
                    return ret

                with driver.logger.nested(f"waiting for {self.condition.description}"):
                    retry(condition, timeout_seconds=timeout)

        if fun_ is None:
            return Poll
        return Poll(fun_)
