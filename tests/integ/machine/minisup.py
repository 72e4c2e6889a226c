# SPDX-License-Identifier: MIT
"""minisup: a small stand-in for vigil's supervisor, for vigil-machine's own
integration tests. It speaks the real wire protocol (msgpack frames on a
SOCK_SEQPACKET channel at fd 3, SCM_RIGHTS), runs the spawn service (QEMU is
started here with PDEATHSIG, never by the worker), keeps the fd store, reports
process exits, and restarts the worker with PROC_LIST + FD_RESTORE exactly as
the supervisor does, so re-attach can be tested by SIGKILLing the worker.
Tests call machine operations with call(); stdlib only.
"""

import array
import ctypes
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

def _proto_from_header():
    """PROTO_VERSION and the message numbers, read from proto/msg.h itself, so
    this stand-in can never speak a protocol the real supervisor does not."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "proto", "msg.h")
    with open(path) as f:
        text = f.read()
    version = int(re.search(r"^#define PROTO_VERSION (\d+)$", text, re.M).group(1))
    types = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+MSG_([A-Z0-9_]+) = (\d+),", text, re.M)}
    if not types or "M_EXECUTE" not in types:
        raise RuntimeError("minisup: no message table found in " + path)
    return version, types


PROTO_VERSION, T = _proto_from_header()
NAMES = {v: k for k, v in T.items()}
# The replies that end a request to a machine worker, and the wire order of
# every body minisup builds or takes apart. Copied from proto/msg-table.c;
# test-minisup-table checks both against the compiled table.
FINAL = {T["OK"], T["ERROR"], T["M_EXEC_RESULT"], T["M_TEXT_RESULT"], T["M_STATE_RESULT"]}
LAYOUT = {
    "HELLO": ["proto", "kind", "name", "pid"],
    "CONFIG": ["restarts", "run_id", "json"],
    "ERROR": ["code", "message"],
    "FD_STORE": ["name"],
    "FD_FORGET": ["name"],
    "FD_RESTORE": ["name"],
    "SPAWN": ["name", "argv", "env", "cwd", "stdio", "machine"],
    "SPAWNED": ["name", "pid"],
    "PROC_LIST": ["name", "pid"],
    "PROC_EXIT": ["name", "pid", "code", "signal"],
    "PROC_KILL": ["name", "signal"],
    "CHANNEL": ["peer", "kind"],
}


def body_of(msg, /, **fields):
    """A body of message @msg in the wire order of LAYOUT[msg]."""
    return [fields[f] for f in LAYOUT[msg]]


# ---- msgpack (the subset vigil uses) ----

def pack(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o)
        if o >= -32:
            return struct.pack("b", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, str):
        b = o.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(o, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(o)) + bytes(o)
    if isinstance(o, (list, tuple)):
        out = b"\xdd" + struct.pack(">I", len(o))
        return out + b"".join(pack(x) for x in o)
    raise TypeError(type(o))


def unpack(b, i=0):
    c = b[i]
    i += 1
    if c < 0x80:
        return c, i
    if c >= 0xe0:
        return c - 256, i
    if 0xa0 <= c <= 0xbf:
        n = c & 0x1f
        return b[i:i + n].decode(), i + n
    if 0x90 <= c <= 0x9f:
        return unpack_array(b, i, c & 0x0f)
    fixed = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q"}
    if c in fixed:
        f = fixed[c]
        n = struct.calcsize(f)
        return struct.unpack(f, b[i:i + n])[0], i + n
    if c == 0xc0:
        return None, i
    if c == 0xc2:
        return False, i
    if c == 0xc3:
        return True, i
    for tag, f, kind in ((0xd9, ">B", "s"), (0xda, ">H", "s"), (0xdb, ">I", "s"), (0xc4, ">B", "b"),
                         (0xc5, ">H", "b"), (0xc6, ">I", "b")):
        if c == tag:
            k = struct.calcsize(f)
            n = struct.unpack(f, b[i:i + k])[0]
            i += k
            data = b[i:i + n]
            return (data.decode() if kind == "s" else bytes(data)), i + n
    if c in (0xdc, 0xdd):
        f = ">H" if c == 0xdc else ">I"
        k = struct.calcsize(f)
        n = struct.unpack(f, b[i:i + k])[0]
        return unpack_array(b, i + k, n)
    raise ValueError("msgpack byte 0x%02x" % c)


def unpack_array(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i)
        out.append(v)
    return out, i


# ---- process helpers ----

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _pdeathsig():
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setsid()


class Reply:
    def __init__(self, type_, body, data):
        self.type = NAMES.get(type_, type_)
        self.body = body
        self.data = data

    def __repr__(self):
        return "Reply(%s, %r, %d bytes)" % (self.type, self.body, len(self.data))


class MachineError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message



class TapChecks:
    """Numbered TAP lines for the machine tests (vmtest.Test, the nspawn machine test): check() and
    raises() over MachineError; the class using it sets self.n = self.failed = 0."""

    def check(self, cond, what, detail=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, what), flush=True)
        if not cond and detail is not None:
            for line in str(detail).splitlines()[:20]:
                print("#   " + line, flush=True)
        return cond

    def raises(self, fn, what, needle=None):
        try:
            fn()
        except MachineError as e:
            return self.check(needle is None or needle in e.message, what, e.message), e
        except Exception as e:  # noqa: BLE001
            return self.check(False, what, repr(e)), e
        return self.check(False, what, "no error"), None


class MachineTest(TapChecks):
    """The harness of the machine-worker tests (QEMU: vmtest.Test; nspawn: test-nspawn-machine.py):
    the worker's log and the consoles, and run(body) that closes every MiniSup, checks the worker log
    for sanitizer reports, prints the plan and, on failure, the log and console tails. Subclasses set
    self.tmp, self.log, self.log_path, self.sups, self.n, self.failed."""

    console_names = ()  # consoles whose tails a failure prints

    def console_log(self, name="alpha"):
        try:
            with open(os.path.join(self.tmp, "out", "%s-console.log" % name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def worker_log(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def before_close(self, sup):
        """Called for each MiniSup before it is closed."""

    def run(self, body):
        import shutil
        import traceback

        try:
            body(self)
        except Exception:  # noqa: BLE001
            self.check(False, "test body raised", traceback.format_exc())
        finally:
            for s in self.sups:
                self.before_close(s)
                s.close()
            log = self.worker_log()
            bad = [line for line in log.splitlines() if "Sanitizer" in line or "runtime error:" in line]
            self.check(not bad, "no sanitizer reports from vigil-machine", "\n".join(bad))
            print("1..%d" % self.n)
            if self.failed:
                print("# worker log tail:")
                for line in log.splitlines()[-40:]:
                    print("#   " + line)
                for name in self.console_names:
                    print("# %s console tail:" % name)
                    for line in self.console_log(name).splitlines()[-25:]:
                        print("#   " + line)
            shutil.rmtree(self.tmp, ignore_errors=True)
        sys.exit(1 if self.failed else 0)


def pid_alive(pid):
    """True while @pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False

