#!/usr/bin/python3
# Proves every way a test script can end gives the right exit code and a message naming the cause under
# `vigil run`: assertion failures (filtered `!!!` traceback with the script line), driver errors, Python
# exceptions, sys.exit, os._exit, a segfault, a hung script hitting the global timeout, a missing script.
# Why it matters: CI reads exit codes and people read the last lines; a wrong verdict hides broken tests.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmrun import Tap, skip_unless_ready, vigil_run  # noqa: E402

VM_SCRIPT = '''\
from test_driver.errors import RequestedAssertionFailed
server.succeed("true")
try:
    server.wait_until_succeeds("false", timeout=2)
    raise Exception("no timeout")
except RequestedAssertionFailed as e:
    print("TIMEOUT-MESSAGE:", e)
with subtest("doomed"):
    server.succeed("exit 3")
server.succeed("echo never")
'''


def main() -> None:
    skip_unless_ready()
    tap = Tap()

    r = vigil_run(VM_SCRIPT, ["server"])
    log = r.log()
    tap.check(r.rc == 1, "failed succeed() in a VM: exit 1", r.tail())
    tap.check("TIMEOUT-MESSAGE: action timed out after" in r.stdout and "(timeout=2)" in r.stdout,
              "wait_until_succeeds timeout raises RequestedAssertionFailed with the reference text", r.tail())
    tap.check('!!! Test "doomed" failed with error: "command `exit 3` failed (exit code 3)"' in log,
              "the subtest failure is reported", log)
    expect = ('!!! Traceback (most recent call last):\n'
              '!!!   File "<string>", line 9, in <module>\n'
              '!!!     server.succeed("exit 3")\n'
              '!!! \n'
              '!!! RequestedAssertionFailed: command `exit 3` failed (exit code 3)')
    tap.check(expect in log, "filtered traceback names the script line", log)
    tap.check("must succeed: echo never" not in log, "the script stopped at the failure")

    # The rest needs no VM: machines only boot when the script uses them.
    cases = [
        ("create_machine('/nix/store/x-run-extra-vm')\n", 1,
         "MachineError: create_machine(extra): cannot add machine 'extra': start script /nix/store/x-run-extra-vm is not "
         "executable", "driver error"),
        ("x = 1\nassert x == 2, 'x is not two'\n", 1, "AssertionError: x is not two", "bare assert"),
        ("def f(:\n", 1, "SyntaxError", "syntax error in the script"),
        ("log.error('giving up now')\n", 1, "giving up now", "log.error"),
        ("import sys\nsys.exit(0)\nraise Exception('not reached')\n", 0, "test passed", "sys.exit(0)"),
        ("import sys\nsys.exit(4)\n", 1, "", "sys.exit(4)"),
        ("import os\nos._exit(0)\n", 0, "", "os._exit(0)"),
        ("import os\nos._exit(5)\n", 1, "code 5", "os._exit(5)"),
        ("import ctypes\nctypes.string_at(0)\n", 1, "Segmentation fault", "segfault in the script worker"),
    ]
    for script, rc, needle, what in cases:
        r = vigil_run(script, ["server"], timeout=90)
        tap.check(r.rc == rc and needle in r.stderr, f"{what}: exit {rc}, says '{needle}'", r.tail())

    r = vigil_run("import time\ntime.sleep(120)\n", ["server"], timeout=40)
    tap.check(r.rc == 3, "a hung script is stopped by the global timeout: exit 3", r.tail())

    r = vigil_run("pass\n", ["server"], timeout=60)
    tap.check(r.rc == 0 and "additionally exposed symbols:" in r.stdout, "an empty script passes")
    tap.done()


if __name__ == "__main__":
    main()
