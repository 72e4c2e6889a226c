# vigil's tiny guest built by nix: pkgs.linux's kernel and modules and
# pkgsStatic's busybox, bash, coreutils and util-linux (its setsid; static, so
# no libraries to copy)
# instead of the host's /boot and /bin, assembled by the same tools/mkguest.
# The result holds kernel, initrd, cmdline and manifest, as mkguest prints;
# `vigil run` uses it through VIGIL_MKGUEST (see nix/checks.nix).
{ lib, stdenv, runCommand, python3, zstd, linux, pkgsStatic }:

runCommand "vigil-tiny-guest-${linux.version}"
  {
    # zstd: nixpkgs' kernels and modules may be zstd-compressed (mkguest unpacks both).
    nativeBuildInputs = [ python3 zstd ];
    VIGIL_GUEST_KERNEL = "${linux}/${stdenv.hostPlatform.linux-kernel.target or "bzImage"}";
    VIGIL_GUEST_MODULES = "${linux}/lib/modules/${linux.modDirVersion}";
    VIGIL_GUEST_BUSYBOX = "${pkgsStatic.busybox}/bin/busybox";
    VIGIL_GUEST_PATH = lib.makeBinPath [ pkgsStatic.bash pkgsStatic.coreutils pkgsStatic.util-linuxMinimal ];
  }
  ''
    dir=$(python3 ${../tools}/mkguest --cache "$TMPDIR/cache")
    mkdir -p $out
    cp "$dir"/kernel "$dir"/initrd "$dir"/cmdline "$dir"/manifest $out/
  ''
