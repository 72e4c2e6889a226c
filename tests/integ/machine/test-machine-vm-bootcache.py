#!/usr/bin/python3
# Proves the boot cache: a first boot saves a QEMU snapshot once the guest shell is up (and the VM runs
# on with its 9p shares), a later boot restores it faster than a cold boot with the guest's clock set to
# now, a changed VM (another key) boots cold, and a corrupt snapshot falls back to a cold boot.
# It matters because booting is most of a short test's time, and a wrong snapshot must never be used.
import glob
import os
import time

from vmtest import Test


def boot(t, cache, **over):
    t0 = time.monotonic()
    m = t.machine(boot_cache=cache, **over)
    m.connect()
    status, out = m.execute("echo up")
    return m, time.monotonic() - t0, (status, out)


def nine_p(m):
    return m.execute("grep -c ' 9p ' /proc/mounts")[1].strip()


def body(t):
    cache = os.path.join(t.tmp, "boot-cache")

    m, cold, r = boot(t, cache)
    t.check(r == (0, b"up\n"), "first boot: commands run")
    deadline = time.monotonic() + 60
    while not glob.glob(cache + "/*/vmstate") and time.monotonic() < deadline:
        time.sleep(0.2)
    states = glob.glob(cache + "/*/vmstate")
    t.check(len(states) == 1, "first boot saved one snapshot", states)
    t.check(m.execute("echo after-save") == (0, b"after-save\n"), "the original VM runs on after the save")
    mounts = nine_p(m)
    t.check(mounts == b"2", "its 9p shares are mounted again (%r)" % mounts)
    m.call("M_SHUTDOWN")
    m.close()

    m, warm, r = boot(t, cache)
    t.check(r == (0, b"up\n"), "second boot: commands run")
    t.check("Boot cache: restored" in t.worker_log(), "second boot restored the snapshot")
    before = time.time()
    guest_now = int(m.execute("date +%s")[1])
    after = time.time()
    t.check(before - 1.5 <= guest_now <= after + 1, "the restored guest's clock is now (%d within [%.1f, %.1f])" %
            (guest_now, before, after))
    t.check(nine_p(m) == b"2", "the restored guest's 9p shares are mounted")
    t.check(m.execute("ls /tmp/xchg >/dev/null && echo ok") == (0, b"ok\n"), "and usable")
    print("# boot to first command: cold %.2f s, restored %.2f s (%.0f %%)" % (cold, warm, 100 * warm / cold),
          flush=True)
    t.check(warm < cold, "restoring is faster than booting (%.2f s vs %.2f s)" % (warm, cold))
    m.call("M_SHUTDOWN")
    m.close()

    m, _, r = boot(t, cache, qemu=dict(t.base_qemu, memory_mb=288))
    t.check(r == (0, b"up\n"), "a changed VM boots")
    t.check(t.worker_log().count("no snapshot for this VM") == 2, "a changed VM (another key) boots cold")
    m.call("M_SHUTDOWN")
    m.close()

    with open(states[0], "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(1 << 20))
    m, _, r = boot(t, cache)
    t.check(r == (0, b"up\n"), "a corrupt snapshot: the machine still boots")
    t.check("booting cold instead" in t.worker_log(), "a corrupt snapshot falls back to a cold boot, saying so")
    m.call("M_SHUTDOWN")


t = Test()
t.base_qemu = {"kernel": os.path.join(t.guest, "kernel"), "initrd": os.path.join(t.guest, "initrd"),
               "append": "console=ttyS0 panic=1 vigil.hostname=alpha", "cpus": 1}
t.run(body)
