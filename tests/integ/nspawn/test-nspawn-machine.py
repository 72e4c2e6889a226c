#!/usr/bin/python3
# Proves the machine worker's nspawn backend end to end on a real systemd-nspawn container booted from the mkdebian tree:
# boot to the backdoor, commands (status, quoting, timeouts, stderr to the console), the setup script (hostname, eth1 with
# the contract MAC and address, /etc/hosts), the volatile overlay, worker SIGKILL + re-attach, crash + restart, shutdown,
# and the refusals that name a bad tree. Why it matters: containers are vigil's cheap machines; the generic shell code and
# the reference backdoor protocol must work on them unchanged, and a worker crash must lose no container.
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integ", "machine"))
import minisup  # noqa: E402

WORKER = os.environ.get("VIGIL_MACHINE_WORKER",
                        os.path.join(SOURCE_ROOT, "build", "workers", "machine", "vigil-machine"))


def skip(why):
    print("1..0 # SKIP " + why)
    sys.exit(77)


def find_tree():
    """The tree: $VIGIL_NSPAWN_TREE, else tools/mkdebian's cached one (never built here)."""
    tree = os.environ.get("VIGIL_NSPAWN_TREE")
    if tree:
        return tree
    mk = os.path.join(SOURCE_ROOT, "tools", "mkdebian")
    if not os.path.exists(mk):
        return None
    key = subprocess.run([sys.executable, mk, "--print-key"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    r = subprocess.run([sys.executable, mk], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       timeout=1800)
    return r.stdout.strip() if r.returncode == 0 and key.returncode == 0 else None


class FakeSwitch:
    """Stands in for the VLAN's vigil-switch: creates the TAPs (the real switch holds them open and re-creates one
    when a container's network namespace dies and takes it along; here the test calls ensure() after a crash)."""

    def __init__(self, taps):
        self.taps = taps
        self.ensure()

    def ensure(self):
        for tap in self.taps:
            if not os.path.exists("/sys/class/net/" + tap):
                subprocess.run(["ip", "tuntap", "add", tap, "mode", "tap"], stderr=subprocess.DEVNULL)

    def close(self):
        for tap in self.taps:
            subprocess.run(["ip", "link", "del", tap], stderr=subprocess.DEVNULL)


class Test(minisup.MachineTest):
    console_names = ("alpha", "beta")

    def __init__(self):
        self.n = self.failed = 0
        self.sups = []
        if os.geteuid() != 0:
            skip("needs root (systemd-nspawn)")
        if not shutil.which("systemd-nspawn"):
            skip("no systemd-nspawn (systemd-container)")
        self.tree = find_tree()
        if not self.tree or not os.path.isdir(self.tree):
            skip("no Debian tree (tools/mkdebian could not build one)")
        self.tmp = tempfile.mkdtemp(prefix="vigil-ns-", dir="/tmp")
        self.log_path = os.path.join(self.tmp, "worker.log")
        self.log = open(self.log_path, "w")

    def config(self, name, number=1, tree=None, vlans=(), hosts=()):
        state = os.path.join(self.tmp, "vm-state-" + name)
        os.makedirs(state, mode=0o700, exist_ok=True)
        shared = os.path.join(self.tmp, "shared-xchg")
        os.makedirs(shared, exist_ok=True)
        return {
            "name": name, "backend": "nspawn", "node_number": number, "state_dir": state, "shared_dir": shared,
            "out_dir": os.path.join(self.tmp, "out"), "allow_reboot": False,
            "vlans": [{"nr": v, "tap": "vg%dn%d" % (v, number), "mac": "52:54:00:12:%02x:%02x" % (v, number),
                       "address": "192.168.%d.%d/24" % (v, number)} for v in vlans],
            "hosts": [{"name": h, "address": a} for h, a in hosts],
            "nspawn": {"tree": tree or self.tree},
            "timeouts": {"connect_s": 60},
        }

    def machine(self, cfg):
        s = minisup.MiniSup(WORKER, cfg, log=self.log)
        self.sups.append(s)
        s.wait_ready()
        return s

    def before_close(self, sup):
        # minisup SIGKILLs nspawn, which would orphan the container: kill its init first.
        for p in sup.procs.values():
            if p.poll() is None:
                for init in init_pids(p.pid):
                    os.kill(init, signal.SIGKILL)


def init_pids(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def body(t):
    # Refusals first: each names the field and says what is wrong, at once.
    bad = t.machine(t.config("bad", tree="/nonexistent/tree"))
    t.raises(lambda: bad.start(), "a missing tree is refused naming nspawn.tree", "nspawn.tree /nonexistent/tree")
    empty = os.path.join(t.tmp, "empty-tree")
    os.makedirs(empty)
    bad2 = t.machine(t.config("bad2", tree=empty))
    t.raises(lambda: bad2.start(), "a tree without init is refused", "neither /sbin/init nor /lib/systemd/systemd")
    afile = os.path.join(t.tmp, "a-file")
    open(afile, "w").close()
    bad3 = t.machine(t.config("bad3", tree=afile))
    t.raises(lambda: bad3.start(), "a tree that is a file is refused", "is not a directory")

    initonly = os.path.join(t.tmp, "init-only-tree")
    os.makedirs(os.path.join(initonly, "sbin"))
    os.symlink("/lib/systemd/systemd", os.path.join(initonly, "sbin", "init"))
    bad4 = t.machine(t.config("bad4", tree=initonly))
    t.raises(lambda: bad4.start(), "a tree without vigil-backdoor.service is refused", "lacks vigil-backdoor.service")
    cfg = t.config("bad5")
    cfg["nspawn"]["binary"] = "no-such-systemd-nspawn"
    bad5 = t.machine(cfg)
    t.raises(lambda: bad5.start(), "a missing systemd-nspawn binary is refused naming nspawn.binary",
             "nspawn.binary no-such-systemd-nspawn: not found in PATH")

    # Not root: refused before anything is tried (the worker run as nobody, under its own minisup).
    if shutil.which("setpriv"):
        code = ("import sys; sys.path.insert(0, %r); import minisup, tempfile; d = tempfile.mkdtemp(); "
                "s = minisup.MiniSup(%r, {'name': 'nr', 'backend': 'nspawn', 'state_dir': d + '/st', "
                "'out_dir': d + '/out', 'nspawn': {'tree': %r}}, log=open(d + '/log', 'w')); s.wait_ready()\n"
                "try: s.start()\nexcept minisup.MachineError as e: print(e.message)\ns.close()"
                % (os.path.join(SOURCE_ROOT, "tests", "integ", "machine"), WORKER, t.tree))
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                            code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        t.check("backend nspawn needs root" in r.stdout, "not root: refused, saying why", r.stdout)

    # Worker SIGKILLed during the boot (fds stored right after the spawn): the new worker re-attaches.
    e = t.machine(t.config("early", 8))
    wpid = e.state()[4]
    seq = e.send("M_START", False)
    time.sleep(0.05)
    os.kill(wpid, signal.SIGKILL)
    try:
        e.result(seq, timeout=30)
    except minisup.MachineError:
        pass
    e.wait_ready(timeout=60)
    st = e.state()
    if st[0]:
        e.connect()
        t.check(e.execute("hostname") == (0, b"early\n"), "worker killed during the boot: re-attached, shell works")
    else:
        # Killed before the spawn request left: nothing runs, a new start works.
        e.start()
        e.connect()
        t.check(e.execute("hostname") == (0, b"early\n"), "worker killed before the spawn: a new start works")
    e.call("M_CRASH")

    # The fast guest channel works on containers as on VMs.
    cfg = t.config("fast", 9)
    cfg["guest_channel"] = "fast"
    f = t.machine(cfg)
    f.start()
    f.connect()
    t.check(f.execute("echo hi; exit 3") == (3, b"hi\n") and f.execute("sleep 5", timeout_s=1)[0] == 124,
            "fast channel: output, status, timeout")
    f.call("M_CRASH")

    switch = FakeSwitch(["vg1n1"])
    try:
        machine_body(t, switch)
    finally:
        switch.close()


def machine_body(t, switch):
    m = t.machine(t.config("alpha", 1, vlans=[1], hosts=[("alpha", "192.168.1.1"), ("beta", "192.168.1.2")]))
    tic = time.monotonic()
    m.start()
    started = time.monotonic() - tic
    m.connect()
    ready = time.monotonic() - tic
    print("# FIGURE nspawn start %.2f s, boot to ready %.2f s" % (started, ready), flush=True)
    t.check(ready < 30, "booted to the backdoor ready line in %.2f s" % ready)
    st = m.state()
    t.check(st[0] is True and st[1] is True and st[3] == "nspawn", "state: booted, connected, backend nspawn (%r)" % st)
    npid = st[2]

    t.check(m.execute("hostname") == (0, b"alpha\n"), "hostname is the machine name")
    t.check(m.execute("false")[0] == 1 and m.execute("exit 7")[0] == 7, "exit statuses")
    t.check(m.execute("echo 'it'\"'\"'s' \"$((6*7))\"") == (0, b"it's 42\n"), "quoting")
    t.check(m.execute("sleep 10", timeout_s=1)[0] == 124, "guest-side timeout gives 124")
    t.check(m.execute("true; false; echo not-reached")[0] == 1, "set -e as the reference")
    t.check(m.execute("cat /proc/1/comm") == (0, b"systemd\n"), "real systemd is PID 1")
    status, out = m.execute("systemctl is-system-running --wait")
    t.check(out.strip() in (b"running", b"degraded"), "the container's systemd finished booting (%r)" % out)
    status, out = m.execute("ip -o link show eth1; ip -o -4 addr show eth1")
    t.check(b"52:54:00:12:01:01" in out and b"192.168.1.1/24" in out,
            "setup: TAP renamed eth1 with the contract MAC and address", out.decode(errors="replace"))
    status, out = m.execute("cat /etc/hosts")
    t.check(b"192.168.1.2 beta" in out, "setup: /etc/hosts from the config", out.decode(errors="replace"))
    t.check(m.execute("ls /sys/class/net | sort | tr '\\n' ' '")[1] == b"eth1 lo ", "only lo and eth1: no host NIC")

    # 3 MB of random bytes through the relay (back-pressure at 1 MiB) arrive exact.
    m.execute("head -c 3000000 /dev/urandom > /tmp/big")
    status, big = m.execute("cat /tmp/big")
    digest = m.execute("sha256sum < /tmp/big")[1].split()[0].decode()
    t.check(status == 0 and len(big) == 3000000 and hashlib.sha256(big).hexdigest() == digest,
            "3 MB random output exact through the shell relay (%d bytes)" % len(big))

    m.execute("echo to-the-console >&2")
    t.check("to-the-console" in m.wait_for_console("to-the-console", timeout=10),
            "a command's stderr reaches the console log")
    with open(os.path.join(t.tmp, "shared-xchg", "from-host"), "w") as f:
        f.write("shared-ok")
    t.check(m.execute("cat /tmp/shared/from-host") == (0, b"shared-ok"), "shared dir at /tmp/shared")
    m.execute("echo overlay > /etc/vigil-marker")
    t.check(not os.path.exists(os.path.join(t.tree, "etc/vigil-marker")), "writes stay in the volatile overlay")

    # set_link acts from inside the container (ip link down/up).
    m.call("M_SET_LINK", "", False)
    t.check(b"state DOWN" in m.execute("ip -o link show eth1")[1] or
            b"UP" not in m.execute("ip -o link show eth1")[1].split(b"<")[1].split(b">")[0],
            "set_link off takes eth1 down")
    m.call("M_SET_LINK", "", True)
    t.check(b"UP" in m.execute("ip -o link show eth1")[1].split(b"<")[1].split(b">")[0], "set_link on brings it up")

    # Worker SIGKILL mid-command: the container survives, the new worker re-attaches and resyncs.
    wpid = m.state()[4]
    seq = m.send("M_EXECUTE", "sleep 2; echo stale-output", -1, True, True)
    time.sleep(0.5)
    os.kill(wpid, signal.SIGKILL)
    t.raises(lambda: m.result(seq, timeout=30), "the in-flight command fails with the restart")
    m.wait_ready(timeout=60)
    st = m.state()
    t.check(st[4] != wpid and st[2] == npid and st[0] is True, "re-attached: new worker, same nspawn (%r)" % st)
    t.check(m.execute("cat /etc/vigil-marker") == (0, b"overlay\n"), "same container: overlay state kept")
    t.check(m.execute("echo fresh") == (0, b"fresh\n"), "no stale output after the resync")
    os.kill(m.state()[4], signal.SIGKILL)
    time.sleep(0.2)
    m.wait_ready(timeout=60)
    t.check(m.execute("echo twice") == (0, b"twice\n"), "re-attaches again after a second SIGKILL while idle")

    # Crash: SIGKILL of the container's init; nothing of it survives; a new start boots a fresh overlay.
    inits = init_pids(npid)
    m.call("M_CRASH")
    t.check(m.state()[0] is False, "crash: machine down")
    time.sleep(0.5)
    t.check(inits and not any(minisup.pid_alive(p) for p in inits),
            "crash: the container's init is gone (%r)" % inits)
    t.check(not os.path.exists("/sys/class/net/vg1n1"), "crash: the TAP died with the container's namespace")
    # The worker waits for the switch to re-create the TAP before starting the container again.
    threading.Timer(1.0, switch.ensure).start()
    tic = time.monotonic()
    m.start(allow_reboot=True)
    m.connect()
    print("# FIGURE nspawn restart after crash to ready %.2f s" % (time.monotonic() - tic), flush=True)
    t.check(m.execute("cat /etc/vigil-marker")[0] != 0, "restarted with a fresh overlay")
    t.check(b"192.168.1.1/24" in m.execute("ip -o -4 addr show eth1")[1], "eth1 set up again after the restart")

    # Reboot with allow_reboot: nspawn exits 133, the worker boots the container again (the TAP re-created by
    # the switch), and the backdoor reconnects to the same socket.
    m.call("M_REBOOT")
    tic = time.monotonic()
    m.connect()
    t.check(m.execute("echo after-reboot") == (0, b"after-reboot\n") and m.state()[0] is True,
            "reboot: booted again, backdoor back after %.2f s" % (time.monotonic() - tic))
    t.check(b"192.168.1.1/24" in m.execute("ip -o -4 addr show eth1")[1], "eth1 set up again after the reboot")
    t.check(b"52:54:00:12:01:01" in m.execute("ip -o link show eth1")[1], "the MAC again after the reboot")

    # Shutdown: poweroff through the shell, nspawn exits 0.
    pid = m.state()[2]
    m.call("M_SHUTDOWN")
    t.check(m.state()[0] is False, "shutdown: machine down")
    t.check(not minisup.pid_alive(pid), "shutdown: systemd-nspawn exited")
    t.check(os.path.exists("/sys/class/net/vg1n1"), "shutdown: the TAP went back to the host under its own name")
    log = t.console_log("alpha")
    t.check("Welcome to" in log and "Power" in log, "console log has the boot and the power-off",
            log[-2000:])

    # A machine without VLANs: reboot (ctrl-alt-del) and a second boot through the same socket.
    b = t.machine(t.config("beta", 2))
    b.start(allow_reboot=True)
    b.connect()
    t.check(b.execute("hostname") == (0, b"beta\n"), "beta: no VLANs, boots")
    b.call("M_REBOOT")
    tic = time.monotonic()
    b.connect()
    t.check(b.execute("echo after-reboot") == (0, b"after-reboot\n"),
            "reboot: the backdoor reconnects after %.2f s" % (time.monotonic() - tic))
    t.check(b.state()[0] is True, "reboot: still booted")
    # Without allow_reboot a reboot leaves the container down, as QEMU's -no-reboot.
    b.call("M_SHUTDOWN")
    b.start()
    b.connect()
    b.call("M_REBOOT")
    b.call("M_WAIT_SHUTDOWN", 30000)
    t.check(b.state()[0] is False, "reboot without allow_reboot: the machine stays down")


Test().run(body)
