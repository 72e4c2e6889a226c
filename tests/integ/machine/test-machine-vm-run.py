#!/usr/bin/python3
# Proves vigil-machine under the real supervisor and script worker (`vigil run`): a tiny guest and a fake NixOS
# start-script VM boot together, a SIGKILLed machine worker is restarted and re-attaches with the VM still up
# (an idempotent wait_until is replayed), and the console keeps flowing. It matters because this is how users
# run vigil; minisup-based tests only stand in for the supervisor.
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minisup  # noqa: E402

SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT", ".")
VIGIL = os.environ.get("VIGIL") or (sys.argv[1] if len(sys.argv) > 1 else None)

SCRIPT = r'''
import os, signal
import vigil

start_all()
tiny.succeed("echo before > /tmp/m")
qpid = vigil.machine_state(tiny)["pid"]
wpid = vigil.machine_worker_pid(tiny)
os.kill(wpid, signal.SIGKILL)
tiny.wait_until_succeeds("test -e /tmp/m")
assert vigil.machine_worker_pid(tiny) != wpid, "machine worker was not restarted"
assert vigil.machine_state(tiny)["pid"] == qpid, "a different QEMU: the VM was lost"
assert tiny.succeed("cat /tmp/m") == "before\n"
tiny.succeed("echo after-restart > /dev/ttyS0")
tiny.wait_for_console_text("after-restart")

assert fake.succeed("hostname") == "fake\n"
status, out = fake.execute("exit 7")
assert status == 7, status
fake.block()
fake.unblock()
print("VM-RUN-OK")
fake.shutdown()
tiny.shutdown()
'''


def main():
    n = 0
    failed = 0

    def check(cond, what, detail=""):
        nonlocal n, failed
        n += 1
        failed += not cond
        print("%sok %d - %s" % ("" if cond else "not ", n, what), flush=True)
        if not cond:
            for line in str(detail).splitlines()[-40:]:
                print("#   " + line)

    if not VIGIL or not shutil.which("qemu-system-x86_64"):
        print("1..0 # SKIP no vigil binary or no QEMU")
        sys.exit(77)
    guest = minisup.find_guest(SOURCE_ROOT)
    if not guest:
        print("1..0 # SKIP no tiny guest")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="vigil-mr-", dir="/tmp")
    try:
        subprocess.run(["sh", os.path.join(SOURCE_ROOT, "tests/helpers/make-fake-vm"), "fake", guest,
                        os.path.join(tmp, "fake"), "--vlan", "1", "--node-number", "1"], check=True)
        spec = {"nodes": {"fake": {"start_script": os.path.join(tmp, "fake", "bin", "run-fake-vm")},
                          "tiny": {"vlans": [1]}}}
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            import json
            json.dump(spec, f)
        with open(os.path.join(tmp, "test.py"), "w") as f:
            f.write(SCRIPT)
        env = dict(os.environ, TMPDIR=tmp)
        r = subprocess.run([VIGIL, "run", os.path.join(tmp, "test.py"), "--spec", os.path.join(tmp, "spec.json"),
                            "-o", os.path.join(tmp, "out"), "--global-timeout", "240"],
                           cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", timeout=280)
        out = r.stdout
        check(r.returncode == 0 and "VM-RUN-OK" in out, "vigil run passes the script (exit %d)" % r.returncode, out)
        check("Re-attached to the running machine" in out, "the restarted worker re-attached", out)
        logs = os.listdir(os.path.join(tmp, "out")) if os.path.isdir(os.path.join(tmp, "out")) else []
        check("tiny-console.log" in logs and "fake-console.log" in logs, "console logs in the output dir", logs)
        if "tiny-console.log" in logs:
            with open(os.path.join(tmp, "out", "tiny-console.log"), errors="replace") as f:
                check("after-restart" in f.read(), "console log continues across the worker restart")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n)
    sys.exit(1 if failed else 0)


main()
