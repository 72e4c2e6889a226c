# SPDX-License-Identifier: MIT
"""Helpers for the script worker's VM and container tests: run `vigil run`
(or vigil as nixos-test-driver) in a fresh directory, collect exit code,
stdout, stderr without colours, and print TAP. tests/integ/nspawn/test-nspawn-*.py
use it too (skip_unless_nspawn, spec_run)."""

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ESC = re.compile(r"\x1b\[[0-9;]*m")
SOURCE_ROOT = Path(os.environ.get("VIGIL_SOURCE_ROOT") or Path(__file__).resolve().parents[3])
VIGIL = os.environ.get("VIGIL") or (sys.argv[1] if len(sys.argv) > 1 else "")


class Tap:
    def __init__(self) -> None:
        self.n = 0
        self.failed = 0

    def check(self, cond: bool, what: str, detail: str = "") -> bool:
        self.n += 1
        self.failed += not cond
        print(f"{'' if cond else 'not '}ok {self.n} - {what}", flush=True)
        if not cond:
            for line in str(detail).splitlines()[-60:]:
                print("#   " + line, flush=True)
        return cond

    def done(self) -> None:
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


def skip_unless_ready() -> None:
    if not VIGIL or not Path(VIGIL).exists() or not shutil.which("qemu-system-x86_64"):
        print("1..0 # SKIP no vigil binary or no QEMU")
        sys.exit(77)


def debian_tree() -> str | None:
    """The Debian tree nspawn nodes boot: $VIGIL_DEBIAN_TREE, else the one
    tools/mkdebian has in its cache for the current inputs (never built here:
    a build takes minutes and needs the Debian mirror)."""
    tree = os.environ.get("VIGIL_DEBIAN_TREE")
    if tree:
        return tree if Path(tree, "usr/lib/systemd/systemd").exists() or Path(tree, "lib/systemd/systemd").exists() else None
    try:
        key = subprocess.run([str(SOURCE_ROOT / "tools/mkdebian"), "--print-key"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = os.environ.get("VIGIL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "vigil")
    tree = os.path.join(root, "debian", key)
    return tree if key and Path(tree, "etc/os-release").exists() else None


def skip_unless_nspawn(qemu: bool = False) -> str:
    """Exit 77 (TAP skip) with the reason unless nspawn nodes can run here;
    returns the Debian tree."""
    why = None
    if not VIGIL or not Path(VIGIL).exists():
        why = "no vigil binary"
    elif os.geteuid() != 0:
        why = "not root (systemd-nspawn needs root)"
    elif not shutil.which("systemd-nspawn"):
        why = "no systemd-nspawn (apt-get install systemd-container)"
    elif qemu and not shutil.which("qemu-system-x86_64"):
        why = "no QEMU"
    tree = None if why else debian_tree()
    if not why and not tree:
        why = "no Debian tree (run tools/mkdebian as root, or set VIGIL_DEBIAN_TREE)"
    if why:
        print(f"1..0 # SKIP {why}")
        sys.exit(77)
    return str(tree)


class Run:
    def __init__(self, rc: int, stdout: str, stderr: str, out: Path) -> None:
        self.rc = rc
        self.stdout = stdout
        self.stderr = ESC.sub("", stderr)
        self.out = out

    def log(self) -> str:
        """stderr without guest console lines (they interleave anywhere)."""
        return "\n".join(line for line in self.stderr.splitlines() if " # " not in line)

    def tail(self) -> str:
        return (self.stdout + "\n---\n" + self.stderr)[-6000:]


def _remove_at_exit(tmp: Path) -> None:
    """The run's files stay for this test process to read, then go (VIGIL_TEST_KEEP=1 keeps them)."""
    if os.environ.get("VIGIL_TEST_KEEP") != "1":
        atexit.register(shutil.rmtree, tmp, True)


def vigil_run(script: str, nodes: list[str], *args: str, timeout: int = 280, stdin: str | None = None) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix="vigil-script-vm-"))
    _remove_at_exit(tmp)
    (tmp / "t.py").write_text(script)
    out = tmp / "out"
    out.mkdir()
    cmd = [VIGIL, "run", str(tmp / "t.py"), *[a for n in nodes for a in ("--node", n)], "-o", str(out),
           "--global-timeout", str(timeout - 30), *args]
    return _run(cmd, tmp, out, timeout, stdin)


def junit_cases(path: Path) -> dict[str, bool]:
    """{subtest name: failed?} from a JUnit file ({} if there is none)."""
    from xml.etree import ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    return {tc.get("name", ""): tc.find("failure") is not None for tc in root.iter("testcase")}


def spec_run(script: str, spec: dict, *args: str, timeout: int = 280) -> Run:
    """`vigil run --spec` with `spec` written as JSON next to the script."""
    tmp = Path(tempfile.mkdtemp(prefix="vigil-script-spec-"))
    _remove_at_exit(tmp)
    (tmp / "t.py").write_text(script)
    (tmp / "spec.json").write_text(json.dumps(spec))
    out = tmp / "out"
    out.mkdir()
    cmd = [VIGIL, "run", str(tmp / "t.py"), "--spec", str(tmp / "spec.json"), "-o", str(out),
           "--global-timeout", str(timeout - 30), *args]
    return _run(cmd, tmp, out, timeout)


def _run(cmd: list[str], cwd: Path, out: Path, timeout: int, stdin: str | None = None, env: dict | None = None) -> Run:
    e = dict(os.environ)
    e.update(env or {})
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, input=stdin, env=e)
        return Run(p.returncode, p.stdout, p.stderr, out)
    except subprocess.TimeoutExpired as ex:
        return Run(-1, ex.stdout or "", (ex.stderr or "") + "\n(timed out)", out)


def reference_run(args: list[str], cwd: Path, env: dict, timeout: int = 280) -> Run:
    """vigil installed as nixos-test-driver (a symlink), the reference CLI."""
    bindir = cwd / "bin"
    bindir.mkdir(exist_ok=True)
    link = bindir / "nixos-test-driver"
    if not link.exists():
        link.symlink_to(VIGIL)
    out = cwd / "out"
    out.mkdir(exist_ok=True)
    return _run([str(link), *args], cwd, out, timeout, env=env)
