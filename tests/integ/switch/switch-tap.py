#!/usr/bin/env python3
# Proves vigil-switch's TAP ports carry real kernel traffic between network namespaces (what
# nspawn containers are), survive a SIGKILLed switch, and come back when the namespace holding one dies.
# Containers reach the VLAN only through these TAPs: a lost or unrecreatable TAP is a dead container network.
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import hashlib
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from switchtest import switch_pids  # noqa: E402

VIGIL = sys.argv[1]
n_checks = 0
failed = 0

# meson ends a test with SIGTERM on timeout: still delete the namespaces.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

if os.geteuid() != 0:
    print("1..0 # SKIP TAP devices and network namespaces need root")
    sys.exit(77)
if not os.path.exists("/dev/net/tun"):
    print("1..0 # SKIP no /dev/net/tun")
    sys.exit(77)
if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
    print("1..0 # SKIP `ip netns` does not work here")
    sys.exit(77)


def check(cond, what):
    global n_checks, failed
    n_checks += 1
    print(("ok" if cond else "not ok") + f" {n_checks} - {what}", flush=True)
    if not cond:
        failed += 1
    return cond


def sh(*args, ns=None, check_rc=False, timeout=30):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


def link_exists(name, ns=None):
    return sh("ip", "link", "show", "dev", name, ns=ns).returncode == 0


def wait_for(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def plug(tap, ns, addr, mac):
    """What systemd-nspawn --network-interface= and vigil's setup script do to a TAP."""
    sh("ip", "link", "set", "dev", tap, "netns", ns, check_rc=True)
    sh("ip", "link", "set", "dev", "lo", "up", ns=ns, check_rc=True)
    sh("ip", "link", "set", "dev", tap, "address", mac, ns=ns, check_rc=True)
    sh("ip", "addr", "add", addr + "/24", "dev", tap, ns=ns, check_rc=True)
    sh("ip", "link", "set", "dev", tap, "up", ns=ns, check_rc=True)


PING = ["ping"] if shutil.which("ping") else ["busybox", "ping"]


def ping(ns, addr, count=3, size=None, deadline=10):
    """Sizes are chosen so that no fragmentation happens at the 9500-byte MTU used for them."""
    args = PING + ["-q", "-c", str(count), "-i", "0.2", "-w", str(deadline)]
    if size:
        args += ["-s", str(size)]
    return sh(*args, addr, ns=ns, timeout=deadline + 10).returncode == 0


SERVER = r"""
import hashlib, socket, sys

s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.1.2", 5555)); s.listen(1)
print("listening", flush=True)
s.settimeout(60); c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
"""


def refused(what, taken_by_tun=False, unprivileged=False):
    """The switch must refuse its config (exit 78: no restart loop, the run fails with 2) naming the TAP and
    the cause: no CAP_NET_ADMIN, or a name held by something else (never hand that to a container)."""
    name = f"vgt{tag}x"
    with tempfile.TemporaryDirectory(prefix="vswtapno") as d:
        os.chmod(d, 0o777)
        spec = {"strategy": "one_for_one", "intensity": {"max_restarts": 3, "max_seconds": 10},
                "children": [{"id": "vlan1", "kind": "switch", "restart": "permanent", "shutdown": 2000,
                              "config": {"vlan": 1, "socket_dir": os.path.join(d, "vde1.ctl"),
                                         "machines": [{"name": "a", "mac": MAC_A, "tap": name}]}}]}
        with open(os.path.join(d, "spec.json"), "w") as f:
            json.dump(spec, f)
        os.chmod(os.path.join(d, "spec.json"), 0o644)
        prefix = []
        if unprivileged:
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            switch = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(VIGIL))),
                                  "workers/switch/vigil-switch")
            if not shutil.which("setpriv") or subprocess.run(
                    prefix + ["sh", "-c", 'test -x "$1" && test -r "$2"', "-", VIGIL, switch]).returncode != 0:
                print("# nobody cannot run this build of vigil (a private directory?): unprivileged case not run")
                return
        if taken_by_tun:
            sh("ip", "tuntap", "add", "dev", name, "mode", "tun", check_rc=True)
        try:
            r = subprocess.run(prefix + [VIGIL, "supervise", os.path.join(d, "spec.json")],
                               env=dict(os.environ, VIGIL_LOG_TARGET="stderr"), capture_output=True, text=True,
                               timeout=30)
            kept = not taken_by_tun or "tun type tun" in sh("ip", "-d", "link", "show", "dev", name).stdout
        finally:
            if taken_by_tun:
                subprocess.run(["ip", "tuntap", "del", "dev", name, "mode", "tun"], capture_output=True)
        check(r.returncode == 2 and "code 78" in r.stderr and what in r.stderr and name in r.stderr
              and "Restarting" not in r.stderr and kept,
              f"the switch refuses its config naming the TAP and '{what}' (exit {r.returncode})")
        if r.returncode != 2:
            print(r.stderr[-3000:], file=sys.stderr)


