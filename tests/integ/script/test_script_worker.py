#!/usr/bin/python3
# Proves the real vigil-script (embedded CPython + threaded channel) runs test scripts end to end and always
# reports a clear verdict: pass, assertion failure, driver error, crash, os._exit, lost supervisor, bad config.
# Why it matters: whatever a script does, the run must end cleanly with the right exit code and message.
#
# The supervisor and the machines are played by script-fake-sup, whose "guest shell" is bash on this host.

import shutil
import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from xml.etree import ElementTree as ET

SCRIPT = os.environ.get("VIGIL_SCRIPT", "build/workers/script/vigil-script")
FAKE = os.environ.get("VIGIL_FAKE_SUP", "build/tests/integ/script/script-fake-sup")
ESC = re.compile(r"\x1b\[[0-9;]*m")


def run(script: str, *, machines=("server", "client"), extra_cfg=None, fake_args=(), stdin=None, timeout=60,
        env=None):
    tmp = Path(tempfile.mkdtemp(prefix="vigil-script-test-"))
    atexit.register(shutil.rmtree, tmp, True)
    (tmp / "t.py").write_text(script)
    cfg = {
        "test_script": str(tmp / "t.py"),
        "out_dir": str(tmp),
        "tmp_dir": str(tmp),
        "global_timeout": 600,
        "interactive": False,
        "junit": None,
        "keep_state": False,
        "log_level": "info",
        "machines": [{"name": n, "backend": "qemu", "state_dir": str(tmp / f"vm-state-{n}"),
                      "shared_dir": str(tmp / "shared"), "start_command": None, "vlans": [1]} for n in machines],
        "vlans": [{"nr": 1, "socket_dir": str(tmp / "vde1.ctl")}],
    }
    cfg.update(extra_cfg or {})
    for n in machines:
        (tmp / f"vm-state-{n}").mkdir()
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([FAKE, *fake_args, "--config", str(tmp / "cfg.json"), "--", SCRIPT, "--name", "script"],
                       input=stdin, capture_output=True, text=True, timeout=timeout, cwd=tmp, env=e)
    found = re.findall(r"verdict=\S+ exit=.*", p.stdout)
    last = found[-1] if found else ""
    m = re.match(r"verdict=(\S+) exit=(-?\d+) signal=(\d+) ready_ms=(\S+) requests=(\d+) message=(.*)", last)
    assert m, p.stdout
    return {
        "verdict": None if m[1] == "none" else int(m[1]),
        "exit": int(m[2]),
        "signal": int(m[3]),
        "ready_ms": float(m[4]),
        "requests": int(m[5]),
        "message": m[6],
        "stdout": p.stdout,
        "stderr": ESC.sub("", p.stderr),
        "tmp": tmp,
    }


FREE_PYTHON = r'''
import json, re, threading, collections
from test_driver.errors import RequestedAssertionFailed, MachineError
from test_driver.machine import retry as imported_retry
from test_driver.machine.qmp import QMPAPIError
import vigil

start_all()
assert [m.name for m in machines] == ["client", "server"]
out = server.succeed("echo hello; echo world >&2")
assert out == "hello\n", repr(out)
status, text = client.execute("printf 'a b'; exit 3")
assert (status, text) == (3, "a b"), (status, text)
client.fail("false")
data = json.loads(server.succeed("echo '{\"k\": [1, 2]}'"))
assert data == {"k": [1, 2]}
assert re.search(r"\d+", server.succeed("echo abc123")).group() == "123"
name = "srv"
assert f"{name}-{len(machines)}" == "srv-2"

# closures and threads: concurrent requests on both machines
results = collections.defaultdict(list)
def worker(m, i):
    for j in range(10):
        results[i].append(m.succeed(f"echo {i}-{j}").strip())
threads = [threading.Thread(target=worker, args=(server if i % 2 else client, i)) for i in range(6)]
[t_.start() for t_ in threads]
[t_.join() for t_ in threads]
for i in range(6):
    assert results[i] == [f"{i}-{j}" for j in range(10)], results[i]

# big output crosses many chunks
big = server.succeed("head -c 300000 /dev/zero | tr '\\0' a")
assert len(big) == 300000 and set(big) == {"a"}

try:
    server.succeed("echo " + "x" * 70000)
    raise AssertionError("an oversized command was accepted")
except MachineError as e:
    assert "protocol allows at most 65536" in str(e), str(e)
server.wait_until_succeeds("test 1 = 1", timeout=5)
t.assertEqual(server.wait_until_fails("echo x; false", timeout=5), "x\n")
try:
    server.wait_until_succeeds("false", timeout=1)
    raise AssertionError("expected a timeout")
except RequestedAssertionFailed as e:
    assert str(e).startswith("action timed out after ") and str(e).endswith("(timeout=1)"), str(e)

calls = []
imported_retry(lambda last: calls.append(last) or len(calls) > 1, timeout_seconds=5)
retry(lambda last: True, timeout=3)

server.send_console("hello console\n")
server.wait_for_console_text("hello cons")
assert "fake boot line 1 of server" in server.get_console_log()
assert "sendkey shift-a" in (server.send_key("A", delay=None) or server.send_monitor_command("info"))
assert server.qmp_client.send("query-status") == {"return": {"status": "running"}}
try:
    server.qmp_client.send("nosuch")
    raise AssertionError("expected QMPAPIError")
except QMPAPIError as e:
    assert e.class_name == "CommandNotFound"
server.block(); server.unblock()
server.screenshot("shot")
assert open(os.path.join(driver.out_dir, "shot.png"), "rb").read(4) == b"\x89PNG"
assert vigil.machine_worker_pid("server") > 0
assert vigil.machine_state(server)["booted"] is True
server.shutdown()
assert not server.is_up()
server.start()
server.wait_for_console_text("fake boot line 3 of server")
assert server.get_console_log().splitlines() == [f"fake boot line {i} of server" for i in (1, 2, 3)], server.get_console_log()
vigil.partition([server], [client])
vigil.link(server, client, loss=0.5, both=False)
vigil.heal()
assert vigil.vlan_stats(1)["frames"] == 42
with subtest("first"):
    server.succeed("true")
with subtest("second"):
    t.assertIn("b", "abc")
log.info("all good")
'''


