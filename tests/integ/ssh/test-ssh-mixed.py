#!/usr/bin/python3
# Proves one test drives a QEMU VM, an nspawn container and a host reached over SSH alike: the same API on all three
# over one VLAN, one SSH connection for every command, and a connection killed mid-command (ControlMaster or sshd).
# Why it matters: fleets include hosts vigil did not start, and a network that drops must not hang or silently
# repeat a test's commands.
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from sshfixture import Fixture  # noqa: E402
from vmrun import Tap, _remove_at_exit, junit_cases, spec_run  # noqa: E402

SCRIPT = r'''
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from test_driver.errors import MachineError

def master_pids(name):
    """The host's ssh ControlMaster of machine @name (found in /proc by its control socket)."""
    found = []
    for d in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-M" in argv and any(a.endswith(f"vm-state-{name}/ssh-control".encode()) for a in argv):
            found.append(int(d))
    return found

def ssh_processes(name):
    out = []
    for d in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == b"ssh" and any(a.endswith(f"vm-state-{name}/ssh-control".encode()) for a in argv):
            out.append(int(d))
    return sorted(out)

vm.start()
box.start()
@AUTHORIZE@
tic = time.monotonic()
remote.start()
remote.succeed("true")
print(f"FIGURE ssh_connect_s {time.monotonic() - tic:.2f}", flush=True)
t.assertEqual(type(remote).__name__, "SshMachine")

with subtest("the three backends run the same API"):
    for m in (vm, box, remote):
        t.assertEqual(m.succeed("echo hello"), "hello\n")
        t.assertEqual(m.execute("exit 3")[0], 3)
        m.fail("false")
    t.assertEqual(remote.succeed("hostname").strip(), "sshbox")
    remote.wait_for_unit("multi-user.target")
    remote.systemctl("start systemd-hostnamed")
    remote.wait_for_unit("systemd-hostnamed.service")
    remote.wait_for_open_port(22)
    remote.wait_until_succeeds("test -d /root/.ssh", timeout=10)
    remote.wait_for_file("/root/.ssh/authorized_keys")
    out = remote.succeed("seq 1 200000")
    t.assertEqual(len(out.splitlines()), 200000)
    t.assertTrue(out.endswith("199999\n200000\n"))
    remote.succeed("echo ssh-stderr-marker >&2")
    remote.wait_for_console_text("ssh-stderr-marker")

with subtest("the SSH machine is on the VLAN with the others"):
    remote.succeed("ping -c 1 -W 2 vm", "ping -c 1 -W 2 box")
    vm.succeed("ping -c 1 -W 2 sshbox")

with subtest("every command goes over one connection"):
    before = ssh_processes("remote")
    sessions = sshbox.succeed("pgrep -c -f '^sshd: root'").strip()
    tic = time.monotonic()
    for _ in range(50):
        remote.succeed("true")
    per = (time.monotonic() - tic) / 50
    tic = time.monotonic()
    for _ in range(50):
        box.succeed("true")
    per_box = (time.monotonic() - tic) / 50
    print(f"FIGURE ssh_command_ms {per * 1000:.1f}", flush=True)
    print(f"FIGURE nspawn_command_ms {per_box * 1000:.1f}", flush=True)
    t.assertEqual(len(before), 2, f"a master and a session: {before}")
    t.assertEqual(ssh_processes("remote"), before)
    t.assertEqual(sshbox.succeed("pgrep -c -f '^sshd: root'").strip(), sessions)

with subtest("files go both ways through the shell"):
    src = Path(tempfile.mkdtemp(prefix="vigil-ssh-copy-"))
    (src / "sub").mkdir(parents=True, exist_ok=True)
    (src / "sub" / "a.txt").write_text("alpha\n")
    (src / "big.bin").write_bytes(os.urandom(200_000))
    remote.copy_from_host(str(src / "sub" / "a.txt"), "/root/in/a.txt")
    t.assertEqual(remote.succeed("cat /root/in/a.txt"), "alpha\n")
    remote.copy_from_host(str(src), "/root/tree")
    t.assertEqual(remote.succeed("cat /root/tree/sub/a.txt"), "alpha\n")
    remote.succeed("mkdir -p /root/out/d && echo beta > /root/out/d/b.txt && ln -s b.txt /root/out/d/link")
    remote.copy_from_machine("/root/out/d", "fromssh")
    t.assertEqual((remote.out_dir / "fromssh" / "d" / "b.txt").read_text(), "beta\n")
    t.assertEqual(os.readlink(remote.out_dir / "fromssh" / "d" / "link"), "b.txt")
    remote.copy_from_machine("/root/tree/big.bin", "fromssh")
    t.assertEqual((remote.out_dir / "fromssh" / "big.bin").read_bytes(), (src / "big.bin").read_bytes())
    shutil.rmtree(src)

with subtest("a ControlMaster killed mid-command: the command fails by name, the next one reconnects"):
    pids = master_pids("remote")
    t.assertEqual(len(pids), 1, f"one master: {pids}")
    subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {pids[0]}"])
    tic = time.monotonic()
    with t.assertRaises(MachineError) as cm:
        remote.execute("sleep 4; echo finished")
    took = time.monotonic() - tic
    print(f"FIGURE killed_master_error_s {took:.2f}", flush=True)
    t.assertIn("SSH connection to root@sshbox was lost while executing", str(cm.exception))
    t.assertIn("not repeated", str(cm.exception))
    t.assertLess(took, 3.5)
    t.assertEqual(remote.succeed("echo back"), "back\n")
    t.assertNotEqual(master_pids("remote"), pids)

with subtest("sshd's session process killed mid-command: same rule"):
    sshbox.succeed("(sleep 1; pkill -KILL -f '^sshd: root') >/dev/null 2>&1 &")
    with t.assertRaises(MachineError) as cm:
        remote.execute("sleep 4; echo finished")
    t.assertIn("was lost while executing", str(cm.exception))
    t.assertEqual(remote.succeed("echo back"), "back\n")

with subtest("an idempotent wait in flight survives the drop and is repeated"):
    remote.succeed("rm -f /tmp/flag")
    pids = master_pids("remote")
    subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {pids[0]}"])
    sshbox.succeed("(sleep 2; touch /tmp/flag) >/dev/null 2>&1 &")
    remote.wait_until_succeeds("sleep 2; test -e /tmp/flag", timeout=60)
    t.assertNotEqual(master_pids("remote"), pids)

with subtest("crash() refuses, shutdown() disconnects and the host keeps running"):
    with t.assertRaises(MachineError) as cm:
        remote.crash()
    t.assertIn("crash() is not supported", str(cm.exception))
    remote.succeed("touch /root/still-here")
    remote.shutdown()
    t.assertEqual(master_pids("remote"), [])
    t.assertEqual(ssh_processes("remote"), [])
    sshbox.succeed("test -e /root/still-here")
    t.assertEqual(remote.succeed("echo again"), "again\n")

with subtest("an unknown host key fails at once, without a prompt"):
    tic = time.monotonic()
    with t.assertRaises(MachineError) as cm:
        stranger.start()
    took = time.monotonic() - tic
    t.assertIn("Host key verification failed", str(cm.exception))
    t.assertLess(took, 15)

with subtest("accept-new records the key in the run's own known_hosts"):
    t.assertEqual(newcomer.succeed("echo new"), "new\n")
    kh = Path(newcomer.state_dir, "known_hosts").read_text()
    t.assertIn("sshbox ssh-ed25519 ", kh)
'''


