#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves an installed vigil does what nixpkgs' driver.nix needs of its driver package: `meson install` into a
# DESTDIR, bin/generate-driver-symbols, a nixpkgs-style script type-checked by mypy against the installed test_driver
# found on PYTHONPATH (py.typed, no MYPYPATH), and bin/nixos-test-driver reached through two nested shell wrappers
# (`.nixos-test-driver-wrapped`, `--config` first); with --vm it runs a two-machine test through them to a pass on
# the tiny guest. Why it matters: each of these failed a nix-built test that swapped its driver for vigil.
#
# usage: install-driver.py [--vm]   (env VIGIL_BUILD_ROOT, VIGIL_SOURCE_ROOT)
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("VIGIL_SOURCE_ROOT") or HERE.parents[2])
BUILD = Path(os.environ.get("VIGIL_BUILD_ROOT") or SRC / "build")
sys.path.insert(0, str(SRC / "tests/integ/script"))
from vmrun import Tap  # noqa: E402
import test_typecheck  # noqa: E402

WITH_VM = "--vm" in sys.argv

# driver.nix (2026) annotates nodes as QemuMachine; its prelude imports the rest and declares `t`.
PRELUDE = test_typecheck.PRELUDE_2022 + """
from unittest import TestCase
from test_driver.machine import QemuMachine, NspawnMachine
t: TestCase
"""


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def shell_wrap(prog: Path, *flags: str) -> None:
    """What nixpkgs' wrapProgram (makeShellWrapper, --inherit-argv0) does: hide the program as .NAME-wrapped
    and put a bash script in its place that execs it with extra flags."""
    hidden = prog.with_name(f".{prog.name}-wrapped")
    prog.rename(hidden)
    extra = " ".join(f"'{f}'" for f in flags)
    prog.write_text(f'#!/bin/bash -e\nexec -a "$0" "{hidden}" {extra} "$@"\n')
    prog.chmod(0o755)


def mypy(script: Path, site: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "VIGIL_PYTHON_DIR")}
    env["PYTHONPATH"] = str(site)  # what vigil's nix setup hook exports to driver.nix's build
    return sh(["/usr/bin/python3", "-m", "mypy", "--no-implicit-optional", "--pretty", "--no-color-output",
               "--cache-dir", str(cache), str(script)], cwd=script.parent, env=env)


