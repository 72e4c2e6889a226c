#!/usr/bin/python3
# Proves the pure-Python half of the test-script API behaves like the reference driver: log text,
# exception types and messages, retry timing, systemd helpers, console matching, JUnit, top-level errors.
# Why it matters: existing nixosTest scripts and the CI tooling that greps their logs must work unchanged.
#
# Runs against an in-process fake channel (no vigil-script, no VMs); see test_script_worker.py and
# the vm suite for the real thing.

import shutil
import atexit
import contextlib
import io
import json
import os
import queue
import re
import sys
import tempfile
import threading
import unittest
from pathlib import Path
from xml.etree import ElementTree as ET

sys.path.insert(0, os.environ.get("VIGIL_PYTHON_DIR") or str(Path(__file__).resolve().parents[3] / "workers/script/python"))

from test_driver import netfaults  # noqa: E402
import test_driver.machine as machine_mod  # noqa: E402
from test_driver.channel import Channel, ChannelError, ChannelLost, Reply  # noqa: E402
from test_driver.driver import Driver, pythonize_name  # noqa: E402
from test_driver.errors import MachineError, RequestedAssertionFailed, TestScriptError  # noqa: E402
from test_driver.logger import CompositeLogger, JunitXMLLogger, TerminalLogger  # noqa: E402
from test_driver.machine import CHAR_TO_KEY, retry  # noqa: E402
from test_driver.machine.ppm import ppm_to_png  # noqa: E402
from test_driver.machine.qmp import QMPAPIError  # noqa: E402
from test_driver.polling_condition import PollingConditionError  # noqa: E402

ESC = re.compile(r"\x1b\[[0-9;]*m")


