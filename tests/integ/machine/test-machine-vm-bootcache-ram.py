#!/usr/bin/python3
# Proves the fast restore of a direct-boot machine: its snapshot keeps the guest RAM out of the migration stream
# (a small vmstate beside a sparse ram file), restores map that file copy-on-write and never change it (the next
# restore still works), the first command after a restore sees both shares and the right clock, and a missing or
# truncated ram file means a cold boot, said in the log. It matters because a restore that wrote into the shared
# snapshot, or paired a vmstate with the wrong RAM, would break every later run silently.
import glob
import hashlib
import json
import os
import time

from vmtest import Test

MIB = 1 << 20


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * MIB), b""):
            h.update(block)
    return h.hexdigest()


def wait_snapshot(cache):
    deadline = time.monotonic() + 120
    while not glob.glob(cache + "/*/vmstate") and time.monotonic() < deadline:
        time.sleep(0.1)
    return glob.glob(cache + "/*/vmstate")


def body(t):
    cache = os.path.join(t.tmp, "boot-cache")
    shared = os.path.join(t.tmp, "shared-xchg")      # the guest's /tmp/shared
    xchg = os.path.join(t.tmp, "vm-state-alpha", "xchg")  # the guest's /tmp/xchg

    m = t.machine(boot_cache=cache)
    m.connect()
    t.check(m.execute("echo up") == (0, b"up\n"), "first boot: commands run")
    states = wait_snapshot(cache)
    t.check(len(states) == 1, "first boot saved one snapshot", states)
    ram = os.path.join(os.path.dirname(states[0]), "ram")
    st = os.stat(ram) if os.path.exists(ram) else None
    vm_size = os.path.getsize(states[0])
    t.check(st is not None and st.st_size == 256 * MIB, "the snapshot has the guest's RAM as a file of its size")
    t.check(st is not None and st.st_blocks * 512 < st.st_size, "a sparse one (%.0f of 256 MiB written)" %
            ((st.st_blocks * 512 / MIB) if st else -1))
    t.check(vm_size < 8 * MIB, "the migration stream holds the device state only (%.1f MiB)" % (vm_size / MIB))
    t.check(m.execute("echo after-save") == (0, b"after-save\n"), "the original VM runs on after the save")
    t.check(m.execute("grep -c ' 9p ' /proc/mounts")[1].strip() == b"2", "with its shares mounted again")
    caps = json.loads(m.call("M_QMP", '{"execute": "query-migrate-capabilities"}').data)["return"]
    t.check({"capability": "x-ignore-shared", "state": False} in caps,
            "and a migration the test asks for takes all of its RAM again (x-ignore-shared off)")
    m.call("M_SHUTDOWN")
    m.close()
    before = digest(ram)

    for run in (1, 2):
        with open(os.path.join(shared, "hello"), "w") as f:
            f.write("shared %d\n" % run)
        with open(os.path.join(xchg, "hello"), "w") as f:
            f.write("xchg %d\n" % run)
        start = len(t.worker_log())
        m = t.machine(boot_cache=cache)
        m.connect()
        host_before = time.time()
        out = m.execute("cat /tmp/shared/hello /tmp/xchg/hello; date +%s")
        host_after = time.time()
        t.check("Boot cache: restored" in t.worker_log()[start:], "restore %d: the snapshot was restored" % run)
        lines = out[1].decode().split("\n")
        t.check(out[0] == 0 and lines[:2] == ["shared %d" % run, "xchg %d" % run],
                "restore %d: the first command reads both shares directly (%r)" % (run, out))
        guest_now = int(lines[2]) if len(lines) > 2 and lines[2].isdigit() else 0
        t.check(host_before - 1.5 <= guest_now <= host_after + 1,
                "restore %d: the guest's clock is now (%d within [%.1f, %.1f])" % (run, guest_now, host_before,
                                                                                 host_after))
        # Dirty a good part of the guest's RAM (its /tmp is a tmpfs).
        out = m.execute("{ yes vigil-restore-%d || :; } | head -c 50331648 > /tmp/fill && wc -c < /tmp/fill" % run,
                        timeout=300)
        t.check(out == (0, b"50331648\n"), "restore %d: the guest writes 48 MiB into its RAM (%r)" % (run, out))
        m.call("M_SHUTDOWN")
        m.close()
        t.check(digest(ram) == before, "restore %d: the snapshot's RAM file is unchanged" % run)

    # A snapshot without its RAM file is no snapshot: cold boot, and a new save.
    os.unlink(ram)
    start = len(t.worker_log())
    m = t.machine(boot_cache=cache)
    m.connect()
    t.check(m.execute("echo up") == (0, b"up\n"), "without the RAM file the machine boots")
    log = t.worker_log()[start:]
    t.check("no snapshot for this VM" in log and "restored" not in log, "without the RAM file it boots cold")
    deadline = time.monotonic() + 120
    while not os.path.exists(ram) and time.monotonic() < deadline:
        time.sleep(0.1)
    t.check(os.path.exists(ram), "and saves a new snapshot with its RAM file")
    m.call("M_SHUTDOWN")
    m.close()

    # A truncated RAM file: QEMU refuses it, the worker boots cold and says so.
    os.truncate(ram, MIB)
    start = len(t.worker_log())
    m = t.machine(boot_cache=cache)
    m.connect()
    t.check(m.execute("echo up") == (0, b"up\n"), "a truncated RAM file: the machine still boots")
    log = t.worker_log()[start:]
    t.check("booting cold instead" in log, "a truncated RAM file falls back to a cold boot, saying so")
    t.check(os.path.exists(states[0] + ".bad"), "and the snapshot is set aside")
    m.call("M_SHUTDOWN")


t = Test()
t.run(body)
