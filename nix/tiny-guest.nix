# vigil's tiny guest built by nix: pkgs.linux's kernel and modules and
# pkgsStatic's busybox, bash and coreutils (static, so no libraries to copy)
# instead of the host's /boot and /bin, assembled by the same tools/mkguest.
# The result holds kernel, initrd, cmdline and manifest, as mkguest prints;
# `vigil run` uses it through VIGIL_MKGUEST (see nix/checks.nix).
{ lib, runCommand, python3, linux, pkgsStatic }:

runCommand "vigil-tiny-guest-${linux.version}"
  {
    nativeBuildInputs = [ python3 ];
    VIGIL_GUEST_KERNEL = "${linux}/${linux.kernelFile or "bzImage"}";
    VIGIL_GUEST_MODULES = "${linux}/lib/modules/${linux.modDirVersion}";
    VIGIL_GUEST_BUSYBOX = "${pkgsStatic.busybox}/bin/busybox";
    VIGIL_GUEST_PATH = lib.makeBinPath [ pkgsStatic.bash pkgsStatic.coreutils ];
  }
  ''
    dir=$(python3 ${../tools}/mkguest --cache "$TMPDIR/cache")
    mkdir -p $out
    cp "$dir"/kernel "$dir"/initrd "$dir"/cmdline "$dir"/manifest $out/
  ''
