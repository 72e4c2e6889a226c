# SPDX-License-Identifier: MIT
"""`machine.qmp_client`: QMP commands sent through the machine worker, which
owns the QMP socket (MSG_M_QMP carries one JSON command and returns QEMU's
JSON reply line). Errors raise QMPAPIError exactly like the reference."""

import json
from typing import Any, Callable


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


class QMPSession:
    """The part of the reference QMPSession scripts use: send()."""

    def __init__(self, request: Callable[[str], str], unsupported: Callable[[str], Exception]) -> None:
        # request(json_text) -> reply JSON text; unsupported(feature) -> exception
        self._request = request
        self._unsupported = unsupported

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
                continue
            else:
                raise QMPAPIError(msg)
        if result is None:
            raise RuntimeError(f"QMP gave no result for {cmd!r}: {reply_text!r}")
        return result

    def wait_for_event(self, timeout: Any = None) -> dict[str, Any]:
        raise self._unsupported("waiting for QMP events")

    def events(self, timeout: Any = None) -> Any:
        raise self._unsupported("reading QMP events")

    def close(self) -> None:
        pass
