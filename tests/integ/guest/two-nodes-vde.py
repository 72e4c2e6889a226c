#!/usr/bin/python3
# Proves two tiny guests started from make-fake-vm's NixOS-style start scripts share a VDE VLAN:
# addresses from the node numbers, ping, TCP (busybox nc, httpd) and names from /etc/hosts.
# Why: multi-node tests need exactly this wiring, and the qemu backend drives these very scripts.
"""Starts `vde_switch --hub` like the reference driver (showinfo handshake), writes run-a-vm and
run-b-vm with tests/helpers/make-fake-vm, and runs each as the reference driver does:
`/bin/sh -c "<script> <driver args>"` with TMPDIR/USE_TMPDIR/SHARED_DIR/QEMU_VDE_SOCKET_1 set and
the driver's listening shell and monitor sockets. Self-contained: python3 stdlib only.
Exit 0 = pass, 1 = fail, 77 = skip (no vde_switch or QEMU). VIGIL_TEST_VERBOSE=1 echoes serial."""

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from guestlib import ROOT, VERBOSE, Serial, Shell, accept, check, failures, verdict

BOOT_DEADLINE = 180     # two TCG guests at once on a shared 2-core machine
CMD_DEADLINE = 60


class Machine:
        def __init__(self, name, script, tmp, env):
                self.name = name
                self.state = tmp / f"vm-state-{name}"
                self.state.mkdir(mode=0o700)
                self.listeners = {}
                for sock in ("shell", "monitor"):
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.bind(str(self.state / sock))
                        s.listen(1)
                        self.listeners[sock] = s
                extra = [f"-qmp unix:{self.state / 'qmp'},server=on,wait=off",
                         f"-monitor unix:{self.state / 'monitor'}",
                         f"-chardev socket,id=shell,path={self.state / 'shell'}",
                         "-device virtio-serial", "-device virtconsole,chardev=shell",
                         "-device virtio-rng-pci", "-serial stdio", "-no-reboot", "-nographic"]
                env = dict(env, TMPDIR=str(self.state), USE_TMPDIR="1")
                self.proc = subprocess.Popen(["/bin/sh", "-c", f"{script} {' '.join(extra)}"],
                                             cwd=self.state, env=env, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             start_new_session=True)
                self.serial = Serial(name, self.proc.stdout, time.monotonic())
                self.serial.start()
                self.shell = None
                self.monitor = None

        def connect(self):
                deadline = time.monotonic() + 30
                self.monitor = accept(self.listeners["monitor"], self.proc, deadline, f"{self.name}'s monitor")
                self.shell = Shell(accept(self.listeners["shell"], self.proc, deadline, f"{self.name}'s shell"),
                                   CMD_DEADLINE, default_timeout=20)

        def kill(self):
                if self.proc.poll() is None:
                        try:
                                os.killpg(self.proc.pid, signal.SIGKILL)
                        except ProcessLookupError:
                                pass
                        self.proc.wait()


