#!/usr/bin/python3
# Proves a nixpkgs-style test runs unchanged when vigil is installed as `nixos-test-driver` and driven
# through both nix->driver contracts: the environment variables (startScripts, testScript, vlans,
# globalTimeout) of 22.05-25.11 and the JSON --config of newer nixpkgs, with NixOS-like start scripts.
# Why it matters: that is how a nix-built test swaps its driver for vigil.
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmrun import SOURCE_ROOT, Tap, reference_run, skip_unless_ready  # noqa: E402

HERE = Path(__file__).resolve().parent


def make_vms(tmp: Path) -> list[str]:
    guest = subprocess.run([str(SOURCE_ROOT / "tools/mkguest")], capture_output=True, text=True, check=True).stdout.strip()
    hosts = "192.168.1.1:client,192.168.1.2:server"
    scripts = []
    for k, name in enumerate(["client", "server"], start=1):
        subprocess.run([str(SOURCE_ROOT / "tests/helpers/make-fake-vm"), name, guest, str(tmp / name), "--vlan", "1",
                        "--node-number", str(k), "--hosts", hosts], check=True)
        scripts.append(str(tmp / name / "bin" / f"run-{name}-vm"))
    return scripts


def main() -> None:
    skip_unless_ready()
    tap = Tap()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-compat-"))
    scripts = make_vms(tmp)
    test_script = HERE / "nixpkgs-style-test.py"

    env = {"startScripts": " ".join(scripts), "testScript": str(test_script), "vlans": "1", "globalTimeout": "240"}
    r = reference_run(["-o", "out", "--junit-xml", "junit.xml"], tmp, env)
    tap.check(r.rc == 0, "environment-variable contract: the test passes", r.tail())
    tap.check("additionally exposed symbols:\n    client, server,\n    vlan1," in r.stdout, "machines named from run-NAME-vm")
    tap.check("subtest: retry" in r.stderr and "test script finished in" in r.stderr, "reference log lines")
    junit = tmp / "out" / "junit.xml"
    tap.check(junit.exists() and 'name="the page is served"' in junit.read_text(), "--junit-xml lands in -o")

    cfg = {
        "vms": {name: {"name": name, "start_script": s} for name, s in zip(["client", "server"], scripts)},
        "containers": {},
        "vlans": [1],
        "global_timeout": 240,
        "enable_ssh_backdoor": False,
        "test_script": str(test_script),
    }
    (tmp / "config.json").write_text(json.dumps(cfg))
    for d in ("out2", "out3"):
        (tmp / d).mkdir()  # the reference requires -o to exist
    r = reference_run(["--config", str(tmp / "config.json"), "-o", "out2", "--log-level", "info"], tmp, {})
    tap.check(r.rc == 0, "--config contract: the test passes", r.tail())
    tap.check("subtest: a failing command is a requested assertion" in r.stderr, "the same script ran")

    # A failing nixpkgs-style test fails the same way through the contract.
    bad = tmp / "bad.py"
    bad.write_text("start_all()\nserver.succeed('exit 2')\n")
    r = reference_run(["-o", "out3"], tmp, {**env, "testScript": str(bad)})
    tap.check(r.rc == 1 and "!!! RequestedAssertionFailed: command `exit 2` failed (exit code 2)" in r.stderr,
              "a failing script: exit 1 and the reference's error report", r.tail())
    tap.done()


if __name__ == "__main__":
    main()
