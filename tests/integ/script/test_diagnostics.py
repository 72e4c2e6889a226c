#!/usr/bin/python3
# Proves failed unit/port waits carry the machine's diagnostics (unit state, failed units, journal tail), gathered in one
# bounded guest command whose output cannot forge sections, and that a diagnostic failure never replaces the real error.
# Why it matters: "unit X reached state failed" alone sends the user into the VM; the journal lines usually say why.
#
# Pure Python against the fake channel of test_python_api.py, plus the generated shell command run by a real bash.

import os
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_python_api import FakeClock, make_driver, plain  # noqa: E402

from test_driver import netfaults  # noqa: E402
import test_driver.machine as machine_mod  # noqa: E402
from test_driver.channel import ChannelError, ChannelLost  # noqa: E402
from test_driver.errors import MachineError, RequestedAssertionFailed  # noqa: E402
from test_driver.machine import BaseMachine, diagnostics as dg  # noqa: E402

FAILED_JOURNAL = [
    "Nov 25 11:00:01 server systemd[1]: Started fail.service.",
    "Nov 25 11:00:01 server sh[42]: boom: cannot open /etc/fail.conf",
    "Nov 25 11:00:01 server systemd[1]: fail.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED",
    "Nov 25 11:00:01 server systemd[1]: fail.service: Failed with result 'exit-code'.",
]


def run_bash(command: str, timeout: int = 30) -> str:
    """Run a command the way the guest shell does (reference framing)."""
    p = subprocess.run(["bash", "-c", f"set -euo pipefail; {command}"], capture_output=True, text=True,
                       timeout=timeout)
    return p.stdout


def guest_answer(command: str, answers: dict[str, tuple[int, list[str]]], die_after: str | None = None) -> str:
    """What a guest prints for a diagnostic command: each section's canned
    (status, lines) between the markers; `die_after` cuts the output inside
    that section, as a killed command would."""
    import re

    m = re.search(r"echo (vigil-diag-[0-9a-f]{16}) begin ", command)
    assert m, command
    nonce = m[1]
    out = []
    for key in re.findall(rf"echo {nonce} begin (\S+);", command):
        status, lines = answers.get(key, (0, []))
        out.append(f"{nonce} begin {key}")
        out.extend(lines)
        if key == die_after:
            return "\n".join(out) + "\n"
        out.append("")
        out.append(f"{nonce} end {key} {status}")
    return "\n".join(out) + "\n"


def is_diag(command: str) -> bool:
    return "vigil-diag-" in command


