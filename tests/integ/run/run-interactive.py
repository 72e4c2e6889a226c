#!/usr/bin/env python3
# Proves `vigil run --interactive` is a usable REPL on a terminal: the script worker reads vigil's stdin, a
# command reaches the guest, Ctrl-C interrupts a blocked request (KeyboardInterrupt) without ending the run,
# the machine still answers afterwards, and Ctrl-D ends the run with exit 0, as with the reference driver.
import os
import pty
import select
import sys
import tempfile
import time

from runtap import check, done, failed

VIGIL = sys.argv[1]


with tempfile.TemporaryDirectory(prefix="vigil-run-int-") as d:
    script = os.path.join(d, "t.py")
    with open(script, "w") as f:
        f.write("start_all()\n")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(VIGIL, [VIGIL, "run", "--interactive", script, "--node", "server", "-o", os.path.join(d, "out")])
    out = b""

    def read_until(pat, timeout=120, since=0):
        global out
        end = time.monotonic() + timeout
        while pat not in out[since:] and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        return pat in out[since:]

    check(read_until(b">>> "), "the REPL prompts on the terminal")
    os.write(fd, b'print(server.succeed("echo hi-from-" + "guest"))\n')
    check(read_until(b"hi-from-guest\r\n"), "a typed command runs on the guest")
    os.write(fd, b'server.succeed("sleep 8")\n')
    read_until(b"must succeed: sleep 8", 30)
    time.sleep(1)
    os.write(fd, b"\x03")
    check(read_until(b"KeyboardInterrupt", 30), "Ctrl-C interrupts the blocked request")
    os.write(fd, b'print(server.succeed("echo after-" + "interrupt"))\n')
    check(read_until(b"after-interrupt\r\n", 60), "the run goes on and the machine answers again")
    # Ctrl-D is EOF at an empty prompt; typed before the prompt, a loaded host could lose it.
    read_until(b">>> ", 30, since=out.index(b"after-interrupt\r\n"))
    os.write(fd, b"\x04")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    check(code == 0, f"Ctrl-D ends the run with exit 0 (got {code})")
    if failed():
        print("# terminal tail:\n# " + out.decode(errors="replace")[-2500:].replace("\n", "\n# "))
done()
