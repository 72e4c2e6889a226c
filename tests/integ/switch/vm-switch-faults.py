#!/usr/bin/python3
# Proves, from inside two QEMU guests booted by NixOS-style start scripts (-netdev vde,sock=$QEMU_VDE_SOCKET_1),
# that vigil-switch carries their traffic, that vigil.link() delay and loss show up in the guests' own ping, that
# restore() undoes them, and that a vigil-switch SIGKILLed in the middle of a TCP transfer loses no byte.
# Why it matters: these are the faults users inject in fleet tests; if they did not reach real guests, or if a
# switch crash broke a transfer, every network-fault test built on vigil would be measuring nothing.
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "script"))
from vmrun import SOURCE_ROOT, Tap, skip_unless_ready, spec_run  # noqa: E402

DELAY = 0.15  # seconds each way: the RTT grows by 2 * DELAY
LOSS = 0.5  # each way: a ping round trip survives with (1 - LOSS)^2 = 25 %
BLOB = 16 * 1024 * 1024

SCRIPT = r'''
import json, os, re, signal, time
import vigil

def ping(src, dst, count):
    """(loss %, min ms, avg ms) of busybox ping inside the guest."""
    status, out = src.execute(f"ping -c {count} -i 0.2 -W 1 {dst.name}")
    loss = int(re.search(r"(\d+)% packet loss", out).group(1))
    m = re.search(r"= ([\d.]+)/([\d.]+)/", out)
    return loss, (float(m.group(1)) if m else None), (float(m.group(2)) if m else None)

def switch_pids():
    with open(os.path.join(driver.out_dir, "timeline.jsonl")) as f:
        ev = [json.loads(l) for l in f if l.strip()]
    return [e["pid"] for e in ev if e.get("event") == "spawned" and e.get("child") == "vlan1"]

start_all()

with subtest("start-script VMs reach each other over vigil-switch"):
    a.succeed("ping -c 2 -W 5 b")
    b.succeed("ping -c 2 -W 5 a")
    loss, base_min, base_avg = ping(a, b, 5)
    assert loss == 0, loss
    print(f"FIG rtt_base_min_ms={base_min} rtt_base_avg_ms={base_avg}")

with subtest("delay shows in the guests' ping"):
    vigil.link(a, b, delay=DELAY)
    loss, dmin, davg = ping(a, b, 5)
    print(f"FIG rtt_delayed_min_ms={dmin} rtt_delayed_avg_ms={davg}")
    assert loss == 0, f"delay alone lost {loss} %"
    assert dmin >= 2 * DELAY * 1000 - 5, f"min RTT {dmin} ms with {DELAY} s each way"
    assert davg <= base_avg + 2 * DELAY * 1000 + 300, f"avg RTT {davg} ms: far more than the delay"

with subtest("loss shows as packet loss"):
    vigil.link(a, b, loss=LOSS)  # replaces the delay rule
    loss, _, _ = ping(a, b, 30)
    print(f"FIG ping_loss_pct={loss}")
    assert 40 <= loss < 100, f"{loss} % lost with {LOSS} each way (expected about 75 %)"
    dropped = sum(p["dropped"] for p in vigil.vlan_stats(1)["ports"])
    print(f"FIG switch_dropped={dropped}")
    assert dropped >= 10, dropped

with subtest("restore brings the link back"):
    vigil.restore(a, b)
    # ARP may have given up on b during the loss: let it resolve again first
    a.wait_until_succeeds("ping -c 1 -W 1 b", timeout=30)
    loss, rmin, ravg = ping(a, b, 10)
    print(f"FIG rtt_restored_min_ms={rmin} rtt_restored_avg_ms={ravg} restored_loss_pct={loss}")
    assert loss == 0 and rmin < 50, (loss, rmin)

with subtest("a switch SIGKILLed mid-transfer loses no byte"):
    # a listens (stdin held open so nc only ends at the sender's EOF); b sends BLOB bytes in
    # 64 slices with pauses, so the transfer is still running when the switch dies.
    a.succeed("setsid sh -c 'sleep 600 | nc -l -p 5000 > /tmp/recv' </dev/null >/dev/null 2>&1 &")
    a.wait_until_succeeds("grep -qs ':1388 [0:]* 0A ' /proc/net/tcp /proc/net/tcp6", timeout=30)  # 5000 listening
    want = b.succeed(f"head -c {BLOB_SIZE} /dev/urandom > /tmp/blob && sha256sum /tmp/blob").split()[0]
    b.succeed("setsid bash -c 'exec 3<>/dev/tcp/a/5000; for i in $(seq 0 63); do "
              "dd if=/tmp/blob bs=262144 skip=$i count=1 2>/dev/null >&3; sleep 0.05; done; "
              "exec 3>&-; touch /tmp/sent' </dev/null >/dev/null 2>&1 &")
    size = 0
    deadline = time.time() + 60
    while size < 1 << 20 and time.time() < deadline:
        size = int(a.succeed("stat -c %s /tmp/recv 2>/dev/null || echo 0"))
        time.sleep(0.05)
    old = switch_pids()
    assert len(old) == 1, old
    with open(f"/proc/{old[0]}/comm") as f:
        assert f.read().strip() == "vigil-switch"
    os.kill(old[0], signal.SIGKILL)
    t_kill = time.time()
    print(f"FIG bytes_at_kill={size}")
    assert size < BLOB_SIZE, "the transfer finished before the kill: nothing proven"
    b.wait_until_succeeds("test -e /tmp/sent", timeout=120)
    a.wait_until_succeeds(f"test $(stat -c %s /tmp/recv) -eq {BLOB_SIZE}", timeout=120)
    print(f"FIG transfer_done_after_kill_s={time.time() - t_kill:.2f}")
    got = a.succeed("sha256sum /tmp/recv").split()[0]
    assert got == want, (got, want)
    new = switch_pids()
    assert len(new) == 2 and new[1] != old[0], new
    a.succeed("ping -c 1 -W 5 b")
'''


