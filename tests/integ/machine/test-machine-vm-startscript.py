#!/usr/bin/python3
# Proves the NixOS start-script path: a fake run-<name>-vm (tests/helpers/make-fake-vm) is driven exactly like
# the reference driver (sh -c "<script> <extra args>", TMPDIR/USE_TMPDIR/SHARED_DIR/QEMU_VDE_SOCKET_n env), and
# block()/unblock() switch the reference's default NIC virtio-net-pci.1. It matters because real NixOS tests
# hand vigil exactly such scripts.
import os
import shutil
import subprocess
import sys
import time

from vmtest import SOURCE_ROOT, Test


def body(t):
    if not shutil.which("vde_switch"):
        t.check(True, "# SKIP vde_switch missing")
        return
    vde = os.path.join(t.tmp, "vde1.ctl")
    sw = subprocess.Popen(["vde_switch", "--sock", vde, "--dirmode", "0700", "--hub"], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(os.path.join(vde, "ctl")):
                break
            time.sleep(0.05)
        fake = os.path.join(t.tmp, "fake")
        r = subprocess.run(["sh", os.path.join(SOURCE_ROOT, "tests/helpers/make-fake-vm"), "server", t.guest, fake,
                            "--vlan", "1"], capture_output=True, text=True)
        t.check(r.returncode == 0, "make-fake-vm wrote a start script", r.stderr)
        script = os.path.join(fake, "bin", "run-server-vm")
        m = t.machine("server", qemu={"start_script": script}, vlans=[{"nr": 1, "socket": vde}])
        m.connect()
        st = m.state()
        with open("/proc/%d/cmdline" % st[2], "rb") as f:
            argv = f.read().split(b"\0")
        t.check(argv[0].endswith(b"qemu-system-x86_64"), "sh -c 'exec <script>' leaves QEMU at the tracked pid", argv)
        state = os.path.join(t.tmp, "vm-state-server")
        t.check(b"unix:%s/qmp,server=on,wait=off" % state.encode() in argv and b"virtio-serial,id=vigil-vser" in argv
                and b"-S" in argv
                and b"-no-reboot" in argv and b"-nographic" in argv, "QEMU got the reference's extra args", argv)
        with open("/proc/%d/environ" % st[2], "rb") as f:
            env = f.read().split(b"\0")
        t.check(b"TMPDIR=" + state.encode() in env and b"USE_TMPDIR=1" in env
                and b"QEMU_VDE_SOCKET_1=" + vde.encode() in env, "reference environment reached the script")
        t.check(os.path.isdir(os.path.join(state, "xchg")), "the script ran in the state dir (xchg created)")
        t.check(m.execute("hostname") == (0, b"server\n"), "commands run in the start-script VM")
        nic = "cat $(grep -l 52:54:00:12:01:01 /sys/class/net/*/address | sed s/address$/carrier/)"
        t.check(m.execute(nic) == (0, b"1\n"), "the VLAN NIC has carrier")
        m.call("M_SET_LINK", "", False)
        t.check(m.execute(nic) == (0, b"0\n"), "block(): set_link virtio-net-pci.1 off drops the carrier")
        m.call("M_SET_LINK", "", True)
        t.check(m.execute(nic) == (0, b"1\n"), "unblock(): carrier back")
        m.call("M_SHUTDOWN")
        t.check(m.state()[0] is False, "shutdown of the start-script VM")
    finally:
        sw.kill()
        sw.wait()


Test().run(body)
