# SPDX-License-Identifier: MIT
"""vmtest: the little frame every tests/integ/machine test shares: a TAP
checker, a temp dir that is removed afterwards, the tiny guest, and a
MiniSup running the vigil-machine under test. Skips (exit 77) when QEMU or the
guest cannot be had on this host."""

import os
import shutil
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minisup  # noqa: E402

SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
WORKER = os.environ.get("VIGIL_MACHINE_WORKER", os.path.join(SOURCE_ROOT, "build", "workers", "machine", "vigil-machine"))


class Test(minisup.TapChecks):
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.sups = []
        if not shutil.which("qemu-system-x86_64"):
            print("1..0 # SKIP no qemu-system-x86_64")
            sys.exit(77)
        self.guest = minisup.find_guest(SOURCE_ROOT)
        if not self.guest:
            print("1..0 # SKIP tools/mkguest could not build the tiny guest")
            sys.exit(77)
        self.tmp = tempfile.mkdtemp(prefix="vigil-mt-", dir="/tmp")
        self.log_path = os.path.join(self.tmp, "worker.log")
        self.log = open(self.log_path, "w")

    def machine(self, name="alpha", **over):
        cfg = minisup.tiny_config(name, self.tmp, self.guest, **over)
        s = minisup.MiniSup(WORKER, cfg, log=self.log)
        self.sups.append(s)
        s.wait_ready()
        return s

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

    def run(self, body):
        try:
            body(self)
        except Exception:  # noqa: BLE001
            self.check(False, "test body raised", traceback.format_exc())
        finally:
            for s in self.sups:
                s.close()
            log = self.worker_log()
            bad = [l for l in log.splitlines() if "Sanitizer" in l or "runtime error:" in l]
            self.check(not bad, "no sanitizer reports from vigil-machine", "\n".join(bad))
            print("1..%d" % self.n)
            if self.failed:
                print("# worker log tail:")
                for line in self.worker_log().splitlines()[-30:]:
                    print("#   " + line)
            shutil.rmtree(self.tmp, ignore_errors=True)
        sys.exit(1 if self.failed else 0)
