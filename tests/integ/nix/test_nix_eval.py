#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Proves vigil's nix files parse and evaluate the way nixpkgs uses them: package.nix with exactly the arguments
# nixpkgs' driver.nix passes (2026 `.override`, 2022-2025 `callPackage ../test-driver`), the overlay, the test
# module, the tiny guest and the flake's outputs, against a stub nixpkgs (stub-nixpkgs.nix). Why it matters: an
# argument the package does not take ("unexpected argument 'enableOCR'") fails every test that swaps its driver.
#
# What this cannot prove without nixpkgs: that real builders accept these derivations and that the checks pass.
# Skips (77) without nix-instantiate (apt-get install nix-bin).

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SRC = Path(os.environ.get("VIGIL_SOURCE_ROOT") or Path(__file__).resolve().parents[3])
STUB = Path(__file__).resolve().parent / "stub-nixpkgs.nix"
STATE = tempfile.mkdtemp(prefix="vigil-nix-state-")
# nix-bin's default configuration names a build-users group this machine does not have; nothing is built here,
# and --eval never writes to the store.
ENV = dict(os.environ, NIX_CONFIG="build-users-group =", NIX_STATE_DIR=STATE, NIX_LOG_DIR=STATE)

PRELUDE = f'''
let
  stub = import {STUB};
  pkgs = stub.pkgs;
  lib = stub.lib;
  src = {SRC};
  names = map (p: p.name or "?");
in
'''


def nix_eval(expr: str) -> object:
    p = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "-E", PRELUDE + expr],
                       capture_output=True, text=True, env=ENV, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"nix-instantiate failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def nix_eval_error(expr: str) -> str:
    p = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "-E", PRELUDE + expr],
                       capture_output=True, text=True, env=ENV, timeout=120)
    if p.returncode == 0:
        raise AssertionError(f"expected an evaluation error, got {p.stdout}")
    return p.stderr


class TestParse(unittest.TestCase):
    def test_every_nix_file_parses(self):
        files = subprocess.run(["git", "ls-files", "*.nix"], cwd=SRC, capture_output=True, text=True).stdout.split()
        files = files or [str(p.relative_to(SRC)) for p in SRC.rglob("*.nix") if "build" not in p.parts[0]]
        self.assertIn("flake.nix", files)
        self.assertIn("nix/package.nix", files)
        for f in files:
            p = subprocess.run(["nix-instantiate", "--parse", str(SRC / f)], capture_output=True, text=True, env=ENV)
            self.assertEqual(p.returncode, 0, f"{f}: {p.stderr}")


class TestSandboxBuild(unittest.TestCase):
    def test_meson_needs_no_debian_paths(self):
        # The nix build has no /usr/bin/python3: every such lookup needs a PATH fallback.
        import re

        for f in subprocess.run(["git", "ls-files", "*meson.build"], cwd=SRC, capture_output=True,
                                text=True).stdout.split():
            text = (SRC / f).read_text()
            self.assertEqual(re.findall(r"find_program\('/usr/bin/[^']+'\)", text), [], f)


