#!/usr/bin/env python3
# Proves that `vigil ps` finds a running `vigil run` and says what `vigil shell` needs of it (run id, vigil's pid,
# output dir, each machine's backend and live state, the subtest), finds it by id prefix or output dir, and lists no
# run that is over, SIGKILLed (a run.json left behind) or whose pid was reused. Debugging a live test starts here.
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from runtap import check, done, failed

VIGIL = sys.argv[1]


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def ps(env, *args):
    return subprocess.run([VIGIL, "ps", *args], env=env, capture_output=True, text=True, timeout=30)


def leftover(tmpdir, name, text):
    os.makedirs(os.path.join(tmpdir, name))
    with open(os.path.join(tmpdir, name, "run.json"), "w") as f:
        f.write(text)


def entry(run_id, pid, start):
    return json.dumps({"run_id": run_id, "pid": pid, "start_time": start, "started": 1.0, "run_dir": "/nowhere",
                       "out_dir": "/nowhere/out", "script": "/s/t.py", "machines": [{"name": "x", "backend": "qemu"}]})


with tempfile.TemporaryDirectory(prefix="vigil-run-ps-") as d:
    tmpdir, out = os.path.join(d, "tmp"), os.path.join(d, "out")
    marker, go = os.path.join(d, "in-subtest"), os.path.join(d, "go")
    # What runs that are over leave: SIGKILLed (pid gone), pid reused (this process, another start time), garbage.
    leftover(tmpdir, "vigil-dead0001", entry("dead0001" + "0" * 24, 2 ** 22 + 7, 1))
    leftover(tmpdir, "vigil-5e1f0002", entry("5e1f0002" + "0" * 24, os.getpid(), start_time(os.getpid()) + 1))
    leftover(tmpdir, "vigil-bad00003", "{not json")
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write(f'import time\na.start()\na.succeed("true")\nwith subtest("waiting for ps"):\n'
                f'    open({marker!r}, "w").close()\n'
                f'    while not os.path.exists({go!r}):\n        time.sleep(0.2)\n')
    env = dict(os.environ, TMPDIR=tmpdir)
    env.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.Popen([VIGIL, "run", script, "--node", "a", "--node", "b", "-o", out], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    early, early_errors = [], []
    while proc.poll() is None and not os.path.exists(marker) and time.monotonic() < deadline:
        p = ps(env, "--json")  # while the machines boot: no subtest yet (null), states moving
        if p.returncode != 0:
            early_errors.append(p.stderr.strip())
        else:
            early += [r for r in json.loads(p.stdout)["runs"] if r["out_dir"] == out and r["subtest"] is None]
        time.sleep(0.3)
    check(os.path.exists(marker), "the run reached its subtest")
    check(not early_errors and early and {m["state"] for r in early for m in r["machines"]} >= {"booting"},
          f"vigil ps during the boot: the run without a subtest, a booting (errors: {early_errors[:3]})")

    p = ps(env, "--json")
    runs = json.loads(p.stdout)["runs"] if p.returncode == 0 else []
    mine = [r for r in runs if r["out_dir"] == out]
    check(p.returncode == 0 and len(mine) == 1, f"vigil ps --json lists the run once (exit {p.returncode}: {p.stderr.strip()})")
    r = mine[0] if mine else {}
    rid = r.get("run_id", "")
    check(re.fullmatch(r"[0-9a-f]{32}", rid) is not None and r.get("pid") == proc.pid and
          os.path.basename(r.get("run_dir", "")) == "vigil-" + rid[:8] and r.get("script") == script,
          f"run id, vigil's pid, run directory and script ({r})")
    check(r.get("machines") == [{"name": "a", "backend": "qemu", "state": "ready"},
                                {"name": "b", "backend": "qemu", "state": "starting"}],
          f"each machine with its backend and state: a booted, b never started ({r.get('machines')})")
    check(r.get("subtest") == "waiting for ps" and r.get("age_s", -1) >= 0, "the current subtest and the run's age")
    check(not any(x["run_id"].startswith(("dead0001", "5e1f0002")) for x in runs),
          "a SIGKILLed run and a run whose pid was reused are not listed; a broken run.json is skipped")

    p = ps(env)
    lines = p.stdout.splitlines()
    head = [ln for ln in lines if ln.startswith(rid[:8])] if rid else []
    check(p.returncode == 0 and lines and lines[0].split()[:3] == ["RUN", "PID", "AGE"] and len(head) == 1 and
          head[0].split()[1] == str(proc.pid) and head[0].endswith(out) and "waiting for ps" in head[0],
          "the table: run, pid, age, subtest, output dir")
    i = lines.index(head[0]) if head else 0
    check(head and [ln.split() for ln in lines[i + 1:i + 3]] == [["a", "qemu", "ready"], ["b", "qemu", "starting"]],
          "the table: one line per machine under its run")

    for what in (rid[:6], out, out + "/"):
        p = ps(env, "--json", what)
        got = json.loads(p.stdout)["runs"] if p.returncode == 0 else []
        check(p.returncode == 0 and [x["run_id"] for x in got] == [rid], f"vigil ps {what!r} names the run")
    p = ps(env, "ffff0000")
    check(p.returncode == 2 and "ffff0000" in p.stderr and "vigil ps" in p.stderr,
          f"an unknown run id: exit 2, naming it ({p.stderr.strip()})")
    p = ps(env, "--bogus")
    check(p.returncode == 2 and "Usage: vigil ps" in p.stderr, "an unknown option: exit 2 with the usage")
    p = ps(env, "--help")
    check(p.returncode == 0 and p.stdout.startswith("Usage: vigil ps"), "--help on stdout, exit 0")

    open(go, "w").close()
    try:
        err = proc.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        err = proc.communicate()[1]
    check(proc.returncode == 0, f"the run passed (exit {proc.returncode})")
    with open(os.path.join(out, "timeline.jsonl")) as f:
        spawns = [e for e in map(json.loads, f) if e.get("event") == "proc_spawned" and e.get("kind") == "machine"]
    # ps's "booting" above came from these: a KVM probe (where /dev/kvm works) would say helper and not count.
    check(spawns and all(e.get("role") == ("machine" if e.get("name") == "qemu" else "helper") for e in spawns),
          f"the timeline says which spawned process is the machine: QEMU role=machine "
          f"({[(e.get('name'), e.get('role')) for e in spawns]})")
    p = ps(env, "--json")
    check(p.returncode == 0 and not any(x["out_dir"] == out for x in json.loads(p.stdout)["runs"]) and
          not os.path.exists(r.get("run_dir", "/nonexistent")), "a run that ended is gone from vigil ps")
    if failed():
        print("# stderr: " + err[-3000:].replace("\n", "\n# "))
done()
