# SPDX-License-Identifier: MIT
"""vigil's implementation of the nixos-test-driver Python API.

Test scripts written for nixpkgs' driver import from here (`from
test_driver.errors import RequestedAssertionFailed`, `from
test_driver.machine import retry`, ...). The script worker (vigil-script)
embeds CPython, builds a Driver from the supervisor's configuration and runs
the script with Driver.test_symbols() as its globals; see vigil/_runner.py.
"""


def generate_driver_symbols() -> None:
    """Write `driver-symbols` (the general global names, comma-separated) into
    the current directory, for pyflakes in nix builds (reference §5)."""
    from pathlib import Path

    from test_driver.driver import Driver
    from test_driver.logger import CompositeLogger

    import contextlib
    import io

    d = Driver(machines=[], vlans=[], tests="", out_dir=Path(), logger=CompositeLogger([]))
    with contextlib.redirect_stdout(io.StringIO()):
        symbols = d.test_symbols()
    with open("driver-symbols", "w") as fp:
        fp.write(",".join(symbols.keys()))
