#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves the machine worker's side of brokered channels (workers/common/worker-direct.c) on the real worker, no VM:
# a request that comes over a channel is answered there under the client's own seq while routed ones are answered on
# the supervisor's channel, and a client that sends anything but a request this worker serves (another machine's
# name, a reply, garbage, a non-script sender, seq 0, fds) loses only its channel: the worker and its other channels
# go on. Why it matters: the script worker sends every machine request this way; a bad frame must never cost a VM.
import array
import os
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minisup  # noqa: E402
from minisup import PROTO_VERSION, T, NAMES, body_of, pack, unpack  # noqa: E402

WORKER = os.environ.get("VIGIL_MACHINE_WORKER") or sys.exit("VIGIL_MACHINE_WORKER not set")


class Test(minisup.MachineTest):
    def __init__(self):
        self.n = self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="vigil-direct-")
        self.log_path = os.path.join(self.tmp, "worker.log")
        self.log = open(self.log_path, "w")
        self.sups = []


def offer(sup, kind="script", peer="script"):
    """Hand the worker one end of a fresh socketpair, as the supervisor's CHANNEL does; return ours."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sup._send(T["CHANNEL"], 0, body_of("CHANNEL", peer=peer, kind=kind), [theirs.fileno()])
    theirs.close()
    mine.settimeout(10)
    return mine


def adopted(sock):
    """The worker's first frame on a channel it took: OK with seq 0 (None: it closed the channel instead)."""
    try:
        r = reply(sock)
    except (TimeoutError, OSError):
        return None
    return r is not None and r[0] == "OK" and r[1] == 0


def channel(sup, kind="script", peer="script"):
    s = offer(sup, kind, peer)
    if not adopted(s):
        raise AssertionError("the worker did not take the channel")
    return s


def request(sock, type_name, seq, *fields, fds=()):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([pack([PROTO_VERSION, T[type_name], seq, list(fields)])], anc)


def reply(sock):
    """(type name, seq, body) of the next frame, or None at EOF."""
    data = sock.recv(256 * 1024)
    if not data:
        return None
    (ver, type_, seq, body), _ = unpack(data)
    return NAMES.get(type_, type_), seq, body


def closed(sock):
    try:
        return reply(sock) is None
    except (TimeoutError, OSError):
        return False


def body(t):
    sup = minisup.MiniSup(WORKER, minisup.tiny_config("alpha", t.tmp, os.path.join(t.tmp, "no-guest")), log=t.log)
    t.sups.append(sup)
    sup.wait_ready()
    pid = sup.proc.pid

    a = offer(sup)
    t.check(adopted(a), "the worker says it took the channel (OK, seq 0) before anything else")
    request(a, "M_STATE", 7, "alpha")
    r = reply(a)
    t.check(r and r[0] == "M_STATE_RESULT" and r[1] == 7, "a request over the channel is answered there, seq 7", r)
    t.check(r and r[2][4] == pid, "by this worker (worker_pid %s)" % (r[2][4] if r else None), r)

    routed = sup.send("M_STATE")
    request(a, "M_STATE", 8, "alpha")
    t.check(sup.result(routed).type == "M_STATE_RESULT", "a routed request meanwhile is answered on the supervisor's")
    r = reply(a)
    t.check(r and r[1] == 8, "and the direct one on its channel", r)

    request(a, "M_CONSOLE_READ", 9, "alpha", 0, 0)
    r = reply(a)
    t.check(r and r[0] == "M_TEXT_RESULT" and r[1] == 9, "a bulk reply (console read) goes back over the channel", r)
    request(a, "M_QMP", 12, "alpha", '{"execute": "stop"}')
    r = reply(a)
    t.check(r and r[0] == "ERROR" and r[1] == 12 and r[2] == [-107, "machine alpha is not running (start it first)"],
            "an error reply (worker_reply_error) goes back over the channel, seq 12, with its code and message", r)

    # Each of these costs the sender its channel, nothing else.
    bad = [
        ("another machine's name", lambda s: request(s, "M_STATE", 1, "beta")),
        ("a reply instead of a request", lambda s: request(s, "OK", 1)),
        ("a supervisor service", lambda s: request(s, "FD_FORGET", 1, "x")),
        ("seq 0", lambda s: request(s, "M_STATE", 0, "alpha")),
        ("fds with a request", lambda s: request(s, "M_STATE", 1, "alpha", fds=[s.fileno()])),
        ("bytes that are no frame", lambda s: s.send(b"\x93\x01\x02")),
        ("a tag-range seq", lambda s: request(s, "M_STATE", 0x80000001, "alpha")),
    ]
    for what, send in bad:
        s = channel(sup)
        send(s)
        t.check(closed(s), "%s: that channel is closed" % what)
    s = channel(sup, kind="switch", peer="vlan1")
    request(s, "M_STATE", 1, "alpha")
    t.check(closed(s), "a switch may not send machine requests: its channel is closed")
    s = offer(sup, kind="nonsense")
    t.check(closed(s), "a channel from an unknown kind is refused (closed, no OK)")

    request(a, "M_STATE", 10, "alpha")
    r = reply(a)
    t.check(r and r[1] == 10, "the first channel still works after all that", r)
    t.check(sup.state()[4] == pid and sup.proc.poll() is None, "the worker never restarted or exited")

    # A client that leaves with a request in flight: nothing breaks, later clients are served.
    request(a, "M_CONSOLE_READ", 11, "alpha", 0, 2000)
    a.close()
    b = channel(sup)
    request(b, "M_STATE", 1, "alpha")
    r = reply(b)
    t.check(r and r[1] == 1, "a new client is served after the old one left mid-request", r)
    many = [offer(sup) for _ in range(20)]
    served = 0
    for i, s in enumerate(many):
        try:
            if not adopted(s):
                continue
            request(s, "M_STATE", 100 + i, "alpha")
            r = reply(s)
            served += bool(r and r[1] == 100 + i)
        except OSError:
            pass
    t.check(served == 15, "channels are capped (16 at once): %d of 20 more were taken and served" % served)
    t.check(sup.proc.poll() is None, "the worker is still there")


Test().run(body)
