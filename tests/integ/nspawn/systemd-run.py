#!/usr/bin/python3
# Proves vigil works as a systemd service (systemd-run --wait --pipe -p Type=notify -p WatchdogSec= in a container booting real systemd): READY=1, STATUS=, WATCHDOG=1, exit 0 only on a passing test, journalctl VIGIL_MACHINE=a tells the story, systemctl stop leaves nothing behind.
# Why: that is how CI systems and nix builders run vigil, and PID 1 on this host is not systemd, so only a container can show it for real.
"""How: systemd-nspawn boots the tools/mkdebian tree (--volatile=overlay, no network) with the source tree,
the build dir, the tiny guest and a scratch dir bound in at the same paths (the binaries have
VIGIL_SOURCE_ROOT compiled in). Commands reach the container through nsenter on its PID 1 (the child of
systemd-nspawn whose NSpid is 1): without systemd-machined on the host there is no `machinectl shell` or
`systemd-run -M`, and nsenter needs no extra unit in the tree. The container's tools/mkguest could not
rebuild the guest (no host kernel in the tree), so VIGIL_MKGUEST points at a script printing the bound one.

argv[1]: the vigil binary (meson passes it). Exit 0 pass, 1 fail, 77 skip (not root, no nspawn/nsenter,
no tree or guest)."""

import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SOURCE_ROOT = Path(os.environ.get("VIGIL_SOURCE_ROOT") or Path(__file__).resolve().parents[3])
VIGIL = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VIGIL", "")).resolve()
BUILD_ROOT = Path(os.environ.get("VIGIL_BUILD_ROOT") or VIGIL.parent.parent)
WATCHDOG_SEC = 4
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANITIZER_ENV = ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS")

PASS_SCRIPT = r'''
import time
start_all()
with subtest("say hi"):
    assert a.succeed("echo hi") == "hi\n"
    # Long enough for several watchdog periods and for the STATUS= poller to see the subtest.
    time.sleep(%d)
a.shutdown()
''' % (2 * WATCHDOG_SEC)

STOP_SCRIPT = r'''
import time
start_all()
a.succeed("true")
with subtest("idle"):
    time.sleep(120)
'''

FAIL_SCRIPT = r'''
start_all()
with subtest("must fail"):
    a.succeed("echo about to fail; false")
'''

n = 0
failed = 0


def check(ok, what, detail=""):
        global n, failed
        n += 1
        failed += not ok
        print(f"{'ok' if ok else 'not ok'} {n} - {what}", flush=True)
        if not ok:
                for line in str(detail).strip().splitlines()[-40:]:
                        print(f"#   {line}", flush=True)


def skip(why):
        print(f"1..0 # SKIP {why}", flush=True)
        sys.exit(77)


def build_tool(name, skip_codes):
        r = subprocess.run([str(SOURCE_ROOT / "tools" / name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=1700)
        if r.returncode in skip_codes:
                skip(f"tools/{name} cannot build here (exit {r.returncode}): {r.stderr.strip()[-300:]}")
        if r.returncode != 0:
                print(f"not ok 1 - tools/{name} failed (exit {r.returncode})\n#   {r.stderr.strip()[-500:]}")
                sys.exit(1)
        return Path(r.stdout.strip())


def die_with_parent():
        """nspawn (and with it the container) goes when this test goes, even by SIGKILL."""
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Container:
        def __init__(self, tree, binds_ro, binds_rw, log):
                self.name = "vigil-sr-%06x" % random.getrandbits(24)
                argv = ["systemd-nspawn", "--quiet", "--boot", f"--directory={tree}", "--volatile=overlay",
                        f"--machine={self.name}", "--hostname=sr", "--register=no", "--keep-unit",
                        "--private-network", "--console=pipe"]
                argv += [f"--bind-ro={p}" for p in binds_ro] + [f"--bind={p}" for p in binds_rw]
                self.t0 = time.monotonic()
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             preexec_fn=die_with_parent)
                self.pid1 = None

        def find_pid1(self, timeout=20):
                """The container's init: a descendant of nspawn whose PID in its own namespace is 1."""
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self.proc.poll() is None:
                        todo = [self.proc.pid]
                        while todo:
                                pid = todo.pop()
                                try:
                                        status = Path(f"/proc/{pid}/status").read_text()
                                        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                                except OSError:
                                        continue
                                nspid = [l.split()[1:] for l in status.splitlines() if l.startswith("NSpid:")]
                                if pid != self.proc.pid and nspid and len(nspid[0]) > 1 and nspid[0][-1] == "1":
                                        self.pid1 = pid
                                        return pid
                                todo += [int(k) for k in kids]
                        time.sleep(0.05)
                return None

        def run(self, *cmd, env=(), timeout=60, **kw):
                argv = ["nsenter", "-t", str(self.pid1), "-a", "-r", "-w", "env", "-i", f"PATH={PATH}", *env, *cmd]
                return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, errors="replace", timeout=timeout, **kw)

        def wait_booted(self, timeout=60):
                deadline = time.monotonic() + timeout
                state = ""
                while time.monotonic() < deadline and self.proc.poll() is None:
                        state = self.run("systemctl", "is-system-running").stdout.strip()
                        if state in ("running", "degraded"):
                                return state, time.monotonic() - self.t0
                        time.sleep(0.05)
                return state, None

        def stop(self):
                if self.proc.poll() is None:
                        self.proc.send_signal(signal.SIGTERM)  # nspawn: orderly poweroff of the container
                        try:
                                self.proc.wait(timeout=15)
                        except subprocess.TimeoutExpired:
                                self.proc.kill()
                                self.proc.wait()