def start_vde(ctl):
        """vde_switch --hub with the reference driver's showinfo handshake."""
        proc = subprocess.Popen(["vde_switch", "--sock", str(ctl), "--dirmode", "0700", "--hub"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        proc.stdin.write(b"showinfo\n")
        proc.stdin.flush()
        buf = b""
        deadline = time.monotonic() + 10
        while b"1000 Success" not in buf:
                r, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
                chunk = os.read(proc.stdout.fileno(), 4096) if r else b""
                if not chunk:
                        proc.kill()
                        proc.wait()
                        raise RuntimeError(f"vde_switch did not answer showinfo: {buf!r}")
                buf += chunk
        if not (ctl / "ctl").exists():
                raise RuntimeError("cannot start vde_switch")
        return proc


def main():
        for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("vde_switch", "vde2")):
                if not shutil.which(tool):
                        print(f"SKIP: no {tool} (apt-get install {pkg})")
                        return 77
        mk = subprocess.run([str(ROOT / "tools/mkguest")], stdout=subprocess.PIPE, text=True)
        if mk.returncode != 0:
                print(f"FAIL: tools/mkguest exited {mk.returncode}")
                return 1
        guest = mk.stdout.strip()

        # Short path: unix socket paths are limited to 108 bytes.
        tmp = Path(tempfile.mkdtemp(prefix="vg-vde-", dir="/tmp"))
        vde = None
        machines = []
        try:
                hosts = "192.168.1.1:a,192.168.1.2:b"
                for k, name in ((1, "a"), (2, "b")):
                        subprocess.run([str(ROOT / "tests/helpers/make-fake-vm"), name, guest,
                                        str(tmp / "vms"), "--vlan", "1", "--node-number", str(k),
                                        "--hosts", hosts], check=True)
                ctl = tmp / "vde1.ctl"
                vde = start_vde(ctl)
                (tmp / "shared-xchg").mkdir()
                env = dict(os.environ, QEMU_VDE_SOCKET_1=str(ctl), SHARED_DIR=str(tmp / "shared-xchg"),
                           QEMU_KERNEL_PARAMS="vigil.test=kernel-params-ok")
                t0 = time.monotonic()
                for name in ("a", "b"):
                        m = Machine(name, tmp / "vms" / "bin" / f"run-{name}-vm", tmp, env)
                        machines.append(m)
                        m.connect()
                for m in machines:
                        m.shell.wait_ready(t0 + BOOT_DEADLINE)
                        print(f"{m.name}: ready after {time.monotonic() - t0:.2f}s", flush=True)
                a, b = (m.shell for m in machines)

                status, out = a.execute("ip -o addr show | grep -c 'inet 192.168.1.1/24'; "
                                        "grep -o vigil.test=kernel-params-ok /proc/cmdline; hostname")
                check((status, out) == (0, "1\nvigil.test=kernel-params-ok\na\n"),
                      f"a: address, QEMU_KERNEL_PARAMS, hostname -> {status} {out!r}")
                status, out = b.execute("ip -o link show | grep -c 52:54:00:12:01:02; hostname")
                check((status, out) == (0, "1\nb\n"), f"b: MAC from node number -> {status} {out!r}")

                status, out = a.execute("ping -c1 -W10 b")
                check(status == 0 and "PING b (192.168.1.2)" in out, f"a pings b by name -> {out!r}")
                status, out = b.execute("ping -c1 -W10 192.168.1.1")
                check(status == 0, f"b pings 192.168.1.1 -> {status}")
                status, out = b.execute("ping6 -c1 -W10 2001:db8:1::1")
                check(status == 0, f"b pings 2001:db8:1::1 (IPv6, no DAD wait) -> {status} {out!r}")

                status, out = b.execute("mkdir -p /tmp/www && echo served-by-b > /tmp/www/index.html && "
                                        "httpd -p 8080 -h /tmp/www")
                check(status == 0, f"b: httpd started -> {status} {out!r}")
                # busybox 1.35's `wget -T` segfaults; bound it with timeout(1) instead.
                status, out = a.execute("timeout 10 wget -q -O - http://b:8080/")
                check((status, out) == (0, "served-by-b\n"), f"a fetches http://b:8080/ -> {out!r}")

                # nc: b listens in the background (stdio away from the backdoor's hvc0), a sends.
                status, out = b.execute("nc -l -p 5555 </dev/null >/tmp/got 2>&1 & echo $!")
                check(status == 0, f"b: nc -l started -> {status} {out!r}")
                status, out = a.execute("for i in 1 2 3 4 5 6 7 8 9 10; do "
                                        "echo nc-from-a | nc -w 2 192.168.1.2 5555 && break; sleep 0.3; done")
                check(status == 0, f"a: nc to b:5555 -> {status} {out!r}")
                status, out = b.execute("for i in $(seq 50); do [ -s /tmp/got ] && break; sleep 0.1; done; "
                                        "cat /tmp/got")
                check(out == "nc-from-a\n", f"b received over TCP -> {out!r}")

                status, out = a.execute("echo via-shared > /tmp/shared/note")
                status, out = b.execute("cat /tmp/shared/note")
                check(out == "via-shared\n", f"SHARED_DIR is /tmp/shared on both -> {out!r}")

                # a: the reference shutdown(); b: the ACPI power button, as a backend's graceful stop.
                machines[0].shell.sock.sendall(b"poweroff\n")
                machines[1].monitor.sendall(b"system_powerdown\n")
                for m, how in zip(machines, ("poweroff", "system_powerdown")):
                        try:
                                rc = m.proc.wait(30)
                                check(rc == 0, f"{m.name}: {how} -> QEMU exit {rc}")
                        except subprocess.TimeoutExpired:
                                check(False, f"{m.name}: {how} makes QEMU exit within 30 s")
        except Exception as e:
                check(False, f"{type(e).__name__}: {e}")
        finally:
                for m in machines:
                        m.kill()
                        if failures and not VERBOSE:
                                m.serial.dump(25)
                if vde:
                        vde.stdin.close()
                        vde.terminate()
                        try:
                                vde.wait(5)
                        except subprocess.TimeoutExpired:
                                vde.kill()
                                vde.wait()
                shutil.rmtree(tmp, ignore_errors=True)
        return verdict()


if __name__ == "__main__":
        sys.exit(main())
