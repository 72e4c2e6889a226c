#!/usr/bin/python3
# Proves the reference guest protocol end to end on a real QEMU tiny guest: exit codes, exact stdout
# (UTF-8, binary bytes, multi-MB), timeouts, check_return/check_output, output cap, wait loops, console.
# It matters because every test script's succeed()/wait_until_*() goes through exactly this path.
import hashlib
import time

from vmtest import Test


def body(t):
    m = t.machine(limits={"output_max": 8 * 1024 * 1024})
    t0 = time.monotonic()
    ok, e = t.raises(lambda: m.connect(timeout_ms=300), "connect with a short timeout: -ETIMEDOUT (a poll)")
    t.check(e is not None and e.code == -110, "... code -ETIMEDOUT, so the caller may poll again", e and e.code)
    for _ in range(200):  # the script worker polls like this; the ready line must not fall between polls
        try:
            m.connect(timeout_ms=200)
            break
        except Exception:
            time.sleep(0.05)
    m.connect()
    t.check(time.monotonic() - t0 < 60, "boots to the ready line (%.1f s)" % (time.monotonic() - t0))
    t.check(m.state()[:2] == [True, True], "state: booted and connected")

    t.check(m.execute("true") == (0, b""), "true -> (0, '')")
    t.check(m.execute("exit 3") == (3, b""), "exit 3 -> status 3")
    t.check(m.execute("false; echo unreachable") == (1, b""), "set -e: a ;-sequence stops at the first failure")
    t.check(m.execute("false | true")[0] == 1, "pipefail: pipeline reports the failure")
    t.check(m.execute("echo $UNSET_VAR")[0] != 0, "nounset: unset variable fails")
    t.check(m.execute("""echo 'it'"'"'s' "\\"quoted\\"" $((6*7))""") == (0, b"it's \"quoted\" 42\n"),
            "quotes of every kind survive the reference quoting")
    t.check(m.execute("printf 'h\\303\\251llo \\342\\202\\254\\n'") == (0, "héllo €\n".encode()), "UTF-8 exact")
    raw = bytes(range(256))
    st, out = m.execute("printf '%s'" % "".join("\\%03o" % b for b in raw))
    t.check(st == 0 and out == raw, "all 256 byte values exact (incl. NUL, CR, LF)", repr(out[:40]))
    st, out = m.execute("echo out; echo err >&2")
    t.check(out == b"out\n", "stdout captured, stderr not (it goes to the console)")
    st, out = m.execute("head -c 3000000 /dev/urandom > /tmp/big; sha256sum /tmp/big | cut -d' ' -f1")
    want = out.decode().strip()
    t0 = time.monotonic()
    st, out = m.execute("cat /tmp/big")
    t.check(st == 0 and len(out) == 3000000 and hashlib.sha256(out).hexdigest() == want,
            "3 MB of random bytes exact (%.1f s)" % (time.monotonic() - t0))

    t.check(m.execute("sleep 10", timeout_s=1)[0] == 124, "guest-side timeout -> 124")
    t.check(m.execute("echo hi; exit 5", check_return=False) == (-1, b"hi\n"), "check_return=False -> -1, output")
    # check_output=False is meant for commands that end the shell (switch_root), but the shell may live
    # on: the next command must then neither hang (it did for up to 900 s) nor read the old output.
    t.check(m.execute("echo stale-output", check_output=False) == (-2, b""), "check_output=False -> (-2, '') at once")
    t0 = time.monotonic()
    r = m.execute("echo next")
    t.check(r == (0, b"next\n") and time.monotonic() - t0 < 10,
            "on a live shell the next command resyncs and gets its own output (%.1f s)" % (time.monotonic() - t0), r)
    # A shell that dies with a fresh one announcing itself a second later (what switch_root does):
    # connect() waits for the fresh shell, and commands run there.
    # (The command runs as backdoor bash -> timeout -> bash -c: the shell is the parent of $PPID.)
    respawn = ("(trap '' HUP; sleep 1; setsid /etc/vigil/backdoor) </dev/null >/dev/null 2>&1 & "
               "kill -9 $(awk '/^PPid/ {print $2}' /proc/$PPID/status)")
    # The backdoor shells: children of init running bash on hvc0 (the pipeline's subshells share the text).
    shells = ("for p in /proc/[0-9]*; do echo ${p#/proc/} $(awk '/^PPid/ {print $2}' $p/status) "
              "$(tr '\\0' ' ' <$p/cmdline); done 2>/dev/null | grep -c '^[0-9]* 1 /bin/bash --norc /dev/hvc0'")
    t.check(m.execute(respawn, check_output=False) == (-2, b""), "the shell is replaced (check_output=False)")
    m.connect()
    r = m.execute(shells)
    t.check(r == (0, b"1\n"), "commands work on the fresh shell, the only backdoor shell left", r)

    ok, e = t.raises(lambda: m.execute("head -c 9000000 /dev/zero"), "output over the cap is a clear error",
                     "exceeds the limit")
    t.check(m.execute("echo after-cap") == (0, b"after-cap\n"), "next command works after the cap error")

    m.execute("rm -f /tmp/flag; (sleep 2; touch /tmp/flag) >/dev/null 2>&1 &")
    t0 = time.monotonic()
    r = m.call("M_WAIT_UNTIL", "test -e /tmp/flag && echo yes", 30, True)
    el = time.monotonic() - t0
    t.check(r.body[0] == 0 and r.data == b"yes\n" and 1.5 < el < 10, "wait_until_succeeds polls until true (%.1f s)" % el)
    r = m.call("M_WAIT_UNTIL", "test ! -e /tmp/flag", 30, False)
    t.check(r.body[0] != 0, "wait_until_fails returns on failure")
    t0 = time.monotonic()
    ok, e = t.raises(lambda: m.call("M_WAIT_UNTIL", "false", 2, True), "wait_until timeout error",
                     "action timed out after ")
    el = time.monotonic() - t0
    t.check(e is not None and e.message.endswith("seconds (timeout=2)") and 2 <= el < 8,
            "timeout text like the reference (%s, %.1f s)" % (e.message if e else None, el))

    m.execute("echo console-marker-$((40+2)) > /dev/ttyS0")
    seen = m.wait_for_console("console-marker-42", timeout=20)
    t.check("console-marker-42" in seen, "console line readable through CONSOLE_READ")
    text, nxt = m.console_read(0, 0)
    t.check(nxt > 10 and "Linux version" in text, "console lines indexed from boot (%d lines)" % nxt)
    text, nxt2 = m.console_read(nxt, 300)
    t.check(nxt2 >= nxt, "reading at the end waits a bounded time")

    r = m.call("M_MONITOR", "info status")
    t.check(b"VM status: running" in r.data and r.data.endswith(b"(qemu) "), "HMP reply raw with prompt")
    r = m.call("M_QMP", '{"execute": "query-status"}')
    t.check(b'"running": true' in r.data, "QMP command answered")
    r = m.call("M_QMP", '{"execute": "nosuch"}')
    t.check(b"CommandNotFound" in r.data, "QMP error reply passed through")

    m.call("M_SHUTDOWN")
    t.check(m.state()[:3] == [False, False, 0], "shutdown powers off and QEMU exits")
    log = t.console_log()
    t.check("console-marker-42" in log and "Linux version" in log, "console log file written")


Test().run(body)
