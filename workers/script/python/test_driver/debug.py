# SPDX-License-Identifier: MIT
"""The `debug` global. The reference's remote-pdb hook (--debug-hook-attach)
is for nix sandboxes; vigil keeps the no-op object so scripts calling
`debug.breakpoint()` run unchanged."""


class DebugAbstract:
    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        raise NotImplementedError


class DebugNop(DebugAbstract):
    def breakpoint(self, host: str = "127.0.0.1", port: int = 4444) -> None:
        pass
