# SPDX-License-Identifier: MIT
"""OVMF's UEFI variable store (the `<name>-efi-vars.fd` a NixOS VM with
useEFIBoot keeps in its state directory), read and written from the host
while the machine is stopped: the reference's `test_driver.efi` API
(EfiVariable, EfiVars, EfiGuid) behind machine.create_efi_vars(),
write_efi_vars(), read_efi_vars() and dump_efi_vars().

The reference builds on ovmfvartool, which Debian does not package; this is
a clean-room reading of EDK2's published layout: a firmware volume header
(`_FVH`), an authenticated variable store header, then 4-byte aligned
variables (StartId 0x55AA, state, attributes, counters, an EFI_TIME, name
and data sizes, vendor GUID, UTF-16 name, data), the free space 0xFF, and
the fault-tolerant-write working block at 0x41000 in a 0x84000-byte image
(the size of Debian's and nixpkgs' OVMF_VARS_4M.fd).

GUIDs follow ovmfvartool's convention, which scripts rely on: a variable's
`vendorUUID` is uuid.UUID(bytes=<the 16 bytes on disk>), so a canonical
GUID g is stored as g.bytes_le and compares as uuid.UUID(bytes=g.bytes_le).
"""

import io
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from test_driver.errors import RequestedAssertionFailed

# The image: main store + FTW working block + spare, as OVMF_VARS_4M.fd.
_NV_FTW_SIZE = 0x42000
_NV_FTW_MAIN_PLUS_SPARE_SIZE = _NV_FTW_SIZE * 2
_NV_FTW_WORKING_OFFSET = 0x41000
_NV_STORE_END = 0x40000  # variables live below this offset
_BLOCK_SIZE = 0x1000

_FV_HEADER_LEN = 0x48
_FV_ATTRIBUTES = 0x0004FEFF
_VS_HEADER_LEN = 28
_VS_FORMATTED = 0x5A
_VS_HEALTHY = 0xFE
_VAR_START_ID = 0x55AA
# StartId, State, reserved, Attributes, MonotonicCount, EFI_TIME, PubKeyIndex, NameSize, DataSize, VendorGuid
_VAR_HEADER = struct.Struct("<HBBIQ16sIII16s")


class EfiGuid:
    """Well-known EDK2 GUIDs (canonical uuid.UUID values)."""

    gEdkiiVarErrorFlagGuid = uuid.UUID("04b37fe8-f6ae-480b-bdd5-37d98c5e89aa")
    gEfiAuthenticatedVariableGuid = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
    gEfiCertDbGuid = uuid.UUID("d9bee56e-75dc-49d9-b4d7-b534210f637a")
    gEfiCustomModeEnableGuid = uuid.UUID("c076ec0c-7028-4399-a072-71ee5c448b9f")
    gEfiGlobalVariableGuid = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
    gEfiImageSecurityDatabaseGuid = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
    gEfiIp4Config2ProtocolGuid = uuid.UUID("5b446ed1-e30b-4faa-871a-3654eca36080")
    gEfiIScsiInitiatorNameProtocolGuid = uuid.UUID("59324945-ec44-4c0d-b1cd-9db139df070c")
    gEfiMemoryTypeInformationGuid = uuid.UUID("4c19049f-4137-4dd3-9c10-8b97a83ffdfa")
    gEfiSecureBootEnableDisableGuid = uuid.UUID("f0a30bc7-af08-4556-99c4-001009c93a44")
    gEfiSystemNvDataFvGuid = uuid.UUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
    gEfiVendorKeysNvGuid = uuid.UUID("9073e4e0-60ec-4b6e-9903-4c223c260f3c")
    gIScsiConfigGuid = uuid.UUID("4b47d616-a8d6-4552-9d44-ccad2e0f4cf9")
    gMicrosoftVendorGuid = uuid.UUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
    gMtcVendorGuid = uuid.UUID("eb704011-1402-11d3-8e77-00a0c969723b")
    gEdkiiWorkingBlockSignatureGuid = uuid.UUID("9e58292b-7c68-497d-a0ce-6500fd9f1b95")
    mBmHardDriveBootVariableGuid = uuid.UUID("fab7e9e1-39dd-4f2b-8408-e20e906cb6de")


def resolve_uuid(stored: uuid.UUID) -> str:
    """The name of a stored vendor GUID (ovmfvartool's resolveUUID), else its text."""
    canonical = uuid.UUID(bytes_le=stored.bytes)
    for name, value in vars(EfiGuid).items():
        if isinstance(value, uuid.UUID) and value == canonical:
            return name
    return str(canonical)


