#!/usr/bin/python3
# Proves the machine lifecycle on real QEMU: QEMU killed from outside fails the running command at once,
# start() after a stop boots again, crash() (HMP quit), reboot() with and without allow_reboot, wait_for_shutdown.
# It matters because the reference driver hangs or orphans QEMU in these cases; vigil must answer every time.
import os
import signal
import time

from vmtest import Test


def body(t):
    m = t.machine()
    m.connect()
    pid = m.state()[2]
    seq = m.send("M_EXECUTE", "sleep 60", -1, True, True)
    time.sleep(1)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    ok, e = t.raises(lambda: m.result(seq, timeout=30), "QEMU killed from outside fails the running command",
                     "QEMU exited (killed by signal 9")
    t.check(time.monotonic() - t0 < 5, "... within seconds (%.1f s)" % (time.monotonic() - t0))
    t.check(m.state()[:3] == [False, False, 0], "state after the kill: not booted, no pid")

    t.check(m.execute("echo again") == (0, b"again\n"), "execute() on a stopped machine starts it again")
    t.check(m.state()[2] not in (0, pid), "a new QEMU process")
    t0 = time.monotonic()
    m.call("M_CRASH")
    t.check(m.state()[0] is False and time.monotonic() - t0 < 10, "crash() quits QEMU via HMP")
    m.call("M_WAIT_SHUTDOWN", -1)
    t.check(True, "wait_for_shutdown on a stopped machine returns at once")

    m.start(allow_reboot=True)
    m.connect()
    qpid = m.state()[2]
    m.execute("echo before-reboot > /dev/ttyS0")
    m.call("M_REBOOT")
    t.check(m.state()[1] is False, "reboot() marks the shell disconnected")
    t0 = time.monotonic()
    st, out = m.execute("echo after-reboot")
    t.check((st, out) == (0, b"after-reboot\n") and m.state()[2] == qpid,
            "with allow_reboot the same QEMU reboots and the shell reconnects (%.1f s)" % (time.monotonic() - t0))
    t.check(t.console_log().count("Run /init as init process") >= 2, "console log spans both boots")
    m.call("M_CRASH")

    m.start(allow_reboot=False)
    m.connect()
    m.call("M_REBOOT")
    m.call("M_WAIT_SHUTDOWN", 60000, timeout=90)
    t.check(m.state()[0] is False, "without allow_reboot (-no-reboot) a reboot ends QEMU")
    t.check(all(p.poll() is not None for p in m.procs.values()), "no QEMU left running")


Test().run(body)
