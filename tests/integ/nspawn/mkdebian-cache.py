#!/usr/bin/python3
# Proves tools/mkdebian's contract: a bootable bookworm tree built once (systemd, vigil's overlay units enabled, shareable by many containers), reused fast, keyed by every input, rebuilt from its base in a second when the overlay changes, distinct exit codes.
# Why: every nspawn machine boots this tree; a stale, half-built or host-tainted tree would break them all obscurely.
"""Builds (or reuses) the real tree in the vigil cache, so later runs and the nspawn tests share it; the
key-change and failure checks run on a temporary copy of tools/ and never build a second tree.
Exit 0 = pass, 1 = fail, 77 = skip (not root, no debootstrap, mirror unreachable)."""

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("VIGIL_SOURCE_ROOT") or Path(__file__).resolve().parents[3])
MKDEBIAN = ROOT / "tools/mkdebian"
failures = []
n = 0


def check(ok, what, detail=""):
        global n
        n += 1
        print(f"{'ok' if ok else 'not ok'} {n} - {what}", flush=True)
        if not ok:
                failures.append(what)
                for line in str(detail).strip().splitlines()[-20:]:
                        print(f"#   {line}")


def run(tool, *args, env=None, **kw):
        return subprocess.run([str(tool), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, **kw)


def load_mkdebian():
        loader = importlib.machinery.SourceFileLoader("mkdebian", str(MKDEBIAN))
        spec = importlib.util.spec_from_loader("mkdebian", loader)
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        return mod


def overlay_units(mod):
        """(name, [wants-dir/name links]) of every unit the real overlay installs."""
        units = []
        for rel, kind, _, data in mod.overlay_entries(mod.OVERLAY):
                dst = mod.tree_path(rel)
                if kind == "file" and dst.startswith("etc/systemd/system/") and dst.count("/") == 3 \
                                and dst.endswith(mod.UNIT_SUFFIXES):
                        name = dst.rsplit("/", 1)[1]
                        wanted, required, _ = mod.unit_install_targets(data.decode())
                        units.append((name, [f"{t}.wants/{name}" for t in wanted]
                                      + [f"{t}.requires/{name}" for t in required]))
        return units


def check_tree(tree, mod):
        check((tree / "etc/vigil/mkdebian.manifest").is_file(), "the tree has its manifest")
        init = tree / "sbin/init"
        check(init.is_symlink() and "systemd" in os.readlink(init) and (tree / "lib/systemd/systemd").exists(),
              "systemd is the tree's init (systemd-sysv)")
        for binary in ("usr/bin/python3", "usr/bin/qemu-system-x86_64", "usr/bin/nc", "usr/bin/ping",
                       "usr/sbin/ip", "usr/bin/dbus-daemon", "usr/bin/systemd-run"):
                # lexists: alternatives are absolute symlinks, meaningless on the host.
                check(os.path.lexists(tree / binary), f"/{binary} is in the tree")
        for lib in ("libevent-2.1.so.7", "libmsgpackc.so.2", "libjson-c.so.5", "libcap-ng.so.0",
                    "libpython3.11.so.1.0", "libasan.so.8", "libubsan.so.1"):
                check((tree / "usr/lib/x86_64-linux-gnu" / lib).exists(), f"vigil's runtime library {lib}")
        mid = tree / "etc/machine-id"
        check(mid.is_file() and mid.stat().st_size == 0, "/etc/machine-id is empty (one id per container)")
        hosts = tree / "etc/hosts"
        check(hosts.is_file() and not hosts.is_symlink() and "localhost" in hosts.read_text(),
              "/etc/hosts is a plain file the setup script can append to")
        check(not (tree / "etc/hostname").exists(), "no /etc/hostname copied from the build host")
        root = [l for l in (tree / "etc/shadow").read_text().splitlines() if l.startswith("root:")]
        check(root and root[0].split(":")[1] == "", "root has no password", root)
        lists = tree / "var/lib/apt/lists"
        check(lists.is_dir() and [p.name for p in lists.iterdir()] == ["partial"], "apt lists removed")
        check("Storage=volatile" in (tree / "etc/systemd/journald.conf.d/50-vigil.conf").read_text(),
              "journald keeps logs in /run")
        getty = tree / "etc/systemd/system/console-getty.service"
        check(getty.is_symlink() and os.readlink(getty) == "/dev/null", "console-getty is masked")
        units = overlay_units(mod)
        check(units, "the overlay has units to install", [u for u, _ in units])
        for name, links in units:
                check((tree / "etc/systemd/system" / name).is_file(), f"overlay unit {name} installed")
                for link in links:
                        p = tree / "etc/systemd/system" / link
                        check(p.is_symlink() and os.readlink(p) == f"/etc/systemd/system/{name}",
                              f"{name} enabled: {link}")


def check_enable_logic(mod, tmp):
        """The overlay layout rules on a fake tree, whatever the real overlay holds today."""
        ov = tmp / "ov"
        (ov / "etc/systemd/system").mkdir(parents=True)
        (ov / "usr/lib/vigil").mkdir(parents=True)
        (ov / "a.service").write_text("[Unit]\n[Service]\nExecStart=/bin/true\n[Install]\n"
                                      "WantedBy=multi-user.target sysinit.target\nAlias=b.service\n")
        (ov / "etc/systemd/system/c.socket").write_text("[Socket]\n[Install]\nRequiredBy=sockets.target\n")
        (ov / "d.service").write_text("[Service]\nExecStart=/bin/true\n")
        (ov / "usr/lib/vigil/tool").write_text("#!/bin/sh\n")
        (ov / "usr/lib/vigil/tool").chmod(0o755)
        (ov / "README").write_text("not copied\n")
        tree = tmp / "faketree"
        (tree / "etc/systemd/system").mkdir(parents=True)
        entries = mod.overlay_entries(ov)
        enabled = mod.install_overlay(tree, entries)
        sysd = tree / "etc/systemd/system"
        check(sorted(enabled) == sorted(["multi-user.target.wants/a.service", "sysinit.target.wants/a.service",
                                         "b.service", "sockets.target.requires/c.socket"]),
              "WantedBy=, RequiredBy= and Alias= become the links systemctl enable makes", enabled)
        check((sysd / "d.service").is_file() and not any("d.service" in e for e in enabled),
              "a unit without [Install] is installed, not enabled")
        check(os.access(tree / "usr/lib/vigil/tool", os.X_OK), "overlay directories mirror the root, modes kept")
        check(not (tree / "README").exists() and not (sysd / "README").exists(), "the README is not copied")


def copy_tools(tmp):
        tools = tmp / "tools"
        tools.mkdir()
        shutil.copy2(MKDEBIAN, tools / "mkdebian")
        shutil.copytree(ROOT / "tools/debian", tools / "debian")
        return tools


def main():
        if not MKDEBIAN.exists():
                print("1..0 # SKIP no tools/mkdebian")
                return 77
        if os.geteuid() != 0:
                print("1..0 # SKIP needs root (building the tree, the exit-code checks)")
                return 77
        mod = load_mkdebian()
        tmp = Path(tempfile.mkdtemp(prefix="vigil-mkdebian-"))
        try:
                check_enable_logic(mod, tmp)

                t0 = time.monotonic()
                first = run(MKDEBIAN, timeout=1700)
                t_first = time.monotonic() - t0
                if first.returncode in (mod.EXIT_NOT_ROOT, mod.EXIT_MISSING, mod.EXIT_MIRROR):
                        print(f"# {first.stderr.strip()}")
                        print(f"1..{n} # SKIP cannot build the tree here (exit {first.returncode})")
                        return 77
                check(first.returncode == 0 and first.stdout.count("\n") == 1,
                      f"mkdebian prints the tree ({first.returncode}, {t_first:.1f} s)", first.stderr)
                if first.returncode != 0:
                        return 1
                tree = Path(first.stdout.strip())
                built = "tree" in first.stderr  # "building ... base tree", "tree <key>: base ..."
                print(f"# tree {tree} ({'built' if built else 'cached'} in {t_first:.1f} s)")
                key = run(MKDEBIAN, "--print-key").stdout.strip()
                check(tree.is_absolute() and tree.name == key and tree.parent.name == "debian",
                      "the tree is <cache>/debian/<key>", f"{tree} vs key {key}")
                check_tree(tree, mod)
                first_entries = set(os.listdir(tree.parent))

                t0 = time.monotonic()
                again = run(MKDEBIAN)
                t_again = time.monotonic() - t0
                check(again.returncode == 0 and again.stdout == first.stdout and again.stderr == "",
                      "a second call reuses the tree", again.stderr)
                check(t_again < 3, f"the cache hit is fast ({t_again:.2f} s)")
                print(f"# cached call: {t_again:.3f} s")

                extra = run(MKDEBIAN, "--print-key", env=dict(os.environ, VIGIL_MKDEBIAN_EXTRA_PACKAGES="hello"))
                check(extra.returncode == 0 and extra.stdout.strip() not in ("", key),
                      "an extra package changes the key")
                same = run(MKDEBIAN, "--print-key", env=dict(os.environ, VIGIL_MKDEBIAN_EXTRA_PACKAGES="dbus"))
                check(same.stdout.strip() == key, "a package already listed does not (the list is a set)")
                tools = copy_tools(tmp)
                check(run(tools / "mkdebian", "--print-key").stdout.strip() == key,
                      "a copy of tools/ has the same key (nothing host-specific in it)")
                (tools / "debian/overlay/extra.conf").write_text("x\n")
                changed = run(tools / "mkdebian", "--print-key").stdout.strip()
                check(changed not in ("", key), "a new overlay file changes the key")
                (tools / "debian/overlay/extra.conf").chmod(0o755)
                check(run(tools / "mkdebian", "--print-key").stdout.strip() not in ("", key, changed),
                      "an overlay file's executable bit changes the key")
                (tools / "debian/overlay/extra.conf").unlink()
                (tools / "debian/overlay/README").write_text("edited\n")
                check(run(tools / "mkdebian", "--print-key").stdout.strip() == key, "the README is not hashed")

                # An overlay change reuses the base tree: hard links plus the overlay, no debootstrap.
                (tools / "debian/overlay/extra.conf").write_text("x\n")
                t0 = time.monotonic()
                quick = run(tools / "mkdebian", timeout=600)
                t_quick = time.monotonic() - t0
                try:
                        qtree = Path(quick.stdout.strip())
                        check(quick.returncode == 0 and qtree.parent == tree.parent and qtree != tree
                              and "debootstrap" not in quick.stderr,
                              f"an overlay change builds a new tree without debootstrap ({t_quick:.1f} s)",
                              quick.stderr)
                        print(f"# tree for a changed overlay: {t_quick:.2f} s")
                        check((qtree / "extra.conf").read_text() == "x\n", "the new tree has the new overlay file")
                        a, b = (tree / "usr/bin/python3.11").stat(), (qtree / "usr/bin/python3.11").stat()
                        check(a.st_ino == b.st_ino and a.st_dev == b.st_dev,
                              "it shares the base's files (hard links, no second copy)")
                        check((tree / "etc/vigil/mkdebian.manifest").stat().st_ino
                              != (qtree / "etc/vigil/mkdebian.manifest").stat().st_ino
                              and "extra.conf" not in (tree / "etc/vigil/mkdebian.manifest").read_text(),
                              "writing the new tree's manifest left the first tree's alone")
                finally:
                        if quick.returncode == 0 and quick.stdout.strip():
                                mod.remove_tree(Path(quick.stdout.strip()))

                (tools / "debian/overlay/extra.conf").write_text("race\n")
                before = set(os.listdir(tree.parent))
                procs = [subprocess.Popen([str(tools / "mkdebian")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True) for _ in range(3)]
                outs = [p.communicate(timeout=600) for p in procs]
                new = sorted(set(os.listdir(tree.parent)) - before)
                built = sum("overlay entries" in err for _, err in outs)
                check({p.returncode for p in procs} == {0} and len({o for o, _ in outs}) == 1 and built == 1
                      and [x for x in new if not x.startswith(".lock-")] == [Path(outs[0][0].strip()).name],
                      f"3 concurrent calls: one build, one tree, no leftovers ({built} builds, new: {new})",
                      "\n".join(e for _, e in outs))
                for x in new:
                        if not x.startswith(".lock-"):
                                mod.remove_tree(tree.parent / x)
                for x in set(os.listdir(tree.parent)) - first_entries:
                        if x.startswith(".lock-"):
                                (tree.parent / x).unlink()

                # Failures, on the changed copy (its key is not cached, so it would have to build).
                (tools / "debian/overlay/extra.conf").write_text("x\n")
                bad = run(tools / "mkdebian", "--bogus")
                check(bad.returncode == mod.EXIT_USAGE, f"bad option: exit 2 ({bad.returncode})")
                bad = run(tools / "mkdebian", "--cache", "/dev/null/x")
                check(bad.returncode == mod.EXIT_CACHE and "/dev/null/x" in bad.stderr,
                      f"unusable cache: exit 4 ({bad.returncode})", bad.stderr)
                bad = run(tools / "mkdebian", "--cache", str(tmp / "c"), "--mirror", "http://127.0.0.1:9/debian")
                check(bad.returncode == mod.EXIT_MIRROR and "unreachable" in bad.stderr,
                      f"mirror unreachable: exit 7 ({bad.returncode})", bad.stderr)
                check(not any(p.name.startswith(".tmp-") for p in (tmp / "c/debian").iterdir()),
                      "a failed build leaves no temporary tree")
                bad = run(tools / "mkdebian", "--cache", str(tmp / "c"),
                          env=dict(os.environ, VIGIL_MKDEBIAN_EXTRA_PACKAGES="Not_A_Package"))
                check(bad.returncode == mod.EXIT_USAGE, f"a bad package name: exit 2 ({bad.returncode})")
                if shutil.which("setpriv"):
                        tmp.chmod(0o755)
                        for p in (tmp / "c", tmp / "c/debian", tmp / "c/debian-base"):
                                p.chmod(0o777)
                        bad = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  str(tools / "mkdebian"), "--cache", str(tmp / "c"))
                        check(bad.returncode == mod.EXIT_NOT_ROOT and "root" in bad.stderr,
                              f"not root: exit 6 ({bad.returncode})", bad.stderr)
        finally:
                shutil.rmtree(tmp, ignore_errors=True)
        print(f"1..{n}")
        return 1 if failures else 0


if __name__ == "__main__":
        sys.exit(main())