class TestScriptWorker(unittest.TestCase):
    def test_free_python_passes(self):
        junit = None
        r = run(FREE_PYTHON, extra_cfg={"junit": "JUNIT"})
        self.assertEqual((r["verdict"], r["exit"]), (0, 0), r["stderr"][-3000:])
        self.assertIn("additionally exposed symbols:\n    client, server,\n    vlan1,\n", r["stdout"])
        self.assertIn("test script finished in", r["stderr"])
        self.assertIn("server: must succeed: echo hello; echo world >&2", r["stderr"])
        self.assertIn("server # fake boot line 1 of server", r["stderr"])
        self.assertIn("fake-sup: event subtest-begin: first", r["stderr"])
        self.assertIn("fake-sup: vlan1 rule server->client both=1 drop=1 loss_ppm=0", r["stderr"])
        self.assertIn("fake-sup: vlan1 rule server->client both=0 drop=0 loss_ppm=500000", r["stderr"])
        self.assertLess(r["ready_ms"], 2000)
        del junit

    def test_junit_file(self):
        tmpname = tempfile.mktemp(suffix=".xml")
        r = run("with subtest('one'):\n    server.succeed('true')\nwith subtest('two'):\n    server.succeed('false')\n",
                extra_cfg={"junit": tmpname})
        self.assertEqual(r["verdict"], 1)
        cases = {c.get("name"): c for c in ET.parse(tmpname).getroot().iter("testcase")}
        self.assertEqual(set(cases), {"main", "one", "two"})  # the newest reference always has `main`
        self.assertIsNone(cases["one"].find("failure"))
        self.assertIsNotNone(cases["two"].find("failure"))
        os.unlink(tmpname)

    def test_requested_assertion(self):
        r = run("x = 1\nserver.succeed('true')\nclient.succeed('exit 4')\n")
        self.assertEqual((r["verdict"], r["exit"]), (1, 1))
        self.assertEqual(r["message"], "RequestedAssertionFailed: command `exit 4` failed (exit code 4)")
        # serial lines may interleave with the error report, as in the reference
        err = "\n".join(line for line in r["stderr"].splitlines() if " # " not in line)
        self.assertIn('!!! Traceback (most recent call last):\n!!!   File "<string>", line 3, in <module>\n'
                      "!!!     client.succeed('exit 4')\n!!! \n"
                      "!!! RequestedAssertionFailed: command `exit 4` failed (exit code 4)", err)
        self.assertNotIn("machine/__init__.py", err)

    def test_machine_error_full_traceback(self):
        r = run("create_machine('/nix/store/x-run-extra-vm')\n")
        self.assertEqual((r["verdict"], r["exit"]), (1, 1))
        self.assertIn("MachineError: create_machine(extra): the fake supervisor cannot add machines", r["message"])
        self.assertIn("!!! Traceback (most recent call last):", r["stderr"])
        self.assertIn("driver.py", r["stderr"])

    def test_plain_exception(self):
        r = run("assert 1 + 1 == 3, 'arithmetic'\n")
        self.assertEqual((r["verdict"], r["exit"]), (1, 1))
        self.assertEqual(r["message"], "AssertionError: arithmetic")
        self.assertIn('File "<string>", line 1, in <module>', r["stderr"])

    def test_sys_exit(self):
        r = run("server.succeed('true')\nimport sys\nsys.exit(0)\nserver.succeed('false')\n")
        self.assertEqual((r["verdict"], r["exit"]), (0, 0))
        r = run("import sys\nsys.exit(3)\n")
        self.assertEqual((r["verdict"], r["exit"]), (1, 1))
        self.assertEqual(r["message"], "the script exited with status 3")
        r = run("log.error('giving up')\n")
        self.assertEqual((r["verdict"], r["exit"]), (1, 1))
        self.assertIn("giving up", r["stderr"])

    def test_os_exit(self):
        r = run("import os\nos._exit(7)\n")
        self.assertEqual((r["verdict"], r["exit"]), (None, 7))

    def test_segfault_still_reports(self):
        r = run("server.succeed('true')\nimport ctypes\nctypes.string_at(0)\n")
        self.assertEqual(r["verdict"], 1)
        self.assertEqual(r["signal"], 11)
        self.assertIn("crashed (signal 11, SEGV)", r["message"])
        self.assertIn("Fatal Python error: Segmentation fault", r["stderr"])

    def test_lost_supervisor(self):
        tic = time.monotonic()
        r = run("start_all()\nfor i in range(100):\n    server.succeed('true')\n", fake_args=("--lose-after", "6"))
        self.assertNotEqual(r["exit"], 0)
        self.assertLess(time.monotonic() - tic, 20)
        self.assertIn("lost the vigil supervisor", r["stderr"])

    def test_ctrl_c_interrupts_a_blocked_request(self):
        r = run("import os, signal, threading\n"
                "threading.Timer(1, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
                "server.succeed('sleep 6')\n")
        self.assertEqual((r["verdict"], r["exit"]), (1, 1))
        self.assertEqual(r["message"], "KeyboardInterrupt: ")
        # (had the request not been interrupted, succeed() would have returned and the script passed)
        self.assertIn("KeyboardInterrupt", r["stderr"])

    def test_wait_ms_bounds_a_request(self):
        # What failure diagnostics rely on: a bounded wait gives up in time, in any thread, and the late reply
        # of the abandoned request is dropped instead of answering the next one.
        r = run("import threading, time\n"
                "from test_driver.channel import ChannelError\n"
                "start_all()\n"
                "def bounded(ms, what):\n"
                "    tic = time.monotonic()\n"
                "    try:\n"
                "        server._channel.request('M_EXECUTE', 'server', command='sleep 3; echo late', timeout_s=-1,\n"
                "                                check_return=True, check_output=True, wait_ms=ms)\n"
                "    except ChannelError as e:\n"
                "        assert e.timed_out, e\n"
                "        what.append(time.monotonic() - tic)\n"
                "main = []\n"
                "bounded(300, main)\n"
                "other = []\n"
                "th = threading.Thread(target=bounded, args=(250, other))\n"
                "th.start(); th.join()\n"
                "assert len(main) == 1 and 0.29 < main[0] < 1.5, main\n"
                "assert len(other) == 1 and 0.24 < other[0] < 1.5, other\n"
                "out = client.succeed('echo next')\n"
                "assert out == 'next\\n', repr(out)\n"
                "out = server.succeed('echo after')\n"
                "assert out == 'after\\n', repr(out)\n"
                "print('WAIT-MS-OK', round(main[0], 3), round(other[0], 3))\n")
        self.assertEqual((r["verdict"], r["exit"]), (0, 0), r["stderr"][-2000:])
        self.assertIn("WAIT-MS-OK", r["stdout"])

    def test_bad_config(self):
        r = run("pass\n", extra_cfg={"test_script": "/nonexistent/script.py"})
        self.assertEqual((r["verdict"], r["exit"]), (78, 78))
        self.assertIn("cannot read the test script", r["message"])

    def test_interactive(self):
        r = run("server.succeed('echo from-script')\n", extra_cfg={"interactive": True},
                stdin="print('repl says', server.succeed('echo hi').strip())\ntest_script()\n")
        self.assertEqual((r["verdict"], r["exit"]), (0, 0), r["stderr"][-2000:])
        self.assertIn("repl says hi", r["stdout"])
        self.assertIn("server: must succeed: echo from-script", r["stderr"])

    def test_single_machine_alias_and_vlans(self):
        r = run("assert machine is only\nassert vlan1.nr == 1 and vlans == [vlan1]\nassert repr(machine) == \"<QemuMachine 'only'>\"\n",
                machines=("only",))
        self.assertEqual((r["verdict"], r["exit"]), (0, 0), r["stderr"][-2000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