tag = "%d" % (os.getpid() % 100000)
NS_A, NS_B, NS_B2, NS_B3 = (f"vigil-tap{tag}-{x}" for x in ("a", "b", "b2", "b3"))
TAP_A, TAP_B = f"vgt{tag}a", f"vgt{tag}b"
MAC_A, MAC_B = "52:54:00:12:01:01", "52:54:00:12:01:02"

refused("CAP_NET_ADMIN", unprivileged=True)
refused("not a TAP", taken_by_tun=True)

with tempfile.TemporaryDirectory(prefix="vswtap") as d:
    sockdir = os.path.join(d, "vde1.ctl")
    out = os.path.join(d, "out")
    os.mkdir(out)
    machines = [{"name": "a", "mac": MAC_A, "tap": TAP_A}, {"name": "b", "mac": MAC_B, "tap": TAP_B}]
    spec = {"strategy": "one_for_one", "intensity": {"max_restarts": 3, "max_seconds": 10},
            "children": [{"id": "vlan1", "kind": "switch", "restart": "permanent", "shutdown": 2000,
                          "config": {"vlan": 1, "socket_dir": sockdir, "out_dir": out, "machines": machines}}]}
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, VIGIL_TEST_MARKER=d, VIGIL_LOG_TARGET="stderr")
    log_path = os.path.join(d, "vigil.log")
    sup = None
    server = None
    rc = None
    squatted = False
    try:
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "add", ns, check_rc=True)
        sup = subprocess.Popen([VIGIL, "supervise", os.path.join(d, "spec.json"), "-o", out],
                               env=env, stderr=open(log_path, "w"))
        check(wait_for(lambda: link_exists(TAP_A) and link_exists(TAP_B), 20),
              f"the switch creates {TAP_A} and {TAP_B} in the host namespace")
        info = sh("ip", "-o", "addr", "show", "dev", TAP_A).stdout
        flags = sh("ip", "-o", "link", "show", "dev", TAP_A).stdout
        check(",UP" in flags and "inet" not in info, "link up, no address")

        plug(TAP_A, NS_A, "192.168.1.1", MAC_A)
        plug(TAP_B, NS_B, "192.168.1.2", MAC_B)
        check(ping(NS_A, "192.168.1.2"), "ping across the switch between two namespaces")

        server = subprocess.Popen(["ip", "netns", "exec", NS_B, "python3", "-c", SERVER],
                                  stdout=subprocess.PIPE, text=True)
        check(server.stdout.readline().strip() == "listening", "TCP server listening in b")
        payload = os.urandom(2 * 1024 * 1024)
        client = subprocess.Popen(["ip", "netns", "exec", NS_A, "python3", "-c",
                                   "import socket,sys,time\n"
                                   "s=socket.create_connection(('192.168.1.2',5555),timeout=30)\n"
                                   "d=sys.stdin.buffer.read()\n"
                                   "s.sendall(d[:len(d)//2]); print('half',flush=True)\n"
                                   "sys.stdin.close(); time.sleep(float(sys.argv[1]))\n"
                                   "s.sendall(d[len(d)//2:]); s.close(); print('done',flush=True)\n",
                                   "4"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)
        client.stdin.write(payload)
        client.stdin.close()
        check(client.stdout.readline().strip() == b"half", "first half of 2 MiB sent over TCP")

        # The switch dies mid-connection; the supervisor restarts it with the TAP fds from its store.
        pids = switch_pids(d.encode())
        check(len(pids) == 1, f"one vigil-switch process ({pids})")
        if pids:
            os.kill(pids[0], signal.SIGKILL)
        new = []
        wait_for(lambda: bool(new.extend(p for p in switch_pids(d.encode()) if p not in pids) or new), 10)
        check(len(new) == 1, "the supervisor restarted the switch")
        check(link_exists(TAP_A, NS_A) and link_exists(TAP_B, NS_B),
              "both TAPs outlived the switch (their fds were in the fd store)")
        check(ping(NS_A, "192.168.1.2"), "ping works again after the restart")
        client.wait(timeout=60)
        check(client.stdout.read().strip() == b"done", "the TCP client finished its second half")
        line = server.stdout.readline().split()
        server.wait(timeout=10)
        check(line == [str(len(payload)), hashlib.sha256(payload).hexdigest()],
              "the TCP stream opened before the kill arrived whole (length and sha256)")

        # Jumbo frames pass, past SWITCH_FRAME_MAX they are dropped. (A TAP cannot carry a
        # runt: the kernel refuses frames shorter than an Ethernet header; switch-vde covers those.)
        for ns, tap in ((NS_A, TAP_A), (NS_B, TAP_B)):
            sh("ip", "link", "set", "dev", tap, "mtu", "9500", ns=ns, check_rc=True)
        check(ping(NS_A, "192.168.1.2", count=2, size=9000), "a 9042-byte frame crosses the switch")
        check(not ping(NS_A, "192.168.1.2", count=2, size=9300, deadline=3),
              "a 9342-byte frame (over 9216) is dropped by the switch")
        check(ping(NS_A, "192.168.1.2", count=2), "the switch still forwards after oversized frames")

        # The namespace holding b's TAP dies (a container exited): the kernel deletes the
        # TAP; the switch must make a new one that a restarted container can take.
        sh("ip", "netns", "del", NS_B, check_rc=True)
        t0 = time.time()
        back = wait_for(lambda: "tun type tap" in sh("ip", "-d", "link", "show", "dev", TAP_B).stdout, 10)
        check(back, f"{TAP_B} re-created in the host namespace after its namespace died "
                    f"({time.time() - t0:.2f} s)")

        # Again, but this time something else holds the name when the namespace dies: the switch
        # keeps trying (without taking it over) and gets it once it is free.
        sh("ip", "netns", "add", NS_B2, check_rc=True)
        sh("ip", "link", "set", "dev", TAP_B, "netns", NS_B2, check_rc=True)
        sh("ip", "tuntap", "add", "dev", TAP_B, "mode", "tun", check_rc=True)
        squatted = True
        sh("ip", "netns", "del", NS_B2, check_rc=True)
        time.sleep(0.5)
        check("tun type tun" in sh("ip", "-d", "link", "show", "dev", TAP_B).stdout,
              "while another interface holds the name, the switch leaves it alone")
        sh("ip", "tuntap", "del", "dev", TAP_B, "mode", "tun", check_rc=True)
        squatted = False
        t0 = time.time()
        back = wait_for(lambda: "tun type tap" in sh("ip", "-d", "link", "show", "dev", TAP_B).stdout, 10)
        check(back, f"... and re-creates {TAP_B} once it is free ({time.time() - t0:.2f} s)")
        sh("ip", "netns", "add", NS_B2, check_rc=True)
        if back:
            plug(TAP_B, NS_B2, "192.168.1.2", MAC_B)  # a restarted container keeps its MAC
        check(ping(NS_A, "192.168.1.2", deadline=15), "a new namespace takes the re-created TAP and is reachable")

        # systemd-nspawn (v245+) moves an interface it finds by name back to the host when the
        # container exits, instead of letting it die: the same TAP, same fd, serves the next one.
        sh("ip", "link", "set", "dev", TAP_B, "netns", "1", ns=NS_B2, check_rc=True)
        check(link_exists(TAP_B), "a TAP moved back to the host namespace is there as it is")
        sh("ip", "netns", "del", NS_B2, check_rc=True)
        sh("ip", "netns", "add", NS_B3, check_rc=True)
        plug(TAP_B, NS_B3, "192.168.1.2", MAC_B)
        check(ping(NS_A, "192.168.1.2"), "... and the next namespace reaches a through it")
    finally:
        if server and server.poll() is None:
            server.kill()
        if sup:
            sup.send_signal(signal.SIGTERM)
            try:
                rc = sup.wait(timeout=20)
            except subprocess.TimeoutExpired:
                sup.kill()
                rc = sup.wait()
        for ns in (NS_A, NS_B, NS_B2, NS_B3):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if squatted:
            subprocess.run(["ip", "tuntap", "del", "dev", TAP_B, "mode", "tun"], capture_output=True)
    check(rc in (0, 6), f"vigil exits cleanly on SIGTERM (exit {rc})")
    check(not link_exists(TAP_A) and not link_exists(TAP_B), "no TAP outlives the run")
    log = open(log_path).read()
    check(log.count("closed: the interface was deleted") == 2 and log.count(f"TAP {TAP_B} of b re-created (") == 2,
          "each re-creation is logged once: moving back and forth closes nothing")
    check(log.count(f"cannot re-create TAP {TAP_B} of b yet") == 1,
          "the name conflict is logged once, however many attempts it took")
    pcap = os.path.join(out, "vlan1.pcap")
    r = subprocess.run(["tcpdump", "-n", "-r", pcap, "icmp"], capture_output=True, text=True)
    icmp = [l for l in r.stdout.splitlines() if "ICMP echo" in l]
    check(r.returncode == 0 and len(icmp) >= 6, f"the TAP traffic is in the pcap ({len(icmp)} ICMP echo frames) {r.stderr.strip()[-300:]}")
    if failed:
        print(log[-6000:], file=sys.stderr)

print(f"1..{n_checks}")
sys.exit(1 if failed else 0)
