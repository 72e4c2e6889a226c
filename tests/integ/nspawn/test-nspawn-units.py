#!/usr/bin/python3
# Proves the reference's systemd helpers (wait_for_unit with and without user=, get_unit_info/property, require_unit_state,
# systemctl, start_job/stop_job, wait_for_open_port) work against real systemd in an nspawn node, and that a failed unit
# wait reports the unit's journal lines and the failed units, bounded even when journalctl hangs; plus vigil.journal().
# Why it matters: these helpers are most of what NixOS tests call, and a failed unit is the most common test failure.
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from vmrun import Tap, junit_cases, skip_unless_nspawn, spec_run  # noqa: E402

SCRIPT = r'''
import re
import shlex
import time

import vigil
from test_driver.errors import RequestedAssertionFailed


def write(path, text, owner=None):
    server.succeed(f"mkdir -p $(dirname {path})", f"printf '%s' {shlex.quote(text)} > {path}")
    if owner:
        server.succeed(f"chown -R {owner}: /home/{owner}")


def figure(name, value):
    print(f"FIGURE {name} {value:.2f}", flush=True)


tic = time.monotonic()
start_all()
server.wait_for_unit("multi-user.target")
figure("boot_to_multi_user_s", time.monotonic() - tic)

with subtest("a transient service starts and its port opens"):
    server.succeed("systemd-run --unit=web -p Type=simple python3 -m http.server 8080")
    server.wait_for_unit("web.service")
    server.wait_for_open_port(8080)
    server.succeed("python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8080/\").read()'")
    server.require_unit_state("web.service")
    t.assertEqual(server.get_unit_property("web.service", "Type"), "simple")
    info = server.get_unit_info("web.service")
    t.assertEqual((info["Id"], info["ActiveState"], info["SubState"]), ("web.service", "active", "running"))

with subtest("start_job, stop_job, systemctl on a unit file"):
    write("/etc/systemd/system/echo.service",
          "[Unit]\nDescription=vigil echo\n[Service]\nExecStart=/usr/bin/python3 -m http.server 8081\n")
    server.succeed("systemctl daemon-reload")
    t.assertEqual(server.get_unit_property("echo.service", "ActiveState"), "inactive")
    t.assertEqual(server.start_job("echo.service")[0], 0)
    server.wait_for_unit("echo.service")
    server.wait_for_open_port(8081)
    t.assertEqual(server.stop_job("echo.service")[0], 0)
    server.require_unit_state("echo.service", "inactive")
    server.wait_for_closed_port(8081)
    status, out = server.systemctl("is-active echo.service")
    t.assertEqual((status, out.strip()), (3, "inactive"))
    t.assertNotEqual(server.start_job("nosuch.service")[0], 0)  # never raises
    with t.assertRaises(RequestedAssertionFailed) as cm:
        server.require_unit_state("echo.service")
    t.assertEqual(str(cm.exception).splitlines()[0],
                  "Expected unit 'echo.service' to to be in state 'active' but it is in state 'inactive'")
    t.assertIn("unit echo.service: LoadState=loaded, ActiveState=inactive", cm.exception.diagnostics)
    with t.assertRaises(RequestedAssertionFailed) as cm:
        server.wait_for_unit("nosuch.service")
    t.assertEqual(str(cm.exception).splitlines()[0], 'unit "nosuch.service" is inactive and there are no pending jobs')
    t.assertIn("LoadState=not-found", cm.exception.diagnostics)

with subtest("a failing unit: the error names it and carries its journal"):
    write("/etc/systemd/system/broken.service",
          "[Service]\nExecStart=/bin/sh -c 'echo vigil-marker-7781 cannot open /etc/broken.conf >&2; exit 3'\n")
    server.succeed("systemctl daemon-reload", "systemctl start --no-block broken.service")
    with t.assertRaises(RequestedAssertionFailed) as cm:
        server.wait_for_unit("broken.service", timeout=60)
    e = cm.exception
    t.assertEqual(str(e).splitlines()[0], 'unit "broken.service" reached state "failed"')
    t.assertIn("vigil-marker-7781 cannot open /etc/broken.conf", e.diagnostics)
    t.assertIn("Result=exit-code", e.diagnostics)
    t.assertIn("ExecMainStatus=3", e.diagnostics)
    failed = e.diagnostics.split("failed units (systemctl --failed --no-legend):")[1].split("\n  last journal")[0]
    t.assertIn("broken.service", failed)
    figure("diagnostics_s", float(re.search(r"collected in ([0-9.]+) s", e.diagnostics)[1]))

with subtest("a unit stuck activating: the timeout says what it waits for"):
    write("/etc/systemd/system/slow.service", "[Service]\nType=oneshot\nExecStart=/bin/sleep 600\n")
    server.succeed("systemctl daemon-reload", "systemctl start --no-block slow.service")
    with t.assertRaises(RequestedAssertionFailed) as cm:
        server.wait_for_unit("slow.service", timeout=3)
    t.assertRegex(str(cm.exception).splitlines()[0], r"^action timed out after \d+\.\d\d seconds \(timeout=3\)$")
    t.assertIn("ActiveState=activating, SubState=start", cm.exception.diagnostics)
    jobs = cm.exception.diagnostics.split("pending jobs (systemctl list-jobs --no-legend):")[1].split("\n  last journal")[0]
    t.assertRegex(jobs, r"slow\.service +start +running")
    server.succeed("systemctl stop slow.service; systemctl reset-failed slow.service || true")

with subtest("a user unit under a lingering user"):
    if server.execute("ls /usr/lib/*/security/pam_systemd.so")[0] != 0:
        # A tree without libpam-systemd: nothing sets the user manager's XDG_RUNTIME_DIR (requests-script.md §2).
        print("NOTE no pam_systemd.so in the tree: user@.service gets XDG_RUNTIME_DIR from a drop-in", flush=True)
        write("/etc/systemd/system/user@.service.d/vigil-xdg.conf", "[Service]\nEnvironment=XDG_RUNTIME_DIR=/run/user/%i\n")
        server.succeed("systemctl daemon-reload")
    server.succeed("useradd -m alice", "loginctl enable-linger alice")
    uid = server.succeed("id -u alice").strip()
    server.wait_for_unit(f"user@{uid}.service", timeout=60)
    write("/home/alice/.config/systemd/user/hello.service",
          "[Service]\nExecStart=/usr/bin/python3 -m http.server 8090\n", owner="alice")
    write("/home/alice/.config/systemd/user/oops.service",
          "[Service]\nExecStart=/bin/sh -c 'echo vigil-user-marker-4242 >&2; exit 4'\n", owner="alice")
    t.assertEqual(server.systemctl("daemon-reload", user="alice")[0], 0)
    t.assertEqual(server.start_job("hello.service", user="alice")[0], 0)
    server.wait_for_unit("hello.service", user="alice", timeout=60)
    server.wait_for_open_port(8090)
    t.assertEqual(server.get_unit_property("hello.service", "ActiveState", user="alice"), "active")
    t.assertEqual(server.get_unit_info("hello.service", user="alice")["SubState"], "running")
    t.assertEqual(server.stop_job("hello.service", user="alice")[0], 0)
    server.wait_for_closed_port(8090)
    server.systemctl("start --no-block oops.service", user="alice")
    with t.assertRaises(RequestedAssertionFailed) as cm:
        server.wait_for_unit("oops.service", user="alice", timeout=60)
    t.assertEqual(str(cm.exception).splitlines()[0], 'unit "oops.service" reached state "failed"')
    t.assertIn("vigil-user-marker-4242", cm.exception.diagnostics)
    mine = cm.exception.diagnostics.split("failed units of user alice")[1].split("\n  failed units (")[0]
    t.assertIn("oops.service", mine)
    t.assertIn("oops.service", vigil.journal(server, unit="oops.service", user="alice"))
    t.assertNotIn("oops.service", vigil.journal(server, unit="oops.service"))  # a system unit of that name: none

with subtest("vigil.journal"):
    t.assertIn("web.service", vigil.journal(server, unit="web.service"))
    t.assertLessEqual(len(vigil.journal(server, lines=3).splitlines()), 3)
    t.assertIn("vigil-marker-7781", vigil.journal(server))
    t.assertIn("vigil-marker-7781", vigil.journal("server", unit="broken.service", since_boot=False))
    t.assertNotIn("vigil-marker-7781", vigil.journal(server, unit="echo.service"))

with subtest("a hanging journalctl cannot hang the diagnostics"):
    server.succeed("mv /usr/bin/journalctl /usr/bin/journalctl.real",
                   "printf '#!/bin/sh\\nsleep 300\\n' > /usr/bin/journalctl", "chmod +x /usr/bin/journalctl")
    tic = time.monotonic()
    with t.assertRaises(RequestedAssertionFailed) as cm:
        server.wait_for_unit("broken.service", timeout=30)
    took = time.monotonic() - tic
    figure("hung_journal_error_s", took)
    t.assertEqual(str(cm.exception).splitlines()[0], 'unit "broken.service" reached state "failed"')
    t.assertIn("(timed out)", cm.exception.diagnostics)
    t.assertLess(took, 20)
    server.succeed("mv /usr/bin/journalctl.real /usr/bin/journalctl")
    server.succeed("true")  # the shell still answers

with subtest("an unexpected unit failure fails the test"):
    server.wait_for_unit("broken.service")
'''