class TestPureParts(unittest.TestCase):
    def test_parse_show_and_summary(self):
        text = "Id=a.service\nActiveState=failed\nExecStart={ path=/bin/false ; argv[]=/bin/false }\nnoise\n"
        info = dg.parse_systemctl_show(text)
        self.assertEqual(info["ActiveState"], "failed")
        self.assertEqual(info["ExecStart"], "{ path=/bin/false ; argv[]=/bin/false }")
        self.assertNotIn("noise", info)
        self.assertEqual(dg.summarize_unit(["SubState=failed", "ActiveState=failed", "Result=exit-code", "Other=1"]),
                         "ActiveState=failed, SubState=failed, Result=exit-code")

    def test_unit_name_mangling(self):
        self.assertEqual(dg.unit_name("web"), "web.service")
        self.assertEqual(dg.unit_name("getty@tty1"), "getty@tty1.service")
        self.assertEqual(dg.unit_name("default.target"), "default.target")
        self.assertEqual(dg.unit_name("a.socket"), "a.socket")

    def test_systemctl_command_is_the_reference_quoting(self):
        self.assertEqual(dg.systemctl_command("start x"), "systemctl start x")
        self.assertEqual(dg.systemctl_command("start 'x'", "alice"),
                         "su -l alice --shell /bin/sh -c $'XDG_RUNTIME_DIR=/run/user/`id -u` systemctl --user start \\'x\\''")

    def test_sections(self):
        keys = [s.key for s in dg.unit_sections("web")]
        self.assertEqual(keys, ["unit", "failed", "jobs", "journal"])
        journal = dg.unit_sections("web")[-1]
        self.assertEqual(journal.command, "journalctl --sync >/dev/null 2>&1 || true; journalctl -u web -n 20 --no-pager")
        user = dg.unit_sections("web", "alice")
        self.assertEqual([s.key for s in user], ["unit", "failed-user", "failed", "jobs", "journal"])
        self.assertIn("systemctl --user list-jobs --no-legend --no-pager", user[3].command)
        self.assertIn("systemctl --user --no-pager show web -p LoadState", user[0].command)
        self.assertIn("_SYSTEMD_USER_UNIT=web.service + USER_UNIT=web.service", user[-1].command)
        self.assertEqual([s.key for s in dg.port_sections()], ["failed", "listening", "journal"])
        # a hostile unit name stays one word
        self.assertIn("-u 'a; reboot'", dg.unit_sections("a; reboot")[-1].command)

    def test_generated_command_in_real_bash(self):
        sections = [
            dg.Section("ok", "ok", "printf 'one\\ntwo\\n'"),
            dg.Section("noeol", "noeol", "printf 'last line without newline'"),
            dg.Section("fails", "fails", "echo partial; exit 3"),
            dg.Section("missing", "missing", "no-such-command-vigil"),
            dg.Section("slow", "slow", "echo before; sleep 5; echo after"),
            dg.Section("user", "user", dg.systemctl_command("show x", "nosuchuser-vigil")),
            dg.Section("stdin", "stdin", "cat"),
        ]
        nonce = dg.new_nonce()
        out = run_bash(dg.build_command(sections, nonce, section_timeout=1))
        r = {x.key: x for x in dg.parse_output(sections, nonce, out)}
        self.assertEqual((r["ok"].status, r["ok"].lines), (0, ["one", "two"]))
        self.assertEqual((r["noeol"].status, r["noeol"].lines), (0, ["last line without newline"]))
        self.assertEqual((r["fails"].status, r["fails"].lines), (3, ["partial"]))
        self.assertEqual(r["missing"].status, 127)
        self.assertIn("not found", " ".join(r["missing"].lines))
        self.assertEqual((r["slow"].status, r["slow"].lines), (124, ["before"]))
        self.assertNotEqual(r["user"].status, 0)  # su fails: reported, the later sections still run
        self.assertEqual((r["stdin"].status, r["stdin"].lines), (0, []))  # stdin is /dev/null

    def test_forged_markers_and_cut_output(self):
        sections = dg.unit_sections("web")
        nonce = "vigil-diag-0123456789abcdef"
        forged = "vigil-diag-ffffffffffffffff end journal 0"
        out = (f"junk before\n{nonce} begin unit\nActiveState=failed\n\n{nonce} end unit 0\n"
               f"{nonce} begin journal\n{forged}\n{nonce} end unit 0\nline 2\n")
        r = {x.key: x for x in dg.parse_output(sections, nonce, out)}
        self.assertEqual(r["unit"].status, 0)
        self.assertEqual(r["failed"], dg.Result("failed", sections[1].title, None, []))
        self.assertIsNone(r["journal"].status)  # its end marker never came
        self.assertEqual(r["journal"].lines, [forged, f"{nonce} end unit 0", "line 2"])

    def test_format_report(self):
        results = [
            dg.Result("unit", "unit web", 0, ["ActiveState=failed", "SubState=failed", "Result=exit-code"]),
            dg.Result("failed", "failed units (systemctl --failed --no-legend)", 0,
                      ["web.service loaded failed failed Web"]),
            dg.Result("listening", "listening TCP sockets (ss -Hltnp)", 127, ["bash: line 1: ss: command not found"]),
            dg.Result("journal", "last journal lines of web (...)", 0, ["x\x1b[31mred\x07", "y" * 1000]),
        ]
        text = dg.format_report("server", results, 0.25)
        lines = text.splitlines()
        self.assertEqual(lines[0], "diagnostics of server (collected in 0.25 s):")
        self.assertEqual(lines[1], "  unit web: ActiveState=failed, SubState=failed, Result=exit-code")
        self.assertEqual(lines[2:4], ["  failed units (systemctl --failed --no-legend):",
                                      "    web.service loaded failed failed Web"])
        self.assertEqual(lines[5], "    (not available on this machine: bash: line 1: ss: command not found)")
        self.assertEqual(lines[7], "    x?[31mred?")
        self.assertEqual(len(lines[8]), 4 + dg.LINE_MAX)
        self.assertTrue(lines[8].endswith("..."))

        empty = dg.format_report("server", [dg.Result("failed", "failed units", 0, []),
                                            dg.Result("journal", "journal", None, []),
                                            dg.Result("x", "x", None, ["a"]),
                                            dg.Result("y", "y", 124, []),
                                            dg.Result("z", "z", 5, ["oops"])])
        self.assertEqual(empty.splitlines()[1:], [
            "  failed units:", "    (none)",
            "  journal:", "    (no answer: the diagnostics were cut short)",
            "  x:", "    a", "    (cut short)",
            "  y:", "    (timed out)",
            "  z:", "    oops", "    (exit code 5)",
        ])
        many = dg.format_report("s", [dg.Result("failed", "f", 0, [f"u{i}" for i in range(100)])])
        self.assertIn("    ... (60 more lines)", many.splitlines())
        huge = dg.format_report("s", [dg.Result(f"k{i}", "t", 0, ["z" * 300] * 40) for i in range(10)])
        self.assertLessEqual(len(huge), dg.TEXT_MAX)
        self.assertTrue(huge.endswith("(diagnostics cut at 16 KiB)"))
        self.assertEqual(dg.format_report("s", [], error="gone\nreally").splitlines(),
                         ["diagnostics of s:", "  could not collect them: gone really"])
        self.assertEqual(dg.with_diagnostics("msg", None), "msg")
        self.assertEqual(dg.with_diagnostics("msg", "rep"), "msg\nrep")


