# SPDX-License-Identifier: MIT
# suphelp: what every supervisor integration test needs: run `vigil supervise`
# on a spec in a private temp dir, read its timeline.jsonl, find the run's
# processes in /proc by their VIGIL_RUN marker, and fail with a readable story.
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

VIGIL = os.environ.get("VIGIL") or os.path.join(os.environ.get("MESON_BUILD_ROOT", "build"), "supervisor", "vigil")


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    print(f"ok - {what}")


class Run:
    """One `vigil supervise` run in its own temp dir."""

    def __init__(self, spec, args=(), pidns=True, log_target="stderr", env=None):
        self.dir = tempfile.mkdtemp(prefix="vigil-sup-test-")
        self.out = os.path.join(self.dir, "out")
        self.spec_path = os.path.join(self.dir, "spec.json")
        self.run_id = "t" + os.urandom(8).hex()
        if spec is not None:
            self.set_spec(spec)
        self.argv = [VIGIL, "supervise", self.spec_path, "-o", self.out, "--run-id", self.run_id,
                     "--log-target", log_target, *args]
        if not pidns:
            self.argv.append("--no-pidns")
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.rc = None
        self.stderr = ""

    def set_spec(self, spec):
        """Write the spec (a dict or JSON text); use run.path() for files it names."""
        with open(self.spec_path, "w") as f:
            f.write(spec if isinstance(spec, str) else json.dumps(spec))
        return self

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        self.errf = open(self.path("stderr.txt"), "w+")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.errf, env=self.env,
                                     text=True)
        return self

    def wait(self, timeout=30):
        try:
            self.stdout, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise Failure(f"vigil did not exit within {timeout} s:\n{self.read_stderr()}")
        self.rc = self.proc.returncode
        self.stderr = self.read_stderr()
        return self.rc

    def run(self, timeout=30):
        self.start()
        return self.wait(timeout)

    def read_stderr(self):
        try:
            with open(self.path("stderr.txt")) as f:
                return f.read()
        except OSError:
            return ""

    def timeline(self):
        try:
            with open(os.path.join(self.out, "timeline.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def events(self, event=None, child=None, **match):
        out = []
        for e in self.timeline():
            if event is not None and e.get("event") != event:
                continue
            if child is not None and e.get("child") != child:
                continue
            if any(e.get(k) != v for k, v in match.items()):
                continue
            out.append(e)
        return out

    def worker_events(self, name, child=None):
        return self.events("worker_event", child=child, name=name)

    def wait_for(self, pred, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = pred()
            if r:
                return r
            if self.proc and self.proc.poll() is not None:
                r = pred()
                if r:
                    return r
                raise Failure(f"vigil exited ({self.proc.returncode}) before {what}:\n{self.read_stderr()}")
            time.sleep(0.05)
        raise Failure(f"timed out waiting for {what}:\n{self.read_stderr()}")

    def story(self):
        lines = []
        for e in self.timeline():
            lines.append(f"  {e['t']:8.3f} {e['event']:<15} {e.get('child', ''):<8} {e.get('message', '')}")
        return "\n".join(lines)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in run_pids(self.run_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def restart_into_journal(new_run, query):
    """A run logging to the journal in which worker 'a' crashes once and is restarted, ended with SIGTERM:
    (run, exit code, its journal entries up to run_end as query(run_id) returns them)."""
    run = new_run(None, log_target="journal")
    run.set_spec({"children": [test("a", ["--crash-after-ms", "200", "--once-file", run.path("once")]), test("b")]})
    run.start()
    run.wait_for(lambda: len(run.events("ready", child="a")) == 2, what="a restarted")
    run.proc.send_signal(signal.SIGTERM)
    rc = run.wait()
    entries = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = query(run.run_id)
        if any(e.get("VIGIL_EVENT") == "run_end" for e in entries):
            break
        time.sleep(0.1)
    return run, rc, entries


def run_pids(run_id):
    """Every live process whose environment carries VIGIL_RUN=run_id."""
    marker = f"VIGIL_RUN={run_id}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in env and state != "Z":
            pids.append(int(d))
    return pids


def host_pid(run_id, nspid):
    """The host pid of a run's process given the pid the timeline reports (which is the
    pid inside the run's PID namespace, or the host pid without one)."""
    for pid in run_pids(run_id):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == nspid:
                            return pid
        except OSError:
            continue
    return None


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test(name, args=()):
    return {"id": name, "kind": "test", "args": list(args)}


def main(fn):
    """Run one test function with a fresh Run list; print the story on failure."""
    runs = []

    def new_run(*a, **kw):
        r = Run(*a, **kw)
        runs.append(r)
        return r

    try:
        fn(new_run)
    except Failure as e:
        print(f"not ok - {e}")
        for r in runs:
            print(f"# timeline of {r.run_id} (rc={r.rc}):")
            print(r.story())
            print("# stderr:")
            print("\n".join("#   " + l for l in (r.stderr or r.read_stderr()).splitlines()[-60:]))
        sys.exit(1)
    finally:
        for r in runs:
            r.cleanup()
    sys.exit(0)