def main() -> None:
    if importlib.util.find_spec("mypy") is None:
        print("1..0 # SKIP no mypy (apt-get install python3-mypy)")
        sys.exit(77)
    if WITH_VM and not shutil.which("qemu-system-x86_64"):
        print("1..0 # SKIP no QEMU")
        sys.exit(77)
    tap = Tap()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-nix-install-"))
    try:
        run(tap, tmp)
    finally:
        if os.environ.get("VIGIL_TEST_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    tap.done()


def run(tap: Tap, tmp: Path) -> None:
    dest = tmp / "dest"
    r = sh(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--destdir", str(dest), "--quiet"])
    if not tap.check(r.returncode == 0, "meson install into a DESTDIR", r.stdout + r.stderr):
        return
    vigil = next(dest.rglob("bin/vigil"))
    prefix = vigil.parent.parent
    typed = list(prefix.rglob("test_driver/py.typed"))
    tap.check(len(typed) == 1 and "-packages" in str(typed[0]), "test_driver with py.typed in site-packages",
              str(typed))
    site = typed[0].parent.parent
    gds = prefix / "bin/generate-driver-symbols"
    tap.check(gds.exists() and os.access(gds, os.X_OK), "bin/generate-driver-symbols, where driver.nix runs it")

    # The package (nix/package.nix): bin/nixos-test-driver is a link to vigil. Wrap vigil the way the old
    # package did (a shell wrapper), so two shell wrappers nest as they did when the front door broke.
    (prefix / "bin/nixos-test-driver").symlink_to("vigil")
    shell_wrap(prefix / "bin/vigil")

    # The driver derivation (driver.nix): type check, link, generate-driver-symbols, wrap with --config.
    drv = tmp / "drv"
    (drv / "bin").mkdir(parents=True)
    work = tmp / "build"
    work.mkdir()
    script_text = (SRC / "tests/integ/script/nixpkgs-style-test.py").read_text()
    typed_script = work / "testScriptWithTypes"
    typed_script.write_text(PRELUDE + "client: QemuMachine;\nserver: QemuMachine;\nvlan1: VLan\n" + script_text)
    r = mypy(typed_script, site, tmp / "mypy-cache")
    tap.check(r.returncode == 0, "mypy type-checks the nixpkgs-style script against the installed test_driver",
              r.stdout + r.stderr)

    # Without py.typed the same check fails: mypy ignores untyped installed packages (PEP 561).
    untyped = tmp / "untyped-site"
    shutil.copytree(site, untyped)
    (untyped / "test_driver/py.typed").unlink()
    r = mypy(typed_script, untyped, tmp / "mypy-cache2")
    tap.check(r.returncode != 0 and "py.typed" in r.stdout, "without py.typed mypy refuses the import", r.stdout)

    r = sh([str(gds)], cwd=work)
    symbols = (work / "driver-symbols").read_text().split(",") if (work / "driver-symbols").exists() else []
    tap.check(r.returncode == 0 and "start_all" in symbols and "subtest" in symbols,
              "generate-driver-symbols writes driver-symbols in the build directory", r.stderr)

    guest_scripts = make_vms(tmp) if WITH_VM else ["/nonexistent/bin/run-client-vm", "/nonexistent/bin/run-server-vm"]
    (drv / "test-script").write_text(script_text)
    cfg = {
        "vms": {n: {"name": n, "start_script": s} for n, s in zip(["client", "server"], guest_scripts)},
        "containers": {},
        "vlans": [1],
        "global_timeout": 300,
        "enable_ssh_backdoor": False,
        "test_script": str(drv / "test-script"),
    }
    config = tmp / "driverConfiguration.json"
    config.write_text(json.dumps(cfg))
    (drv / "bin/nixos-test-driver").symlink_to(prefix / "bin/nixos-test-driver")
    shell_wrap(drv / "bin/nixos-test-driver", "--config", str(config), "--log-level", "info")

    env = dict(os.environ, VIGIL_LIBEXEC_DIR=str(prefix / "libexec/vigil"), LOGFILE="/dev/null")
    env.pop("VIGIL_PYTHON_DIR", None)
    front = str(drv / "bin/nixos-test-driver")
    r = sh([front, "--help"], env=env)
    tap.check(r.returncode == 0 and r.stdout.startswith("usage: nixos-test-driver"),
              "--help through both wrappers: the reference usage, exit 0", r.stdout + r.stderr)
    bad = config.with_name("missing.json")
    r = sh([str(drv / "bin/.nixos-test-driver-wrapped"), "--config", str(bad)], env=env)
    tap.check(r.returncode == 2 and f"cannot read --config {bad}" in r.stderr and "unknown verb" not in r.stderr,
              "argv[0] .nixos-test-driver-wrapped with --config first is the front door", r.stderr)

    if not WITH_VM:
        return
    out = tmp / "out"
    out.mkdir()
    r = sh([front, "-o", str(out)], env=env, cwd=tmp, timeout=420)  # as run.nix runs it
    tap.check(r.returncode == 0, "a two-machine nixpkgs-style test passes through the wrappers",
              (r.stdout + r.stderr)[-5000:])
    tap.check("subtest: a failing command is a requested assertion" in r.stderr, "the script's subtests ran")


def make_vms(tmp: Path) -> list[str]:
    guest = sh([str(SRC / "tools/mkguest")]).stdout.strip()
    hosts = "192.168.1.1:client,192.168.1.2:server"
    scripts = []
    for k, name in enumerate(["client", "server"], start=1):
        subprocess.run([str(SRC / "tests/helpers/make-fake-vm"), name, guest, str(tmp / name), "--vlan", "1",
                        "--node-number", str(k), "--hosts", hosts], check=True)
        scripts.append(str(tmp / name / "bin" / f"run-{name}-vm"))
    return scripts


if __name__ == "__main__":
    main()
