#!/usr/bin/python3
# Proves the methods and contracts vigil took from the newest reference driver work against a real tiny
# guest in one boot (QMP events, fractional/timedelta/attempt timeouts, unit states, a 2 MiB
# copy_from_host_via_shell, shell_interact, create_machine, cleanup_statedir, state_dir assignment, AssertionError ancestry,
# the JUnit `main` case), and that the nixos-test-driver front door exits with the reference's statuses.
# Why it matters: nixpkgs tests written for the newest driver must run unchanged under vigil.
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.etree import ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmrun import SOURCE_ROOT, Tap, reference_run, skip_unless_ready, vigil_run  # noqa: E402

SCRIPT = r'''
import datetime as dt
import hashlib, os, shutil, subprocess, tempfile, time
from pathlib import Path
from test_driver.errors import RequestedAssertionFailed

def say(what):
    print(f"CHECK {what}", flush=True)

start_all()
machine.wait_for_unit  # exists
machine.succeed("true")

with subtest("a requested assertion is an AssertionError"):
    try:
        machine.succeed("false")
    except AssertionError as e:
        assert isinstance(e, RequestedAssertionFailed)
        say("assertion-error")

with subtest("fractional and timedelta timeouts"):
    tic = time.monotonic()
    status, _ = machine.execute("sleep 5", timeout=0.5)
    took = time.monotonic() - tic
    assert status == 124 and took < 3.5, (status, took)
    say(f"fractional {took:.2f}")
    status, _ = machine.execute("sleep 5", timeout=dt.timedelta(seconds=1))
    assert status == 124, status
    say("timedelta-execute")
    tic = time.monotonic()
    try:
        machine.wait_until_succeeds("echo a >> /tmp/attempts; exec sleep 600 > /dev/null",
                                    timeout=dt.timedelta(seconds=6), attempt_timeout=dt.timedelta(seconds=1))
        raise Exception("should have timed out")
    except RequestedAssertionFailed:
        pass
    took = time.monotonic() - tic
    attempts = int(machine.succeed("wc -l < /tmp/attempts"))
    assert attempts >= 3 and took < 25, (attempts, took)
    say(f"attempt-timeout {attempts} {took:.1f}")

with subtest("QMP events"):
    machine.qmp_client.send("stop")
    evt = machine.wait_for_qmp_event(lambda e: e["event"] == "STOP", timeout=20)
    machine.qmp_client.send("cont")
    evt2 = machine.wait_for_qmp_event(lambda e: e["event"] == "RESUME", timeout=dt.timedelta(seconds=20))
    say(f"qmp {evt['event']} {evt2['event']}")
    try:
        machine.wait_for_qmp_event(lambda e: e["event"] == "NEVER", timeout=1)
    except TimeoutError:
        say("qmp-timeout")

with subtest("create_machine adds a machine to the running test"):
    extra = create_machine("@EXTRA@")
    assert extra.name == "extra" and extra not in machines, (extra, machines)
    extra.start()
    assert extra.succeed("cat /proc/sys/kernel/hostname").strip() == "extra"
    extra.succeed("ping -c 1 -W 10 192.168.1.1")  # `machine`, through the run's VLAN switch
    extra.shutdown()
    say("create-machine")

with subtest("copy_from_host_via_shell of 2 MiB"):
    src = Path(tempfile.mkdtemp()) / "big.bin"
    src.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    want = hashlib.sha256(src.read_bytes()).hexdigest()
    tic = time.monotonic()
    machine.copy_from_host_via_shell(str(src), "/root/deep/big.bin")
    got = machine.succeed("sha256sum /root/deep/big.bin").split()[0]
    assert got == want, (got, want)
    say(f"copy-sha256 {time.monotonic() - tic:.1f}")

with subtest("unit active states through a systemctl stand-in"):
    fake = Path(tempfile.mkdtemp()) / "systemctl"
    fake.write_text("#!/bin/sh\n# prints the state kept in /tmp/state, then moves it on\n"
                    "s=$(cat /tmp/state); echo \"ActiveState=$s\"\n"
                    "case $s in inactive) echo activating;; activating) echo active;; *) echo failed;; esac > /tmp/state\n")
    machine.copy_from_host_via_shell(str(fake), "/usr/bin/systemctl")
    machine.succeed("chmod +x /usr/bin/systemctl; echo inactive > /tmp/state")
    machine.wait_for_unit_active_state("test.service", "active", timeout=30)
    machine.wait_for_unit_active_state("test.service", "failed", timeout=30)
    say("unit-active-state")

with subtest("shell_interact through socat"):
    out = Path(tempfile.mkdtemp()) / "typed.txt"
    machine.shell_interact(f"SYSTEM:echo 'echo typed-$((6*7))'; head -n 1 > {out}")
    assert out.read_text() == "typed-42\n", repr(out.read_text())
    say("shell-interact")

machine.shutdown()

with subtest("cleanup_statedir and state_dir assignment"):
    (machine.state_dir / "old.img").write_text("x")
    machine.cleanup_statedir()
    assert machine.state_dir.is_dir() and not (machine.state_dir / "old.img").exists()
    other = Path(tempfile.mkdtemp())
    (other / "xchg").mkdir()
    (other / "xchg" / "marker").write_text("from the assigned state dir\n")
    machine.state_dir = other
    machine.start()
    text = machine.succeed("cat /tmp/xchg/marker")
    assert text == "from the assigned state dir\n", text
    say("state-dir")

with subtest("a failing subtest names what failed"):
    machine.succeed("exit 3")
'''


