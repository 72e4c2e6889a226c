# Flake checks. Cheap ones (build, sanitizers, format) need no machine; the
# others boot machines inside the build sandbox and declare the system
# features a builder must offer (nix schedules them on remote builders or
# Hydra by those features):
#   vm-smoke     two tiny guests under `vigil run` (nixos-test; TCG without /dev/kvm)
#   swap         a runNixOSTest on a package set with overlays.default: vigil is
#                the nixos-test-driver of 2026+ nixpkgs (run.nix: nixos-test + kvm)
#   swap-module  the same test through the test module, the path for older nixpkgs
#   swap-driver  no VM: the swapped test's driver really is vigil
{ pkgs, vigil, pkgsWithOverlay, testModule }:

let
  inherit (pkgs) lib;
  tinyGuest = pkgs.callPackage ./tiny-guest.nix { };

  swapTest = {
    name = "vigil-swap";
    nodes.server = { networking.firewall.allowedTCPPorts = [ 80 ]; services.nginx.enable = true; };
    nodes.client = { };
    testScript = ''
      start_all()
      server.wait_for_unit("nginx.service")
      server.wait_for_open_port(80)
      client.wait_until_succeeds("curl -sf http://server/ >/dev/null")
    '';
  };
  swap = pkgsWithOverlay.testers.runNixOSTest swapTest;
in
{
  build = vigil;

  sanitizers = vigil.overrideAttrs (old: {
    pname = "vigil-sanitizers";
    mesonFlags = (old.mesonFlags or [ ]) ++ [ "-Db_sanitize=address,undefined" "-Db_lundef=false" ];
  });

  format = pkgs.runCommand "vigil-format" { nativeBuildInputs = [ pkgs.clang-tools ]; } ''
    cd ${./..}
    for f in $(find . -name '*.[ch]' -not -path './build*'); do
      clang-format "$f" | cmp -s - "$f" || { echo "needs formatting: $f"; exit 1; }
    done
    touch $out
  '';

  inherit swap;

  swap-module = pkgs.testers.runNixOSTest { imports = [ testModule swapTest ]; };

  swap-driver = pkgs.runCommand "vigil-swap-driver" { } ''
    target=$(readlink -f ${swap.driver}/bin/.nixos-test-driver-wrapped)
    echo "driver runs $target"
    case $target in
      /nix/store/*-vigil-*/bin/vigil) touch $out ;;
      *) echo "the swapped test's driver is not vigil"; exit 1 ;;
    esac
  '';
}
# The tiny guest is an x86-64 guest (vigil's qemu backend defaults to qemu-system-x86_64).
// lib.optionalAttrs pkgs.stdenv.hostPlatform.isx86_64 {
  vm-smoke = pkgs.runCommand "vigil-vm-smoke"
    {
      nativeBuildInputs = [ vigil ];
      requiredSystemFeatures = vigil.passthru.requiredSystemFeatures;
      # `vigil run` asks VIGIL_MKGUEST for the tiny guest; here nix built it.
      VIGIL_MKGUEST = pkgs.writeShellScript "vigil-nix-guest" "echo ${tinyGuest}";
    }
    ''
      export HOME=$TMPDIR
      mkdir -p $out
      vigil run ${../tests/integ/nix/smoke.py} --node alpha --node beta \
        --global-timeout 900 --no-pidns -o $out
    '';
}
