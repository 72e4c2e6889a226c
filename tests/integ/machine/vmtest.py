# SPDX-License-Identifier: MIT
"""vmtest: the little frame every tests/integ/machine test shares: a TAP
checker, a temp dir that is removed afterwards, the tiny guest, and a
MiniSup running the vigil-machine under test. Skips (exit 77) when QEMU or the
guest cannot be had on this host."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minisup  # noqa: E402

SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
WORKER = os.environ.get("VIGIL_MACHINE_WORKER", os.path.join(SOURCE_ROOT, "build", "workers", "machine", "vigil-machine"))


class Test(minisup.MachineTest):
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

