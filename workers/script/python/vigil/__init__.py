# SPDX-License-Identifier: MIT
"""vigil's additions to the test-script API: things the reference driver
cannot do. Import with `import vigil` in a test script.

Network faults act in vigil's switch (one per VLAN), on frames between two
machines, so they work for any backend and any number of NICs:

    vigil.partition(["alpha"], ["beta", "gamma"])   # alpha cannot reach beta/gamma, nor they alpha
    vigil.heal()                                   # every rule gone
    vigil.cut("alpha", "beta") / vigil.restore("alpha", "beta")
    vigil.link("alpha", "beta", loss=0.2, delay=0.05, jitter=0.01)
    vigil.vlan_stats(1)                            # frame counters per port

Machines' logs:

    vigil.journal(server, unit="nginx", lines=50)  # the machine's journal (journalctl)
    vigil.set_failure_diagnostics(False)           # no diagnostics on unit/port wait errors

Machines are given as Machine objects or names. `vlan=None` means every VLAN
both machines are on.
"""

import json
import shlex
from collections.abc import Iterable
from typing import Any

from test_driver import netfaults
from test_driver.errors import MachineError
from test_driver.machine import BaseMachine
from test_driver.netfaults import _all_vlans, _fault_event, _request, _set_link, _shared_vlans

__all__ = [
    "cut",
    "driver",
    "heal",
    "journal",
    "journal_command",
    "link",
    "machine_state",
    "machine_worker_pid",
    "partition",
    "restore",
    "set_failure_diagnostics",
    "vlan_stats",
]


def driver() -> Any:
    """The running Driver (the same object as the `driver` global)."""
    return netfaults.driver()


def _machine(machine_or_name: Any) -> Any:
    d = driver()
    if not isinstance(machine_or_name, str):
        return machine_or_name
    for m in d.machines:
        if m.name == machine_or_name:
            return m
    raise MachineError(
        f"vigil: no machine named {machine_or_name!r} (have: {', '.join(m.name for m in d.machines)})"
    )


def _name(machine_or_name: Any) -> str:
    return _machine(machine_or_name).name


def machine_state(machine: Any) -> dict[str, Any]:
    """The machine worker's view: booted, connected, pid (of the hypervisor or
    container), backend, worker_pid."""
    return dict(_machine(machine)._refresh_state())


def machine_worker_pid(machine: Any) -> int:
    """pid of the vigil-machine process serving `machine`, e.g. to kill it and
    watch the supervisor restart it without losing the VM."""
    m = _machine(machine)
    m._refresh_state()
    if not m.worker_pid:
        raise MachineError(f"vigil: the worker of {m.name} did not report its pid")
    return int(m.worker_pid)


def cut(a: Any, b: Any, both: bool = True, vlan: int | None = None) -> None:
    """Drop every frame from a to b (and b to a unless both=False)."""
    an, bn = _name(a), _name(b)
    _fault_event(f"cut {an} {'<->' if both else '->'} {bn}", _shared_vlans(an, bn, vlan))
    _set_link(an, bn, both=both, drop=True, vlan=vlan)


def restore(a: Any, b: Any, both: bool = True, vlan: int | None = None) -> None:
    """Remove the rule(s) between a and b set by cut() or link()."""
    an, bn = _name(a), _name(b)
    _fault_event(f"restore {an} {'<->' if both else '->'} {bn}", _shared_vlans(an, bn, vlan))
    for nr in _shared_vlans(an, bn, vlan):
        _request("W_CLEAR", f"vlan{nr}", **{"from": an}, to=bn, both=both)


def link(a: Any, b: Any, *, loss: float = 0.0, duplicate: float = 0.0, delay: float = 0.0,
         jitter: float = 0.0, both: bool = True, vlan: int | None = None) -> None:
    """Degrade the link a -> b (and back unless both=False): loss and
    duplicate are probabilities (0..1), delay and jitter seconds."""
    an, bn = _name(a), _name(b)
    _fault_event(
        f"link {an} {'<->' if both else '->'} {bn}: loss={loss} duplicate={duplicate} "
        f"delay={delay}s jitter={jitter}s",
        _shared_vlans(an, bn, vlan),
    )
    _set_link(an, bn, both=both, drop=False, loss=loss, duplicate=duplicate, delay=delay, jitter=jitter, vlan=vlan)


