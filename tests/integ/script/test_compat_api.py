#!/usr/bin/python3
# Proves the parts of the newest reference driver's API that vigil gained for drop-in compatibility
# behave like it: exception ancestry, timedelta/fractional/attempt timeouts, QMP events, unit states,
# state_dir handling, the chunked copy_from_host_via_shell, shell_interact, the SSH backdoor listing.
# Why it matters: nixpkgs tests written against the newest driver must run unchanged under vigil.
#
# Unit level: an in-process fake channel (test_python_api.FakeChannel), no VMs; vm_compat_methods.py
# runs the same methods on a real tiny guest.

import base64
import contextlib
import datetime as dt
import io
import os
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_python_api import ClockTestCase, make_driver, plain  # noqa: E402

import test_driver.machine as machine_mod  # noqa: E402
from test_driver.errors import RequestedAssertionFailed  # noqa: E402
from test_driver.machine import retry, seconds  # noqa: E402


class TestExceptions(unittest.TestCase):
    def test_requested_assertion_is_an_assertion_error(self):
        d, _, _ = make_driver(shell=lambda m, c: (1, ""))
        m = d.machines[0]
        with self.assertRaises(AssertionError) as cm:  # the reference's `except AssertionError` catches it
            m.succeed("false")
        self.assertIsInstance(cm.exception, RequestedAssertionFailed)

    def test_top_level_still_prints_filtered_traceback(self):
        d, _, out = make_driver(shell=lambda m, c: (3, ""), tests="machine.succeed('x')\n")
        with self.assertRaises(SystemExit):
            d.test_script()
        self.assertIn("!!! RequestedAssertionFailed: command `x` failed (exit code 3)", plain(out))


class TestTimeouts(ClockTestCase):
    def test_seconds_normalises(self):
        self.assertEqual(seconds(dt.timedelta(seconds=20)), 20)
        self.assertIsInstance(seconds(dt.timedelta(seconds=20)), int)
        self.assertEqual(seconds(dt.timedelta(milliseconds=1500)), 1.5)
        self.assertEqual(seconds(2.0), 2)
        self.assertIsNone(seconds(None))

    def test_retry_takes_a_timedelta(self):
        with self.assertRaises(RequestedAssertionFailed) as cm:
            retry(lambda last: False, dt.timedelta(seconds=3))
        self.assertEqual(str(cm.exception), "action timed out after 3.00 seconds (timeout=3)")

    def test_fractional_execute_timeout_is_honoured_in_the_guest(self):
        seen = []
        d, ch, _ = make_driver(shell=lambda m, c: (seen.append(c), (0, ""))[1])
        m = d.machines[0]
        m.execute("sleep 5", timeout=0.5)
        m.execute("true", timeout=dt.timedelta(seconds=2))
        (frac, whole) = ch.kinds("M_EXECUTE")
        self.assertEqual(frac[2]["command"], "timeout 0.5 bash -c 'set -euo pipefail; sleep 5'")
        self.assertEqual(frac[2]["timeout_s"], 1)  # the worker's own bound, rounded up
        self.assertEqual((whole[2]["command"], whole[2]["timeout_s"]), ("true", 2))

    def test_attempt_timeout_bounds_each_attempt(self):
        attempts = []
        d, ch, _ = make_driver(shell=lambda m, c: (attempts.append(c), (1, ""))[1])
        m = d.machines[0]
        d.polling_conditions.append(type("C", (), {"maybe_raise": lambda self: None})())  # force the Python loop
        with self.assertRaises(RequestedAssertionFailed):
            m.wait_until_succeeds("probe", timeout=dt.timedelta(seconds=4), attempt_timeout=dt.timedelta(seconds=1))
        bounds = {c[2]["timeout_s"] for c in ch.kinds("M_EXECUTE")}
        self.assertEqual(bounds, {1})
        self.assertGreaterEqual(len(attempts), 4)

    def test_attempt_timeout_in_the_worker_loop(self):
        d, ch, _ = make_driver(shell=lambda m, c: (0, "ok"))
        m = d.machines[0]
        self.assertEqual(m.wait_until_succeeds("probe", timeout=30, attempt_timeout=2), "ok")
        (req,) = ch.kinds("M_WAIT_UNTIL")
        self.assertEqual(req[2]["timeout_s"], 30)
        self.assertEqual(req[2]["command"], "timeout 2 bash -c 'set -euo pipefail; probe'")

    def test_wait_for_open_port_probe_is_bounded_by_the_budget(self):
        d, ch, _ = make_driver(shell=lambda m, c: (1, ""))
        m = d.machines[0]
        with self.assertRaises(RequestedAssertionFailed):
            m.wait_for_open_port(1234, timeout=dt.timedelta(seconds=5))
        self.assertEqual({c[2]["timeout_s"] for c in ch.kinds("M_EXECUTE") if "nc -z" in c[2]["command"]}, {5})


