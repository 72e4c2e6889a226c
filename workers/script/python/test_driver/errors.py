# SPDX-License-Identifier: MIT
"""Exception classes a test script sees, with the reference driver's names.

The top-level handler in driver.py treats them differently: a
RequestedAssertionFailed (any TestScriptError) prints only the script's own
stack frames after a `!!!` prefix, a MachineError prints the whole traceback,
anything else is an ordinary Python traceback.
"""


class TestScriptError(Exception):
    """The test script failed (base class; reported with a filtered traceback)."""

    __test__ = False  # not a pytest test class despite the name


class RequestedAssertionFailed(TestScriptError, AssertionError):
    """A requested assertion failed: succeed/fail, wait_* timeouts, unit
    states, t.assert*(). An AssertionError too, as in the reference, so a
    script's `except AssertionError` (or unittest's machinery) catches it."""


class MachineError(Exception):
    """Something went wrong on the driver side (a machine could not start,
    an operation this backend cannot do, a lost worker) rather than in what
    the test asserted."""