def main() -> None:
    skip_unless_ready()
    tap = Tap()

    # a NixOS-shaped start script for create_machine()
    vms = Path(tempfile.mkdtemp(prefix="vigil-compat-vm-"))
    guest = subprocess.run([str(SOURCE_ROOT / "tools/mkguest")], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([str(SOURCE_ROOT / "tests/helpers/make-fake-vm"), "extra", guest, str(vms / "extra"), "--vlan", "1",
                    "--node-number", "9"], check=True)
    script = SCRIPT.replace("@EXTRA@", str(vms / "extra" / "bin" / "run-extra-vm"))

    r = vigil_run(script, ["machine"], "--junit", "junit.xml", timeout=400)
    checks = {line.split()[1]: line for line in r.stdout.splitlines() if line.startswith("CHECK ")}
    for name in ["assertion-error", "fractional", "timedelta-execute", "attempt-timeout", "qmp", "qmp-timeout",
                 "create-machine", "copy-sha256", "unit-active-state", "shell-interact", "state-dir"]:
        tap.check(name in checks, f"guest: {checks.get(name, name)}", r.tail())
    tap.check(r.rc == 1, "the last subtest fails the run (exit 1)", r.tail())
    tap.check("Machine state will be reset. To keep it, pass --keep-machine-state" in r.stderr,
              "the newest --keep-machine-state log line")
    tap.check("machine: deleting machine state directory" in r.stderr, "cleanup_statedir log line")
    try:
        root = ET.parse(r.out / "junit.xml").getroot()
        cases = {c.get("name"): c for c in root.iter("testcase")}
    except (OSError, ET.ParseError):
        cases = {}
    tap.check(list(cases)[:1] == ["main"], "JUnit: the `main` case comes first", str(list(cases)))
    failing = cases.get("a failing subtest names what failed")
    failure = failing.find("failure") if failing is not None else None
    tap.check(failure is not None and "exit code 3" in failure.get("message", "")
              and failing.get("classname") == "NixOS integration test",
              "JUnit: classname, and the failure message says what failed",
              ET.tostring(failing).decode() if failing is not None else "no case")

    # The nixos-test-driver front door: the reference's exit statuses (no VM needed).
    tmp = Path(tempfile.mkdtemp(prefix="vigil-compat-exit-"))
    for name, body in {"pass": "pass\n", "fail": "raise Exception('no')\n", "slow": "import time\ntime.sleep(60)\n"}.items():
        (tmp / f"{name}.py").write_text(body)
    runs = {}
    for name, timeout in (("pass", 60), ("fail", 60), ("slow", 3)):
        # vigil needs a machine; these scripts never start it, so a stand-in start script will do
        cfg = {"vms": {"m": {"name": "m", "start_script": "/bin/true"}}, "containers": {}, "vlans": [],
               "global_timeout": timeout, "enable_ssh_backdoor": False, "test_script": str(tmp / f"{name}.py")}
        (tmp / f"{name}.json").write_text(json.dumps(cfg))
        runs[name] = reference_run(["--config", str(tmp / f"{name}.json")], tmp, {}, timeout=120)
    tap.check(runs["pass"].rc == 0, "front door: a passing test exits 0", runs["pass"].tail())
    tap.check(runs["fail"].rc == 1, "front door: an uncaught exception exits 1", runs["fail"].tail())
    tap.check(runs["slow"].rc == -15, "front door: the global timeout ends in SIGTERM (143 in a shell)",
              f"rc={runs['slow'].rc}\n" + runs["slow"].tail())
    bad = reference_run(["--no-such-flag"], tmp, {}, timeout=60)
    tap.check(bad.rc == 2, "front door: bad usage exits 2", bad.tail())

    # sshBackdoor: with no /dev/vhost-vsock here it must say so, not run silently without it.
    guestless = {"vms": {"m": {"name": "m", "start_script": "/bin/true"}}, "vlans": [], "enable_ssh_backdoor": True,
                 "test_script": str(tmp / "pass.py")}
    (tmp / "ssh.json").write_text(json.dumps(guestless))
    ssh = reference_run(["--config", str(tmp / "ssh.json")], tmp, {}, timeout=60)
    if Path("/dev/vhost-vsock").exists():
        tap.check(True, "sshBackdoor: /dev/vhost-vsock exists here (the refusal path is not reachable) # SKIP")
    else:
        tap.check(ssh.rc == 2 and "/dev/vhost-vsock" in ssh.stderr, "sshBackdoor without /dev/vhost-vsock is refused "
                  "naming it", ssh.tail())
    tap.done()


if __name__ == "__main__":
    main()
