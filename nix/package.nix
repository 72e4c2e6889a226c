# vigil as a callPackage-able derivation (meson + ninja), and at the same time a
# drop-in for nixpkgs' `nixos-test-driver`. nixpkgs instantiates its driver with
#   2026+:     hostPkgs.nixos-test-driver.override { enableOCR; extraPythonPackages; qemu_pkg; enableNspawn; }
#   2022-2025: hostPkgs.callPackage ../test-driver { enableOCR; extraPythonPackages; qemu_pkg;
#                                                   imagemagick_light; tesseract4; }
# so every one of those arguments is accepted and honoured here, and `...` takes
# whatever a later nixpkgs adds. What driver.nix needs from the result:
# bin/nixos-test-driver, bin/generate-driver-symbols, and `test_driver` (with
# py.typed) importable by mypy from a build that lists vigil in buildInputs.
{
  lib,
  stdenv,
  meson,
  ninja,
  pkg-config,
  makeBinaryWrapper,
  libevent,
  msgpack-c,
  systemdLibs,
  libcap_ng,
  json_c,
  python3,
  qemu_test,
  coreutils,
  util-linux,
  # optional runtime tools, honoured through the flags below
  systemd ? null,
  imagemagick_light ? null,
  tesseract4 ? null,
  # nixpkgs' test-driver interface
  qemu_pkg ? qemu_test,
  enableOCR ? false,
  enableNspawn ? false,
  extraPythonPackages ? (_: [ ]),
  # vigil's own: run the unit suite in checkPhase
  doCheck ? true,
  ...
}:

let
  extraPython = extraPythonPackages python3.pkgs;
  extraPythonPath = python3.pkgs.makePythonPath extraPython;
  # Tools vigil and its workers start: QEMU (the one the test asked for), and,
  # when asked, systemd-nspawn for containers and tesseract/ImageMagick for OCR.
  runtimePath =
    [ qemu_pkg coreutils util-linux ]
    ++ lib.optional enableNspawn systemd
    ++ lib.optionals enableOCR [ tesseract4 imagemagick_light ];
  pythonSite = "$out/${python3.sitePackages}";
in
assert lib.assertMsg (!enableNspawn || systemd != null) "vigil: enableNspawn needs systemd";
assert lib.assertMsg (!enableOCR || (tesseract4 != null && imagemagick_light != null))
  "vigil: enableOCR needs tesseract4 and imagemagick_light";
stdenv.mkDerivation {
  pname = "vigil";
  version = "0.1.0";
  # Local meson build directories (build, build-test, ...) are not sources.
  src = lib.cleanSourceWith {
    src = lib.cleanSource ./..;
    filter = path: type: !(type == "directory" && lib.hasPrefix "build" (baseNameOf path));
  };

  nativeBuildInputs = [ meson ninja pkg-config makeBinaryWrapper python3 ];
  buildInputs = [ libevent msgpack-c systemdLibs libcap_ng json_c python3 ];

  # test_driver goes into the embedded Python's site-packages (see meson_options.txt).
  mesonFlags = [ "-Dpython_sitedir=${python3.sitePackages}" ];

  # Unit tests need no VM; the VM suites run in nix/checks.nix.
  inherit doCheck;
  checkPhase = ''
    runHook preCheck
    meson test --suite unit --print-errorlogs
    runHook postCheck
  '';

  # A binary wrapper: nix's driver.nix wraps bin/nixos-test-driver once more with
  # a shell wrapper, and a shell script cannot be the interpreter of another.
  # vigil recognises its front door by name (any spelling holding
  # "nixos-test-driver") or by an option in verb position, not by argv[0] exactly.
  postInstall = ''
    wrapProgram $out/bin/vigil \
      --prefix PATH : ${lib.makeBinPath runtimePath} \
      ${lib.optionalString (extraPython != [ ]) "--prefix PYTHONPATH : ${extraPythonPath}"}
    ln -s vigil $out/bin/nixos-test-driver

    # Builds listing vigil in buildInputs (driver.nix's mypy step) import
    # test_driver and the extra Python packages from here.
    mkdir -p $out/nix-support
    echo "addToSearchPath PYTHONPATH ${pythonSite}" > $out/nix-support/setup-hook
    ${lib.optionalString (extraPython != [ ])
      "echo 'addToSearchPath PYTHONPATH ${extraPythonPath}' >> $out/nix-support/setup-hook"}
    test -f ${pythonSite}/test_driver/py.typed
  '';

  passthru = {
    inherit enableOCR enableNspawn qemu_pkg extraPython;
    # The interpreter vigil-script embeds, with the extra packages: what the
    # test script runs in.
    python = python3;
    # What a vigil check needs from the builder that runs it: run.nix asks for
    # nixos-test + kvm; vigil falls back to TCG, so nixos-test alone.
    requiredSystemFeatures = [ "nixos-test" ];
  };

  meta = {
    description = "Supervised, fault-injecting drop-in runtime for NixOS VM tests";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "vigil";
  };
}
