#!/usr/bin/env python3
# Proves "nothing survives vigil" for containers: after kill -9 (and, separately, SIGTERM) of a `vigil run` with two
# booted nspawn nodes, no descendant process (systemd-nspawn, the containers' systemd and services), no TAP port and
# no mount of the run is left on the host; each container had a cgroup of its own, removed with it; the next run
# removes the nspawn propagate directories the killed one left.
# A killed CI job must not leave 30 containers behind.
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from runtap import check, done, failed

VIGIL = sys.argv[1]
ROOT = os.environ.get("VIGIL_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))

SCRIPT = '''
import sys, time
start_all()
c1.wait_for_unit("multi-user.target")
c2.succeed("ping -c1 -W5 c1")
print("READY-FOR-KILL", flush=True)
sys.stdout.flush()
time.sleep(600)
'''


def skip(why):
    print(f"1..0 # SKIP {why}")
    sys.exit(77)


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def systemd_cgroup(pid):
    """The process's group in systemd's named v1 hierarchy, else the v2 one."""
    try:
        lines = open(f"/proc/{pid}/cgroup").read().splitlines()
    except OSError:
        return "?"
    for want in ("name=systemd", ""):
        for line in lines:
            num, ctrl, path = line.split(":", 2)
            if ctrl == want:
                return path
    return "?"


def link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def one_run(d, how):
    out = os.path.join(d, f"out-{how}")
    proc = subprocess.Popen([VIGIL, "run", os.path.join(d, "t.py"), "--spec", os.path.join(d, "spec.json"), "-o", out],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "READY-FOR-KILL" in line:
            break
    if not any("READY-FOR-KILL" in l for l in lines):
        proc.kill()
        check(False, f"{how}: the containers came up (output: {''.join(lines)[-1500:]!r})")
        return
    before = {p: start_time(p) for p in descendants(proc.pid)}
    names = sorted({comm(p) for p in before})
    check(any(comm(p) == "systemd-nspawn" for p in before) and len(before) >= 8,
          f"{how}: before, {len(before)} descendants incl. systemd-nspawn ({', '.join(names)})")
    run_id = json.loads(open(os.path.join(out, "timeline.jsonl")).readline())["run"]
    taps = [f"v{run_id[:4]}1n1", f"v{run_id[:4]}1n2"]
    taps_before = [t for t in taps if link_exists(t)]
    if how == "SIGTERM":
        groups = {}
        for p in before:
            if comm(p) == "systemd-nspawn":
                groups[p] = systemd_cgroup(p)
                for c in children(p):
                    groups[c] = systemd_cgroup(c)
        nspawn_groups = sorted(g for p, g in groups.items() if comm(p) == "systemd-nspawn")
        check(len(nspawn_groups) == 2 and len(set(nspawn_groups)) == 2 and
              all(f"/vigil/{run_id}/" in g for g in nspawn_groups) and
              all(g.endswith("/payload") or "/payload/" in g for p, g in groups.items() if comm(p) == "systemd"),
              f"each systemd-nspawn has a cgroup of its own under /vigil/<run>/, its container in payload ({groups})")
    mounts_before = open("/proc/self/mountinfo").read().count("vigil-")
    proc.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
    try:
        rc = proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    if how == "SIGTERM":
        check(rc == 6, f"SIGTERM: vigil exits 6, interrupted (got {rc})")
    deadline = time.monotonic() + 10
    alive = lambda: [p for p, st in before.items() if st is not None and start_time(p) == st]
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = alive()
    check(left == [], f"{how}: no descendant survives (left: {[(p, comm(p)) for p in left]})")
    check(not any(link_exists(t) for t in taps),
          f"{how}: the switch's TAP ports are gone from the host (in containers before: {taps_before or 'none visible'})")
    if how == "SIGTERM":
        check(not any(os.path.exists(f"{h}/vigil/{run_id}") for h in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup")),
              "SIGTERM: the run's cgroups are removed")
    # A SIGKILLed vigil cannot remove its state directory: the test does (TMPDIR or /tmp, vigil-<run8>).
    shutil.rmtree(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"vigil-{run_id[:8]}"), ignore_errors=True)
    check(open("/proc/self/mountinfo").read().count("vigil-") <= mounts_before,
          f"{how}: no mount of the run is left in the host's mount table")


def dead_propagate_dirs():
    live = set()
    for p in os.listdir("/proc"):
        try:
            a = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if a and a[0].endswith(b"systemd-nspawn"):
            live |= {x[10:].decode() for x in a if x.startswith(b"--machine=")}
    base = "/run/systemd/nspawn/propagate"
    names = os.listdir(base) if os.path.isdir(base) else []
    return [n for n in names if n.startswith("vigil-") and n not in live]


def main():
    if os.geteuid() != 0:
        skip("needs root (systemd-nspawn)")
    for tool in ("systemd-nspawn", "ip"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            skip(f"{tool} missing")
    mk = subprocess.run([os.path.join(ROOT, "tools/mkdebian")], capture_output=True, text=True)
    if mk.returncode != 0:
        skip(f"tools/mkdebian failed ({mk.returncode}): {mk.stderr.strip()[-300:]}")
    with tempfile.TemporaryDirectory(prefix="vigil-nspawn-kill-") as d:
        with open(os.path.join(d, "t.py"), "w") as f:
            f.write(SCRIPT)
        with open(os.path.join(d, "spec.json"), "w") as f:
            f.write('{"nodes": {"c1": {"backend": "nspawn"}, "c2": {"backend": "nspawn"}}}')
        one_run(d, "kill -9")
        one_run(d, "SIGTERM")
    # nspawn leaves /run/systemd/nspawn/propagate/<machine> when SIGKILLed; the second run removed the first's.
    left = dead_propagate_dirs()
    check(not left, f"no nspawn propagate directory of a dead container is left ({left})")
    done()


main()
