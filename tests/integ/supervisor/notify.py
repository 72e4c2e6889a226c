#!/usr/bin/python3
# Proves the sd_notify contract through the PID-namespace relay: READY=1 once all children are ready, STATUS= lines,
# WATCHDOG=1 pings when WATCHDOG_USEC is set, STOPPING=1 + EXTEND_TIMEOUT_USEC at teardown, and workers never inherit NOTIFY_SOCKET (they could not lie about us).
import os
import shutil
import signal
import socket
import tempfile
import time

from suphelp import check, host_pid, main, test


def body(new_run):
    sockdir = tempfile.mkdtemp(prefix="vigil-notify-")
    try:
        check_notify(new_run, sockdir)
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)


def check_notify(new_run, sockdir):
    path = os.path.join(sockdir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    run = new_run({"children": [test("a"), test("b", ["--ready-delay-ms", "300"])]},
                  env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    run.start()
    got = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (any("READY=1" in g for g in got) and
                                               sum("WATCHDOG=1" in g for g in got) >= 3):
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
    ready_at = next((i for i, g in enumerate(got) if "READY=1" in g), None)
    check(ready_at is not None, "READY=1 received")
    check(run.events("ready", child="b"), "... and b (ready after 300 ms) was ready by then")
    check(any(g.startswith("STATUS=") for g in got), "STATUS= lines received")
    check(sum("WATCHDOG=1" in g for g in got) >= 3, "WATCHDOG=1 pings received")
    w = host_pid(run.run_id, run.events("spawned", child="a")[0]["pid"])
    with open(f"/proc/{w}/environ", "rb") as f:
        env = f.read().split(b"\0")
    check(not any(e.startswith(b"NOTIFY_SOCKET=") or e.startswith(b"WATCHDOG_") for e in env),
          "the worker's environment has no NOTIFY_SOCKET / WATCHDOG_*")
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
    check(any("STOPPING=1" in g for g in got), "STOPPING=1 at teardown")
    check(any(g.startswith("EXTEND_TIMEOUT_USEC=") and int(g.split("=")[1]) >= 60_000_000 for g in got),
          "EXTEND_TIMEOUT_USEC covers the bounded teardown (60 s)")
    sock.close()


main(body)
