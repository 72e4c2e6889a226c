# SPDX-License-Identifier: MIT
"""Polling conditions: a check that must keep holding while a block of the
script runs. Every execute()/send_monitor_command() of a driver-owned
machine first calls maybe_raise() on each active condition (reference §1.4).
"""

import threading
import time
from collections.abc import Callable
from math import isfinite

from test_driver.logger import AbstractLogger


class PollingConditionError(Exception):
    pass


class PollingCondition:
    condition: Callable[[], bool | None]
    seconds_interval: float
    description: str | None
    logger: AbstractLogger

    last_called: float
    entry_count: int

    def __init__(
        self,
        condition: Callable[[], bool | None],
        logger: AbstractLogger,
        seconds_interval: float = 2.0,
        description: str | None = None,
    ):
        self.condition = condition
        self.seconds_interval = seconds_interval
        self.logger = logger
        if description is not None:
            self.description = str(description)
        elif condition.__doc__:
            self.description = condition.__doc__
        else:
            self.description = getattr(condition, "__name__", repr(condition))
        self.last_called = float("-inf")
        self.entry_count = 0
        self._lock = threading.RLock()

    @property
    def overdue(self) -> bool:
        return self.last_called + self.seconds_interval < time.monotonic()

    @property
    def entered(self) -> bool:
        assert self.entry_count >= 0
        return self.entry_count > 0

    @property
    def nested_message(self) -> str:
        parts = ["Checking polling condition"]
        if self.description is not None:
            parts.append(repr(self.description))
        return " ".join(parts)

    def status_message(self, status: bool) -> str:
        word = "succeeded" if status else "failed"
        return f"Polling condition {word}: {self.description}"

    def __enter__(self) -> None:
        self.entry_count += 1

    def __exit__(self, exc_type, exc_value, tb) -> None:  # type: ignore[no-untyped-def]
        assert self.entered
        self.entry_count -= 1
        self.last_called = time.monotonic()

    def check(self, force: bool = False) -> bool:
        # The condition usually calls machine.succeed(), which calls back into
        # check(): while it is being evaluated it counts as holding.
        if (self.entered or not self.overdue) and not force:
            return True
        with self, self.logger.nested(self.nested_message):
            since = time.monotonic() - self.last_called
            if isfinite(since):
                self.logger.info(f"Time since last: {since:.2f}s")
            else:
                self.logger.info("(not called yet)")
            try:
                res = self.condition()
            except Exception:
                res = False
            ok = res is None or bool(res)
            self.logger.info(self.status_message(ok))
            return ok

    def maybe_raise(self) -> None:
        if not self.check():
            raise PollingConditionError(self.status_message(False))