def poll_unit(box, unit, stop, seen):
        """Samples the unit's state while systemd-run waits for it."""
        while not stop.is_set():
                r = box.run("systemctl", "show", unit, "-p", "ActiveState", "-p", "SubState", "-p", "StatusText",
                            "-p", "WatchdogTimestampMonotonic", "-p", "ExecMainStartTimestampMonotonic",
                            "-p", "ActiveEnterTimestampMonotonic", timeout=20)
                props = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
                if props.get("ActiveState") not in (None, "inactive"):
                        seen.append(props)
                stop.wait(0.2)


def unit_argv(tmp, unit, script, guest_tool, *props):
        sanitizers = [f"--setenv={k}={os.environ[k]}" for k in SANITIZER_ENV if k in os.environ]
        return ["systemd-run", "--wait", "--pipe", f"--unit={unit}", "-p", "Type=notify", *props,
                "-p", f"WatchdogSec={WATCHDOG_SEC}", "-p", "TimeoutStartSec=120", f"--working-directory={tmp}",
                f"--setenv=VIGIL_MKGUEST={guest_tool}", f"--setenv=PATH={PATH}", *sanitizers,
                str(VIGIL), "run", "--node", "a", str(script), "-o", str(tmp / f"out-{unit}"),
                "--global-timeout", "200"]


def run_unit(box, tmp, unit, script, guest_tool):
        argv = unit_argv(tmp, unit, script, guest_tool)
        stop, seen = threading.Event(), []
        poller = threading.Thread(target=poll_unit, args=(box, unit, stop, seen))
        poller.start()
        t0 = time.monotonic()
        try:
                r = box.run(*argv, timeout=280)
        finally:
                stop.set()
                poller.join()
        return r, seen, time.monotonic() - t0


def stop_unit(box, tmp, guest_tool):
        """`systemctl stop` in the middle of a test: SIGTERM to vigil alone (KillMode=mixed), which
        must stop its machines and exit by itself, so systemd has nothing left to kill."""
        unit = "vigil-stop"
        argv = unit_argv(tmp, unit, tmp / "stop.py", guest_tool, "-p", "KillMode=mixed", "-p", "TimeoutStopSec=30")
        run = subprocess.Popen(["nsenter", "-t", str(box.pid1), "-a", "-r", "-w", "env", "-i", f"PATH={PATH}", *argv],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
        try:
                deadline, status = time.monotonic() + 120, ""
                while time.monotonic() < deadline and run.poll() is None and "subtest: idle" not in status:
                        status = box.run("systemctl", "show", unit, "-p", "StatusText", "--value").stdout
                        time.sleep(0.2)
                check("subtest: idle" in status, "the test to stop reached its idle subtest", status)
                qemu = box.run("pgrep", "-c", "qemu-system").stdout.strip()
                t0 = time.monotonic()
                r = box.run("systemctl", "stop", f"{unit}.service", timeout=60)
                secs = time.monotonic() - t0
                out = run.communicate(timeout=60)[0]
        finally:
                if run.poll() is None:
                        run.kill()
                        run.wait()
        print(f"# systemctl stop: {secs:.2f} s (QEMU processes before: {qemu})")
        check(r.returncode == 0 and secs < 25, f"systemctl stop returns within the stop timeout ({secs:.1f} s)",
              r.stderr)
        check(run.returncode != 0 and "status=6" in out,
              f"systemd-run reports vigil's 'interrupted' exit status 6 (exit {run.returncode})", out)
        msgs = [e.get("MESSAGE", "") for e in journal(box, f"UNIT={unit}.service")]
        killed = [m for m in msgs if "Killing process" in m or "timed out" in m]
        check(not killed, "vigil stopped its machines itself: systemd killed nothing left over", "\n".join(killed))
        left = box.run("pgrep", "-c", "qemu-system").stdout.strip()
        check(qemu not in ("", "0") and left in ("", "0"), f"QEMU was running and is gone ({qemu} -> {left or 0})")


def journal(box, *match):
        r = box.run("journalctl", "--no-pager", "-o", "json", *match)
        return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]


