#!/usr/bin/env python3
# Proves that bulk bytes arrive exact under load: 3 MB outputs and 64 MiB outputs through succeed(), copy_from_vm()
# and the serial console, sha256-checked every time, while a busy loop runs on every core, as root or as uid 65534
# in the sandbox. Losses here were races (issue 10): one pass proves little, so tools/stress-bulk repeats it N times.
"""Usage: stress-bulk.py VIGIL root|unpriv [--n3 N] [--n64 N] [--copies3 N] [--copies64 N] [--console-kb K]
[--console-n N] [--no-hog] [--full]

Prints TAP (one line per path and size, with the sizes of any inexact read) and, last, one line
`STRESS mode=M ok|FAIL exact=E/T seconds=S` that tools/stress-bulk tallies. Exit 0 when every
transfer was exact, 1 otherwise, 77 when the sandbox cannot run here (unpriv mode)."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import sandbox
import sbtest
from runtap import check, done, failed

# The serial console moves ~70 KB/s under TCG (one I/O exit per byte), so its share is kilobytes, not megabytes.
FULL = {"n3": 50, "n64": 2, "copies3": 50, "copies64": 2, "console_kb": 3000, "console_n": 2}
QUICK = {"n3": 12, "n64": 1, "copies3": 20, "copies64": 1, "console_kb": 200, "console_n": 3}

PARAMS = "N3, N64, C3, C64, CKB, CN = {n3}, {n64}, {copies3}, {copies64}, {console_kb}, {console_n}\n"
BODY = r'''
import time
start_all()
serial_stdout_off()
# Kernel messages on ttyS0 would land between the console data lines.
a.succeed("dmesg -n 1")
t0 = time.monotonic()
want3 = make_text(a, "/tmp/f3", 3000000)
want64 = make_text(a, "/tmp/f64", 64 << 20) if N64 or C64 else None
reads_exact(a, "/tmp/f3", 3000000, want3, N3, "succeed 3 MB")
if N64:
    reads_exact(a, "/tmp/f64", 64 << 20, want64, N64, "succeed 64 MiB")


def copies(path, want, count, name):
    bad, t0 = 0, time.monotonic()
    for i in range(count):
        a.copy_from_vm(path, "copies")
        got = os.path.join(a.out_dir, "copies", os.path.basename(path))
        bad += host_sha(got) != want
        os.unlink(got)
    report(not bad, f"{name}: {count - bad}/{count} copy_from_vm exact", f" {time.monotonic() - t0:.0f} s")


copies("/tmp/f3", want3, C3, "copy_from_vm 3 MB")
if C64:
    copies("/tmp/f64", want64, C64, "copy_from_vm 64 MiB")

size = CKB * 1000
wantc = make_text(a, "/tmp/fc", size)
bad, tc = [], time.monotonic()
for i in range(CN):
    a.succeed(f"(echo STRESS-BEGIN-{i}; fold -w 120 /tmp/fc; echo; echo STRESS-END-{i}) > /dev/ttyS0")
    # The data went out before succeed() returned; its lines must reach the script in full.

    deadline = time.monotonic() + 120
    while f"STRESS-END-{i}" not in a.full_console_log[-3:] and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = a.full_console_log
    try:
        b, e = lines.index(f"STRESS-BEGIN-{i}"), lines.index(f"STRESS-END-{i}")
        data = "".join(lines[b + 1:e])
    except ValueError:
        data = ""
    if len(data) != size or sha(data) != wantc:
        bad.append(len(data))
    del a.full_console_log[:]
    # wait_for_console_text rescans all it has gathered for every line (as the reference does): quadratic on
    # thousands of data lines, so the data is read from full_console_log and only the sha line is waited for.
    while not a.last_lines.empty():
        a.last_lines.get_nowait()
    a.succeed(f"echo STRESS-SHA-{i} $(sha256sum < /tmp/fc | cut -d' ' -f1) > /dev/ttyS0")
    a.wait_for_console_text(f"STRESS-SHA-{i} {wantc}", timeout=60)
report(not bad, f"console: {CN - len(bad)}/{CN} serial transfers of {size} bytes exact",
       f" {time.monotonic() - tc:.0f} s" + (f"; short/altered sizes {bad}" if bad else ""))
print(f"STRESS-SECONDS {time.monotonic() - t0:.0f}", flush=True)
finish()
'''


def hog(n):
    """A busy loop per core (at normal priority, like any other build on the machine)."""
    return [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vigil")
    ap.add_argument("mode", choices=["root", "unpriv"])
    ap.add_argument("--full", action="store_true", help="the issue's volumes: 50 x 3 MB and 2 x 64 MiB per path")
    for k, v in QUICK.items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None)
    ap.add_argument("--no-hog", action="store_true")
    a = ap.parse_args()
    vol = dict(FULL if a.full else QUICK)
    for k in vol:
        if getattr(a, k) is not None:
            vol[k] = getattr(a, k)

    if a.mode == "root" and os.geteuid() != 0:
        print("1..0 # SKIP root mode needs root")
        sys.exit(77)
    vigil = sbtest.setup(a.vigil) if a.mode == "unpriv" else os.path.abspath(a.vigil)
    hogs = [] if a.no_hog else hog(os.cpu_count() or 2)
    t0 = time.monotonic()
    script = sbtest.BULK_HELPERS + PARAMS.format(**vol) + BODY
    try:
        if a.mode == "unpriv":
            sb = sandbox.Sandbox()
            try:
                p = sbtest.run_vigil(sb, vigil, script, ["--node", "a"], timeout=3000)
            finally:
                sb.cleanup()
        else:
            with tempfile.TemporaryDirectory(prefix="vigil-stress-") as d:
                path = os.path.join(d, "t.py")
                with open(path, "w") as f:
                    f.write(script)
                p = subprocess.run([vigil, "run", path, "--node", "a", "-o", os.path.join(d, "out")],
                                   capture_output=True, text=True, timeout=3000)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    took = time.monotonic() - t0
    text = p.stdout + p.stderr
    n = sbtest.checks(text)
    want = 3 + (vol["n64"] > 0) + (vol["copies64"] > 0)
    check(n == want, f"every path reported ({n}/{want} CHECK lines)")
    check(p.returncode == 0, f"the {a.mode} run under {len(hogs)} busy loops passes (exit {p.returncode})")
    check("send queue overflow" not in text, "no send queue overflow")
    exact = sum(1 for line in text.splitlines() if line.startswith("CHECK ok"))
    seconds = [line.split()[1] for line in text.splitlines() if line.startswith("STRESS-SECONDS ")]
    print(f"# volumes {vol}")
    if failed():
        print(sbtest.tail("\n".join(ln for ln in text.splitlines() if " # " not in ln and "STRESS-" not in ln), 3000))
    print(f"STRESS mode={a.mode} {'FAIL' if failed() else 'ok'} exact={exact}/{want} seconds={took:.0f} "
          f"transfer_seconds={seconds[0] if seconds else '?'}", flush=True)
    done()


if __name__ == "__main__":
    main()
