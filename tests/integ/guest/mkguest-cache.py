#!/usr/bin/python3
# Proves tools/mkguest's cache contract without booting: reuse when inputs are unchanged, a new
# directory when a guest file changes, safe concurrent builds, and an initramfs with what init needs.
# Why: every VM test starts with mkguest; a stale or half-written guest would fail them all obscurely.
"""Runs a copy of tools/mkguest (with its own copy of tools/guest, so a guest file can be edited)
against a temporary cache. Self-contained: python3 stdlib only. Exit 0 = pass, 1 = fail,
77 = skip (no kernel or busybox-static on this host)."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
failures = []


def check(ok, what):
        print(f"{'ok' if ok else 'FAIL'} - {what}", flush=True)
        if not ok:
                failures.append(what)


def mkguest(tools, cache, *args):
        return subprocess.run([str(tools / "mkguest"), "--cache", str(cache), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_newc(data):
        """{name: (mode, rdevmajor, rdevminor, content)} of a newc cpio archive."""
        entries, pos = {}, 0
        while True:
                hdr = data[pos:pos + 110]
                if hdr[:6] != b"070701":
                        raise ValueError(f"bad cpio magic at {pos}")
                f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
                mode, filesize, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
                name = data[pos + 110:pos + 110 + namesize - 1].decode()
                pos = (pos + 110 + namesize + 3) & ~3
                content = data[pos:pos + filesize]
                pos = (pos + filesize + 3) & ~3
                if name == "TRAILER!!!":
                        return entries
                entries[name] = (mode, rmaj, rmin, content)


def main():
        probe = subprocess.run([str(ROOT / "tools/mkguest"), "--cache", "/nonexistent/x"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if probe.returncode == 3:
                print(f"SKIP: {probe.stderr.strip()}")
                return 77

        tmp = Path(tempfile.mkdtemp(prefix="vigil-mkguest-"))
        try:
                tools = tmp / "tools"
                tools.mkdir()
                shutil.copy2(ROOT / "tools/mkguest", tools / "mkguest")
                shutil.copytree(ROOT / "tools/guest", tools / "guest")
                cache = tmp / "cache"

                first = mkguest(tools, cache)
                check(first.returncode == 0 and "building guest" in first.stderr,
                      f"first run builds ({first.returncode}: {first.stderr.strip()[-200:]})")
                out = Path(first.stdout.strip())
                check(first.stdout.count("\n") == 1 and out.is_absolute()
                      and out.parent == (cache / "guest").resolve(),
                      f"one line, an absolute path under DIR/guest: {first.stdout!r}")
                for f in ("kernel", "initrd", "cmdline", "manifest"):
                        check((out / f).is_file(), f"{f} is there")

                again = mkguest(tools, cache)
                check(again.returncode == 0 and again.stdout == first.stdout
                      and "building" not in again.stderr, "unchanged inputs: reused, not rebuilt")

                entries = read_newc((out / "initrd").read_bytes())
                mode, _, _, target = entries.get("init", (0, 0, 0, b""))
                check(stat.S_ISLNK(mode) and target == b"bin/busybox", "/init is busybox init")
                mode, rmaj, rmin, _ = entries.get("dev/console", (0, 0, 0, b""))
                check(stat.S_ISCHR(mode) and (rmaj, rmin) == (5, 1), "/dev/console is char 5:1")
                for name in ("bin/bash", "bin/timeout", "bin/base64", "etc/inittab",
                             "etc/vigil/rc.sysinit", "etc/vigil/backdoor", "lib64/ld-linux-x86-64.so.2"):
                        check(name in entries and entries[name][3], f"/{name} present")
                check(entries.get("bin/poweroff", (0, 0, 0, b""))[3].startswith(b"#!/bin/busybox sh"),
                      "/bin/poweroff is the fast wrapper")
                load = entries.get("etc/vigil/modules.load", (0, 0, 0, b""))[3].decode().split()
                names = [p.rsplit("/", 1)[-1] for p in load]
                check(names[:2] == ["virtio_ring.ko", "virtio.ko"] and "virtio_console.ko" in names
                      and names.index("virtio_pci.ko") < names.index("virtio_console.ko")
                      and all(p.lstrip("/") in entries for p in load),
                      f"modules.load in dependency order, all shipped: {names}")

                (tools / "guest" / "profile").write_text(
                        (tools / "guest" / "profile").read_text() + "# changed\n")
                changed = mkguest(tools, cache)
                check(changed.returncode == 0 and changed.stdout != first.stdout
                      and "building" in changed.stderr, "a changed guest file gives a new guest")

                race = tmp / "race"
                procs = [subprocess.Popen([str(tools / "mkguest"), "--cache", str(race)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                         for _ in range(3)]
                outs = {p.communicate(timeout=120)[0] for p in procs}
                codes = {p.returncode for p in procs}
                left = sorted(p.name for p in (race / "guest").iterdir() if not p.name.startswith(".lock-"))
                check(codes == {0} and len(outs) == 1 and len(left) == 1 and not left[0].startswith("."),
                      f"3 concurrent builds: one guest, no leftovers but the hash's lock ({codes}, {left})")

                bad = mkguest(tools, cache, "--kernel-version", "0.0-none")
                check(bad.returncode == 3 and "apt-get install" in bad.stderr,
                      f"missing kernel: exit 3 naming the package ({bad.returncode}: {bad.stderr.strip()})")
                bad = mkguest(tools, Path("/dev/null/x"))
                check(bad.returncode == 4, f"unusable cache: exit 4 ({bad.returncode})")
                bad = subprocess.run([str(tools / "mkguest"), "--bogus"], stderr=subprocess.DEVNULL)
                check(bad.returncode == 2, f"bad option: exit 2 ({bad.returncode})")
        finally:
                shutil.rmtree(tmp, ignore_errors=True)
        print("PASS" if not failures else f"FAIL: {len(failures)} check(s) failed")
        return 1 if failures else 0


if __name__ == "__main__":
        sys.exit(main())
