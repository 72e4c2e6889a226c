#!/usr/bin/python3
# Proves nspawn machines under the real `vigil run` (supervisor, switch with TAP ports, script worker): two containers
# boot and reach each other by name over their VLAN, a SIGKILLed machine worker re-attaches to the same container (an
# idempotent wait_until replayed), a crashed container starts again on a re-created TAP, and SIGKILL of vigil itself
# leaves no container process behind. Why it matters: this is how users run containers; nothing may outlive vigil.
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
VIGIL = os.environ.get("VIGIL") or (sys.argv[1] if len(sys.argv) > 1 else None)

SCRIPT = r'''
import os, signal, time
import vigil

tic = time.monotonic()
start_all()
for m in machines:
    m.wait_for_unit("multi-user.target")
print(f"FIGURE two_nodes_up_s {time.monotonic() - tic:.2f}", flush=True)
assert alpha.succeed("hostname") == "alpha\n"
alpha.succeed("ping -c 1 -W 2 beta")
beta.succeed("ping -c 1 -W 2 alpha")
assert "52:54:00:12:01:01" in alpha.succeed("ip -o link show eth1")

alpha.succeed("echo before > /etc/marker")
npid = vigil.machine_state(alpha)["pid"]
wpid = vigil.machine_worker_pid(alpha)
os.kill(wpid, signal.SIGKILL)
alpha.wait_until_succeeds("test -e /etc/marker")
assert vigil.machine_worker_pid(alpha) != wpid, "machine worker was not restarted"
assert vigil.machine_state(alpha)["pid"] == npid, "a different systemd-nspawn: the container was lost"
assert alpha.succeed("cat /etc/marker") == "before\n"

alpha.crash()
alpha.start()
alpha.wait_for_unit("multi-user.target")
alpha.fail("test -e /etc/marker")
alpha.succeed("ping -c 1 -W 2 beta")
print("RUN-OK", flush=True)

# Now stay up until the test SIGKILLs vigil.
print("UP", flush=True)
time.sleep(600)
'''


def our_containers(tmp):
    """Host pids of the systemd-nspawn processes of this run (their argv names our state dirs) and of their
    containers' inits."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
            if not argv[0].endswith(b"systemd-nspawn") or not any(tmp.encode() in a for a in argv):
                continue
            out.append(int(d))
            with open("/proc/%s/task/%s/children" % (d, d)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def main():
    n = failed = 0

    def check(cond, what, detail=""):
        nonlocal n, failed
        n += 1
        failed += not cond
        print("%sok %d - %s" % ("" if cond else "not ", n, what), flush=True)
        if not cond:
            for line in str(detail).splitlines()[-50:]:
                print("#   " + line)

    if not VIGIL or not os.path.exists(VIGIL):
        print("1..0 # SKIP no vigil binary")
        sys.exit(77)
    if os.geteuid() != 0 or not shutil.which("systemd-nspawn"):
        print("1..0 # SKIP needs root and systemd-nspawn")
        sys.exit(77)
    tree = os.environ.get("VIGIL_DEBIAN_TREE")
    if not tree:
        r = subprocess.run([sys.executable, os.path.join(SOURCE_ROOT, "tools", "mkdebian")], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=1800)
        tree = r.stdout.strip() if r.returncode == 0 else None
    if not tree or not os.path.isdir(tree):
        print("1..0 # SKIP no Debian tree (tools/mkdebian)")
        sys.exit(77)

    tmp = tempfile.mkdtemp(prefix="vigil-nr-", dir="/tmp")
    proc = None
    try:
        spec = {"nodes": {"alpha": {"backend": "nspawn", "tree": tree, "vlans": [1]},
                          "beta": {"backend": "nspawn", "tree": tree, "vlans": [1]}}}
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f)
        with open(os.path.join(tmp, "test.py"), "w") as f:
            f.write(SCRIPT)
        out = os.path.join(tmp, "out")
        proc = subprocess.Popen([VIGIL, "run", os.path.join(tmp, "test.py"), "--spec", os.path.join(tmp, "spec.json"),
                                 "-o", out, "--global-timeout", "240"],
                                cwd=tmp, env=dict(os.environ, TMPDIR=tmp), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        lines = []
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "FIGURE" in line:
                print("# " + line.strip().split("FIGURE ", 1)[1], flush=True)
            if line.strip().endswith("UP"):
                break
        text = "\n".join(lines)
        check(any("RUN-OK" in x for x in lines), "boot, ping by name, worker SIGKILL + re-attach, crash + restart",
              text)

        # SIGKILL vigil: its PID namespace dies, and every container with it.
        pids = our_containers(tmp)
        check(len(pids) == 4 and all(alive(p) for p in pids),
              "two systemd-nspawn and two container inits running before the kill (%r)" % pids)
        proc.kill()
        proc.wait(30)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and any(alive(p) for p in pids):
            time.sleep(0.1)
        left = [p for p in pids if alive(p)]
        check(not left and not our_containers(tmp),
              "nothing left %.1f s after SIGKILL of vigil" % (time.monotonic() - t0), "still alive: %r" % left)
        for p in our_containers(tmp):
            os.kill(p, signal.SIGKILL)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n)
    sys.exit(1 if failed else 0)


main()
