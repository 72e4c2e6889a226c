# SPDX-License-Identifier: MIT
"""How Machine objects reach their machine workers.

A Channel sends one request (a MSG_M_* type named without the MSG_ prefix,
e.g. "M_EXECUTE", plus its body fields by name) and blocks until the final
reply. VigilChannel is the real one: it calls the `_vigil` extension that
vigil-script registers, which frames the request onto the supervisor channel
(fd 3) with the GIL released, so several Python threads can wait at once.
Tests substitute a fake with the same request() signature.
"""

import errno
from typing import Any, NamedTuple


class Reply(NamedTuple):
    kind: str               # "OK", "M_EXEC_RESULT", "M_TEXT_RESULT", "M_STATE_RESULT", ...
    fields: dict[str, Any]  # the final reply's body
    data: bytes             # the MSG_CHUNK payloads that preceded it


class ChannelError(Exception):
    """The worker answered MSG_ERROR {code, message} (code is a negative errno
    or a vigil-specific negative code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def timed_out(self) -> bool:
        return self.code in (-errno.ETIMEDOUT, -errno.ETIME)

    @property
    def unsupported(self) -> bool:
        return self.code in (-errno.EOPNOTSUPP, -errno.ENOTSUP, -errno.ENOSYS)


class ChannelLost(ChannelError):
    """The supervisor channel is gone (EOF or I/O error): nothing more can be
    asked of any machine."""


class Channel:
    def request(self, kind: str, machine: str, **fields: Any) -> Reply:
        raise NotImplementedError

    def add_machine(self, name: str, start_command: str, keep_state: bool) -> None:
        """create_machine(): ask the supervisor for one more machine worker
        (MSG_S_ADD_MACHINE); ChannelError if it refuses."""
        raise ChannelError(-errno.EOPNOTSUPP, "machines cannot be added without a vigil supervisor")

    def event(self, name: str, message: str) -> None:
        """A timeline event for the supervisor (MSG_EVENT); best effort."""

    def journal_subtest(self, name: str, what: str) -> None:
        """Journal a subtest boundary with VIGIL_SUBTEST; best effort."""


class NullChannel(Channel):
    """For code paths without a supervisor (generate_driver_symbols, imports
    from type checkers): every machine operation fails loudly."""

    def request(self, kind: str, machine: str, **fields: Any) -> Reply:
        raise ChannelLost(-errno.ENOTCONN, "not running under vigil: no supervisor channel")


class VigilChannel(Channel):
    def __init__(self) -> None:
        # registered by vigil-script with PyImport_AppendInittab; no stub, hence the
        # ignore (nix type-checks every test script against this package)
        import _vigil  # type: ignore

        self._v = _vigil
        self._types = {name: num for name, num in _vigil.msg_types.items()}
        self._names = {num: name for name, num in self._types.items()}

    def request(self, kind: str, machine: str, **fields: Any) -> Reply:
        try:
            rtype, body, data = self._v.request(self._types[kind], machine, **fields)
        except self._v.ChannelLost as e:
            raise ChannelLost(e.args[0], e.args[1]) from None
        except self._v.RemoteError as e:
            raise ChannelError(e.args[0], e.args[1]) from None
        except ValueError as e:
            # a field beyond the protocol's caps (e.g. a command over 64 KiB)
            raise ChannelError(-errno.E2BIG, str(e)) from None
        return Reply(self._names.get(rtype, str(rtype)), body, data)

    def add_machine(self, name: str, start_command: str, keep_state: bool) -> None:
        self.request("S_ADD_MACHINE", name, start_command=start_command, keep_state=bool(keep_state))

    def event(self, name: str, message: str) -> None:
        try:
            self._v.event(name, message)
        except Exception:
            pass

    def journal_subtest(self, name: str, what: str) -> None:
        try:
            self._v.journal_subtest(name, what)
        except Exception:
            pass