def main() -> None:
    tree = skip_unless_nspawn()
    tap = Tap()
    tic = time.monotonic()
    r = spec_run(SCRIPT, {"nodes": {"server": {"backend": "nspawn", "tree": tree}}}, "--junit", "junit.xml",
                 timeout=300)
    print(f"# vigil run took {time.monotonic() - tic:.1f} s", flush=True)
    for m in re.finditer(r"^FIGURE (\S+) (\S+)$", r.stdout, re.M):
        print(f"# {m[1]} = {m[2]}", flush=True)
    for m in re.finditer(r"^NOTE (.*)$", r.stdout, re.M):
        print(f"# note: {m[1]}", flush=True)
    log = r.log()
    cases = junit_cases(r.out / "junit.xml")
    tap.check(r.rc == 1, "the run fails (exit 1) because of the last subtest's failed unit", r.tail())
    for sub in ("a transient service starts and its port opens", "start_job, stop_job, systemctl on a unit file",
                "a failing unit: the error names it and carries its journal",
                "a unit stuck activating: the timeout says what it waits for", "a user unit under a lingering user",
                "vigil.journal", "a hanging journalctl cannot hang the diagnostics"):
        tap.check(cases.get(sub) is False, f"subtest passed: {sub}", f"{cases}\n{log[-4000:]}")
    tap.check(cases.get("an unexpected unit failure fails the test") is True, "the last subtest is the one that failed",
              str(cases))

    # What the user reads on the terminal: the reference's line, then the diagnostics, each line after `!!! `.
    lines = log.splitlines()
    top = [i for i, ln in enumerate(lines) if ln == '!!! RequestedAssertionFailed: unit "broken.service" reached state "failed"']
    tap.check(bool(top), "the top-level error is the reference's text", log[-3000:])
    after = "\n".join(lines[top[-1]:top[-1] + 60]) if top else ""
    tap.check(re.search(r"^!!! diagnostics of server \(collected in [0-9.]+ s\):$", after, re.M) is not None,
              "followed by the diagnostics header", after)
    tap.check(re.search(r"^!!!   unit broken.service: LoadState=loaded, ActiveState=failed, SubState=failed, "
                        r"Result=exit-code, ExecMainCode=1, ExecMainStatus=3", after, re.M) is not None,
              "the unit's state in one line", after)
    failed = re.search(r"^!!!   failed units \(systemctl --failed --no-legend\):\n((?:!!!     .*\n)+)", after + "\n", re.M)
    tap.check(failed is not None and "broken.service" in failed[1], "the failed units list names it", after)
    tap.check(re.search(r"^!!!     .*vigil-marker-7781 cannot open /etc/broken.conf$", after, re.M) is not None,
                        "the unit's own journal line is in the error", after)
    tap.check(re.search(r"^!!!     .*broken.service: Main process exited, code=exited, status=3", after, re.M)
              is not None, "and systemd's journal line about the exit", after)
    tap.check("Traceback" in log and '!!!   File "<string>", line' in log, "the traceback points at the script line")
    tap.done()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
