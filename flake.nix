{
  description = "vigil: a supervised multi-process runtime for NixOS-style multi-machine tests";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: rec {
        vigil = pkgs.callPackage ./nix/package.nix { };
        default = vigil;
      });
      devShells = forAll (pkgs: {
        default = pkgs.callPackage ./nix/shell.nix { vigil = self.packages.${pkgs.system}.vigil; };
      });
      checks = forAll (pkgs: import ./nix/checks.nix {
        inherit pkgs;
        vigil = self.packages.${pkgs.system}.vigil;
      });
    };
}