class MiniSup:
    """One machine worker under a minimal supervisor."""

    def __init__(self, worker, config, restart=True, log=None):
        self.worker = worker
        self.config = config
        self.name = config["name"]
        self.restart = restart
        self.log = log or sys.stderr
        self.restarts = 0
        self.store = {}          # name -> fd
        self.procs = {}          # name -> Popen
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.pending = {}        # seq -> [frames]
        self.done = {}           # seq -> Reply
        self.seq = 1000
        self.ready = False
        self.configured = False  # CONFIG sent to the current worker: exits go to it from then on
        self.events = []
        self.worker_exits = []
        self.stopping = False
        self.pending_exits = []
        self.sock = None
        self.proc = None
        # PR_SET_PDEATHSIG fires when the forking *thread* ends, so every
        # process is forked from one thread that lives as long as we do.
        self._spawnq = queue.Queue()
        threading.Thread(target=self._spawner, daemon=True).start()
        self._start_worker()

    def _spawner(self):
        while True:
            fn, box, done = self._spawnq.get()
            try:
                box.append(fn())
            except BaseException as e:  # noqa: BLE001
                box.append(e)
            done.set()

    def _fork(self, fn):
        box, done = [], threading.Event()
        self._spawnq.put((fn, box, done))
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    # -- worker lifecycle --
    def _start_worker(self):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os.set_inheritable(child.fileno(), True)
        cfd = child.fileno()

        def pre():
            _pdeathsig()
            os.dup2(cfd, 3)

        env = dict(os.environ)
        env.setdefault("VIGIL_LOG", "stderr")
        self.proc = self._fork(lambda: subprocess.Popen([self.worker, "--name", self.name], preexec_fn=pre,
                                                        pass_fds=(cfd, 3), env=env, stderr=self.log))
        child.close()
        self.sock = parent
        self.ready = False
        self.configured = False
        t = threading.Thread(target=self._reader, args=(parent, self.proc), daemon=True)
        t.start()

    def _send(self, type_, seq, body, fds=()):
        data = pack([PROTO_VERSION, type_, seq, body])
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        self.sock.sendmsg([data], anc)

    def _reader(self, sock, proc):
        while True:
            try:
                data, anc, flags, _ = sock.recvmsg(256 * 1024, socket.CMSG_SPACE(4 * 8))
            except OSError:
                data = b""
            if not data:
                break
            fds = []
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(cdata[:len(cdata) - (len(cdata) % a.itemsize)])
                    fds.extend(a)
            (ver, type_, seq, body), _ = unpack(data)
            try:
                self._frame(type_, seq, body, fds)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker died while we answered: its EOF comes next, then the restart
        rc = proc.wait()
        with self.lock:
            self.ready = self.configured = False
            self.worker_exits.append(rc)
            self.cond.notify_all()
        if self.stopping or not self.restart or self.restarts >= 5:
            with self.lock:
                for seq in list(self.pending):
                    self.done[seq] = Reply(T["ERROR"], [-104, "worker exited"], b"")
                self.pending.clear()
                self.cond.notify_all()
            return
        # Restart like the supervisor: new channel, PROC_LIST, FD_RESTORE, CONFIG.
        with self.lock:
            self.restarts += 1
            for seq in list(self.pending):
                self.done[seq] = Reply(T["ERROR"], [-104, "worker restarted"], b"")
            self.pending.clear()
            self.cond.notify_all()
        self._start_worker()

    def _frame(self, type_, seq, body, fds):
        name = NAMES.get(type_, str(type_))
        if type_ == T["HELLO"]:
            for pname, p in list(self.procs.items()):
                if p.poll() is None:
                    self._send(T["PROC_LIST"], 0, body_of("PROC_LIST", name=pname, pid=p.pid))
            for sname, fd in self.store.items():
                self._send(T["FD_RESTORE"], 0, body_of("FD_RESTORE", name=sname), [fd])
            self._send(T["CONFIG"], 0, body_of("CONFIG", restarts=self.restarts, run_id="test",
                                                      json=json.dumps(self.config)))
            with self.lock:
                self.configured = True
            self._flush_exits()
        elif type_ == T["READY"]:
            with self.lock:
                self.ready = True
                self.cond.notify_all()
        elif type_ == T["FD_STORE"]:
            old = self.store.pop(body[0], None)
            if old is not None:
                os.close(old)
            self.store[body[0]] = fds[0]
            fds = fds[1:]
        elif type_ == T["FD_FORGET"]:
            old = self.store.pop(body[0], None)
            if old is not None:
                os.close(old)
        elif type_ == T["SPAWN"]:
            self._spawn(seq, body, fds)
            fds = []
        elif type_ == T["PROC_KILL"]:
            p = self.procs.get(body[0])
            if p and p.poll() is None:
                try:
                    os.kill(p.pid, body[1])
                except ProcessLookupError:
                    pass
        elif type_ == T["EVENT"]:
            self.events.append(body)
        elif type_ in (T["CHUNK"],) or type_ in FINAL:
            with self.lock:
                if seq in self.pending:
                    self.pending[seq].append((type_, body))
                    if type_ in FINAL:
                        frames = self.pending.pop(seq)
                        data = b"".join(b[0] for t, b in frames if t == T["CHUNK"])
                        self.done[seq] = Reply(type_, body, data)
                        self.cond.notify_all()
        else:
            print("minisup: unexpected %s" % name, file=self.log)
        for fd in fds:
            os.close(fd)

    def _spawn(self, seq, body, fds):
        m = dict(zip(LAYOUT["SPAWN"], body))
        pname, argv, env, cwd, stdio = m["name"], m["argv"], m["env"], m["cwd"], m["stdio"]
        it = iter(fds)
        io = {}
        for bit, key in ((1, "stdin"), (2, "stdout"), (4, "stderr")):
            io[key] = next(it) if stdio & bit else subprocess.DEVNULL
        try:
            p = self._fork(lambda: subprocess.Popen(argv, env=dict(e.split("=", 1) for e in env), cwd=cwd or None,
                                                    preexec_fn=_pdeathsig, close_fds=True, **io))
        except OSError as e:
            self._send(T["ERROR"], seq, body_of("ERROR", code=-e.errno, message="spawn %s: %s" % (argv[0], e)))
        else:
            self.procs[pname] = p
            threading.Thread(target=self._watch, args=(pname, p), daemon=True).start()
            self._send(T["SPAWNED"], seq, body_of("SPAWNED", name=pname, pid=p.pid))
        for fd in fds:
            os.close(fd)

    def _watch(self, pname, p):
        rc = p.wait()
        code, sig = (rc, 0) if rc >= 0 else (-1, -rc)
        # As the supervisor: an exit while the worker is down or not yet configured is told to the
        # next one after its CONFIG (anything else before CONFIG is a protocol error to it). Not after
        # its READY: a worker that re-attached to a QEMU that died meanwhile only learns it so.
        with self.lock:
            if not self.configured:
                self.pending_exits.append((pname, p.pid, code, sig))
                return
        self._send_exit(pname, p.pid, code, sig)

    def _send_exit(self, pname, pid, code, sig):
        try:
            self._send(T["PROC_EXIT"], 0, body_of("PROC_EXIT", name=pname, pid=pid, code=code, signal=sig))
        except OSError:
            pass  # the worker is being restarted

    def _flush_exits(self):
        with self.lock:
            exits, self.pending_exits = self.pending_exits, []
        for e in exits:
            self._send_exit(*e)

    # -- test API --
    def wait_ready(self, timeout=30):
        with self.lock:
            if not self.cond.wait_for(lambda: self.ready, timeout):
                raise TimeoutError("worker did not send READY within %s s" % timeout)

    def send(self, type_name, *fields):
        with self.lock:
            self.seq += 1
            seq = self.seq
            self.pending[seq] = []
        self._send(T[type_name], seq, [self.name] + list(fields))
        return seq

    def result(self, seq, timeout=120):
        with self.lock:
            if not self.cond.wait_for(lambda: seq in self.done, timeout):
                raise TimeoutError("no reply to request %d within %s s" % (seq, timeout))
            r = self.done.pop(seq)
        if r.type == "ERROR":
            raise MachineError(r.body[0], r.body[1])
        return r

    def call(self, type_name, *fields, timeout=120):
        return self.result(self.send(type_name, *fields), timeout)

    # convenience wrappers, reference names
    def start(self, allow_reboot=False):
        return self.call("M_START", allow_reboot)

    def connect(self, timeout_ms=-1, timeout=300):
        return self.call("M_CONNECT", timeout_ms, timeout=timeout)

    def execute(self, cmd, timeout_s=900, check_return=True, check_output=True, timeout=300):
        r = self.call("M_EXECUTE", cmd, timeout_s, check_return, check_output, timeout=timeout)
        return r.body[0], r.data

    def succeed(self, cmd, timeout=300):
        status, out = self.execute(cmd, -1, timeout=timeout)
        if status != 0:
            raise AssertionError("command `%s` failed (exit code %d)" % (cmd, status))
        return out.decode(errors="replace")

    def state(self):
        return self.call("M_STATE").body

    def console_read(self, from_line, timeout_ms):
        r = self.call("M_CONSOLE_READ", from_line, timeout_ms, timeout=max(30, timeout_ms / 1000 + 30))
        return r.data.decode(errors="replace"), r.body[1]

    def wait_for_console(self, needle, timeout=60):
        line = 0
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            text, line = self.console_read(line, 1000)
            seen += text
            if needle in seen:
                return seen
        raise TimeoutError("console never showed %r" % needle)

    def close(self):
        self.stopping = True
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for fd in self.store.values():
            os.close(fd)
        self.store.clear()
        if self.sock:
            self.sock.close()


def find_guest(source_root):
    """Build (or reuse) the tiny guest; returns its directory or None."""
    mk = os.path.join(source_root, "tools", "mkguest")
    if not os.path.exists(mk):
        return None
    r = subprocess.run([sys.executable, mk], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.strip()


def tiny_config(name, tmp, guest, accel="tcg", **over):
    state = os.path.join(tmp, "vm-state-" + name)
    os.makedirs(state, mode=0o700, exist_ok=True)
    shared = os.path.join(tmp, "shared-xchg")
    os.makedirs(shared, exist_ok=True)
    cfg = {
        "name": name, "backend": "qemu", "node_number": 1, "state_dir": state, "shared_dir": shared,
        "out_dir": os.path.join(tmp, "out"), "accel": accel, "allow_reboot": False, "vlans": [], "hosts": [],
        "qemu": {"kernel": os.path.join(guest, "kernel"), "initrd": os.path.join(guest, "initrd"),
                 "append": "console=ttyS0 panic=1 vigil.hostname=%s" % name, "memory_mb": 256, "cpus": 1},
        "timeouts": {"connect_s": 120},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg
