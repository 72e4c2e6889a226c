"""Runs a command the way a nix build sandbox would: what this owns.

`Sandbox(...)` makes a work directory (a HOME and a TMPDIR owned by the
unprivileged user) and `run(argv)` starts argv in its own mount and network
namespace (`unshare -m -n`, loopback up as nix does), with a tmpfs on /run (so
no journald socket), a tmpfs on /tmp, a minimal /dev like nix's (null, zero,
full, random, urandom, tty, a private devpts, shm; never kvm), then drops to
uid/gid 65534 with no capabilities and no_new_privs (setpriv) and a clean
environment (HOME, TMPDIR/TMP/TEMP/TEMPDIR, PATH, the sanitizer options).
`Sandbox(root=True)` is the same minus the uid drop: the "root" mode of the
stress test. `unusable()` says why the sandbox cannot run here (not root, a
tool missing, the checkout or build dir unreadable by uid 65534): tests skip
with that reason (exit 77).

Inside, the work directory is mounted at /run/build (the nix sandbox's /build
moved under the private /run so nothing is created on the host's /), and the
command starts in its files/ (writable, like nix's build dir): paths given to
the sandboxed command are `sb.inside(host_path)`.
"""

import os
import shlex
import shutil
import subprocess
import tempfile

UID = 65534
INSIDE = "/run/build"
# Variables passed through: the sanitizer options tools/test sets, and the cache only when a test asks.
PASS_ENV = ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS")

_SETUP = r"""
set -eu
work=$1; keep=$2; shift 2
mount --make-rprivate /
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p {inside}
mount --bind "$work" {inside}
# The checkout and build may live under /tmp (a CI clone): carry them over the fresh /tmp.
i=0
for p in $keep; do
        mkdir -p /run/.keep/$i
        mount --rbind "$p" /run/.keep/$i
        i=$((i + 1))
done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
i=0
for p in $keep; do
        mkdir -p "$p"
        mount --rbind /run/.keep/$i "$p"
        umount -l /run/.keep/$i
        i=$((i + 1))
done
# A nix-like /dev: no kvm, no disks, a private pty instance.
mkdir /run/.hostdev
mount --bind /dev /run/.hostdev
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
for n in null zero full random urandom tty; do
        touch /dev/$n
        mount --bind /run/.hostdev/$n /dev/$n
done
umount -l /run/.hostdev
rmdir /run/.hostdev
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
ip link set lo up
cd {inside}/files
exec "$@"
""".format(inside=INSIDE)


def _kept_under_tmp():
    """The source and build trees, if they are under /tmp (the sandbox's own /tmp would hide them)."""
    src = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
    build = os.path.realpath(os.environ.get("MESON_BUILD_ROOT") or os.getcwd())
    keep = []
    for p in sorted({src, build}):
        if p.startswith("/tmp/") and not any(p.startswith(k + "/") for k in keep) and " " not in p:
            keep.append(p)
    return " ".join(keep)


def _readable_by(uid, paths):
    """The first path uid cannot read (or traverse), or None."""
    for p in paths:
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "test", "-r", p, "-a",
                            "(", "!", "-d", p, "-o", "-x", p, ")"], capture_output=True)
        if r.returncode != 0:
            return p
    return None


def unusable(paths=()):
    """Why the sandbox cannot run here, or None. paths: what the sandboxed command must read."""
    if os.geteuid() != 0:
        return "needs root (unshare -m -n, mounts, setpriv)"
    for tool in ("unshare", "setpriv", "ip", "mount"):
        if not shutil.which(tool):
            return f"{tool} is missing (util-linux / iproute2)"
    bad = _readable_by(UID, list(paths))
    if bad:
        return f"{bad} is not readable by uid {UID}: use a checkout and build dir every user can read"
    return None


class Sandbox:
    def __init__(self, root=False, home=None, prefix="vigil-sandbox-"):
        """root: stay root (still private /run, /tmp, /dev, network). home: HOME inside (default: an own,
        writable one; "/homeless-shelter" is nix's, which does not exist)."""
        self.root = root
        self.work = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.work, 0o755)
        for d in ("home", "tmp", "files"):
            os.mkdir(os.path.join(self.work, d), 0o755)
            if not root:
                os.chown(os.path.join(self.work, d), UID, UID)
        self.home = home or self.inside(os.path.join(self.work, "home"))
        self.tmpdir = self.inside(os.path.join(self.work, "tmp"))

    def path(self, *parts):
        """A host path in the work dir's files/ (writable inside)."""
        return os.path.join(self.work, "files", *parts)

    def inside(self, host_path):
        """The path inside the sandbox of a host path under the work dir."""
        rel = os.path.relpath(host_path, self.work)
        assert not rel.startswith(".."), host_path
        return os.path.join(INSIDE, rel)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        if not self.root:
            os.chown(p, UID, UID)
        return self.inside(p)

    def env(self, extra=None):
        tmp = self.tmpdir
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home,
             "TMPDIR": tmp, "TMP": tmp, "TEMP": tmp, "TEMPDIR": tmp, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
        for k in PASS_ENV:
            if k in os.environ:
                e[k] = os.environ[k]
        e.update(extra or {})
        return e

    def argv(self, cmd, env=None):
        """The full command line that runs cmd (a list) in the sandbox."""
        envl = ["env", "-i"] + [f"{k}={v}" for k, v in self.env(env).items()]
        drop = [] if self.root else ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
                                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return (["unshare", "-m", "-n", "--", "/bin/sh", "-c", _SETUP, "sandbox", self.work, _kept_under_tmp()] + drop +
                envl + list(cmd))

    def run(self, cmd, env=None, timeout=600, **kw):
        """subprocess.run of cmd in the sandbox (text, stdout/stderr captured unless kw says otherwise)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.argv(cmd, env), timeout=timeout, cwd=self.work, **kw)

    def popen(self, cmd, env=None, **kw):
        return subprocess.Popen(self.argv(cmd, env), cwd=self.work, **kw)

    def cleanup(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def describe(self):
        who = "root" if self.root else f"uid {UID}"
        return f"{who}, unshare -m -n, tmpfs /run /tmp /dev (no kvm, no journald), HOME={self.home}"


def shell_words(argv):
    return " ".join(shlex.quote(a) for a in argv)
