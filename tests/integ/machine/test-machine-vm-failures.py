#!/usr/bin/python3
# Proves that bad input and hostile guests end in clear, bounded errors: a missing kernel, QEMU dying before it
# connects, a guest that never prints the ready line, a broken /dev/kvm (auto accel probe), a console flood.
# It matters because the reference driver hangs forever in accept() or waits without bound in these cases.
import os
import time

from vmtest import Test


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def body(t):
    # The KVM probe's verdict for this boot of the host goes to $XDG_RUNTIME_DIR: this test's own.
    xdg = os.path.join(t.tmp, "xdg")
    os.makedirs(xdg)
    os.environ["XDG_RUNTIME_DIR"] = xdg
    m = t.machine("nokernel", qemu={"kernel": "/nonexistent/vmlinuz", "initrd": "/nonexistent/initrd"})
    t0 = time.monotonic()
    t.raises(lambda: m.start(), "missing kernel: clear error naming the file", "kernel /nonexistent/vmlinuz is not readable")
    t.check(time.monotonic() - t0 < 2, "... at once")
    t.raises(lambda: m.execute("true"), "execute on it fails the same way", "not readable")

    cfg_q = {"kernel": os.path.join(t.guest, "kernel"), "initrd": os.path.join(t.guest, "initrd"),
             "extra_args": ["-device", "no-such-device"]}
    m = t.machine("dies", qemu=cfg_q)
    t0 = time.monotonic()
    ok, e = t.raises(lambda: m.start(), "QEMU exiting before connecting is an error, not a hang",
                     "QEMU exited before the machine was up (exit status 1)")
    t.check(e is not None and "no-such-device" in e.message, "... quoting QEMU's own stderr", e and e.message)
    t.check(time.monotonic() - t0 < 10, "... within seconds (%.1f s)" % (time.monotonic() - t0))

    # auto acceleration: /dev/kvm here exists but hangs guests; the bounded probe must pick TCG.
    m = t.machine("slow", accel="auto", timeouts={"connect_s": 2})
    t0 = time.monotonic()
    m.start()
    el = time.monotonic() - t0
    log = t.worker_log()
    if os.path.exists("/dev/kvm"):
        t.check("Using TCG (software) acceleration" in log or "Using KVM acceleration" in log,
                "auto accel logs its choice and why")
        t.check(el < 12, "the KVM probe is bounded (%.1f s)" % el)
        cache = os.path.join(t.tmp, "vigil-kvm-probe")
        t.check(os.path.exists(cache), "probe result cached for the run (%s)" % (open(cache).read().strip()
                                                                               if os.path.exists(cache) else "-"))
        host = os.path.join(xdg, "vigil-kvm-probe")
        verdict = open(host).read().strip() if os.path.exists(host) else "-"
        t.check(verdict.startswith("boot=") and verdict.split()[-1] in ("hangs", "works", "failed"),
                "and for this boot of the host, in $XDG_RUNTIME_DIR (%s)" % verdict)
        # Another run (no run cache) takes this boot's verdict instead of probing for up to 3 s again.
        os.unlink(cache)
        start = len(t.worker_log())
        again = t.machine("again", accel="auto", timeouts={"connect_s": 2})
        t0 = time.monotonic()
        again.start()
        el = time.monotonic() - t0
        log = t.worker_log()[start:]
        t.check("this boot's verdict for" in log and "/dev/kvm exists; probing" not in log,
                "a later run takes this boot's verdict without probing (%.1f s)" % el, log)
        again.call("M_CRASH")
    else:
        t.check("/dev/kvm is not available" in log, "auto accel without /dev/kvm says so")
    t0 = time.monotonic()
    ok, e = t.raises(lambda: m.connect(), "a guest that is not ready within connect_s fails clearly",
                     "did not boot: no backdoor ready line")
    t.check(e is not None and e.code == -112, "... with -EHOSTDOWN: connect_s is final, not a poll", e and e.code)
    t.check(e is not None and "machine 'slow'" in e.message and " s after its start" in e.message,
            "... naming the machine and how long it waited", e and e.message)
    t.check(time.monotonic() - t0 < 6 and e is not None and "console" in e.message,
            "... bounded (%.1f s) and shows the last console lines" % (time.monotonic() - t0))
    m.call("M_CRASH")

    m = t.machine("flood")
    m.connect()
    wpid = m.state()[4]
    rss0 = rss_kib(wpid)
    m.execute("(while :; do echo 'flood flood flood flood flood flood flood flood flood flood flood'; done"
              " > /dev/ttyS0) >/dev/null 2>&1 & echo $! > /tmp/flood.pid")
    time.sleep(6)
    t0 = time.monotonic()
    st, out = m.execute("echo responsive")
    t.check((st, out) == (0, b"responsive\n") and time.monotonic() - t0 < 10,
            "commands still answered during a console flood (%.1f s)" % (time.monotonic() - t0))
    _, n = m.console_read(0, 0)
    rss1 = rss_kib(wpid)
    t.check(n > 2000, "flood lines counted (%d)" % n)
    with open("/proc/%d/maps" % wpid) as f:
        asan = "libasan" in f.read()
    # ASan keeps freed memory in quarantine (up to 256 MiB), so RSS says nothing there.
    t.check(asan or rss1 - rss0 < 64 * 1024, "worker memory bounded during the flood (%d -> %d KiB%s)"
            % (rss0, rss1, ", ASan build: not judged" if asan else ""))
    m.execute("kill $(cat /tmp/flood.pid)")
    t.check(t.console_log("flood").count("flood flood") > 2000, "flood written to the console log file")
    m.call("M_CRASH")


Test().run(body)
