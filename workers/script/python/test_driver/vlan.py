# SPDX-License-Identifier: MIT
"""VLan objects (`vlans`, `vlan1`, ...). In vigil the supervisor runs the
switches; the script only sees their number and socket directory."""

from pathlib import Path


class VLan:
    nr: int
    socket_dir: Path
    pid: int | None
    process: None

    def __init__(self, nr: int, socket_dir: str | Path) -> None:
        self.nr = nr
        self.socket_dir = Path(socket_dir)
        # The switch is a vigil worker, not a child of this process.
        self.pid = None
        self.process = None

    def __repr__(self) -> str:
        return f"<Vlan Nr. {self.nr}>"

    def stop(self) -> None:
        """The supervisor owns the switch; stopping it from the script is a no-op
        (the reference calls this only at cleanup)."""
