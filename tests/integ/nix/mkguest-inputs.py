#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves tools/mkguest builds the tiny guest from inputs named in VIGIL_GUEST_KERNEL/_MODULES/_BUSYBOX/_PATH instead
# of the host's /boot and /bin (what nix/tiny-guest.nix passes from pkgs.linux and pkgsStatic), and refuses half a
# kernel override with exit 2. Why it matters: the nix build sandbox has no /boot; vm-smoke boots this guest.
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from vmrun import Tap  # noqa: E402

SRC = Path(os.environ.get("VIGIL_SOURCE_ROOT") or Path(__file__).resolve().parents[3])


def main() -> None:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels or not Path("/bin/busybox").exists():
        print("1..0 # SKIP no /boot/vmlinuz-* or busybox-static here to stand in for pkgs.linux")
        sys.exit(77)
    kernel = kernels[-1]
    moddir = Path("/lib/modules") / kernel.name[len("vmlinuz-"):]
    tap = Tap()
    with tempfile.TemporaryDirectory(prefix="vigil-mkguest-") as t:
        tmp = Path(t)
        bindir = tmp / "static-bin"  # stands in for pkgsStatic.bash / coreutils / util-linuxMinimal
        bindir.mkdir()
        for name, host in (("bash", "/bin/bash"), ("timeout", "/usr/bin/timeout"), ("base64", "/usr/bin/base64"),
                           ("setsid", "/usr/bin/setsid")):
            (bindir / name).symlink_to(host)
        env = dict(os.environ, VIGIL_GUEST_KERNEL=str(kernel), VIGIL_GUEST_MODULES=str(moddir),
                   VIGIL_GUEST_BUSYBOX="/bin/busybox", VIGIL_GUEST_PATH=f"{tmp}/nothing-here:{bindir}")
        r = subprocess.run([str(SRC / "tools/mkguest"), "--cache", str(tmp / "cache")], capture_output=True,
                           text=True, env=env, timeout=300)
        out = Path(r.stdout.strip()) if r.returncode == 0 else None
        manifest = (out / "manifest").read_text() if out and (out / "manifest").exists() else ""
        tap.check(r.returncode == 0 and (out / "initrd").exists(), "a guest from the named inputs", r.stderr)
        tap.check(f"{bindir}/bash" in manifest and f"{bindir}/base64" in manifest and f"{bindir}/setsid" in manifest,
                  "bash, coreutils and setsid come from VIGIL_GUEST_PATH", manifest)
        env.pop("VIGIL_GUEST_MODULES")
        r = subprocess.run([str(SRC / "tools/mkguest"), "--cache", str(tmp / "cache")], capture_output=True,
                           text=True, env=env, timeout=60)
        tap.check(r.returncode == 2 and "VIGIL_GUEST_MODULES" in r.stderr, "half a kernel override: exit 2", r.stderr)
    tap.done()


if __name__ == "__main__":
    main()
