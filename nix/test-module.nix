# A NixOS test module (for `runNixOSTest { imports = [ ... ]; }`) that makes
# vigil the driver of one test, in any nixpkgs era. It replaces the test's
# `driver` with a derivation built the way nixpkgs' driver.nix builds its own
# (type check, test-script, generate-driver-symbols, pyflakes, wrapper), but
# pointed at vigil and speaking the environment contract every vigil accepts
# (startScripts, testScript, globalTimeout, vlans). nixpkgs before 2026
# instantiate their driver from an in-tree path, so an overlay cannot swap it
# there; this module can. The `interactive` sub-test is evaluated from the same
# modules, so `driverInteractive` gets vigil too (with its --interactive).
{ config, lib, hostPkgs, ... }:

let
  vigil = hostPkgs.callPackage ./package.nix {
    inherit (config) enableOCR extraPythonPackages;
    qemu_pkg = config.qemu.package;
    doCheck = false;
  };

  nodes = lib.attrValues config.nodes;
  vms = map (m: m.system.build.vm) nodes;
  vlans = lib.unique (lib.concatMap
    (m: m.virtualisation.vlans ++ lib.mapAttrsToList (_: i: i.vlan) (m.virtualisation.interfaces or { }))
    nodes);

  # Node names as the script sees them (web-1 -> web_1, 2db -> _db), plus
  # `machine` for a lone node, as driver.nix declares them.
  names = map (m: m.system.name) nodes;
  allNames = names ++ lib.optional (lib.length names == 1 && !lib.elem "machine" names) "machine";
  pythonize = name:
    let
      ok = c: builtins.match "[A-Za-z0-9_]" c != null;
      head = builtins.substring 0 1 name;
      tail = builtins.substring 1 (-1) name;
    in
    (if builtins.match "[A-Za-z_]" head == null then "_" else head)
    + lib.stringAsChars (c: if ok c then c else "_") tail;
  pyNames = map pythonize allNames;

  # nixpkgs' own typing prelude for this era, plus the names vigil ships for
  # every era (Machine, VLan), so the annotations below resolve either way.
  prepend = hostPkgs.path + "/nixos/lib/test-script-prepend.py";
  typeHints = lib.concatMapStrings (n: "${n}: Machine;\n") pyNames
    + lib.concatMapStrings (v: "vlan${toString v}: VLan;\n") vlans;

  driver = hostPkgs.runCommand "vigil-driver-${config.name}"
    {
      nativeBuildInputs = [ hostPkgs.makeWrapper ] ++ lib.optional (!config.skipTypeCheck) hostPkgs.mypy;
      buildInputs = [ vigil ];
      testScript = config.testScriptString;
      inherit typeHints;
      preferLocalBuild = true;
      passthru = config.passthru // { inherit vigil; };
      meta = config.meta // { mainProgram = "nixos-test-driver"; };
    }
    ''
      mkdir -p $out/bin
      vmStartScripts=($(for i in ${toString vms}; do echo $i/bin/run-*-vm; done))

      ${lib.optionalString (!config.skipTypeCheck) ''
        ${lib.optionalString (builtins.pathExists prepend) ''cat ${prepend} > testScriptWithTypes''}
        echo "from test_driver.machine import Machine" >> testScriptWithTypes
        echo "from test_driver.vlan import VLan" >> testScriptWithTypes
        echo -n "$typeHints" >> testScriptWithTypes
        echo -n "$testScript" >> testScriptWithTypes
        echo "Running type check against vigil's test_driver (skipTypeCheck disables it)"
        mypy --no-implicit-optional --pretty --no-color-output testScriptWithTypes
      ''}

      echo -n "$testScript" > $out/test-script
      ln -s ${vigil}/bin/nixos-test-driver $out/bin/nixos-test-driver
      ${vigil}/bin/generate-driver-symbols
      ${lib.optionalString (!config.skipLint) ''
        PYFLAKES_BUILTINS="$(echo -n ${lib.escapeShellArg (lib.concatStringsSep "," pyNames)},; cat driver-symbols)" \
          ${hostPkgs.python3Packages.pyflakes}/bin/pyflakes $out/test-script
      ''}

      wrapProgram $out/bin/nixos-test-driver \
        --set startScripts "''${vmStartScripts[*]}" \
        --set testScript "$out/test-script" \
        --set globalTimeout "${toString config.globalTimeout}" \
        --set vlans '${toString vlans}' \
        ${lib.escapeShellArgs (lib.concatMap (a: [ "--add-flags" a ]) config.extraDriverArgs)}
    '';
in
{
  driver = lib.mkForce driver;
}