class TestQmpEvents(unittest.TestCase):
    def test_wait_for_qmp_event_filters_and_accepts_int_and_timedelta(self):
        d, ch, _ = make_driver()
        m = d.machines[0]
        m.start()
        ch.qmp_events["server"] = [{"event": "RESUME"}, {"event": "STOP", "data": {}}]
        self.assertEqual(m.wait_for_qmp_event(lambda e: e["event"] == "STOP", timeout=5)["event"], "STOP")
        ch.qmp_events["server"] = [{"event": "SHUTDOWN"}]
        self.assertEqual(m.wait_for_qmp_event(lambda e: True, timeout=dt.timedelta(seconds=5))["event"], "SHUTDOWN")

    def test_wait_for_qmp_event_times_out(self):
        d, ch, _ = make_driver()
        m = d.machines[0]
        m.start()
        ch.qmp_events["server"] = [{"event": "RESUME"}]
        with self.assertRaises(TimeoutError):
            m.wait_for_qmp_event(lambda e: e["event"] == "STOP", timeout=0.3)

    def test_events_that_ride_on_a_reply_are_kept(self):
        d, ch, _ = make_driver()
        m = d.machines[0]
        m.start()
        m.qmp_client.send("query-status")  # the fake reply carries a STOP event before the return
        self.assertEqual(m.wait_for_qmp_event(lambda e: e["event"] == "STOP", timeout=1)["event"], "STOP")


class TestUnitActiveState(ClockTestCase):
    def test_waits_for_any_state_even_failed(self):
        states = iter(["active", "deactivating", "failed"])
        d, _, out = make_driver(shell=lambda m, c: (0, f"ActiveState={next(states)}") if "ActiveState" in c else (0, ""))
        m = d.machines[0]
        m.wait_for_unit_active_state("test.service", "failed", timeout=10)
        self.assertIn("server: waiting for unit test.service to reach state failed", plain(out))

    def test_times_out_naming_the_last_state(self):
        d, _, out = make_driver(shell=lambda m, c: (0, "ActiveState=active"))
        m = d.machines[0]
        with self.assertRaises(RequestedAssertionFailed):
            m.wait_for_unit_active_state("test.service", "inactive", timeout=2)
        self.assertIn('server: Last chance: unit "test.service" is in state "active"', plain(out))


class TestStateDir(unittest.TestCase):
    def test_cleanup_statedir_logs_and_leaves_an_empty_dir(self):
        d, _, out = make_driver()
        m = d.machines[0]
        m.state_dir.mkdir(parents=True, exist_ok=True)
        (m.state_dir / "server.qcow2").write_text("disk")
        m.cleanup_statedir()
        self.assertEqual(list(m.state_dir.iterdir()), [])
        lines = plain(out)
        self.assertIn(f"server: deleting machine state directory {m.state_dir}", lines)
        self.assertIn("server: if you want to keep the machine state, pass --keep-machine-state", lines)

    def test_assigned_state_dir_is_used_at_the_next_start(self):
        d, _, out = make_driver()
        m = d.machines[0]
        work = m.state_dir
        work.mkdir(parents=True, exist_ok=True)
        (work / "server.qcow2").write_text("fresh")
        (work / "shell").write_text("socket")
        with tempfile.TemporaryDirectory() as other:
            (Path(other) / "server.qcow2").write_text("installed")
            (Path(other) / "shell").write_text("theirs")
            m.state_dir = other
            self.assertEqual(m.state_dir, Path(other))
            m.start()
            self.assertEqual((work / "server.qcow2").read_text(), "installed")
            self.assertEqual((work / "shell").read_text(), "socket")  # the worker's own sockets stay
            self.assertIn(f"server: using state directory {other} (linked into {work})", plain(out))


