#!/usr/bin/python3
# Proves test scripts type-check against vigil's test_driver package the way nix builds them: a typing prelude of each
# nixpkgs era (2022-2024 `Machine`/`Logger`, 2026 `QemuMachine`/`NspawnMachine`), one annotation per node, then the
# script, through mypy. Why it matters: every nixosTest without skipTypeCheck runs this mypy step; an error fails the build.
#
# The preludes below are vigil's own minimal equivalents of nixpkgs' nixos/lib/test-script-prepend.py (same imported
# names and declared globals). Skips (77) without mypy (apt-get install python3-mypy).

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

PYDIR = os.environ.get("VIGIL_PYTHON_DIR") or str(Path(__file__).resolve().parents[3] / "workers/script/python")

PRELUDE_2022 = '''
from typing import Any, Callable, ContextManager, Dict, List, Optional, Union
from typing_extensions import Protocol
from test_driver.driver import Driver
from test_driver.logger import Logger
from test_driver.machine import Machine
from test_driver.vlan import VLan

class RetryProtocol(Protocol):
    def __call__(self, fn: Callable, timeout: int = 900) -> None: ...

class PollingConditionProtocol(Protocol):
    def __call__(self, fun_: Optional[Callable] = None, *, seconds_interval: float = 2.0,
                 description: Optional[str] = None) -> Union[Callable[[Callable], ContextManager], ContextManager]: ...

start_all: Callable[[], None]
subtest: Callable[[str], ContextManager[None]]
retry: RetryProtocol
test_script: Callable[[], None]
machines: List[Machine]
vlans: List[VLan]
driver: Driver
log: Logger
run_tests: Callable[[], None]
join_all: Callable[[], None]
serial_stdout_off: Callable[[], None]
serial_stdout_on: Callable[[], None]
polling_condition: PollingConditionProtocol
'''

PRELUDE_2026 = '''
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Generator, List, Optional, Union
from unittest import TestCase
from typing_extensions import Protocol
from test_driver.debug import DebugAbstract, DebugNop
from test_driver.driver import Driver
from test_driver.logger import AbstractLogger, CompositeLogger
from test_driver.machine import BaseMachine, NspawnMachine, QemuMachine
from test_driver.vlan import VLan

class AssertionTester(TestCase):
    pass

debug: DebugAbstract = DebugNop()
machines: List[BaseMachine] = []
machines_nspawn: List[NspawnMachine] = []
machines_qemu: List[QemuMachine] = []
t = AssertionTester()
vlans: List[VLan] = []
log: AbstractLogger = CompositeLogger([])

def fake_driver() -> Driver: raise Exception("types only")
def fake_qemu() -> QemuMachine: raise Exception("types only")
def fake_nspawn() -> NspawnMachine: raise Exception("types only")
def fake_vlan() -> VLan: raise Exception("types only")

driver = fake_driver()

def join_all() -> None: ...
def retry(fn: Callable, timeout_seconds: int = 900) -> None: ...
def start_all() -> None: ...
def serial_stdout_off() -> None: ...
def serial_stdout_on() -> None: ...
def polling_condition(fun: Callable | None, seconds_interval: float = 0.0, description: str | None = None): ...

@contextmanager
def subtest(name: str) -> Generator[None, None, None]:
    yield
'''

SCRIPT = '''
start_all()
server.wait_for_unit("multi-user.target")
server.wait_for_unit("app.service", user="alice", timeout=60)
state: str = server.get_unit_property("app.service", "ActiveState", user="alice")
info: dict = server.get_unit_info("app.service")
server.require_unit_state("app.service", "active")
status, out = server.systemctl("is-active app", user="alice")
code, _ = server.start_job("app.service")
server.stop_job("app.service", user="alice")
server.wait_for_open_port(8080, "localhost", timeout=30)
server.wait_for_closed_port(8081)
with subtest("x"):
    server.succeed("true", timeout=5)
    server.fail("false")
retry(lambda last_try: True, 10)
for m in machines:
    m.execute("true", check_return=False)
log.info("done")
'''

# vigil's own module, used the way the docs show (diagnostics, journal)
VIGIL_USE = '''
import vigil
from test_driver.errors import RequestedAssertionFailed
text: str = vigil.journal(server, unit="app.service", lines=20, since_boot=False)
vigil.set_failure_diagnostics(True)
vigil.partition([server], vlan=1)
vigil.heal()
try:
    server.wait_for_unit("x")
except RequestedAssertionFailed as e:
    print(getattr(e, "diagnostics", ""))
'''


def run_mypy(text: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "testScriptWithTypes"
        path.write_text(text)
        env = dict(os.environ, MYPYPATH=PYDIR)
        return subprocess.run([sys.executable, "-m", "mypy", "--no-implicit-optional", "--pretty", "--no-color-output",
                               "--cache-dir", str(Path(tmp) / "cache"), str(path)],
                              capture_output=True, text=True, env=env, timeout=300)


class TestTypeCheck(unittest.TestCase):
    def test_2022_prelude(self):
        p = run_mypy(PRELUDE_2022 + "server: Machine;\nclient: Machine;\nvlan1: VLan;\n" + SCRIPT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_2026_prelude_with_nspawn_and_vigil(self):
        p = run_mypy(PRELUDE_2026 + "server = fake_qemu();\nbox = fake_nspawn();\nvlan1 = fake_vlan();\n" + SCRIPT
                 + "box.wait_for_unit('multi-user.target', user=None)\n" + VIGIL_USE)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_a_type_error_fails_the_build(self):
        p = run_mypy(PRELUDE_2026 + "server = fake_qemu();\n" + "server.wait_for_unit(5)\nserver.get_unit_info()\n")
        self.assertNotEqual(p.returncode, 0)
        out = " ".join(p.stdout.split())  # --pretty wraps lines
        self.assertIn('Argument 1 to "wait_for_unit" of "BaseMachine" has incompatible type "int"', out)
        self.assertIn('Missing positional argument "unit" in call to "get_unit_info"', out)
        self.assertIn("Found 2 errors in 1 file", out)  # none in vigil's own package


if __name__ == "__main__":
    import importlib.util

    if importlib.util.find_spec("mypy") is None:
        print("1..0 # SKIP no mypy (apt-get install python3-mypy)")
        sys.exit(77)
    unittest.main(verbosity=1)