class FakeClock:
    """Replaces test_driver.machine.time: sleep() advances monotonic() at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


class FakeChannel(Channel):
    """Answers MSG_M_* like a machine worker would. `shell(machine, command)`
    returns (status, output); every request is recorded."""

    def __init__(self, shell=None) -> None:
        self.shell = shell or (lambda m, c: (0, ""))
        self.calls: list[tuple[str, str, dict]] = []
        self.console: dict[str, list[str]] = {}
        self.boot: dict[str, list[str]] = {}  # lines the machine prints when started
        self.booted: dict[str, bool] = {}
        self.fail: dict[str, ChannelError] = {}
        self.events: list[tuple[str, str]] = []
        self.qmp_events: dict[str, list[dict]] = {}
        self.lock = threading.Lock()

    def request(self, kind, machine, **fields):
        if kind == "M_READ":  # an M_EXECUTE the supervisor may replay: recorded as one, marked
            kind, fields = "M_EXECUTE", dict(fields, read_only=True)
        with self.lock:
            self.calls.append((kind, machine, fields))
        if kind in self.fail:
            raise self.fail[kind]
        if kind == "M_START":
            self.booted[machine] = True
            self.console.setdefault(machine, []).extend(self.boot.get(machine, []))
            return Reply("OK", {}, b"")
        if kind == "M_STATE":
            up = self.booted.get(machine, False)
            return Reply("M_STATE_RESULT", {"booted": up, "connected": up, "pid": 77 if up else 0,
                                            "backend": "qemu", "worker_pid": 55}, b"")
        if kind == "M_EXECUTE":
            status, out = self.shell(machine, fields["command"])
            return Reply("M_EXEC_RESULT", {"status": status, "length": len(out)}, out.encode())
        if kind == "M_WAIT_UNTIL":
            status, out = self.shell(machine, fields["command"])
            return Reply("M_EXEC_RESULT", {"status": status, "length": len(out)}, out.encode())
        if kind == "M_CONSOLE_READ":
            lines = self.console.get(machine, [])
            start = fields["from_line"]
            if len(lines) <= start and fields["timeout_ms"]:
                threading.Event().wait(0.05)  # a short long-poll
            lines = list(lines)
            data = "".join(line + "\n" for line in lines[start:]).encode()
            return Reply("M_TEXT_RESULT", {"length": len(data), "next_line": len(lines)}, data)
        if kind == "M_MONITOR":
            return Reply("M_TEXT_RESULT", {"length": 0, "next_line": 0}, f"{fields['text']}\r\n(qemu) ".encode())
        if kind == "M_QMP":
            if fields["text"] == "":  # the events queued since the last such request
                with self.lock:
                    events, self.qmp_events[machine] = self.qmp_events.get(machine, []), []
                text = "".join(json.dumps(e) + "\n" for e in events)
                return Reply("M_TEXT_RESULT", {"length": len(text), "next_line": 0}, text.encode())
            cmd = json.loads(fields["text"])
            if cmd["execute"] == "nosuch":
                text = '{"error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}, "id": "x1"}'
            else:
                text = '{"event": "STOP"}\n{"return": {"running": true}}'
            return Reply("M_TEXT_RESULT", {"length": len(text), "next_line": 0}, text.encode())
        if kind in ("M_SHUTDOWN", "M_CRASH"):
            self.booted[machine] = False
        return Reply("OK", {}, b"")

    def event(self, name, message):
        self.events.append((name, message))

    def kinds(self, kind):
        return [c for c in self.calls if c[0] == kind]


def make_driver(names=("server",), shell=None, tests="", junit=None, tmp=None):
    out = io.StringIO()
    term = TerminalLogger(stream=out)
    loggers = [term]
    if junit:
        loggers.append(JunitXMLLogger(junit))
    logger = CompositeLogger(loggers)
    ch = FakeChannel(shell)
    if tmp is None:
        tmp = tempfile.mkdtemp(prefix="vigil-pyapi-")
        atexit.register(shutil.rmtree, tmp, True)
    d = Driver(
        machines=[{"name": n, "backend": "qemu", "state_dir": f"{tmp}/vm-state-{n}", "shared_dir": f"{tmp}/shared"}
                  for n in names],
        vlans=[{"nr": 1, "socket_dir": f"{tmp}/vde1.ctl"}],
        tests=tests,
        out_dir=Path(tmp),
        logger=logger,
        tmp_dir=Path(tmp),
        channel=ch,
    )
    return d, ch, out


def plain(out: io.StringIO) -> list[str]:
    return ESC.sub("", out.getvalue()).splitlines()


class ClockTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = FakeClock()
        self._real_time = machine_mod.time
        machine_mod.time = self.clock

    def tearDown(self) -> None:
        machine_mod.time = self._real_time


class TestRetry(ClockTestCase):
    def test_success_after_attempts(self):
        seen = []
        retry(lambda last: seen.append(last) or len(seen) == 3, 10)
        self.assertEqual(seen, [False, False, False])
        self.assertEqual(self.clock.sleeps, [1, 1])

    def test_timeout_message_and_last_try(self):
        seen = []
        with self.assertRaises(RequestedAssertionFailed) as cm:
            retry(lambda last: seen.append(last) and False, timeout_seconds=3)
        self.assertEqual(seen, [False, False, False, True])
        self.assertEqual(str(cm.exception), "action timed out after 3.00 seconds (timeout=3)")

    def test_timeout_alias_and_positional(self):
        for kwargs in ({"timeout": 2}, {"timeout_seconds": 2}):
            with self.assertRaises(RequestedAssertionFailed):
                retry(lambda last: False, **kwargs)
        with self.assertRaisesRegex(RequestedAssertionFailed, r"\(timeout=2\)"):
            retry(lambda last: False, 2)

    def test_exception_in_fn_propagates(self):
        def boom(last):
            raise ValueError("x")

        with self.assertRaises(ValueError):
            retry(boom, 5)


class TestLogger(unittest.TestCase):
    def test_nested_prefix_finished_and_colours(self):
        out = io.StringIO()
        log = TerminalLogger(stream=out)
        with log.nested("outer", {"machine": "m1"}):
            log.log("hello", {"machine": "m1"})
            log.log("plain")
        raw = out.getvalue().splitlines()
        self.assertEqual(raw[0], "m1: \x1b[1m\x1b[32mouter\x1b[0m")
        self.assertEqual(raw[1:3], ["m1: hello", "plain"])
        self.assertRegex(raw[3], r"^m1: \(finished: outer, in \d+\.\d\d seconds\)$")

    def test_no_finished_line_when_body_raises(self):
        out = io.StringIO()
        log = TerminalLogger(stream=out)
        with self.assertRaises(KeyError):
            with log.nested("doomed"):
                raise KeyError("k")
        self.assertNotIn("finished", out.getvalue())

    def test_serial_and_test_error_format(self):
        out = io.StringIO()
        log = TerminalLogger(stream=out)
        log.log_serial("booting", "server")
        log.log_test_error("bad thing")
        log.print_serial_logs(False)
        log.log_serial("hidden", "server")
        self.assertEqual(out.getvalue().splitlines(),
                         ["\x1b[2mserver # booting\x1b[0m", "\x1b[31m!!! \x1b[0mbad thing"])

    def test_test_errors_are_one_write(self):
        # vigil's progress lines share stderr: a traceback written line by line could be split by one.
        class Writes(io.StringIO):
            def __init__(self):
                super().__init__()
                self.writes = 0

            def write(self, text):
                self.writes += 1
                return super().write(text)

        out = Writes()
        log = CompositeLogger([TerminalLogger(stream=out)])
        log.log_test_errors(["Traceback (most recent call last):", "  File x", "", "E: boom"])
        self.assertEqual(out.writes, 1)
        self.assertEqual(out.getvalue().splitlines(),
                         ["\x1b[31m!!! \x1b[0m" + line for line in ["Traceback (most recent call last):", "  File x",
                                                                     "", "E: boom"]])
        with tempfile.TemporaryDirectory() as tmp:
            j = JunitXMLLogger(Path(tmp) / "junit.xml")
            CompositeLogger([j]).log_test_errors(["a", "b"])
            self.assertEqual(j.suite.stderr, "a" + os.linesep + "b" + os.linesep)

    def test_composite_error_exits_1(self):
        out = io.StringIO()
        log = CompositeLogger([TerminalLogger(stream=out)])
        with self.assertRaises(SystemExit) as cm:
            log.error("fatal")
        self.assertEqual(cm.exception.code, 1)
        self.assertIn("fatal", out.getvalue())

    def test_junit_subtests_and_failure(self):
        with tempfile.TemporaryDirectory() as tmp:
            j = JunitXMLLogger(Path(tmp) / "junit.xml")
            log = CompositeLogger([j])
            with log.subtest("good"):
                log.log("inside good")
            with self.assertRaises(RuntimeError):
                with log.subtest("bad"):
                    log.log_test_error("it broke")
                    raise RuntimeError()
            j.stack.clear()
            log.log_serial("line", "server")
            log.close()
            root = ET.parse(Path(tmp) / "junit.xml").getroot()
            self.assertEqual(root.tag, "testsuites")
            suite = root.find("testsuite")
            self.assertEqual(suite.get("name"), "NixOS integration test")
            cases = {c.get("name"): c for c in suite.findall("testcase")}
            # the reference's newest report always has `main` (what was logged outside subtests)
            self.assertEqual(list(cases), ["main", "good", "bad"])
            self.assertEqual(cases["main"].find("system-out").text.strip(), "server # line")
            self.assertEqual({c.get("classname") for c in cases.values()}, {"NixOS integration test"})
            self.assertIsNone(cases["good"].find("failure"))
            self.assertEqual(cases["good"].find("system-out").text.strip(), "inside good")
            # vigil: the failure message says what failed
            self.assertEqual(cases["bad"].find("failure").get("message"), "it broke")
            self.assertEqual(cases["bad"].find("system-err").text.strip(), "it broke")
            self.assertEqual(suite.get("failures"), "1")

    def test_junit_main_when_no_subtests(self):
        with tempfile.TemporaryDirectory() as tmp:
            j = JunitXMLLogger(Path(tmp) / "j.xml")
            j.log("only line")
            j.close()
            cases = ET.parse(Path(tmp) / "j.xml").getroot().find("testsuite").findall("testcase")
            self.assertEqual([c.get("name") for c in cases], ["main"])


class TestMachineCommands(unittest.TestCase):
    def test_succeed_logs_and_returns_concatenation(self):
        d, ch, out = make_driver(shell=lambda m, c: (0, c.upper()))
        m = d.machines[0]
        self.assertEqual(m.succeed("a", "b"), "AB")
        lines = plain(out)
        self.assertIn("server: must succeed: a", lines)
        self.assertIn("server: waiting for the VM to finish booting", lines)
        self.assertIn("server: starting vm", lines)
        self.assertIn("server: QEMU running (pid 77)", lines)
        self.assertIn("server: connected to guest root shell", lines)
        ex = ch.kinds("M_EXECUTE")
        self.assertEqual(ex[0][2], {"command": "a", "timeout_s": -1, "check_return": True, "check_output": True})

    def test_succeed_failure_message_and_output_line(self):
        d, ch, out = make_driver(shell=lambda m, c: (3, "oops"))
        with self.assertRaises(RequestedAssertionFailed) as cm:
            d.machines[0].succeed("false")
        self.assertEqual(str(cm.exception), "command `false` failed (exit code 3)")
        self.assertIn("server: output: oops", plain(out))
        self.assertNotIn("server: (finished: must succeed: false", "\n".join(plain(out)))

    def test_fail(self):
        d, ch, out = make_driver(shell=lambda m, c: (0, ""))
        with self.assertRaises(RequestedAssertionFailed) as cm:
            d.machines[0].fail("true")
        self.assertEqual(str(cm.exception), "command `true` unexpectedly succeeded")
        d2, _, _ = make_driver(shell=lambda m, c: (1, "x"))
        self.assertEqual(d2.machines[0].fail("a", "b"), "xx")

    def test_execute_defaults_and_flags(self):
        d, ch, _ = make_driver(shell=lambda m, c: (5, "out"))
        m = d.machines[0]
        self.assertEqual(m.execute("x"), (5, "out"))
        self.assertEqual(ch.kinds("M_EXECUTE")[-1][2]["timeout_s"], 900)
        self.assertEqual(m.execute("x", check_output=False), (-2, ""))
        self.assertEqual(m.execute("x", check_return=False), (-1, "out"))
        m.execute("x", timeout=2.5)
        self.assertEqual(ch.kinds("M_EXECUTE")[-1][2]["timeout_s"], 3)

    def test_reads_go_as_replayable_requests(self):
        # Waits, queries and copies out are M_READ (replayed after a worker restart); plain commands are not.
        d, ch, _ = make_driver(shell=lambda m, c: (0, "ActiveState=active\n" if "systemctl" in c else ""))
        m = d.machines[0]
        m.succeed("touch /x")
        m.execute("rm /x")
        self.assertFalse([c for c in ch.kinds("M_EXECUTE") if c[2].get("read_only")], "plain commands are M_EXECUTE")
        m.wait_for_unit("x.service")
        m.get_unit_property("x.service", "ActiveState")
        m.wait_for_file("/x")
        with self.assertRaises(FileNotFoundError):  # the fake guest copies nothing into the shared dir
            m.copy_from_vm("/etc/hostname")
        reads = [c[2]["command"] for c in ch.kinds("M_EXECUTE") if c[2].get("read_only")]
        self.assertTrue(any("systemctl" in c for c in reads), reads)
        self.assertTrue(any("test -e /x" in c for c in reads), reads)
        self.assertTrue(any(c.startswith("cp -r /etc/hostname") for c in reads), reads)
        m.succeed("true")
        self.assertFalse(ch.kinds("M_EXECUTE")[-1][2].get("read_only"), "read-only ends with the call")

    def test_wait_until_uses_worker_loop_and_formats_timeout(self):
        d, ch, out = make_driver(shell=lambda m, c: (1, "no"))
        m = d.machines[0]
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_until_succeeds("test -e /x", timeout=7)
        self.assertRegex(str(cm.exception), r"^action timed out after \d+\.\d\d seconds \(timeout=7\)$")
        self.assertEqual(ch.kinds("M_WAIT_UNTIL")[-1][2], {"command": "test -e /x", "timeout_s": 7, "want_success": True})
        self.assertIn("server: waiting for success: test -e /x", plain(out))
        self.assertEqual(m.wait_until_fails("false"), "no")

    def test_wait_until_worker_timeout_error(self):
        d, ch, _ = make_driver()
        ch.fail["M_WAIT_UNTIL"] = ChannelError(-110, "timed out")
        with self.assertRaises(RequestedAssertionFailed):
            d.machines[0].wait_until_succeeds("x", timeout=1)

    def test_channel_errors_become_machine_errors(self):
        d, ch, _ = make_driver()
        ch.fail["M_EXECUTE"] = ChannelError(-5, "the guest shell died")
        with self.assertRaises(MachineError) as cm:
            d.machines[0].execute("x")
        self.assertEqual(str(cm.exception), "server: the guest shell died")
        ch.fail["M_EXECUTE"] = ChannelLost(-32, "the supervisor closed the channel")
        with self.assertRaisesRegex(MachineError, "lost the vigil supervisor"):
            d.machines[0].execute("x")

    def test_connect_keeps_waiting_and_logs(self):
        d, ch, out = make_driver()
        m = d.machines[0]
        n = {"c": 0}
        real = ch.request

        def flaky(kind, machine, **fields):
            if kind == "M_CONNECT" and n["c"] < 2:
                n["c"] += 1
                raise ChannelError(-110, "not yet")
            return real(kind, machine, **fields)

        ch.request = flaky
        m.connect()
        lines = plain(out)
        self.assertEqual(lines.count("server: Guest root shell did not produce any data yet..."), 2)
        self.assertTrue(m.connected and m.booted)

    def test_systemctl_user_quoting(self):
        d, ch, _ = make_driver()
        d.machines[0].systemctl("start 'x'", user="alice")
        self.assertEqual(ch.kinds("M_EXECUTE")[-1][2]["command"],
                         "su -l alice --shell /bin/sh -c $'XDG_RUNTIME_DIR=/run/user/`id -u` systemctl --user start \\'x\\''")

    def test_unit_helpers(self):
        states = iter(["activating", "active"])

        def shell(m, c):
            if "--property" in c:
                return 0, f"ActiveState={next(states)}"
            if "show" in c:
                return 0, "Id=foo.service\nActiveState=active\nnot a pair\n"
            return 0, ""

        clock = FakeClock()
        real, machine_mod.time = machine_mod.time, clock
        try:
            d, ch, out = make_driver(shell=shell)
            m = d.machines[0]
            m.wait_for_unit("foo.service")
            self.assertIn("server: waiting for unit foo.service", plain(out))
            self.assertEqual(m.get_unit_info("foo")["ActiveState"], "active")
            m.require_unit_state("foo", "active")
            with self.assertRaises(RequestedAssertionFailed) as cm:
                m.require_unit_state("foo", "inactive")
            # the reference's text first; vigil's diagnostics follow (test_diagnostics.py)
            self.assertEqual(str(cm.exception).splitlines()[0],
                             "Expected unit 'foo' to to be in state 'inactive' but it is in state 'active'")
        finally:
            machine_mod.time = real

    def test_wait_for_unit_failed_and_inactive(self):
        d, _, _ = make_driver(shell=lambda m, c: (0, "ActiveState=failed"))
        with self.assertRaises(RequestedAssertionFailed) as cm:
            d.machines[0].wait_for_unit("x.service")
        self.assertEqual(str(cm.exception).splitlines()[0], 'unit "x.service" reached state "failed"')

        def shell(m, c):
            if "list-jobs" in c:
                return 0, "No jobs running."
            return 0, "ActiveState=inactive"

        d, _, _ = make_driver(shell=shell)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            d.machines[0].wait_for_unit("y")
        self.assertEqual(str(cm.exception).splitlines()[0], 'unit "y" is inactive and there are no pending jobs')

    def test_unit_errors(self):
        d, _, _ = make_driver(shell=lambda m, c: (4, ""))
        with self.assertRaises(RequestedAssertionFailed) as cm:
            d.machines[0].get_unit_info("u", user="bob")
        self.assertEqual(str(cm.exception), 'retrieving systemctl info for unit "u" under user "bob" failed with exit code 4')
        with self.assertRaises(RequestedAssertionFailed) as cm:
            d.machines[0].get_unit_property("u", "P")
        self.assertEqual(str(cm.exception), 'retrieving systemctl property "P" for unit "u" failed with exit code 4')
        d, _, _ = make_driver(shell=lambda m, c: (0, "Other=1"))
        with self.assertRaises(AssertionError) as cm:
            d.machines[0].get_unit_property("u", "P")
        self.assertIn("produced invalid output: Other=1", str(cm.exception))

    def test_wait_helpers_commands_and_headers(self):
        clock = FakeClock()
        real, machine_mod.time = machine_mod.time, clock
        try:
            d, ch, out = make_driver(shell=lambda m, c: (1, ""))
            m = d.machines[0]
            m.wait_for_closed_port(80, timeout=1)
            m.wait_for_file("/x y", timeout=1) if False else None
            with self.assertRaises(RequestedAssertionFailed):
                m.wait_for_open_port(8080, "10.0.0.1", timeout=2)
            with self.assertRaises(RequestedAssertionFailed):
                m.wait_for_open_unix_socket("/run/s", is_datagram=True, timeout=1)
            with self.assertRaises(RequestedAssertionFailed):
                m.wait_for_file("/etc/x", timeout=1)
            cmds = [c[2]["command"] for c in ch.kinds("M_EXECUTE")]
            self.assertIn("nc -z localhost 80", cmds)
            self.assertIn("nc -z 10.0.0.1 8080", cmds)
            self.assertIn("nc -z -uU /run/s", cmds)
            self.assertIn("test -e /etc/x", cmds)
            lines = plain(out)
            for header in ("server: waiting for TCP port 80 on localhost to be closed",
                           "server: waiting for TCP port 8080 on 10.0.0.1",
                           "server: waiting for UNIX-domain datagram on '/run/s'",
                           "server: waiting for file '/etc/x'"):
                self.assertIn(header, lines)
        finally:
            machine_mod.time = real


class TestConsoleAndMonitor(unittest.TestCase):
    def test_console_follower_and_wait_for_console_text(self):
        d, ch, out = make_driver()
        m = d.machines[0]
        ch.boot["server"] = ["Linux version 6.1", "Run /init", "login: "]
        m.start()
        m.wait_for_console_text("Run /in")
        self.assertIn("server # Linux version 6.1", plain(out))
        # consumed lines are gone from last_lines, still in the log
        self.assertEqual(m.get_console_log(), "Linux version 6.1\nRun /init\nlogin:")
        # lines are appended without separator: a regex spanning two lines matches joined text
        ch.console["server"].extend(["abc", "def"])
        m.wait_for_console_text("login:abc")

    def test_console_log_restarts_with_each_start(self):
        d, ch, out = make_driver()
        m = d.machines[0]
        ch.boot["server"] = ["first boot"]
        m.start()
        m.wait_for_console_text("first boot")
        m.crash()
        ch.boot["server"] = ["second boot"]
        m.start()
        m.wait_for_console_text("second")
        self.assertEqual(m.get_console_log(), "second boot")
        self.assertEqual(plain(out).count("server # first boot"), 1)

    def test_console_timeout_consumes_one_line_per_second(self):
        d, ch, _ = make_driver()
        m = d.machines[0]
        for i in range(5):
            m.last_lines.put(f"line{i}")
        clock = FakeClock()
        real, machine_mod.time = machine_mod.time, clock
        try:
            with self.assertRaises(RequestedAssertionFailed):
                m.wait_for_console_text("line4", timeout=2)
            # attempts at t=0, t=1 and the final one: three lines consumed
            self.assertEqual(m.last_lines.qsize(), 2)
        finally:
            machine_mod.time = real

    def test_monitor_keys_links(self):
        d, ch, out = make_driver()
        m = d.machines[0]
        m.send_chars("aB\n", delay=None)
        m.send_key("ctrl-alt-delete", delay=None)
        texts = [c[2]["text"] for c in ch.kinds("M_MONITOR")]
        self.assertEqual(texts, ["sendkey a", "sendkey shift-b", "sendkey ret", "sendkey ctrl-alt-delete"])
        self.assertIn("server: sending keys 'aB\\n'", plain(out))
        self.assertIn("server: sending key 'ctrl-alt-delete'", plain(out))
        self.assertEqual(m.send_monitor_command("info status"), "info status\r\n(qemu) ")
        m.forward_port(2222, 22)
        self.assertEqual(ch.kinds("M_MONITOR")[-1][2]["text"], "hostfwd_add tcp::2222-:22")
        m.block()
        m.unblock()
        self.assertEqual([c[2] for c in ch.kinds("M_SET_LINK")], [{"nic": "", "up": False}, {"nic": "", "up": True}])
        self.assertEqual(CHAR_TO_KEY["?"], "shift-0x35")
        self.assertEqual(len(CHAR_TO_KEY), 26 + 2 + 22 + 10)

    def test_qmp(self):
        d, ch, _ = make_driver()
        m = d.machines[0]
        self.assertIsNone(m.qmp_client)
        m.start()
        self.assertEqual(m.qmp_client.send("query-status"), {"return": {"running": True}})
        with self.assertRaises(QMPAPIError) as cm:
            m.qmp_client.send("nosuch", {"a": 1})
        e = cm.exception
        self.assertEqual((e.class_name, e.transaction_id), ("CommandNotFound", "x1"))
        self.assertEqual(str(e), "<QMP API error related to transaction x1 [CommandNotFound]: The command nosuch has not been found>")
        self.assertEqual(json.loads(ch.kinds("M_QMP")[-1][2]["text"]), {"execute": "nosuch", "arguments": {"a": 1}})

    def test_unsupported_things_raise(self):
        d, _, _ = make_driver()
        m = d.machines[0]
        with self.assertRaisesRegex(RuntimeError, "QMP API is not ready yet"):
            m.wait_for_qmp_event(lambda e: True)
        m.start()
        with self.assertRaisesRegex(MachineError, r"create_machine\(foo\): machines cannot be added without a vigil"):
            d.create_machine("/nix/store/x-run-foo-vm")
        if not __import__("shutil").which("tesseract"):
            with self.assertRaisesRegex(MachineError, "OCR requested but `tesseract` is not available"):
                m.get_screen_text()

    def test_lifecycle(self):
        d, ch, out = make_driver()
        m = d.machines[0]
        m.shutdown()  # not booted: no-op
        self.assertEqual(ch.kinds("M_SHUTDOWN"), [])
        m.start()
        m.start()  # no-op
        self.assertEqual(len(ch.kinds("M_START")), 1)
        m.connect()
        self.assertTrue(m.is_up())
        m.crash()
        self.assertFalse(m.booted or m.connected)
        self.assertIn("server: forced crash", plain(out))
        self.assertIn("server: waiting for the VM to power off", plain(out))
        m.start(allow_reboot=True)
        self.assertEqual(ch.kinds("M_START")[-1][2], {"allow_reboot": True})
        m.connect()
        m.reboot()
        self.assertFalse(m.connected)
        self.assertEqual(len(ch.kinds("M_REBOOT")), 1)
        m.shutdown()
        self.assertEqual(ch.kinds("M_WAIT_SHUTDOWN")[-1][2], {"timeout_ms": -1})
        self.assertIsNone(m.pid)


class TestFiles(unittest.TestCase):
    def test_copy_from_host_and_machine_commands(self):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src.txt"
            src.write_text("data")
            d, ch, _ = make_driver(tmp=tmp)
            m = d.machines[0]
            m.copy_from_host(str(src), "/etc/app/conf")
            cmds = [c[2]["command"] for c in ch.kinds("M_EXECUTE")]
            self.assertRegex(cmds[0], r"^mkdir -p /tmp/shared/tmp\w+$")
            self.assertEqual(cmds[1], "mkdir -p /etc/app")
            self.assertRegex(cmds[2], r"^cp -r /tmp/shared/tmp\w+/src.txt /etc/app/conf$")
            # the host copy lived in the shared dir while the guest copied it
            self.assertEqual(list((Path(tmp) / "shared").iterdir()), [])

            def shell(mach, c):
                # play the guest: copy into the shared dir as /tmp/shared maps onto it
                if c.startswith("cp -r"):
                    dst = c.split()[-1].replace("/tmp/shared", f"{tmp}/shared")
                    Path(dst).write_text("from guest")
                return 0, ""

            d2, ch2, _ = make_driver(tmp=tmp, shell=shell)
            d2.machines[0].copy_from_machine("/var/log/x.log", "logs")
            self.assertEqual((Path(tmp) / "logs" / "x.log").read_text(), "from guest")
            m.copy_from_host_via_shell(str(src), "/root/f")
            self.assertEqual(ch.kinds("M_EXECUTE")[-1][2]["command"], "echo -n ZGF0YQ== | base64 -d > /root/f")

    def test_ppm_to_png(self):
        png = ppm_to_png(b"P6\n# c\n2 1\n255\n\xff\x00\x00\x00\xff\x00")
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertIn(b"IHDR\x00\x00\x00\x02\x00\x00\x00\x01", png)
        with self.assertRaises(ValueError):
            ppm_to_png(b"P3\n1 1\n255\n0 0 0")


class TestDriver(unittest.TestCase):
    def symbols(self, d):
        with contextlib.redirect_stdout(io.StringIO()) as so:
            s = d.test_symbols()
        return s, so.getvalue()

    def test_symbols_and_alias(self):
        d, _, _ = make_driver(names=("web-1", "2db"))
        s, printed = self.symbols(d)
        self.assertIs(s["web_1"], d.machines[1])
        self.assertIs(s["_db"], d.machines[0])
        self.assertNotIn("machine", s)
        self.assertIs(s["vlan1"], d.vlans[0])
        for name in ("start_all", "join_all", "subtest", "retry", "polling_condition", "serial_stdout_on",
                     "serial_stdout_off", "log", "driver", "machines", "vlans", "t", "create_machine",
                     "test_script", "run_tests", "os", "Machine", "QemuMachine", "BaseMachine"):
            self.assertIn(name, s)
        self.assertTrue(printed.startswith("additionally exposed symbols:\n    2db, web-1,\n    vlan1,\n    start_all, "))
        d1, _, _ = make_driver(names=("only",))
        s1, _ = self.symbols(d1)
        self.assertIs(s1["machine"], s1["only"])
        self.assertEqual(repr(d1.machines[0]), "<QemuMachine 'only'>")
        self.assertEqual(pythonize_name("1a-b.c"), "_a_b_c")

    def test_t_assertions_raise_requested(self):
        d, _, _ = make_driver()
        s, _ = self.symbols(d)
        with self.assertRaises(RequestedAssertionFailed):
            s["t"].assertEqual(1, 2)
        self.assertTrue(issubclass(RequestedAssertionFailed, TestScriptError))

    def run_script(self, text, names=("server",), shell=None):
        d, ch, out = make_driver(names=names, tests=text, shell=shell)
        code = None
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                d.test_script()
            except SystemExit as e:
                code = e.code
            except Exception as e:
                code = e
        return d, code, plain(out)

    def test_requested_assertion_filtered_traceback(self):
        script = "x = 1\n\ndef helper():\n    t.assertIn('a', 'bcd', 'custom')\n\nhelper()\n"
        d, code, lines = self.run_script(script)
        self.assertEqual(code, 1)
        i = lines.index("!!! Traceback (most recent call last):")
        self.assertEqual(lines[i + 1:i + 5], [
            '!!!   File "<string>", line 6, in <module>',
            "!!!     helper()",
            '!!!   File "<string>", line 4, in helper',
            "!!!     t.assertIn('a', 'bcd', 'custom')",
        ])
        self.assertEqual(lines[i + 5], "!!! ")
        self.assertEqual(lines[i + 6], "!!! RequestedAssertionFailed: 'a' not found in 'bcd' : custom")
        self.assertTrue(d.failure.startswith("RequestedAssertionFailed"))

    def test_machine_error_full_traceback(self):
        d, code, lines = self.run_script("create_machine('x')\n")
        self.assertEqual(code, 1)
        text = "\n".join(lines)
        self.assertIn("!!! Traceback (most recent call last):", text)
        self.assertIn("driver.py", text)  # full traceback, not filtered
        self.assertIn("!!! test_driver.errors.MachineError: create_machine(machine): machines cannot be added", text)

    def test_other_exceptions_propagate(self):
        _, code, _ = self.run_script("assert 1 == 2, 'bare'\n")
        self.assertIsInstance(code, AssertionError)
        _, code, _ = self.run_script("import json, re\nassert json.loads('[1]') == [1]\nx = f'{re.escape(\".\")}'\n")
        self.assertIsNone(code)

    def test_subtest_error_line(self):
        script = "with subtest('net works'):\n    server.succeed('ping -c1 x')\n"
        _, code, lines = self.run_script(script, shell=lambda m, c: (2, ""))
        self.assertEqual(code, 1)
        self.assertIn("subtest: net works", lines)
        self.assertIn('!!! Test "net works" failed with error: "command `ping -c1 x` failed (exit code 2)"', lines)

    def test_start_all_parallel_and_errors(self):
        d, ch, out = make_driver(names=("a", "b", "c"))
        ch.fail["M_START"] = ChannelError(-5, "qemu exploded")
        with self.assertRaises(MachineError) as cm:
            d.start_all()
        msg = str(cm.exception)
        self.assertTrue(msg.startswith("Failed to start the following machines:\n"))
        self.assertEqual(sorted(msg.splitlines()[1:]), ["a: a: qemu exploded", "b: b: qemu exploded", "c: c: qemu exploded"])

    def test_polling_condition(self):
        clock = FakeClock()
        real, machine_mod.time = machine_mod.time, clock
        try:
            ok = {"v": True}
            d, ch, out = make_driver()
            m = d.machines[0]

            @d.polling_condition(seconds_interval=0)
            def net_up():
                "network is up"
                m.succeed("ip link")
                return ok["v"]

            with net_up:
                m.succeed("true")
                ok["v"] = False
                with self.assertRaises(PollingConditionError) as cm:
                    m.succeed("true")
                self.assertEqual(str(cm.exception), "Polling condition failed: network is up")
                # with a polling condition active, wait_until_* polls in Python
                ok["v"] = True
                m.wait_until_succeeds("true", timeout=3)
            lines = plain(out)
            self.assertIn("Checking polling condition 'network is up'", lines)
            self.assertIn("Polling condition succeeded: network is up", lines)
            self.assertEqual(ch.kinds("M_WAIT_UNTIL"), [])

            cond = d.polling_condition(lambda: False, description="never")
            with self.assertRaises(RequestedAssertionFailed):
                cond.wait(timeout=2)
            lines = plain(out)
            self.assertIn("(never failure not fatal yet)", lines)
            self.assertIn("Last chance for never", lines)
        finally:
            machine_mod.time = real

    def test_run_tests_syncs_up_machines(self):
        d, ch, out = make_driver(names=("a", "b"), tests="a.succeed('true')\n")
        with contextlib.redirect_stdout(io.StringIO()):
            d.run_tests()
        cmds = [(c[1], c[2]["command"]) for c in ch.kinds("M_EXECUTE")]
        self.assertEqual(cmds, [("a", "true"), ("a", "sync")])
        self.assertIn("Test will time out and terminate in 604800 seconds", plain(out))


class TestVigilModule(unittest.TestCase):
    def setUp(self):
        import vigil

        self.vigil = vigil
        self.d, self.ch, self.out = make_driver(names=("alpha", "beta", "gamma"))
        netfaults.bind(self.d)

    def tearDown(self):
        netfaults.bind(None)

    def rules(self):
        return [(c[1], c[2]["from"], c[2]["to"], c[2]["both"], c[2]["drop"]) for c in self.ch.kinds("W_SET_LINK")]

    def test_partition_with_implicit_rest(self):
        self.vigil.partition(["alpha"])
        self.assertEqual(sorted(self.rules()), [("vlan1", "alpha", "beta", True, True),
                                                ("vlan1", "alpha", "gamma", True, True)])
        self.assertIn("vigil: partition alpha | beta, gamma", plain(self.out))
        with self.assertRaisesRegex(ValueError, "more than one partition group"):
            self.vigil.partition(["alpha"], ["alpha", "beta"])

    def test_partition_groups_and_objects(self):
        a, b, g = self.d.machines
        self.vigil.partition([a, b], g)
        self.assertEqual(sorted(self.rules()), [("vlan1", "alpha", "gamma", True, True),
                                                ("vlan1", "beta", "gamma", True, True)])

    def test_link_cut_restore_heal_stats(self):
        self.vigil.link("alpha", "beta", loss=0.25, delay=0.05, jitter=0.001, both=False)
        call = self.ch.kinds("W_SET_LINK")[-1][2]
        self.assertEqual((call["loss_ppm"], call["dup_ppm"], call["delay_us"], call["jitter_us"], call["both"], call["drop"]),
                         (250000, 0, 50000, 1000, False, False))
        with self.assertRaises(ValueError):
            self.vigil.link("alpha", "beta", loss=2)
        self.vigil.cut("alpha", "gamma")
        self.vigil.restore("alpha", "gamma")
        self.assertEqual(self.ch.kinds("W_CLEAR")[-1][1:], ("vlan1", {"from": "alpha", "to": "gamma", "both": True}))
        self.vigil.heal()
        self.assertEqual(self.ch.kinds("W_CLEAR")[-1][2], {"from": "", "to": "", "both": True})
        with self.assertRaisesRegex(MachineError, "no machine named 'zeta'"):
            self.vigil.cut("alpha", "zeta")
        with self.assertRaisesRegex(MachineError, "has no VLAN 7"):
            self.vigil.cut("alpha", "beta", vlan=7)

    def test_machine_vlans_limit_rules(self):
        self.d.machine_vlans.update({"alpha": [1, 2], "beta": [2]})
        self.d.vlans.append(__import__("test_driver.vlan").vlan.VLan(2, "/x"))
        self.vigil.cut("alpha", "beta")
        self.assertEqual([r[0] for r in self.rules()], ["vlan2"])

    def test_worker_pid(self):
        self.assertEqual(self.vigil.machine_worker_pid("alpha"), 55)


class TestDriverSymbols(unittest.TestCase):
    def test_generate_driver_symbols(self):
        import subprocess

        with tempfile.TemporaryDirectory() as tmp:
            tool = Path(__file__).resolve().parents[3] / "workers/script/generate-driver-symbols"
            subprocess.run([sys.executable, str(tool)], cwd=tmp, check=True)
            names = (Path(tmp) / "driver-symbols").read_text().split(",")
        for name in ("start_all", "subtest", "retry", "t", "machines", "polling_condition", "Machine"):
            self.assertIn(name, names)


class TestRunnerConfig(unittest.TestCase):
    def test_bad_config(self):
        from vigil import _runner

        for bad, why in (("{", "not JSON"), ("[]", "not a JSON object"), ("{}", "no test_script"),
                         ('{"test_script": "/x", "machines": [{}]}', "machines must be")):
            with contextlib.redirect_stderr(io.StringIO()):
                code, msg = _runner.main(bad)
            self.assertEqual(code, 78)
            self.assertIn(why, msg)
        with contextlib.redirect_stderr(io.StringIO()):
            code, msg = _runner.main('{"test_script": "/nonexistent/t.py"}')
        self.assertEqual(code, 78)
        self.assertIn("cannot read the test script /nonexistent/t.py", msg)


if __name__ == "__main__":
    unittest.main(verbosity=1)
