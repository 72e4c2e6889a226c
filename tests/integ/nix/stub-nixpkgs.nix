# A stand-in for the parts of nixpkgs vigil's nix files touch, for evaluation
# tests where no nixpkgs checkout exists (Debian's nix-instantiate only).
# Derivations are plain records (name, outPath, the attributes given) so a
# test can read back what a builder would have been asked to do; nothing is
# built. `lib` holds the few library functions the nix files use, written from
# their documented behaviour.
let
  inherit (builtins)
    attrNames concatLists concatStringsSep elem filter foldl' functionArgs genList hashString
    intersectAttrs isFunction isPath listToAttrs map stringLength substring;

  lib = rec {
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: s: if c then s else { };
    concatMap = f: xs: concatLists (map f xs);
    concatMapStrings = f: xs: concatStringsSep "" (map f xs);
    inherit concatStringsSep elem;
    length = builtins.length;
    attrValues = s: map (n: s.${n}) (attrNames s);
    mapAttrsToList = f: s: map (n: f n s.${n}) (attrNames s);
    genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
    unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    stringToCharacters = s: genList (i: substring i 1 s) (stringLength s);
    stringAsChars = f: s: concatStringsSep "" (map f (stringToCharacters s));
    makeSearchPath = sub: ps: concatStringsSep ":" (map (p: "${p}/${sub}") ps);
    makeBinPath = makeSearchPath "bin";
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";
    escapeShellArgs = xs: concatStringsSep " " (map escapeShellArg xs);
    assertMsg = c: msg: if c then true else throw msg;
    cleanSource = src: src;
    cleanSourceWith = { src, filter }: { inherit src filter; };
    hasPrefix = p: s: substring 0 (stringLength p) s == p;
    mkForce = content: { _type = "override"; priority = 50; inherit content; };
    licenses.mit = { spdxId = "MIT"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };

  storePath = name: "/nix/store/${substring 0 32 (hashString "sha256" name)}-${name}";

  # A derivation record; `.override` re-makes it with changed attributes, as
  # nixpkgs' overridable packages allow.
  mkDrv = name: attrs:
    let self = attrs // {
      type = "derivation";
      inherit name;
      outPath = storePath name;
      override = more: mkDrv name (attrs // (if isFunction more then more attrs else more));
    };
    in self;

  pythonPkgs = {
    numpy = mkDrv "python3.13-numpy-2.2" { };
    makePythonPath = ps: lib.makeSearchPath python3.sitePackages ps;
  };
  python3 = mkDrv "python3-3.13.1" { sitePackages = "lib/python3.13/site-packages"; pkgs = pythonPkgs; };

  # callPackage: arguments by name from the package set, then the explicit
  # ones; the result remembers both so `.override` can replace some.
  callPackageWith = set: fn: args:
    let
      f = if isPath fn then import fn else fn;
      result = f (intersectAttrs (functionArgs f) set // args);
    in
    result // {
      override = more: callPackageWith set fn (args // (if isFunction more then more args else more));
    };

  mkDerivation = attrs:
    let drv = mkDrv "${attrs.pname}-${attrs.version}" attrs // (attrs.passthru or { });
    in drv // { overrideAttrs = f: mkDerivation (attrs // f attrs); };

  pkgs = {
    inherit lib python3 mkDrv;
    system = "x86_64-linux";
    path = /nonexistent-nixpkgs;
    callPackage = callPackageWith pkgs;
    stdenv = {
      inherit mkDerivation;
      hostPlatform = { isLinux = true; isx86_64 = true; linux-kernel.target = "bzImage"; };
    };
    runCommand = name: env: buildCommand: mkDrv name (env // { inherit buildCommand; });
    writeShellScript = name: text: mkDrv name { inherit text; };
    mkShell = attrs: mkDrv "shell" attrs;
    python3Packages = pythonPkgs // { pyflakes = mkDrv "pyflakes-3.2" { }; };
    linux = mkDrv "linux-6.12.1" { version = "6.12.1"; modDirVersion = "6.12.1"; kernelFile = "bzImage"; };
    pkgsStatic = {
      busybox = mkDrv "busybox-static-1.36" { };
      bash = mkDrv "bash-static-5.2" { };
      coreutils = mkDrv "coreutils-static-9.5" { };
      util-linuxMinimal = mkDrv "util-linux-minimal-static-2.39" { };
    };
    testers.runNixOSTest = module: {
      inherit module;
      driver = mkDrv "nixos-test-driver-stub" { };
    };
    appendOverlays = overlays:
      let final = foldl' (prev: ov: prev // ov final prev) pkgs overlays;
      in final;
  } // lib.genAttrs [
    "meson" "ninja" "pkg-config" "makeBinaryWrapper" "makeWrapper" "libevent" "msgpack-c"
    "systemdLibs" "libcap_ng" "json_c" "qemu_test" "qemu" "coreutils" "util-linux" "systemd"
    "imagemagick_light" "tesseract4" "clang-tools" "mypy" "valgrind" "gdb" "vde2" "busybox"
    "nixos-test-driver" "zstd"
  ] (n: mkDrv n { });
in
{
  inherit lib pkgs;
  # What a flake's `nixpkgs` input offers to vigil's flake.nix.
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: pkgs // { inherit system; });
  };
}
