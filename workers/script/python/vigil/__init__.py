# SPDX-License-Identifier: MIT
"""vigil's additions to the test-script API (things the reference driver
cannot do). Import with `import vigil` in a test script.

Only what works is defined here; network partitions and fault injection
arrive with the switch worker.
"""

from typing import Any

from test_driver.errors import MachineError

_driver: Any = None  # set by vigil._runner before the script runs


def _machine(machine_or_name: Any) -> Any:
    if _driver is None:
        raise MachineError("vigil: not running under vigil-script (no driver)")
    if not isinstance(machine_or_name, str):
        return machine_or_name
    for m in _driver.machines:
        if m.name == machine_or_name:
            return m
    raise MachineError(f"vigil: no machine named {machine_or_name!r} "
                       f"(have: {', '.join(m.name for m in _driver.machines)})")


def machine_state(machine: Any) -> dict[str, Any]:
    """The machine worker's view of a machine: booted, connected, pid (of the
    hypervisor/container), backend, worker_pid."""
    return dict(_machine(machine)._refresh_state())


def machine_worker_pid(machine: Any) -> int:
    """pid of the vigil-machine worker process serving `machine` (a name or a
    Machine), e.g. to kill it and watch the supervisor restart it."""
    m = _machine(machine)
    m._refresh_state()
    if not m.worker_pid:
        raise MachineError(f"vigil: the worker of {m.name} did not report its pid")
    return int(m.worker_pid)


def driver() -> Any:
    """The running Driver (the same object as the `driver` global)."""
    if _driver is None:
        raise MachineError("vigil: not running under vigil-script (no driver)")
    return _driver