def main() -> None:
    skip_unless_ready()
    tap = Tap()
    guest = subprocess.run([str(SOURCE_ROOT / "tools/mkguest")], capture_output=True, text=True).stdout.strip()
    if not guest or not Path(guest, "kernel").exists():
        print("1..0 # SKIP no tiny guest (tools/mkguest failed)")
        sys.exit(77)
    scripts = Path(os.environ.get("TMPDIR", "/tmp"), f"vigil-vmnet-{os.getpid()}")
    nodes = {}
    for k, name in enumerate(["a", "b"], start=1):
        subprocess.run([str(SOURCE_ROOT / "tests/helpers/make-fake-vm"), name, guest, str(scripts / name), "--vlan",
                        "1", "--node-number", str(k), "--hosts", "192.168.1.1:a,192.168.1.2:b"], check=True)
        nodes[name] = {"start_script": str(scripts / name / "bin" / f"run-{name}-vm")}
    script = f"DELAY = {DELAY!r}\nLOSS = {LOSS!r}\nBLOB_SIZE = {BLOB}\n" + SCRIPT
    r = spec_run(script, {"nodes": nodes, "vlans": [1]}, "--junit", "junit.xml", timeout=300)
    tap.check(r.rc == 0, "the script passes (exit %d)" % r.rc, r.tail())
    junit = (r.out / "junit.xml").read_text() if (r.out / "junit.xml").exists() else ""
    for sub in ("start-script VMs reach each other over vigil-switch", "delay shows in the guests' ping",
                "loss shows as packet loss", "restore brings the link back",
                "a switch SIGKILLed mid-transfer loses no byte"):
        tap.check(f'name="{sub}"' in junit, f"subtest ran: {sub}")
    tap.check("<failure" not in junit, "no subtest failed", junit[-3000:])
    for fig in re.findall(r"FIG (.*)", r.stdout + r.stderr):
        print("# " + fig)

    pcap = r.out / "vlan1.pcap"
    t = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True)
    lines = t.stdout.splitlines()
    echo = [l for l in lines if "192.168.1.1 > 192.168.1.2: ICMP echo request" in l]
    tcp = [l for l in lines if "192.168.1.2." in l and "192.168.1.1.5000" in l]
    tap.check(t.returncode == 0 and "truncated" not in t.stderr,
              f"tcpdump reads the run's pcap across the switch restart ({len(lines)} frames)", t.stderr[-500:])
    tap.check(len(echo) >= 20 and len(tcp) >= 100, f"it holds the pings ({len(echo)}) and the transfer ({len(tcp)})")
    shutil.rmtree(scripts, ignore_errors=True)
    if not tap.failed:
        shutil.rmtree(r.out.parent, ignore_errors=True)  # the run's dir: a 16 MiB transfer in its pcap
    tap.done()


if __name__ == "__main__":
    main()