class EfiVariable:
    """One variable of the store, as the reference's EfiVariable."""

    class Flags:
        NON_VOLATILE = 0x1
        BOOTSERVICE_ACCESS = 0x2
        RUNTIME_ACCESS = 0x4
        TIME_BASED_AUTHENTICATED_WRITE_ACCESS = 0x20

    class State:
        VAR_HEADER_VALID_ONLY = 0x7F
        VAR_ADDED = 0x3F

    # the attribute bits, split out of `flags` when read (as the reference)
    _BITS = (
        ("volatile", 0x1, True),
        ("boot_access", 0x2, False),
        ("runtime_access", 0x4, False),
        ("hardware_error_record", 0x8, False),
        ("authenticated_write_access", 0x10, False),
        ("time_based_authenticated_write_access", 0x20, False),
        ("append_write", 0x40, False),
    )

    volatile = False
    boot_access = False
    runtime_access = False
    hardware_error_record = False
    authenticated_write_access = False
    time_based_authenticated_write_access = False
    append_write = False

    def __init__(
        self,
        vendor_uuid: uuid.UUID | None = None,
        name: str | None = None,
        data: bytes | None = None,
        state: int | None = None,
        flags: int | None = None,
    ) -> None:
        self.magic = _VAR_START_ID
        self.reserved1 = 0
        self.monotonicCount = 0
        self.timestamp = bytes(16)
        self.pubKeyIdx = 0
        # The reference's arithmetic, kept: the default is VAR_ADDED (0x3F).
        self.state = state ^ 0xFF if state is not None else (0x40 | 0x80) ^ 0xFF
        self.flags = flags if flags is not None else 0
        self.vendorUUID = uuid.UUID(bytes=vendor_uuid.bytes_le) if vendor_uuid is not None else uuid.UUID(int=0)
        self.name = name if name is not None else ""
        self.nameLen = len(self.name) * 2 + 2
        self.data = data if data is not None else b""
        self.dataLen = len(self.data)

    # ---- reading and writing

    @property
    def attributes(self) -> int:
        value = self.flags
        for attr, bit, inverted in self._BITS:
            if getattr(self, attr) != inverted:
                value |= bit
        return value

    def _read_flags(self) -> None:
        for attr, bit, inverted in self._BITS:
            setattr(self, attr, bool(self.flags & bit) != inverted)
        self.flags &= ~0x7F

    @property
    def isDeleted(self) -> bool:  # noqa: N802 (the reference's name)
        # EDK2: a live variable is VAR_ADDED, possibly mid-deletion (0x3E)
        return self.state not in (0x3F, 0x3E)

    def serialize(self) -> bytes:
        name = self.name.encode("utf-16-le") + b"\0\0"
        header = _VAR_HEADER.pack(
            _VAR_START_ID, self.state & 0xFF, self.reserved1, self.attributes, self.monotonicCount,
            self.timestamp, self.pubKeyIdx, len(name), len(self.data), self.vendorUUID.bytes,
        )  # fmt: skip
        return header + name + self.data

    @classmethod
    def deserialize(cls, f: IO[bytes]) -> "EfiVariable | None":
        """The variable at f's position (skipping alignment), or None at the end of the list."""
        pos = f.tell()
        f.seek((pos + 3) & ~3)
        raw = f.read(_VAR_HEADER.size)
        if len(raw) < _VAR_HEADER.size:
            return None
        (start, state, reserved, attrs, count, stamp, key, name_len, data_len, guid) = _VAR_HEADER.unpack(raw)
        if start != _VAR_START_ID:
            return None
        if name_len > _NV_STORE_END or data_len > _NV_STORE_END:
            raise ValueError(f"EFI variable at {pos:#x}: implausible sizes (name {name_len}, data {data_len})")
        var = cls()
        var.state, var.reserved1, var.flags, var.monotonicCount = state, reserved, attrs, count
        var.timestamp, var.pubKeyIdx = stamp, key
        var.vendorUUID = uuid.UUID(bytes=guid)
        name = f.read(name_len)
        var.name = name.decode("utf-16-le", errors="replace").rstrip("\0")
        var.nameLen = name_len
        var.data = f.read(data_len)
        var.dataLen = data_len
        var._read_flags()
        return var

    def describe(self) -> str:
        what = [n for n, _b, _i in self._BITS if getattr(self, n)]
        data = self.data[:32].hex() + ("..." if len(self.data) > 32 else "")
        return f"{resolve_uuid(self.vendorUUID)} {self.name} [{', '.join(what) or 'no attributes'}] {len(self.data)} bytes: {data}"

    def print(self) -> None:
        print(self.describe())

    def __repr__(self) -> str:
        return f"<EfiVariable {self.describe()}>"


