# SPDX-License-Identifier: MIT
"""Helpers for the script worker's VM tests: run `vigil run` (or vigil as
nixos-test-driver) in a fresh directory, collect exit code, stdout, stderr
without colours, and print TAP."""

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


def vigil_run(script: str, nodes: list[str], *args: str, timeout: int = 280, stdin: str | None = None) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix="vigil-script-vm-"))
    (tmp / "t.py").write_text(script)
    out = tmp / "out"
    out.mkdir()
    cmd = [VIGIL, "run", str(tmp / "t.py"), *[a for n in nodes for a in ("--node", n)], "-o", str(out),
           "--global-timeout", str(timeout - 30), *args]
    return _run(cmd, tmp, out, timeout, stdin)


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