SD_MESSAGE_UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"  # a start job finished: Type=notify saw READY=1


def main():
        if os.geteuid() != 0:
                skip("needs root (systemd-nspawn, nsenter)")
        for tool in ("systemd-nspawn", "nsenter"):
                if not shutil.which(tool):
                        skip(f"no {tool} (apt-get install systemd-container util-linux)")
        if not VIGIL.is_file():
                skip("no vigil binary (pass it as argv[1])")
        tree = build_tool("mkdebian", (3, 6, 7))
        guest = build_tool("mkguest", (3,))

        tmp = Path(tempfile.mkdtemp(prefix="vigil-sr-", dir="/var/tmp"))
        tmp.chmod(0o755)
        box = None
        try:
                (tmp / "pass.py").write_text(PASS_SCRIPT)
                (tmp / "fail.py").write_text(FAIL_SCRIPT)
                (tmp / "stop.py").write_text(STOP_SCRIPT)
                guest_tool = tmp / "mkguest-bound"
                guest_tool.write_text(f"#!/bin/sh\n# the tiny guest built on the host, bound in read-only\necho {guest}\n")
                guest_tool.chmod(0o755)
                log = open(tmp / "nspawn.log", "w")
                binds_ro = [SOURCE_ROOT, guest]
                if not BUILD_ROOT.is_relative_to(SOURCE_ROOT):
                        binds_ro.append(BUILD_ROOT)
                box = Container(tree, binds_ro, [tmp], log)
                if not box.find_pid1() and "File exists" in (tmp / "nspawn.log").read_text():
                        # Two containers started at the same instant race on cgroup-v1 set-up here
                        # ("Failed to create symlink /sys/fs/cgroup/cpu: File exists"): once more.
                        box.stop()
                        time.sleep(1)
                        box = Container(tree, binds_ro, [tmp], log)
                        box.find_pid1()
                if not box.pid1:
                        check(False, "the container started", (tmp / "nspawn.log").read_text())
                        return
                state, boot_s = box.wait_booted()
                check(boot_s is not None, f"the container booted to '{state}'"
                      + (f" in {boot_s:.2f} s" if boot_s else ""),
                      box.run("systemctl", "--failed", "--no-legend").stdout + (tmp / "nspawn.log").read_text())
                if boot_s is None:
                        return
                print(f"# container boot (nspawn start to '{state}'): {boot_s:.2f} s")
                if state == "degraded":
                        print("# failed units: " + box.run("systemctl", "--failed", "--no-legend").stdout.strip())
                # The tree as containers see it (tools/mkdebian's set-up, docs/debian-tree.md).
                mid = box.run("cat", "/etc/machine-id").stdout.strip()
                check(len(mid) == 32 and all(c in "0123456789abcdef" for c in mid),
                      f"the container got its own machine id in place of the empty file ({mid})")
                r = box.run("sh", "-c", "echo '192.168.1.9 probe' >> /etc/hosts && grep -c probe /etc/hosts")
                check(r.returncode == 0 and r.stdout.strip() == "1", "/etc/hosts is writable under --volatile=overlay",
                      r.stderr)
                r = box.run("journalctl", "--header", "-n", "0")
                check("/run/log/journal/" in r.stdout and "/var/log/journal/" not in r.stdout,
                      "the journal is volatile (/run/log/journal)", r.stdout[:400])
                r = box.run("systemctl", "list-units", "--no-legend", "--plain", "--state=active", "*getty*")
                check("getty@" not in r.stdout and "console-getty" not in r.stdout, "no getty runs", r.stdout)
                check(box.run("test", "-x", str(VIGIL)).returncode == 0
                      and box.run("ldd", str(VIGIL)).stdout.count("not found") == 0,
                      "vigil is there at its build path, with all its libraries",
                      box.run("ldd", str(VIGIL)).stdout)

                # A passing test.
                r, seen, secs = run_unit(box, tmp, "vigil-pass", tmp / "pass.py", guest_tool)
                print(f"# passing run: systemd-run exit {r.returncode} after {secs:.1f} s")
                if os.environ.get("VIGIL_SR_VERBOSE"):
                        print("\n".join("#   | " + l for l in (r.stdout + r.stderr).splitlines()))
                check(r.returncode == 0 and "hi" in r.stdout + r.stderr,
                      "systemd-run --wait exits 0 once the test passed", r.stdout + r.stderr)
                states = [(s.get("ActiveState"), s.get("SubState")) for s in seen]
                check(("active", "running") in states, "the unit became active/running (READY=1)",
                      sorted(set(states)))
                ready = [int(s["ActiveEnterTimestampMonotonic"]) - int(s["ExecMainStartTimestampMonotonic"])
                         for s in seen if s.get("ActiveEnterTimestampMonotonic", "0") != "0"
                         and s.get("ExecMainStartTimestampMonotonic", "0") != "0"]
                if ready:
                        print(f"# READY=1 came {ready[0] / 1e6:.2f} s after vigil started")
                status = [s.get("StatusText", "") for s in seen if s.get("StatusText")]
                check(status, "STATUS= shows in systemctl show", sorted(set(status)))
                print(f"# STATUS= seen: {sorted(set(status))}")
                sub = [t for t in status if "say hi" in t]
                check(sub, "STATUS= names the running subtest", sorted(set(status)))
                pings = {s.get("WatchdogTimestampMonotonic") for s in seen} - {None, "0"}
                check(len(pings) >= 3, f"the watchdog timestamp moved ({len(pings)} distinct values): WATCHDOG=1")
                unit_j = journal(box, "_SYSTEMD_UNIT=init.scope", "UNIT=vigil-pass.service") or \
                        journal(box, "UNIT=vigil-pass.service")
                started = [e for e in unit_j if e.get("MESSAGE_ID") == SD_MESSAGE_UNIT_STARTED]
                check(started and started[0].get("JOB_RESULT") == "done",
                      "systemd logged the start job done (Type=notify: READY=1 arrived)",
                      "\n".join(e.get("MESSAGE", "") for e in unit_j))
                wd = [e for e in unit_j if "atchdog timeout" in e.get("MESSAGE", "")]
                check(not wd, "no watchdog timeout", "\n".join(e.get("MESSAGE", "") for e in wd))

                entries = journal(box, "VIGIL_MACHINE=a")
                msgs = [e.get("MESSAGE", "") for e in entries if isinstance(e.get("MESSAGE"), str)]
                events = sorted({e.get("VIGIL_EVENT") for e in entries if e.get("VIGIL_EVENT")})
                idents = sorted({e.get("SYSLOG_IDENTIFIER") for e in entries if e.get("SYSLOG_IDENTIFIER")})
                print(f"# journalctl VIGIL_MACHINE=a: {len(entries)} entries from {idents}, events {events}")
                check(len(entries) > 0 and any(e.get("_SYSTEMD_UNIT") == "vigil-pass.service" for e in entries),
                      "journalctl VIGIL_MACHINE=a finds the run's entries (from the unit)", idents)
                check("spawned" in " ".join(events) or any("spawn" in m.lower() for m in msgs),
                      "the machine's lifecycle is there (spawned)", "\n".join(msgs[:40]) + f"\n{events}")
                anywhere = [{k: v for k, v in e.items() if k.startswith(("VIGIL_", "SYSLOG_ID", "MESSAGE"))}
                            for e in journal(box, "_SYSTEMD_UNIT=vigil-pass.service")
                            if "echo hi" in str(e.get("MESSAGE", ""))]
                check(any("echo hi" in m for m in msgs), "the command `echo hi` is there",
                      "entries of the unit that mention it, with their fields:\n"
                      + "\n".join(json.dumps(e) for e in anywhere[:10]))
                check(any("Spawning backdoor root shell" in m or "console" in m.lower() for m in msgs)
                      or any(e.get("VIGIL_EVENT") in ("ready", "connected") for e in entries),
                      "the guest's boot is there (console or ready)", "\n".join(msgs[:60]))

                # A failing test.
                r, seen, secs = run_unit(box, tmp, "vigil-fail", tmp / "fail.py", guest_tool)
                print(f"# failing run: systemd-run exit {r.returncode} after {secs:.1f} s")
                check(r.returncode != 0 and "about to fail" in r.stdout + r.stderr,
                      f"systemd-run --wait exits non-zero ({r.returncode}) when the test failed", r.stdout + r.stderr)
                fail_j = journal(box, "UNIT=vigil-fail.service")
                check(any("exit-code" in e.get("MESSAGE", "") or "status=1" in e.get("MESSAGE", "") for e in fail_j),
                      "systemd recorded the failure as the main process' exit code",
                      "\n".join(e.get("MESSAGE", "") for e in fail_j))
                left = box.run("pgrep", "-c", "qemu-system").stdout.strip()
                check(left in ("", "0"), f"no QEMU left running in the container ({left or 0})")

                stop_unit(box, tmp, guest_tool)
        finally:
                if box:
                        box.stop()
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
        main()
        print(f"1..{n}")
        sys.exit(1 if failed else 0)
