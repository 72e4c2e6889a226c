# vigil as a callPackage-able derivation (meson + ninja).
{ lib, stdenv, meson, ninja, pkg-config, libevent, msgpack-c, systemdLibs, libcap_ng, json_c, python3
, makeWrapper, qemu_test, vde2 }:

stdenv.mkDerivation {
  pname = "vigil";
  version = "0.1.0";
  src = lib.cleanSource ./..;

  nativeBuildInputs = [ meson ninja pkg-config makeWrapper ];
  buildInputs = [ libevent msgpack-c systemdLibs libcap_ng json_c python3 ];

  # Unit tests need no VM; the VM suites run in nix/checks.nix.
  doCheck = true;
  checkPhase = "meson test --suite unit --print-errorlogs";

  postInstall = ''
    wrapProgram $out/bin/vigil --prefix PATH : ${lib.makeBinPath [ qemu_test vde2 ]}
    ln -s vigil $out/bin/nixos-test-driver
  '';

  meta = {
    description = "Supervised, fault-injecting drop-in runtime for NixOS VM tests";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "vigil";
  };
}
