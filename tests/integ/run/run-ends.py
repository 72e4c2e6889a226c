#!/usr/bin/env python3
# Proves that every way a `vigil run` ends is said and cleaned up: SIGTERM/SIGINT/SIGKILL during a cache build
# (real tools/mkguest) stop the build and all it started, free the cache lock, leave no half-built entry and (but
# for SIGKILL) exit 6 with the output dir written; `sys.exit(n)` is named on stderr; the next run removes the
# nspawn propagate directories of killed runs. A killed CI job must neither hang the next one nor lie about why.
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from runtap import check, done

VIGIL = os.path.abspath(sys.argv[1])
MODE = sys.argv[2]
PROPAGATE = "/run/systemd/nspawn/propagate"


def skip(why):
    print(f"1..0 # SKIP {why}")
    sys.exit(77)


def marked_pids(mark):
    """Host pids of every process carrying VIGIL_TEST_MARK=mark in its environment (all a run started)."""
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{d}/environ", "rb") as f:
                if f"VIGIL_TEST_MARK={mark}".encode() in f.read().split(b"\0"):
                    pids.append(int(d[6:]))
        except OSError:
            pass
    return [p for p in pids if p != os.getpid()]


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def lock_free(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def build_signals(d):
    """A fresh cache: `vigil run` must build the tiny guest, and is signalled while mkguest runs."""
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write("pass\n")
    cache = os.path.join(d, "cache")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        name = signal.Signals(sig).name
        mark = uuid.uuid4().hex
        out = os.path.join(d, f"out-{name}")
        env = dict(os.environ, VIGIL_CACHE_DIR=cache, VIGIL_TEST_MARK=mark)
        env.pop("VIGIL_MKGUEST", None)
        proc = subprocess.Popen([VIGIL, "run", script, "--node", "a", "-o", out], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not glob.glob(os.path.join(cache, "guest", ".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        check(bool(glob.glob(os.path.join(cache, "guest", ".tmp-*"))), f"{name}: mkguest is building")
        time.sleep(0.3)
        proc.send_signal(sig)
        try:
            _, err = proc.communicate(timeout=30)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            rc = None
        deadline = time.monotonic() + 5
        while marked_pids(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = marked_pids(mark)
        check(not left, f"{name}: nothing the run started survives it (left: {left})")
        locks = glob.glob(os.path.join(cache, "guest", ".lock-*"))
        check(locks and all(lock_free(l) for l in locks), f"{name}: the cache lock is free")
        if sig == signal.SIGKILL:
            check(rc == -signal.SIGKILL, f"{name}: vigil died of it (rc {rc})")
            continue
        check(rc == 6, f"{name}: vigil exits 6, interrupted (rc {rc}; stderr {err.strip()[-300:]!r})")
        check("while building the tiny guest" in err, f"{name}: stderr says the build was interrupted")
        tmp = glob.glob(os.path.join(cache, "guest", ".tmp-*"))
        check(not tmp, f"{name}: no half-built cache entry is left ({tmp})")
        try:
            with open(os.path.join(out, "timeline.jsonl")) as f:
                end = [json.loads(l) for l in f if l.strip()][-1]
        except (OSError, IndexError, ValueError) as e:
            end = {"error": str(e)}
        check(end.get("event") == "run_end" and end.get("exit_code") == 6,
              f"{name}: the output dir says how the run ended ({end})")
    # Without a PID namespace, what the tool started (debootstrap under mkdebian) must die with vigil too:
    # a tool that leaves a child of its own stands in for it.
    fake = os.path.join(d, "slow-tool")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\nsleep 300 &\nwait\n")
    os.chmod(fake, 0o755)
    mark = uuid.uuid4().hex
    proc = subprocess.Popen([VIGIL, "run", script, "--node", "a", "--no-pidns", "-o", os.path.join(d, "out-nopidns")],
                            env=dict(os.environ, VIGIL_MKGUEST=fake, VIGIL_TEST_MARK=mark),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not any(comm(p) == "sleep" for p in marked_pids(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = [f"{p}({comm(p)})" for p in marked_pids(mark)]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while marked_pids(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [f"{p}({comm(p)})" for p in marked_pids(mark)]
    check(any("sleep" in p for p in started) and not left,
          f"--no-pidns, SIGKILL: the build tool's own child dies with vigil too (before {started}, left {left})")
    # The next run finds the SIGKILLed build's directory and removes it (its builder is dead).
    r = subprocess.run([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "out-next")],
                       env=dict(os.environ, VIGIL_CACHE_DIR=cache), capture_output=True, text=True, timeout=120)
    tmp = glob.glob(os.path.join(cache, "guest", ".tmp-*"))
    check(r.returncode == 0 and not tmp, f"the next run builds the guest and removes the killed build's "
          f"directory (rc {r.returncode}, left {tmp})")


def propagate_and_exit(d):
    """Outer half re-executes in a private mount namespace, so the host's /run is not touched."""
    if os.geteuid() != 0:
        skip("needs root (a private mount namespace, /run/systemd/nspawn)")
    if os.environ.get("RUN_ENDS_INNER") != "1":
        r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__, VIGIL, MODE],
                           env=dict(os.environ, RUN_ENDS_INNER="1"))
        sys.exit(r.returncode)
    os.makedirs("/run/systemd/nspawn", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd/nspawn"], check=True)
    dead = os.path.join(PROPAGATE, "vigil-deadbeef-c1")
    live = os.path.join(PROPAGATE, "vigil-0badf00d-c2")
    other = os.path.join(PROPAGATE, "somebody-else")
    for p in (dead, live, other):
        os.makedirs(os.path.join(p, "incoming"))
    # A container that is still running: a process named systemd-nspawn with --machine=<its name>.
    holder = subprocess.Popen(["systemd-nspawn", "-c", "sleep 120; :", f"--machine={os.path.basename(live)}"],
                              executable="/bin/sh", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        script = os.path.join(d, "exit3.py")
        with open(script, "w") as f:
            f.write("import sys\nsys.exit(3)\n")
        r = subprocess.run([VIGIL, "run", script, "--node", "a", "-o", os.path.join(d, "out")],
                           capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    check(r.returncode == 1, f"sys.exit(3) fails the test: exit 1, as documented (rc {r.returncode})")
    check("the script exited with status 3" in r.stderr,
          "stderr says the script exited with 3" + ("" if "status 3" in r.stderr else f" ({r.stderr[-400:]!r})"))
    check(not os.path.exists(dead), "the propagate directory of a killed run's container is removed")
    check(os.path.isdir(live), "the one of a running systemd-nspawn is kept")
    check(os.path.isdir(other), "directories not named by vigil are not touched")


with tempfile.TemporaryDirectory() as d:
    if MODE == "build-signals":
        build_signals(d)
    elif MODE == "propagate-exit":
        propagate_and_exit(d)
    else:
        sys.exit(f"unknown mode {MODE}")
done()
