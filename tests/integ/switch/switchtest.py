"""What the switch tests share: finding the vigil-switch processes of one run on the host."""
import os


def switch_pids(marker: bytes) -> list[int]:
    """Pids of vigil-switch processes whose environment contains @marker (e.g. the run's directory)."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"vigil-switch") and marker in env:
            pids.append(int(p))
    return pids