class DiagCase(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self._real = machine_mod.time
        machine_mod.time = self.clock
        BaseMachine.failure_diagnostics = True

    def tearDown(self):
        machine_mod.time = self._real
        BaseMachine.failure_diagnostics = True

    def connected(self, shell):
        d, ch, out = make_driver(shell=shell)
        m = d.machines[0]
        m.connect()
        return m, ch, out


class TestUnitWaits(DiagCase):
    ANSWERS = {
        "unit": (0, ["LoadState=loaded", "ActiveState=failed", "SubState=failed", "Result=exit-code",
                     "ExecMainCode=1", "ExecMainStatus=3", "NRestarts=0"]),
        "failed": (0, ["fail.service loaded failed failed fail.service"]),
        "journal": (0, FAILED_JOURNAL),
    }

    def test_failed_unit_names_it_and_carries_its_journal(self):
        def shell(m, c):
            return (0, guest_answer(c, self.ANSWERS)) if is_diag(c) else (0, "ActiveState=failed")

        m, ch, out = self.connected(shell)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_unit("fail.service")
        text = str(cm.exception).splitlines()
        self.assertEqual(text[0], 'unit "fail.service" reached state "failed"')
        self.assertTrue(text[1].startswith("diagnostics of server (collected in "))
        self.assertEqual(text[2], "  unit fail.service: LoadState=loaded, ActiveState=failed, SubState=failed, "
                                  "Result=exit-code, ExecMainCode=1, ExecMainStatus=3, NRestarts=0")
        self.assertIn("    fail.service loaded failed failed fail.service", text)
        self.assertIn("  last journal lines of fail.service (journalctl -u fail.service -n 20 --no-pager):", text)
        for line in FAILED_JOURNAL:
            self.assertIn("    " + line, text)
        self.assertEqual(cm.exception.diagnostics, "\n".join(text[1:]))
        # one bounded guest command, without callbacks or log lines of its own
        diag = [c for c in ch.kinds("M_EXECUTE") if is_diag(c[2]["command"])]
        self.assertEqual(len(diag), 1)
        self.assertEqual((diag[0][2]["timeout_s"], diag[0][2]["wait_ms"]), (dg.TOTAL_TIMEOUT_S, 15000))
        self.assertFalse([ln for ln in plain(out) if "must succeed" in ln or "vigil-diag" in ln])

    def test_the_top_level_report_shows_every_line_after_bangs(self):
        def shell(m, c):
            return (0, guest_answer(c, self.ANSWERS)) if is_diag(c) else (0, "ActiveState=failed")

        d, ch, out = make_driver(shell=shell, tests='server.wait_for_unit("fail.service")\n')
        with self.assertRaises(SystemExit):
            d.test_script()
        lines = plain(out)
        self.assertIn('!!! RequestedAssertionFailed: unit "fail.service" reached state "failed"', lines)
        self.assertIn("!!!     " + FAILED_JOURNAL[1], lines)
        self.assertIn('!!!   File "<string>", line 1, in <module>', lines)
        self.assertTrue(d.failure.startswith('RequestedAssertionFailed: unit "fail.service" reached state "failed"\n'))

    def test_timeout_and_inactive_get_diagnostics_too(self):
        answers = dict(self.ANSWERS, unit=(0, ["ActiveState=activating", "SubState=start"]),
                       jobs=(0, ["7 slow.service start running"]))

        def shell(m, c):
            return (0, guest_answer(c, answers)) if is_diag(c) else (0, "ActiveState=activating")

        m, _, _ = self.connected(shell)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_unit("slow", timeout=3)
        text = str(cm.exception).splitlines()
        self.assertEqual(text[0], "action timed out after 3.00 seconds (timeout=3)")
        self.assertIn("  unit slow: ActiveState=activating, SubState=start", text)
        self.assertEqual(text[text.index("  pending jobs (systemctl list-jobs --no-legend):") + 1],
                         "    7 slow.service start running")

        def inactive(m, c):
            if is_diag(c):
                return 0, guest_answer(c, dict(self.ANSWERS, unit=(0, ["LoadState=not-found", "ActiveState=inactive"])))
            return (0, "No jobs running.") if "list-jobs" in c else (0, "ActiveState=inactive")

        m, _, _ = self.connected(inactive)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_unit("nosuch")
        self.assertIn("  unit nosuch: LoadState=not-found, ActiveState=inactive", str(cm.exception).splitlines())

    def test_user_unit(self):
        answers = dict(self.ANSWERS, **{"failed-user": (0, ["u.service loaded failed failed U"])})

        def shell(m, c):
            return (0, guest_answer(c, answers)) if is_diag(c) else (0, "ActiveState=failed")

        m, ch, out = self.connected(shell)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_unit("u", user="alice")
        self.assertIn("server: waiting for unit u with user alice", plain(out))
        text = str(cm.exception).splitlines()
        self.assertEqual(text[0], 'unit "u" reached state "failed"')
        self.assertIn("  failed units of user alice (systemctl --user --failed --no-legend):", text)
        self.assertIn("    u.service loaded failed failed U", text)
        probe = ch.kinds("M_EXECUTE")[-2][2]["command"]  # the reference's ActiveState probe, as alice
        self.assertIn("su -l alice", probe)

    def test_require_unit_state(self):
        def shell(m, c):
            return (0, guest_answer(c, self.ANSWERS)) if is_diag(c) else (0, "ActiveState=failed\nSubState=failed")

        m, _, _ = self.connected(shell)
        m.require_unit_state("x", "failed")  # matching: no diagnostics, no extra command
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.require_unit_state("x")
        text = str(cm.exception).splitlines()
        self.assertEqual(text[0], "Expected unit 'x' to to be in state 'active' but it is in state 'failed'")
        self.assertIn("    " + FAILED_JOURNAL[3], text)

    def test_port_wait(self):
        answers = {"failed": (0, []), "listening": (0, ["LISTEN 0 5 0.0.0.0:22 0.0.0.0:*"]),
                   "journal": (0, ["Nov 25 server web[7]: bind: Address already in use"])}

        def shell(m, c):
            return (0, guest_answer(c, answers)) if is_diag(c) else (1, "")

        m, _, out = self.connected(shell)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_open_port(8080, timeout=2)
        text = str(cm.exception).splitlines()
        self.assertEqual(text[0], "action timed out after 2.00 seconds (timeout=2)")
        self.assertEqual(text[2:4], ["  failed units (systemctl --failed --no-legend):", "    (none)"])
        self.assertIn("    LISTEN 0 5 0.0.0.0:22 0.0.0.0:*", text)
        self.assertIn("    Nov 25 server web[7]: bind: Address already in use", text)
        self.assertIn("server: waiting for TCP port 8080 on localhost", plain(out))

    def test_machine_without_systemd_gets_its_console_tail(self):
        missing = (127, ["bash: line 1: systemctl: command not found"])

        def shell(m, c):
            if is_diag(c):
                return 0, guest_answer(c, {"failed": missing, "listening": missing, "journal": missing})
            return 1, ""

        m, _, _ = self.connected(shell)
        m.full_console_log = [f"console line {i}" for i in range(30)]
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_open_port(80, timeout=1)
        text = str(cm.exception).splitlines()
        self.assertIn("    (not available on this machine: bash: line 1: systemctl: command not found)", text)
        i = text.index("  last 20 console lines (no systemd tools on this machine):")
        self.assertEqual(text[i + 1:], [f"    console line {n}" for n in range(10, 30)])
        # one tool present: no console tail
        self.assertEqual(dg.console_fallback([dg.Result("a", "a", 127, []), dg.Result("b", "b", 0, [])], ["x"]), [])
        self.assertEqual(dg.console_fallback([], ["x"]), [])

    def test_switched_off_gives_the_reference_text(self):
        import vigil

        m, ch, _ = self.connected(lambda m, c: (0, "ActiveState=failed"))
        vigil.set_failure_diagnostics(False)
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_unit("x.service")
        self.assertEqual(str(cm.exception), 'unit "x.service" reached state "failed"')
        self.assertFalse([c for c in ch.kinds("M_EXECUTE") if is_diag(c[2]["command"])])


class TestDiagnosticsNeverMask(DiagCase):
    def error_of(self, shell, fail_diag=None):
        m, ch, _ = self.connected(shell)
        if fail_diag is not None:
            real = ch.request

            def request(kind, machine, **fields):
                if kind in ("M_EXECUTE", "M_READ") and is_diag(fields["command"]):
                    raise fail_diag
                return real(kind, machine, **fields)

            ch.request = request
        with self.assertRaises(RequestedAssertionFailed) as cm:
            m.wait_for_unit("x.service")
        return str(cm.exception).splitlines()

    def test_no_answer_in_time(self):
        text = self.error_of(lambda m, c: (0, "ActiveState=failed"), ChannelError(-110, "no answer in time (wait_ms)"))
        self.assertEqual(text, ['unit "x.service" reached state "failed"', "diagnostics of server:",
                                "  could not collect them: no answer in time"])

    def test_worker_or_supervisor_gone(self):
        for err in (ChannelLost(-32, "supervisor gone"), ChannelError(-5, "machine worker restarted"),
                    MachineError("weird"), ValueError("bug")):
            text = self.error_of(lambda m, c: (0, "ActiveState=failed"), err)
            self.assertEqual(text[0], 'unit "x.service" reached state "failed"')
            self.assertTrue(text[2].startswith("  could not collect them: "), text)

    def test_garbage_output(self):
        text = self.error_of(lambda m, c: (0, "ActiveState=failed") if not is_diag(c) else (0, "\x00garbage\n" * 5))
        self.assertEqual(text[0], 'unit "x.service" reached state "failed"')
        self.assertIn("    (no answer: the diagnostics were cut short)", text)

    def test_cut_short_inside_the_journal(self):
        def shell(m, c):
            if is_diag(c):
                return 124, guest_answer(c, {"journal": (0, ["first", "second"])}, die_after="journal")
            return 0, "ActiveState=failed"

        text = self.error_of(shell)
        self.assertEqual(text[-3:], ["    first", "    second", "    (cut short)"])

    def test_not_connected(self):
        d, ch, _ = make_driver(shell=lambda m, c: (0, ""))
        m = d.machines[0]
        self.assertEqual(m._diagnose(dg.port_sections()),
                         "diagnostics of server:\n  could not collect them: the machine is not connected")
        self.assertFalse(ch.kinds("M_EXECUTE"))


class TestJournal(DiagCase):
    def test_command_and_output(self):
        import vigil

        d, ch, _ = make_driver(shell=lambda m, c: (0, "line 1\nline 2\n"))
        netfaults.bind(d)
        try:
            self.assertEqual(vigil.journal(d.machines[0]), "line 1\nline 2\n")
            self.assertEqual(ch.kinds("M_EXECUTE")[-1][2]["command"], "journalctl --no-pager --quiet --boot 2>&1")
            vigil.journal("server", unit="a b", lines=5, since_boot=False)
            self.assertEqual(ch.kinds("M_EXECUTE")[-1][2]["command"],
                             "journalctl --no-pager --quiet --unit 'a b' --lines 5 2>&1")
            for bad in (-1, "5", True):
                with self.assertRaises(ValueError):
                    vigil.journal("server", lines=bad)
        finally:
            netfaults.bind(None)

    def test_failure(self):
        import vigil

        d, _, _ = make_driver(shell=lambda m, c: (127, "bash: line 1: journalctl: command not found\n"))
        netfaults.bind(d)
        try:
            with self.assertRaises(MachineError) as cm:
                vigil.journal("server")
            self.assertEqual(str(cm.exception), "vigil.journal: `journalctl --no-pager --quiet --boot 2>&1` failed on "
                                                "server (exit code 127): bash: line 1: journalctl: command not found")
        finally:
            netfaults.bind(None)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    unittest.main(verbosity=1)
