# SPDX-License-Identifier: MIT
"""The running driver and the switch requests that network faults are made of:
what `vigil.cut/link/partition` (above) and `Machine.block()/unblock()` (beside)
both need. It sits below both, so neither imports the other for it. The
driver is bound by vigil._runner before the script runs."""

from collections.abc import Iterable
from typing import Any

from test_driver.channel import ChannelError, ChannelLost
from test_driver.errors import MachineError

_driver: Any = None


def bind(driver: Any) -> None:
    global _driver
    _driver = driver


def driver() -> Any:
    """The running Driver."""
    if _driver is None:
        raise MachineError("vigil: not running under vigil-script (no driver)")
    return _driver


def _request(kind: str, switch: str, **fields: Any) -> Any:
    try:
        return driver().channel.request(kind, switch, **fields)
    except ChannelLost as e:
        raise MachineError(f"vigil: lost the vigil supervisor ({e.message})") from None
    except ChannelError as e:
        raise MachineError(f"vigil: {switch}: {e.message}") from None


def _fault_event(text: str, vlans: Iterable[int], log: bool = True) -> None:
    """A network fault for the run's timeline: "1,2: partition a | b" (the
    VLANs it touches, then what happened), one lane per VLAN in report.html."""
    if log:
        driver().logger.log(f"vigil: {text}")
    driver().channel.event("net-fault", ",".join(str(v) for v in sorted(set(vlans))) + ": " + text)


def _all_vlans() -> list[int]:
    return [v.nr for v in driver().vlans]


def _vlans_of(name: str) -> set[int]:
    nrs = driver().machine_vlans.get(name)
    return set(_all_vlans()) if nrs is None else set(nrs)


def _shared_vlans(a: str, b: str, vlan: int | None) -> list[int]:
    if vlan is not None:
        if vlan not in _all_vlans():
            raise MachineError(f"vigil: this run has no VLAN {vlan} (have: {_all_vlans()})")
        return [vlan]
    return sorted(_vlans_of(a) & _vlans_of(b))


def _set_link(a: str, b: str, *, both: bool, drop: bool, loss: float = 0.0, duplicate: float = 0.0,
              delay: float = 0.0, jitter: float = 0.0, vlan: int | None = None) -> None:
    for p, what in ((loss, "loss"), (duplicate, "duplicate")):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"vigil: {what} is a probability between 0 and 1, not {p}")
    for s, what in ((delay, "delay"), (jitter, "jitter")):
        if s < 0:
            raise ValueError(f"vigil: {what} is in seconds and cannot be negative ({s})")
    for nr in _shared_vlans(a, b, vlan):
        _request(
            "W_SET_LINK",
            f"vlan{nr}",
            **{"from": a},
            to=b,
            both=both,
            drop=drop,
            loss_ppm=int(round(loss * 1_000_000)),
            dup_ppm=int(round(duplicate * 1_000_000)),
            delay_us=int(round(delay * 1_000_000)),
            jitter_us=int(round(jitter * 1_000_000)),
        )


def _block_event(machine: str, blocked: bool) -> None:
    """block()/unblock() act on a machine's first VLAN: the timeline says so (the log does not: the reference's
    block() is silent). Best effort: a Machine may live without a driver."""
    if _driver is None:
        return
    nrs = driver().machine_vlans.get(machine) or _all_vlans()
    if nrs:
        _fault_event(f"{'block' if blocked else 'unblock'} {machine}", nrs[:1], log=False)


def _isolate(machine: str, isolated: bool) -> None:
    """A container's block()/unblock(): the reference unplugs the first VLAN NIC of a VM; for a
    container the switch drops every frame between it and each other machine on its first VLAN,
    from outside the guest as for QEMU (its own link stays up)."""
    nrs = driver().machine_vlans.get(machine) or []
    if not nrs:
        raise MachineError(f"vigil: {machine} is on no VLAN: nothing to block")
    first = nrs[0]
    for other in sorted(driver().machine_vlans):
        if other == machine or first not in _vlans_of(other):
            continue
        if isolated:
            _set_link(machine, other, both=True, drop=True, vlan=first)
        else:
            _request("W_CLEAR", f"vlan{first}", **{"from": machine}, to=other, both=True)
