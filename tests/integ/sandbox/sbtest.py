"""The harness of the sandbox tier: what this owns.

`setup(vigil)` checks the sandbox can run (else prints the reason and exits
77, meson's skip) and returns the vigil binary; `run_vigil(sb, script, args)`
writes a test script into the sandbox and runs `vigil run` there;
`checks(text)` turns the `CHECK ok|FAIL name: detail` lines the scripts
print into TAP lines (runtap). VM scripts share the BULK_HELPERS below:
they count every read and report them all, so a short read shows its size
instead of stopping at the first.
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "run"))
import sandbox  # noqa: E402
from runtap import check  # noqa: E402

SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def setup(vigil):
    vigil = os.path.abspath(vigil)
    build = os.path.dirname(os.path.dirname(vigil))
    need = [vigil, os.path.join(build, "workers", "machine", "vigil-machine"),
            os.path.join(build, "workers", "script", "vigil-script"),
            os.path.join(build, "workers", "switch", "vigil-switch"),
            os.path.join(SOURCE_ROOT, "tools", "mkguest"),
            os.path.join(SOURCE_ROOT, "workers", "script", "python", "test_driver", "__init__.py")]
    why = sandbox.unusable(need)
    if why:
        print(f"1..0 # SKIP sandbox tier: {why}")
        sys.exit(77)
    return vigil


def run_vigil(sb, vigil, script, args=(), timeout=900, name="t.py", env=None):
    path = sb.write(name, script)
    return sb.run([vigil, "run", path] + list(args), timeout=timeout, env=env)


CHECK_RE = re.compile(r"^CHECK (ok|FAIL) ([^:\n]+)(?::([^\n]*))?$", re.M)


def checks(text):
    """One TAP line per CHECK line; returns how many there were."""
    n = 0
    for m in CHECK_RE.finditer(text):
        check(m.group(1) == "ok", m.group(2).strip() + (":" + m.group(3) if m.group(3) else ""))
        n += 1
    return n


def tail(text, n=4000):
    """The end of a run's output as TAP comments, console lines left out and long lines cut."""
    lines = [ln if len(ln) < 300 else ln[:300] + "..." for ln in text.splitlines() if " # " not in ln]
    return "# " + "\n".join(lines)[-n:].replace("\n", "\n# ")


# Python run inside vigil's script worker: exact-bytes helpers.
BULK_HELPERS = r'''
import hashlib, os, time
_results = []


def report(ok, name, detail=""):
    _results.append(ok)
    print(f"CHECK {'ok' if ok else 'FAIL'} {name}: {detail}", flush=True)


def sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


def guest_sha(m, path):
    return m.succeed(f"sha256sum {path}").split()[0]


def host_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_text(m, path, size):
    """A guest file of exactly size printable bytes (base64 without newlines); returns its sha256.
    No `| head -c` after base64: under pipefail its SIGPIPE would fail the command (exit 141)."""
    if size % 4:
        m.succeed(f"head -c {size * 3 // 4 + 3} /dev/urandom | base64 -w 0 > {path}.b64",
                  f"head -c {size} {path}.b64 > {path}", f"rm {path}.b64")
    else:
        m.succeed(f"head -c {size * 3 // 4} /dev/urandom | base64 -w 0 > {path}")
    return guest_sha(m, path)


def reads_exact(m, path, size, want, count, name):
    """count succeed("cat path"): every one exact, or the sizes that were not."""
    bad, took = [], 0.0
    for i in range(count):
        t0 = time.monotonic()
        out = m.succeed(f"cat {path}")
        took += time.monotonic() - t0
        if len(out) != size or sha(out) != want:
            bad.append(len(out))
    rate = f" {size * count / max(took, 1e-9) / 1e6:.1f} MB/s over {took:.0f} s" if count else ""
    report(not bad, f"{name}: {count - len(bad)}/{count} succeed() reads of {size} bytes exact",
           rate + (f"; short/altered sizes {bad}" if bad else ""))
    return not bad


def copy_vm_exact(m, path, want, name):
    m.copy_from_vm(path, "copies")
    got = host_sha(os.path.join(m.out_dir, "copies", os.path.basename(path)))
    report(got == want, f"{name}: copy_from_vm of {path} exact", "" if got == want else f" sha {got} != {want}")
    os.unlink(os.path.join(m.out_dir, "copies", os.path.basename(path)))


def copy_host_exact(m, size, target, name, via_shell=False):
    src = os.path.join(os.environ.get("TMPDIR", "/tmp"), "host-" + os.path.basename(target))
    with open(src, "wb") as f:
        f.write(os.urandom(size))
    want = host_sha(src)
    try:
        (m.copy_from_host_via_shell if via_shell else m.copy_from_host)(src, target)
        got = guest_sha(m, target)
        err = "" if got == want else f" sha {got} != {want}"
    except Exception as e:
        got, err = None, f" {type(e).__name__}: {str(e)[:300]}"
    fn = "copy_from_host_via_shell" if via_shell else "copy_from_host"
    report(got == want, f"{name}: {fn} of {size} bytes exact", err)
    os.unlink(src)
    m.succeed(f"rm -f {target}")


def finish():
    print(f"BULK {sum(_results)}/{len(_results)} checks passed", flush=True)
    assert all(_results), "some bulk transfers were not exact (see the CHECK FAIL lines)"
'''
