#!/usr/bin/python3
# Proves that a SIGKILLed vigil-machine loses no VM: the restarted worker takes its fds back from the store,
# finds QEMU still running, resyncs the guest shell with a nonce and serves commands on the same VM.
# It matters because design.md promises that a crash of any worker loses no VM (the reference loses the run).
import os
import signal
import time

from vmtest import Test


def body(t):
    m = t.machine()
    m.connect()
    qpid = m.state()[2]
    wpid = m.state()[4]
    m.execute("echo state-survives > /tmp/marker")
    m.execute("echo before-kill > /dev/ttyS0")
    _, line_before = m.console_read(0, 0)

    seq = m.send("M_EXECUTE", "sleep 2; echo stale-output", -1, True, True)
    time.sleep(0.5)
    os.kill(wpid, signal.SIGKILL)
    ok, e = t.raises(lambda: m.result(seq, timeout=30), "the in-flight command fails with the restart")
    m.wait_ready(timeout=60)
    t.check(m.restarts == 1, "the worker was restarted once")
    st = m.state()
    t.check(st[4] != wpid and st[2] == qpid and st[0] is True,
            "new worker pid, same QEMU pid (%s -> %s, qemu %s)" % (wpid, st[4], st[2]))
    t.check(st[1] is True, "guest shell connected again after the nonce resync")
    t.check(m.execute("cat /tmp/marker") == (0, b"state-survives\n"), "same VM: guest state kept")
    t.check(m.execute("echo fresh") == (0, b"fresh\n"), "no stale output leaks into the next command")
    m.execute("echo after-kill > /dev/ttyS0")
    seen = m.wait_for_console("after-kill", timeout=20)
    _, line_after = m.console_read(0, 0)
    t.check(line_after > line_before, "console numbering continues (%d -> %d)" % (line_before, line_after))
    log = t.console_log()
    t.check("before-kill" in log and "after-kill" in log, "one console log across the restart")
    t.check(m.call("M_MONITOR", "info status").data.find(b"running") > 0, "HMP works after re-attach")
    t.check(b"running" in m.call("M_QMP", '{"execute": "query-status"}').data, "QMP works after re-attach")

    # A second kill while idle, then a clean shutdown through the re-attached worker.
    os.kill(m.state()[4], signal.SIGKILL)
    time.sleep(0.2)
    m.wait_ready(timeout=60)
    t.check(m.execute("echo twice") == (0, b"twice\n"), "re-attaches again after a second SIGKILL")
    m.call("M_SHUTDOWN")
    t.check(m.state()[0] is False, "shutdown through the re-attached worker")


Test().run(body)
