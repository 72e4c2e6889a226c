#!/usr/bin/env python3
# Proves that every kind of bad input to `vigil run` and to the reference-driver
# front door ends at once with exit 2 and a message naming the problem, before
# any machine starts: a typo must never cost a multi-hour run or a silent default.
import json
import os
import subprocess
import sys
import tempfile

from runtap import check, done

VIGIL = sys.argv[1]


def run(args, env=None, argv0=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([argv0 or VIGIL] + args, capture_output=True, text=True, env=e, timeout=60,
                       executable=VIGIL)
    return p.returncode, p.stderr


def expect(name, args, needle, env=None, argv0=None, code=2):
    rc, err = run(args, env, argv0)
    if not check(rc == code and needle in err, f"{name}: exit {rc}, stderr mentions {needle!r}"):
        print("#   stderr: " + err.strip().replace("\n", "\n#   "))


with tempfile.TemporaryDirectory() as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write("pass\n")
    spec = os.path.join(d, "spec.json")
    with open(spec, "w") as f:
        f.write('{"nodes": {"a": {"memroy_mb": 512}}}')
    badjson = os.path.join(d, "bad.json")
    with open(badjson, "w") as f:
        f.write('{"nodes": ')
    notexec = os.path.join(d, "run-web-vm")
    with open(notexec, "w") as f:
        f.write("#!/bin/sh\n")
    execok = os.path.join(d, "run-ok-vm")
    with open(execok, "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    os.chmod(execok, 0o755)

    expect("unknown option", ["run", script, "--node", "a", "--frob"], "--frob")
    expect("no machines", ["run", script], "--node")
    expect("missing script", ["run", os.path.join(d, "nope.py"), "--node", "a"], "nope.py")
    expect("bad machine name", ["run", script, "--node", "a/b"], "a/b")
    expect("bad timeout", ["run", script, "--node", "a", "--global-timeout", "-1"], "--global-timeout")
    expect("spec typo", ["run", script, "--spec", spec], "memroy_mb")
    expect("spec not JSON", ["run", script, "--spec", badjson], "invalid JSON at line 1, column 11")
    # Bad input still leaves the output directory it named, saying how the run ended.
    bad_out = os.path.join(d, "bad-out")
    expect("spec typo with -o", ["run", script, "--spec", spec, "-o", bad_out], "memroy_mb")
    try:
        with open(os.path.join(bad_out, "timeline.jsonl")) as f:
            end = json.loads(f.readlines()[-1])
    except (OSError, IndexError, ValueError) as e:
        end = {"error": str(e)}
    check(end.get("event") == "run_end" and end.get("exit_code") == 2 and "memroy_mb" in end.get("message", ""),
          f"exit 2 writes the output directory: timeline.jsonl ends with run_end, exit 2 and why ({end})")
    run_id = end.get("run", "")
    check(len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id),
          f"the run id is a 128-bit id in 32 hex digits, as journalctl VIGIL_RUN= matches ({run_id!r})")
    expect("spec missing", ["run", script, "--spec", os.path.join(d, "missing.json")], "missing.json")
    nspawn_spec = os.path.join(d, "nspawn.json")
    with open(nspawn_spec, "w") as f:
        f.write('{"nodes": {"c": {"backend": "nspawn", "tree": "%s"}}}' % os.path.join(d, "notree"))
    expect("nspawn tree missing", ["run", script, "--spec", nspawn_spec], "notree")
    with open(nspawn_spec, "w") as f:
        f.write('{"nodes": {"c": {"backend": "nspawn", "memory_mb": 512}}}')
    expect("qemu key on nspawn node", ["run", script, "--spec", nspawn_spec], '"memory_mb" is for backend "qemu"')
    expect("unknown --node backend", ["run", script, "--node", "a=lxc"], "lxc")
    expect("reference: start script not executable", [], "not executable",
           env={"startScripts": notexec, "testScript": script}, argv0="nixos-test-driver")
    expect("reference: output dir missing", ["-o", os.path.join(d, "nodir")], "is not a directory",
           env={"startScripts": execok, "testScript": script}, argv0="nixos-test-driver")
    expect("reference: container names without their start scripts", [], "containerStartScripts lists 0",
           env={"containerNames": "c1", "testScript": script}, argv0="nixos-test-driver")

done()
