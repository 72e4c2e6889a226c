#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves meson configures vigil when msgpack-c ships only msgpack-c.pc (msgpack-c >= 6: nixpkgs, Debian trixie)
# and still refuses, naming msgpack, when neither msgpack-c.pc nor msgpack.pc exists. Why it matters: with only
# `dependency('msgpack')` the nix build of vigil failed at configure time.
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from vmrun import Tap  # noqa: E402

SRC = Path(os.environ.get("VIGIL_SOURCE_ROOT") or Path(__file__).resolve().parents[3])


def pc_dir(tmp: Path, msgpack_name: str | None) -> Path:
    """Every .pc file pkg-config knows, except msgpack.pc, which becomes msgpack_name (or disappears)."""
    d = tmp / f"pc-{msgpack_name}"
    d.mkdir()
    path = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"], capture_output=True,
                          text=True, check=True).stdout.strip()
    original = None
    for dirname in path.split(":"):
        for pc in sorted(Path(dirname).glob("*.pc")) if Path(dirname).is_dir() else []:
            if pc.name in ("msgpack.pc", "msgpack-c.pc"):
                original = original or pc
            elif not (d / pc.name).exists():
                (d / pc.name).symlink_to(pc)
    if original is None:
        print("1..0 # SKIP no msgpack.pc (apt-get install libmsgpack-dev)")
        sys.exit(77)
    if msgpack_name:
        (d / f"{msgpack_name}.pc").write_text(original.read_text())
    return d


def configure(tmp: Path, pcdir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(pcdir))
    env.pop("PKG_CONFIG_PATH", None)
    return subprocess.run(["meson", "setup", str(tmp / f"build-{pcdir.name}"), str(SRC)], capture_output=True,
                          text=True, env=env, timeout=300)


def main() -> None:
    if not shutil.which("meson") or not shutil.which("pkg-config"):
        print("1..0 # SKIP no meson or pkg-config")
        sys.exit(77)
    tap = Tap()
    with tempfile.TemporaryDirectory(prefix="vigil-msgpack-") as t:
        tmp = Path(t)
        r = configure(tmp, pc_dir(tmp, "msgpack-c"))
        tap.check(r.returncode == 0 and "dependency msgpack-c found: YES" in r.stdout,
                  "configures with only msgpack-c.pc", (r.stdout + r.stderr)[-3000:])
        r = configure(tmp, pc_dir(tmp, None))
        tap.check(r.returncode != 0 and "msgpack" in (r.stdout + r.stderr).split("ERROR", 1)[-1],
                  "without either .pc file configure fails naming msgpack", (r.stdout + r.stderr)[-2000:])
    tap.done()


if __name__ == "__main__":
    main()
