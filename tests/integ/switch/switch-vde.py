#!/usr/bin/env python3
# Proves vigil-switch is a real VDE switch: libvdeplug's handshake connects, frames are
# learned and forwarded, bad handshakes and oversized frames are refused without harm, every
# frame lands in a pcap that tcpdump reads (even after a switch died mid-record), and a SIGKILLed
# switch is restarted by the supervisor and keeps forwarding on the same sockets: guests never reconnect.
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from switchtest import switch_pids  # noqa: E402

VIGIL = sys.argv[1]
n_checks = 0
failed = 0


def check(cond, what):
    global n_checks, failed
    n_checks += 1
    print(("ok" if cond else "not ok") + f" {n_checks} - {what}")
    if not cond:
        failed += 1


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


A, B, C = "52:54:00:12:01:01", "52:54:00:12:01:02", "52:54:00:12:01:03"


class VdePort:
    """The client half of libvdeplug's vde_switch protocol (request_v3)."""

    seq = 0

    def __init__(self, sockdir, descr="test"):
        VdePort.seq += 1
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ctl.connect(os.path.join(sockdir, "ctl"))
        self.data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.path = os.path.join(sockdir, ".%05d-%05d" % (os.getpid(), VdePort.seq))
        self.data.bind(self.path)
        sun = struct.pack("=H108s", socket.AF_UNIX, self.path.encode())
        self.ctl.send(struct.pack("=III", 0xFEEDFACE, 3, 0) + sun + descr.encode())
        reply = self.ctl.recv(110)
        family, path = struct.unpack("=H108s", reply)
        self.data.connect(path.rstrip(b"\0").decode())
        self.data.settimeout(2.0)

    def send(self, dst, src, payload=b"x" * 46):
        self.data.send(mac(dst) + mac(src) + b"\x08\x00" + payload)

    def recv(self, timeout=2.0):
        self.data.settimeout(timeout)
        try:
            return self.data.recv(65536)
        except socket.timeout:
            return None


with tempfile.TemporaryDirectory(prefix="vsw") as d:
    sockdir = os.path.join(d, "vde1.ctl")
    out = os.path.join(d, "out")
    os.mkdir(out)
    machines = [{"name": n, "mac": m} for n, m in (("a", A), ("b", B), ("c", C))]
    spec = {"strategy": "one_for_one", "intensity": {"max_restarts": 3, "max_seconds": 10},
            "children": [{"id": "vlan1", "kind": "switch", "restart": "permanent", "shutdown": 2000,
                          "config": {"vlan": 1, "socket_dir": sockdir, "out_dir": out, "machines": machines}}]}
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump(spec, f)
    # What a switch SIGKILLed in the middle of a capture write leaves: one whole record, then
    # half of the next. The next switch must cut it, or every later record is misaligned.
    frame0 = mac(B) + mac(A) + b"\x08\x00" + b"before".ljust(46, b".")
    with open(os.path.join(out, "vlan1.pcap"), "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 9216, 1))
        f.write(struct.pack("<IIII", 1700000000, 0, len(frame0), len(frame0)) + frame0)
        f.write(struct.pack("<IIII", 1700000001, 0, 1400, 1400) + b"\0" * 700)
    env = dict(os.environ, VIGIL_TEST_MARKER=d)
    sup = subprocess.Popen([VIGIL, "supervise", os.path.join(d, "spec.json"), "-o", out, "--no-pidns"],
                           env=env, stderr=open(os.path.join(d, "vigil.log"), "w"))
    try:
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(sockdir, "ctl")) and time.time() < deadline:
            time.sleep(0.05)
        check(os.path.exists(os.path.join(sockdir, "ctl")), "switch creates its control socket")

        pa, pb, pc = VdePort(sockdir, "a"), VdePort(sockdir, "b"), VdePort(sockdir, "c")
        pa.send(B, A)
        check(pb.recv() is not None, "unknown destination reaches b")
        check(pc.recv() is not None, "... and is flooded to c")
        pb.send(A, B)
        check(pa.recv() is not None, "b answers a")
        check(pc.recv(0.5) is None, "the answer is not flooded: a was learned")

        bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bad.connect(os.path.join(sockdir, "ctl"))
        bad.send(b"GARBAGE" * 40)
        bad.settimeout(3)
        try:
            closed = bad.recv(100) == b""
        except OSError:
            closed = True
        check(closed, "a malformed handshake is closed by the switch")
        pa.data.send(b"\0" * 12000)
        pa.send(B, A, b"after-junk".ljust(46, b"."))
        got = pb.recv()
        check(got is not None and b"after-junk" in got, "after junk and an oversized frame the switch still forwards")

        pids = switch_pids(d.encode())
        check(len(pids) == 1, f"one vigil-switch process ({pids})")
        if pids:
            os.kill(pids[0], signal.SIGKILL)
        deadline = time.time() + 10
        new = []
        while time.time() < deadline:
            new = [p for p in switch_pids(d.encode()) if p not in pids]
            if new:
                break
            time.sleep(0.1)
        check(len(new) == 1, "the supervisor restarted the switch")
        time.sleep(0.5)
        got = None
        for _ in range(20):
            pa.send(B, A, b"after-restart".ljust(46, b"."))
            got = pb.recv(0.5)
            if got:
                break
        check(got is not None and b"after-restart" in got, "frames flow again on the same sockets after the restart")
        pb.send(A, B)
        check(pa.recv() is not None, "both directions work after the restart")
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            rc = sup.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sup.kill()
            rc = sup.wait()
    check(rc in (0, 6), f"vigil exits cleanly on SIGTERM (exit {rc})")
    pcap = os.path.join(out, "vlan1.pcap")
    check(os.path.exists(pcap), "vlan1.pcap written")
    if os.path.exists(pcap):
        r = subprocess.run(["tcpdump", "-tt", "-n", "-r", pcap], capture_output=True, text=True)
        frames = [l for l in r.stdout.splitlines() if l.strip()]
        check(r.returncode == 0 and len(frames) >= 6 and "truncated" not in r.stderr,
              f"tcpdump reads the capture ({len(frames)} frames) {r.stderr.strip()[-200:]}")
        check(frames and frames[0].startswith("1700000000.000000") and "1700000001." not in r.stdout,
              "the record cut short by the earlier switch was dropped, the whole one kept")
    if failed:
        print(open(os.path.join(d, "vigil.log")).read()[-4000:], file=sys.stderr)

print(f"1..{n_checks}")
sys.exit(1 if failed else 0)