def _fv_header() -> bytes:
    body = bytearray(
        bytes(16) + EfiGuid.gEfiSystemNvDataFvGuid.bytes_le
        + struct.pack("<Q4sIHHHBB", _NV_FTW_MAIN_PLUS_SPARE_SIZE, b"_FVH", _FV_ATTRIBUTES, _FV_HEADER_LEN, 0, 0, 0, 2)
        + struct.pack("<IIII", _NV_FTW_MAIN_PLUS_SPARE_SIZE // _BLOCK_SIZE, _BLOCK_SIZE, 0, 0)
    )  # fmt: skip
    checksum = (-sum(struct.unpack(f"<{len(body) // 2}H", body))) & 0xFFFF
    struct.pack_into("<H", body, 0x32, checksum)
    return bytes(body)


def _vs_header() -> bytes:
    size = _NV_STORE_END - _FV_HEADER_LEN
    return EfiGuid.gEfiAuthenticatedVariableGuid.bytes_le + struct.pack("<IBBHI", size, _VS_FORMATTED, _VS_HEALTHY, 0, 0)


def _ftw_working_header() -> bytes:
    """EDK2's fault-tolerant-write working block header, empty: signature,
    CRC32 (computed, as EDK2 does, with the CRC field all ones and the state
    byte erased), WorkingBlockValid (0xFE), WriteQueueSize (block - header)."""
    sig = EfiGuid.gEdkiiWorkingBlockSignatureGuid.bytes_le
    queue = _BLOCK_SIZE - 0x20
    crc = zlib.crc32(sig + struct.pack("<IB3sQ", 0xFFFFFFFF, 0xFF, b"\xff" * 3, queue))
    return sig + struct.pack("<IB3sQ", crc, 0xFE, b"\xff" * 3, queue)


class EfiVars:
    """A container around the OVMF variable store of one machine."""

    def __init__(self, state_path: Path, machine: Any):
        self.state_path = Path(state_path)
        self.machine = machine

    def _assert_stopped(self) -> None:
        if self.machine.booted:
            raise RequestedAssertionFailed(
                "System is currently running and concurrent reads / writes to the OVMF variables is unsupported"
            )

    def read_content(self) -> dict[str, dict[str, EfiVariable]] | None:
        """{vendor: {name: variable}} of the live variables; None without a store."""
        self._assert_stopped()
        try:
            image = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        if image[0x28:0x2C] != b"_FVH":
            raise RequestedAssertionFailed(f"{self.state_path} is not an OVMF variable store (no _FVH signature)")
        f = io.BytesIO(image[:_NV_STORE_END])
        header_len = struct.unpack_from("<H", image, 0x30)[0]
        f.seek(header_len + _VS_HEADER_LEN)
        variables: dict[str, dict[str, EfiVariable]] = {}
        while True:
            v = EfiVariable.deserialize(f)
            if v is None:
                break
            if v.isDeleted:
                continue
            variables.setdefault(resolve_uuid(v.vendorUUID), {})[v.name] = v
        return variables

    @contextmanager
    def _write_store(self) -> Iterator[IO[bytes]]:
        fm = io.BytesIO(b"\xff" * _NV_FTW_MAIN_PLUS_SPARE_SIZE)
        fm.write(_fv_header())
        fm.write(_vs_header())
        yield fm
        if fm.tell() > _NV_STORE_END:
            raise RequestedAssertionFailed(
                f"the EFI variables need {fm.tell()} bytes; OVMF's store holds {_NV_STORE_END}"
            )
        fm.seek(_NV_FTW_WORKING_OFFSET)
        fm.write(_ftw_working_header())
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_bytes(fm.getvalue())
        os.replace(tmp, self.state_path)

    def create_empty(self) -> None:
        self._assert_stopped()
        if self.state_path.exists():
            raise RequestedAssertionFailed("OVMF variables store exists")
        with self._write_store():
            pass

    def write(self, add: list[EfiVariable]) -> None:
        """Rewrite the store with its live variables plus `add` (same vendor
        and name: `add` wins)."""
        self._assert_stopped()
        variables = self.read_content() or {}
        for var in add:
            variables.setdefault(resolve_uuid(var.vendorUUID), {})[var.name] = var
        with self._write_store() as fm:
            for vendor in variables.values():
                for v in vendor.values():
                    fm.write(v.serialize())
                    if fm.tell() % 4:
                        fm.write(b"\xff" * (4 - fm.tell() % 4))