class TestPackage(unittest.TestCase):
    def test_2026_driver_nix_override(self):
        # driver.nix (2026): config.pythonTestDriverPackage.override { inherit (config) enableOCR
        # extraPythonPackages; qemu_pkg = config.qemu.package; enableNspawn = config.containers != { }; }
        r = nix_eval('''
          let
            config = { enableOCR = true; extraPythonPackages = ps: [ ps.numpy ]; qemu.package = pkgs.qemu;
                       containers = { box = { }; }; };
            d = (pkgs.callPackage (src + "/nix/package.nix") { }).override {
              inherit (config) enableOCR extraPythonPackages;
              qemu_pkg = config.qemu.package;
              enableNspawn = config.containers != { };
            };
          in { inherit (d) name postInstall mesonFlags; nbi = names d.nativeBuildInputs;
               features = d.passthru.requiredSystemFeatures; main = d.meta.mainProgram;
               qemu = "${pkgs.qemu}"; qemu_test = "${pkgs.qemu_test}"; tess = "${pkgs.tesseract4}";
               magick = "${pkgs.imagemagick_light}"; systemd = "${pkgs.systemd}"; numpy = "${pkgs.python3.pkgs.numpy}"; }
        ''')
        post = r["postInstall"]
        path_line = next(line for line in post.splitlines() if "--prefix PATH" in line)
        self.assertIn(r["qemu"] + "/bin", path_line, "the QEMU the test asked for is on PATH")
        self.assertNotIn(r["qemu_test"], path_line, "not the default one")
        for tool in ("tess", "magick", "systemd"):
            self.assertIn(r[tool] + "/bin", path_line, f"{tool} on PATH (enableOCR / enableNspawn)")
        self.assertIn(f"--prefix PYTHONPATH : {r['numpy']}/lib/python3.13/site-packages", post,
                      "extraPythonPackages importable by the script worker")
        self.assertIn(f"addToSearchPath PYTHONPATH {r['numpy']}", post, "and by driver.nix's mypy step")
        self.assertIn("addToSearchPath PYTHONPATH $out/lib/python3.13/site-packages", post, "test_driver for mypy")
        self.assertIn("test -f $out/lib/python3.13/site-packages/test_driver/py.typed", post)
        self.assertIn("ln -s vigil $out/bin/nixos-test-driver", post)
        self.assertIn("makeBinaryWrapper", r["nbi"], "a binary wrapper, never a shell one")
        self.assertNotIn("makeWrapper", r["nbi"])
        self.assertEqual(r["mesonFlags"], ["-Dpython_sitedir=lib/python3.13/site-packages"])
        self.assertEqual(r["features"], ["nixos-test"])

    def test_defaults_add_nothing_optional(self):
        r = nix_eval('''
          let d = (pkgs.callPackage (src + "/nix/package.nix") { }).override {
                enableOCR = false; extraPythonPackages = ps: [ ]; qemu_pkg = pkgs.qemu_test; enableNspawn = false; };
          in { inherit (d) postInstall; qemu_test = "${pkgs.qemu_test}"; tess = "${pkgs.tesseract4}";
               systemd = "${pkgs.systemd}"; }
        ''')
        self.assertIn(r["qemu_test"] + "/bin", r["postInstall"])
        self.assertNotIn(r["tess"], r["postInstall"])
        self.assertNotIn(r["systemd"], r["postInstall"])
        self.assertNotIn("--prefix PYTHONPATH", r["postInstall"])

    def test_2022_callpackage_arguments(self):
        # driver.nix (2022-2025): hostPkgs.callPackage ../test-driver { inherit (config) enableOCR
        # extraPythonPackages; qemu_pkg = ...; imagemagick_light = ...override; tesseract4 = ...override; }
        r = nix_eval('''
          let d = pkgs.callPackage (src + "/nix/package.nix") {
                enableOCR = true; extraPythonPackages = ps: [ ]; qemu_pkg = pkgs.qemu;
                imagemagick_light = pkgs.imagemagick_light.override { libtiff = null; };
                tesseract4 = pkgs.tesseract4.override { enableLanguages = [ "eng" ]; };
              };
          in { inherit (d) postInstall; tess = "${pkgs.tesseract4.override { enableLanguages = [ "eng" ]; }}"; }
        ''')
        self.assertIn(r["tess"] + "/bin", r["postInstall"], "the tesseract driver.nix passed is the one used")

    def test_build_directories_are_not_sources(self):
        r = nix_eval('''let f = (pkgs.callPackage (src + "/nix/package.nix") { }).src.filter;
                        in map (p: f (toString p.path) p.type) [ { path = /x/build-test; type = "directory"; }
                             { path = /x/tools/build; type = "regular"; } { path = /x/workers; type = "directory"; } ]''')
        self.assertEqual(r, [False, True, True])

    def test_unknown_future_argument_is_accepted(self):
        r = nix_eval('''((pkgs.callPackage (src + "/nix/package.nix") { }).override
                          { enableVsockBackdoor = true; }).name''')
        self.assertEqual(r, "vigil-0.1.0")

    def test_nspawn_without_systemd_is_refused(self):
        err = nix_eval_error('''(pkgs.callPackage (src + "/nix/package.nix") { systemd = null; enableNspawn = true; })
                               .postInstall''')
        self.assertIn("enableNspawn needs systemd", err)