class TestCopyViaShell(unittest.TestCase):
    def test_large_file_goes_in_chunks_and_reassembles(self):
        files: dict[str, bytes] = {}

        def shell(machine, command):
            # a tiny model of the guest: `echo -n B64 | base64 -d >[>] F`, `mv A B`, mkdir
            if command.startswith("echo -n "):
                b64, rest = command[len("echo -n "):].split(" | base64 -d ", 1)
                op, path = rest.split(" ", 1)
                data = base64.b64decode(b64)
                files[path] = (files.get(path, b"") if op == ">>" else b"") + data
            elif command.startswith("mv "):
                a, b = command[3:].split(" ")
                files[b] = files.pop(a)
            return (0, "")

        d, ch, out = make_driver(shell=shell)
        m = d.machines[0]
        payload = os.urandom(3 * 1024 * 1024 + 17)
        with tempfile.NamedTemporaryFile() as f:
            f.write(payload)
            f.flush()
            m.copy_from_host_via_shell(f.name, "/root/big.bin")
        self.assertEqual(files["/root/big.bin"], payload)
        self.assertLess(max(len(c[2]["command"]) for c in ch.kinds("M_EXECUTE")), 64 * 1024)
        self.assertFalse(any("vigil-partial" in p for p in files))
        # one log block, not megabytes of base64
        self.assertLess(len(out.getvalue()), 4096)

    def test_small_file_is_the_reference_command(self):
        d, ch, out = make_driver()
        m = d.machines[0]
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"hi")
            f.flush()
            m.copy_from_host_via_shell(f.name, "/etc/x")
        cmds = [c[2]["command"] for c in ch.kinds("M_EXECUTE")]
        self.assertEqual(cmds, ["mkdir -p $(dirname /etc/x)", "echo -n aGk= | base64 -d > /etc/x"])


class TestShellInteract(unittest.TestCase):
    def test_lines_from_stdin_run_in_the_guest(self):
        d, ch, out = make_driver(shell=lambda m, c: (0, f"ran {c}\n"))
        m = d.machines[0]
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout), unittest.mock.patch("sys.stdin", io.StringIO("uname\n\nid\n")):
            m.shell_interact()
        self.assertEqual(stdout.getvalue(), "ran uname\nran id\n")
        self.assertIn("server: Terminal is ready (there is no initial prompt):", plain(out))


class TestCreateMachine(unittest.TestCase):
    def test_asks_the_supervisor_and_returns_an_unlisted_machine(self):
        d, ch, out = make_driver()
        added = []
        ch.add_machine = lambda name, cmd, keep: added.append((name, cmd, keep))
        (d.tmp_dir / "vm-state-boot").mkdir()
        m = d.create_machine("/nix/store/abc-nixos-vm/bin/run-boot-vm")
        self.assertEqual(added, [("boot", "/nix/store/abc-nixos-vm/bin/run-boot-vm", False)])
        self.assertEqual((m.name, type(m).__name__, m.callbacks), ("boot", "QemuMachine", []))
        self.assertNotIn(m, d.machines)
        self.assertIn(f"boot: deleting machine state directory {d.tmp_dir}/vm-state-boot", plain(out))
        m2 = d.create_machine("qemu-kvm -m 768 -cdrom /x.iso", name="iso", keep_vm_state=True)
        m3 = d.create_machine({"startCommand": "qemu-kvm -hda x", "keep_vm_state": True})
        self.assertEqual(added[1:], [("iso", "qemu-kvm -m 768 -cdrom /x.iso", True), ("machine", "qemu-kvm -hda x", True)])
        self.assertEqual((m2.name, m3.name), ("iso", "machine"))

    def test_a_refusal_is_a_machine_error(self):
        from test_driver.channel import ChannelError
        from test_driver.errors import MachineError

        d, ch, _ = make_driver()

        def refuse(name, cmd, keep):
            raise ChannelError(-22, "cannot add machine 'x': start script /nope is not executable")

        ch.add_machine = refuse
        with self.assertRaisesRegex(MachineError, r"create_machine\(x\): cannot add machine 'x': start script"):
            d.create_machine("/nope", name="x")


class TestSshBackdoor(unittest.TestCase):
    def test_dump_machine_ssh_lists_vsock_commands(self):
        from test_driver.driver import Driver

        d, ch, _ = make_driver(names=("alpha", "b"))
        d2 = Driver(
            machines=[{"name": "alpha", "vsock_cid": 3}, {"name": "b", "vsock_cid": 4}],
            vlans=[], tests="", out_dir=d.out_dir, logger=d.logger, tmp_dir=d.tmp_dir, channel=ch,
            enable_ssh_backdoor=True,
        )
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            d2.dump_machine_ssh()
            d.dump_machine_ssh()  # backdoor off: prints nothing
        text = machine_mod.re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue())
        self.assertIn("SSH backdoor enabled, the machines can be accessed like this:", text)
        self.assertIn("    alpha:  ssh -o User=root vsock/3", text)
        self.assertIn("    b:      ssh -o User=root vsock/4", text)
        self.assertEqual(d2.vhost_vsock.sockets["b"].cid, 4)
        self.assertIn("dump_machine_ssh", d2.test_symbols())


if __name__ == "__main__":
    import unittest.mock  # noqa: F401

    unittest.main(verbosity=1)