def main() -> None:
    tap = Tap()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-ssh-"))
    _remove_at_exit(tmp)
    os.chmod(tmp, 0o755)
    fx = Fixture(tmp)
    spec = {
        "nodes": {
            "vm": {},
            "box": {"backend": "nspawn"},
            "sshbox": fx.host_node(),
            "remote": fx.ssh_node(),
            "stranger": fx.ssh_node(known_hosts="strict", connect_timeout_s=5),
            "newcomer": fx.ssh_node(known_hosts="accept-new"),
        },
    }
    tic = time.monotonic()
    r = spec_run(SCRIPT.replace("@AUTHORIZE@", fx.authorize()), spec, "--junit", "junit.xml", timeout=420)
    print(f"# vigil run took {time.monotonic() - tic:.1f} s", flush=True)
    for m in re.finditer(r"^FIGURE (\S+) (\S+)$", r.stdout, re.M):
        print(f"# {m[1]} = {m[2]}", flush=True)
    tap.check(r.rc == 0, "the mixed VM + container + SSH test passes", r.tail())
    cases = junit_cases(r.out / "junit.xml")
    for sub in ("the three backends run the same API", "the SSH machine is on the VLAN with the others",
                "every command goes over one connection", "files go both ways through the shell",
                "a ControlMaster killed mid-command: the command fails by name, the next one reconnects",
                "sshd's session process killed mid-command: same rule",
                "an idempotent wait in flight survives the drop and is repeated",
                "crash() refuses, shutdown() disconnects and the host keeps running",
                "an unknown host key fails at once, without a prompt",
                "accept-new records the key in the run's own known_hosts"):
        tap.check(cases.get(sub) is False, f"subtest passed: {sub}", str(cases))
    tap.check("Enter passphrase" not in r.stderr and "password:" not in r.stderr, "nothing prompted")
    # The ControlMaster is the SSH machine's process; a session is a helper: the progress says "remote down" once
    # per master that ended, never for a session (the one killed above, or one closed between commands).
    events = [json.loads(line) for line in (r.out / "timeline.jsonl").read_text().splitlines()]
    procs = [e for e in events if e.get("child") == "remote" and e.get("event") in ("proc_spawned", "proc_exited")]
    roles = {(e["name"], e.get("role")) for e in procs}
    downs = len(re.findall(r"^vigil: progress: remote down ", r.stderr, re.M))
    masters_ended = sum(e["event"] == "proc_exited" and e.get("role") == "machine" for e in procs)
    sessions_ended = sum(e["event"] == "proc_exited" and e.get("role") == "helper" for e in procs)
    tap.check(roles == {("ssh-master", "machine"), ("ssh-session", "helper")} and sessions_ended > 0 and
              downs == masters_ended, f"remote: the master is the machine, a session a helper; {downs} 'down' in the "
              f"progress for {masters_ended} masters and {sessions_ended} sessions ended", str(sorted(roles)))
    tap.done()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