def partition(*groups: Iterable[Any], vlan: int | None = None) -> None:
    """Split the network: no frame passes between machines of different groups
    (both ways). Machines named in no group form one more group, so
    partition(["alpha"]) isolates alpha from everyone."""
    named = [[_name(m) for m in ([g] if isinstance(g, str) or hasattr(g, "name") else g)] for g in groups]
    seen: set[str] = set()
    for g in named:
        for n in g:
            if n in seen:
                raise ValueError(f"vigil: {n} is in more than one partition group")
            seen.add(n)
    rest = [m.name for m in driver().machines if m.name not in seen]
    if rest:
        named.append(rest)
    _fault_event("partition " + " | ".join(", ".join(g) for g in named), [vlan] if vlan is not None else _all_vlans())
    done: list[tuple[str, str]] = []
    try:
        for i, g in enumerate(named):
            for h in named[i + 1 :]:
                for a in g:
                    for b in h:
                        _set_link(a, b, both=True, drop=True, vlan=vlan)
                        done.append((a, b))
    except MachineError as e:
        # all or nothing: never leave a half-split network behind
        for a, b in done:
            for nr in _shared_vlans(a, b, vlan):
                _request("W_CLEAR", f"vlan{nr}", **{"from": a}, to=b, both=True)
        raise MachineError(f"{e} (the partition needs more switch rules; nothing was changed)") from None


def heal(vlan: int | None = None) -> None:
    """Remove every fault rule (on one VLAN, or all)."""
    _fault_event("heal", [vlan] if vlan is not None else _all_vlans())
    for nr in [vlan] if vlan is not None else _all_vlans():
        _request("W_CLEAR", f"vlan{nr}", **{"from": ""}, to="", both=True)


def vlan_stats(nr: int) -> dict[str, Any]:
    """Counters of VLAN nr's switch: {vlan, frames, bytes, ports: [{port,
    machine, rx, tx, dropped}]}."""
    reply = _request("W_STATS", f"vlan{nr}")
    return json.loads(reply.data.decode())


# ------------------------------------------------------------------------- logs


def journal_command(unit: str | None = None, lines: int | None = None, since_boot: bool = True,
                    user: str | None = None) -> str:
    """The guest command vigil.journal() runs (stderr joined to stdout, so
    an error says why)."""
    args = ["journalctl", "--no-pager", "--quiet"]
    if since_boot:
        args.append("--boot")
    if unit is not None and user is None:
        args += ["--unit", unit]
    if lines is not None:
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 0:
            raise ValueError(f"vigil.journal: lines is a count of lines (>= 0), not {lines!r}")
        args += ["--lines", str(lines)]
    cmd = " ".join(shlex.quote(a) for a in args)
    if user is not None:
        # journalctl --user-unit matches the caller's uid (root's): match the user's fields instead
        uid = f"_UID=$(id -u -- {shlex.quote(user)})"
        if unit is None:
            cmd += f" {uid}"
        else:
            u = shlex.quote(unit if "." in unit else unit + ".service")
            cmd += f" {uid} _SYSTEMD_USER_UNIT={u} + {uid} USER_UNIT={u}"
    return cmd + " 2>&1"


def journal(machine: Any, unit: str | None = None, lines: int | None = None, since_boot: bool = True,
            timeout: int = 60, user: str | None = None) -> str:
    """The machine's systemd journal as text (journalctl's short format):
    all of it, or one unit's (`unit`, as `journalctl -u`; with `user`, that
    user's unit of that name, or all of that user's entries),
    the last `lines` lines, this boot only unless since_boot=False. Raises
    MachineError if journalctl fails (e.g. a machine without systemd)."""
    m = _machine(machine)
    cmd = journal_command(unit, lines, since_boot, user)
    status, out = m.execute(cmd, timeout=timeout)
    if status != 0:
        raise MachineError(f"vigil.journal: `{cmd}` failed on {m.name} (exit code {status}): {out.strip()[-400:]}")
    return out


def set_failure_diagnostics(enabled: bool) -> None:
    """Whether a failed or timed-out wait_for_unit / require_unit_state /
    wait_for_open_port appends the machine's diagnostics (its failed units and
    journal lines) to the error. On by default."""
    BaseMachine.failure_diagnostics = bool(enabled)