class TestOverlayAndFlake(unittest.TestCase):
    def test_overlay_makes_vigil_the_nixos_test_driver(self):
        r = nix_eval('''
          let
            p = pkgs.appendOverlays [ (import (src + "/nix/overlay.nix")) ];
            drv = p.nixos-test-driver.override { enableOCR = false; extraPythonPackages = ps: [ ];
                                                 qemu_pkg = p.qemu_test; enableNspawn = false; };
          in { name = drv.name; check = drv.doCheck; main = drv.meta.mainProgram;
               python = p.nixos-test-driver-python.name; vigil = p.vigil.name; }
        ''')
        self.assertEqual(r["name"], "vigil-0.1.0")
        self.assertEqual(r["python"], "nixos-test-driver", "the Python driver stays reachable")
        self.assertFalse(r["check"], "the unit suite is not rerun for every test's driver")

    def test_flake_outputs(self):
        r = nix_eval('''
          let
            flake = import (src + "/flake.nix");
            out = flake.outputs { self = out; nixpkgs = stub.nixpkgs; };
            c = out.checks.x86_64-linux;
          in {
            checks = builtins.attrNames c;
            smoke_features = c.vm-smoke.requiredSystemFeatures;
            smoke_cmd = c.vm-smoke.buildCommand;
            smoke_guest = c.vm-smoke.VIGIL_MKGUEST.text;
            swap_driver = c.swap-driver.buildCommand;
            module_imports = builtins.length c.swap-module.module.imports;
            overlay = builtins.isFunction out.overlays.default;
            packages = builtins.attrNames out.packages.x86_64-linux;
            vigilTest = builtins.length (out.lib.vigilTest pkgs { name = "t"; }).module.imports;
          }
        ''')
        for name in ("build", "format", "sanitizers", "vm-smoke", "swap", "swap-module", "swap-driver"):
            self.assertIn(name, r["checks"])
        self.assertEqual(r["smoke_features"], ["nixos-test"], "vm-smoke declares what its builder needs")
        self.assertIn("vigil run /nix/store/", r["smoke_cmd"])
        self.assertIn("--node alpha --node beta", r["smoke_cmd"])
        self.assertIn("--no-pidns", r["smoke_cmd"])
        self.assertRegex(r["smoke_guest"], r"^echo /nix/store/\w+-vigil-tiny-guest-6\.12\.1$")
        self.assertIn(".nixos-test-driver-wrapped", r["swap_driver"])
        self.assertEqual(r["module_imports"], 2)
        self.assertTrue(r["overlay"])
        self.assertEqual(sorted(r["packages"]), ["default", "tiny-guest", "vigil"])
        self.assertEqual(r["vigilTest"], 2)

    def test_tiny_guest_from_nixpkgs_not_boot(self):
        r = nix_eval('''
          let g = pkgs.callPackage (src + "/nix/tiny-guest.nix") { };
          in { inherit (g) VIGIL_GUEST_KERNEL VIGIL_GUEST_MODULES VIGIL_GUEST_BUSYBOX VIGIL_GUEST_PATH buildCommand; }
        ''')
        self.assertRegex(r["VIGIL_GUEST_KERNEL"], r"-linux-6\.12\.1/bzImage$")
        self.assertRegex(r["VIGIL_GUEST_MODULES"], r"-linux-6\.12\.1/lib/modules/6\.12\.1$")
        self.assertRegex(r["VIGIL_GUEST_BUSYBOX"], r"-busybox-static-1\.36/bin/busybox$")
        self.assertIn("-bash-static-5.2/bin", r["VIGIL_GUEST_PATH"])
        self.assertIn("-util-linux-minimal-static-2.39/bin", r["VIGIL_GUEST_PATH"])  # setsid -f
        self.assertIn("/mkguest --cache", r["buildCommand"])
        self.assertNotIn("/boot", json.dumps(r))


class TestModule(unittest.TestCase):
    def test_module_replaces_the_driver(self):
        r = nix_eval('''
          let
            node = name: vlans: {
              system.name = name;
              system.build.vm = pkgs.mkDrv "nixos-vm-${name}" { };
              virtualisation = { inherit vlans; interfaces = { eth9.vlan = 3; }; };
            };
            config = {
              name = "demo"; nodes = { web-1 = node "web-1" [ 1 ]; "2db" = node "2db" [ 1 2 ]; };
              enableOCR = false; extraPythonPackages = ps: [ ]; qemu.package = pkgs.qemu_test;
              skipTypeCheck = false; skipLint = false; globalTimeout = 600;
              testScriptString = "start_all()"; passthru = { }; meta = { };
              extraDriverArgs = [ "--accel=tcg" ];
            };
            m = import (src + "/nix/test-module.nix") { inherit config lib; hostPkgs = pkgs; };
            d = m.driver.content;
          in { prio = m.driver.priority; inherit (d) buildCommand typeHints testScript name;
               nbi = names d.nativeBuildInputs; bi = names d.buildInputs; }
        ''')
        self.assertEqual(r["prio"], 50, "lib.mkForce: it wins over driver.nix's definition")
        cmd = r["buildCommand"]
        self.assertIn("--set vlans '1 2 3'", cmd)
        self.assertIn('--set globalTimeout "600"', cmd)
        self.assertIn("'--add-flags' '--accel=tcg'", cmd)
        self.assertIn("-vigil-0.1.0/bin/generate-driver-symbols", cmd)
        self.assertIn("-vigil-0.1.0/bin/nixos-test-driver $out/bin/nixos-test-driver", cmd)
        self.assertIn("mypy --no-implicit-optional", cmd)
        self.assertIn("PYFLAKES_BUILTINS=\"$(echo -n '_db,web_1',", cmd, "pythonized names, sorted like attrNames")
        self.assertEqual(r["typeHints"], "_db: Machine;\nweb_1: Machine;\nvlan1: VLan;\nvlan2: VLan;\nvlan3: VLan;\n")
        self.assertIn("mypy", r["nbi"])
        self.assertEqual(r["bi"], ["vigil-0.1.0"])


if __name__ == "__main__":
    if not shutil.which("nix-instantiate"):
        print("1..0 # SKIP no nix-instantiate (apt-get install nix-bin)")
        sys.exit(77)
    try:
        unittest.main(verbosity=1)
    finally:
        shutil.rmtree(STATE, ignore_errors=True)
