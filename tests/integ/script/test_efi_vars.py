#!/usr/bin/python3
# Proves machine.create_efi_vars/write_efi_vars/read_efi_vars/dump_efi_vars keep an OVMF variable store the
# way real firmware reads it: an empty store is byte-identical to Debian's OVMF_VARS_4M.fd, and OVMF booted
# on a store we wrote keeps our variable, lets the UEFI shell change it (0x2a -> 0x2b, as nixpkgs' efivars
# test does from Linux) and adds its own, all read back here. Why it matters: nixpkgs' secure-boot and
# efivars tests seed and inspect EFI variables through these methods; a store OVMF rejects is reformatted
# silently and the test would pass or fail for the wrong reason.
import os
import shutil
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_python_api import make_driver, plain  # noqa: E402

from test_driver.efi import EfiGuid, EfiVariable  # noqa: E402
from test_driver.errors import RequestedAssertionFailed  # noqa: E402

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
DEMO = uuid.UUID("a19f72f8-b554-4bd7-a0c2-2762bd854691")
FLAGS = EfiVariable.Flags.NON_VOLATILE | EfiVariable.Flags.BOOTSERVICE_ACCESS | EfiVariable.Flags.RUNTIME_ACCESS


def demo(value: int) -> EfiVariable:
    return EfiVariable(vendor_uuid=DEMO, name="Demo", data=bytes([value]), flags=FLAGS)


def find(variables, name, vendor=DEMO):
    stored = uuid.UUID(bytes=vendor.bytes_le)  # the reference's (ovmfvartool's) GUID convention
    return next((v for v in variables if v.name == name and v.vendorUUID == stored), None)


class TestStore(unittest.TestCase):
    def setUp(self):
        self.d, _, self.out = make_driver()
        self.m = self.d.machines[0]
        self.m.state_dir.mkdir(parents=True, exist_ok=True)

    def test_empty_store_is_ovmfs_template(self):
        if not OVMF_VARS.exists():
            self.skipTest("no OVMF (apt-get install ovmf)")
        self.m.create_efi_vars()
        self.assertEqual(self.m.efi_vars_path, self.m.state_dir / "server-efi-vars.fd")
        self.assertEqual(self.m.efi_vars_path.read_bytes(), OVMF_VARS.read_bytes())
        self.assertEqual(self.m.read_efi_vars(), [])

    def test_write_read_replace(self):
        self.assertEqual(self.m.read_efi_vars(), [])  # no store yet
        self.m.create_efi_vars()
        with self.assertRaisesRegex(RequestedAssertionFailed, "OVMF variables store exists"):
            self.m.create_efi_vars()
        self.m.write_efi_vars([demo(0x2A), EfiVariable(vendor_uuid=EfiGuid.gEfiGlobalVariableGuid, name="Timeout",
                                                      data=b"\x05\x00", flags=FLAGS)])
        self.m.write_efi_vars([demo(0x2C)])
        got = self.m.read_efi_vars()
        self.assertEqual(sorted(v.name for v in got), ["Demo", "Timeout"])
        var = find(got, "Demo")
        self.assertEqual((var.data, var.volatile, var.boot_access, var.runtime_access), (b"\x2c", False, True, True))
        self.m.dump_efi_vars()
        self.assertIn("server: gEfiGlobalVariableGuid Timeout [boot_access, runtime_access] 2 bytes: 0500",
                      plain(self.out))

    def test_refused_while_running_and_when_full(self):
        self.m.create_efi_vars()
        self.m.booted = True
        with self.assertRaisesRegex(RequestedAssertionFailed, "System is currently running"):
            self.m.read_efi_vars()
        self.m.booted = False
        with self.assertRaisesRegex(RequestedAssertionFailed, "OVMF's store holds"):
            self.m.write_efi_vars([EfiVariable(vendor_uuid=DEMO, name=f"V{i}", data=bytes(40000), flags=FLAGS)
                                   for i in range(8)])


class TestFirmware(unittest.TestCase):
    """OVMF itself reads and rewrites a store we wrote (~15 s under TCG)."""

    def test_ovmf_keeps_and_changes_our_variable(self):
        if not OVMF_CODE.exists() or not shutil.which("qemu-system-x86_64"):
            self.skipTest("no OVMF or QEMU")
        d, _, out = make_driver()
        m = d.machines[0]
        m.state_dir.mkdir(parents=True, exist_ok=True)
        m.create_efi_vars()
        m.write_efi_vars([demo(0x2A)])
        qemu = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "q35", "-m", "256", "-nographic", "-nodefaults", "-serial", "stdio",
             "-net", "none", "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
             "-drive", f"if=pflash,format=raw,file={m.efi_vars_path}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
        try:
            os.set_blocking(qemu.stdout.fileno(), False)
            self.assertTrue(self._wait_for(qemu, b"Shell>", 150), "OVMF reached its UEFI shell")
            self._type(qemu, f"setvar Demo -guid {DEMO} -bs -rt -nv =2B\r")
            self.assertTrue(self._wait_for(qemu, b"Shell>", 30), "the shell took setvar")
            self._type(qemu, "reset -s\r")
            self.assertEqual(qemu.wait(60), 0)
        finally:
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
            qemu.stdin.close()
            qemu.stdout.close()
        got = m.read_efi_vars()
        self.assertEqual(find(got, "Demo").data, b"\x2b")
        self.assertIsNotNone(find(got, "BootOrder", EfiGuid.gEfiGlobalVariableGuid), "OVMF added its own variables")

    @staticmethod
    def _wait_for(proc, needle: bytes, seconds: float) -> bool:
        seen = b""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            chunk = proc.stdout.read()
            if chunk:
                seen = (seen + chunk)[-4096:]
                if needle in seen:
                    return True
            time.sleep(0.1)
        return False

    @staticmethod
    def _type(proc, text: str) -> None:
        for ch in text.encode():
            proc.stdin.write(bytes([ch]))
            proc.stdin.flush()
            time.sleep(0.02)  # the shell reads the serial port a key at a time


if __name__ == "__main__":
    unittest.main(verbosity=2)
