{
  description = "vigil: a supervised multi-process runtime for NixOS-style multi-machine tests";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # vigil as `nixos-test-driver` (nixpkgs 2026+, where tests build their
      # driver from that attribute): docs/nix.md.
      overlays.default = import ./nix/overlay.nix;

      # A test module making vigil the driver of one test in any nixpkgs era:
      # runNixOSTest { imports = [ vigil.nixosModules.vigil-driver ]; ... }.
      nixosModules.vigil-driver = ./nix/test-module.nix;

      # runNixOSTest with vigil as the driver: vigil.lib.vigilTest pkgs { ... }.
      lib.vigilTest = pkgs: test:
        pkgs.testers.runNixOSTest { imports = [ self.nixosModules.vigil-driver test ]; };

      packages = forAll (pkgs: rec {
        vigil = pkgs.callPackage ./nix/package.nix { };
        default = vigil;
      } // pkgs.lib.optionalAttrs pkgs.stdenv.hostPlatform.isx86_64 {
        tiny-guest = pkgs.callPackage ./nix/tiny-guest.nix { };
      });
      devShells = forAll (pkgs: {
        default = pkgs.callPackage ./nix/shell.nix { vigil = self.packages.${pkgs.system}.vigil; };
      });
      checks = forAll (pkgs: import ./nix/checks.nix {
        inherit pkgs;
        vigil = self.packages.${pkgs.system}.vigil;
        pkgsWithOverlay = pkgs.appendOverlays [ self.overlays.default ];
        testModule = self.nixosModules.vigil-driver;
      });
    };
}
