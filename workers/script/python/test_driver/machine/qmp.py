# SPDX-License-Identifier: MIT
"""`machine.qmp_client`: QMP commands sent through the machine worker, which
owns the QMP socket (MSG_M_QMP carries one JSON command and returns QEMU's
JSON reply line; an empty command asks for the events queued since the last
such request). Errors raise QMPAPIError exactly like the reference; events
land in `pending_events` as they do there."""

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from queue import Empty, Queue
from typing import Any

# How often wait_for_event() asks the worker for new events.
POLL_SECONDS = 0.1


class QMPAPIError(RuntimeError):
    def __init__(self, message: dict[str, Any]):
        assert "error" in message, "Not an error message!"
        error = message["error"]
        try:
            self.class_name = error["class"]
            self.description = error["desc"]
            # QEMU omits "id" when the error happened before it read it.
            self.transaction_id = message.get("id")
        except KeyError:
            raise RuntimeError("Malformed QMP API error response")

    def __str__(self) -> str:
        return (
            f"<QMP API error related to transaction {self.transaction_id} "
            f"[{self.class_name}]: {self.description}>"
        )


def _seconds(timeout: Any) -> float:
    # the reference takes a timedelta here; plain seconds are accepted too
    return timeout.total_seconds() if isinstance(timeout, dt.timedelta) else float(timeout)


class QMPSession:
    """The reference QMPSession's script-facing part: send(), pending_events,
    wait_for_event(), events()."""

    def __init__(
        self, request: Callable[[str], str], poll_events: Callable[[], list[dict[str, Any]]]
    ) -> None:
        # request(json_text) -> reply JSON text; poll_events() -> new events
        self._request = request
        self._poll_events = poll_events
        self.pending_events: Queue[dict[str, Any]] = Queue()

    def send(self, cmd: str, args: dict[str, Any] = {}) -> dict[str, Any]:
        data: dict[str, Any] = {"execute": cmd}
        if args != {}:
            data["arguments"] = args
        reply_text = self._request(json.dumps(data))
        result: dict[str, Any] | None = None
        # The worker may hand back events that arrived before the reply, one per line.
        for line in reply_text.splitlines():
            if not line.strip():
                continue
            msg = json.loads(line)
            if "return" in msg or "QMP" in msg:
                result = msg
            elif "event" in msg:
                self.pending_events.put(msg)
            else:
                raise QMPAPIError(msg)
        if result is None:
            raise RuntimeError(f"QMP gave no result for {cmd!r}: {reply_text!r}")
        return result

    def read_pending_messages(self) -> None:
        for evt in self._poll_events():
            self.pending_events.put(evt)

    def wait_for_event(self, timeout: dt.timedelta | float = dt.timedelta(seconds=10)) -> dict[str, Any]:
        """The next event; queue.Empty when none came within `timeout`."""
        deadline = time.monotonic() + _seconds(timeout)
        while self.pending_events.empty():
            self.read_pending_messages()
            if not self.pending_events.empty():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise Empty
            time.sleep(min(POLL_SECONDS, left))
        return self.pending_events.get_nowait()

    def events(self, timeout: dt.timedelta | float = dt.timedelta(seconds=10)) -> Iterator[dict[str, Any]]:
        """The events received so far (without waiting for new ones)."""
        self.read_pending_messages()
        while not self.pending_events.empty():
            yield self.pending_events.get_nowait()

    def close(self) -> None:
        pass
