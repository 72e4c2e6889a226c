# overlays.default: vigil, and vigil as nixpkgs' `nixos-test-driver`.
# nixpkgs from 2026 (the JSON --config era) builds every test's driver from
# `hostPkgs.nixos-test-driver.override { enableOCR; extraPythonPackages;
# qemu_pkg; enableNspawn; }`, so with this overlay applied to the package set a
# test runs on vigil unchanged. Older nixpkgs build the driver from an in-tree
# path the overlay cannot reach: use nix/test-module.nix there.
# The Python driver stays reachable as `nixos-test-driver-python`.
final: prev: {
  vigil = final.callPackage ./package.nix { };
  nixos-test-driver = final.vigil.override { doCheck = false; };
  nixos-test-driver-python = prev.nixos-test-driver or null;
}
