# Flake checks: formatting, the unit suite under sanitizers.
# The VM suites need QEMU and run through tools/test outside the sandbox for now.
{ pkgs, vigil }:

{
  build = vigil;

  sanitizers = vigil.overrideAttrs (old: {
    pname = "vigil-sanitizers";
    mesonFlags = (old.mesonFlags or [ ]) ++ [ "-Db_sanitize=address,undefined" "-Db_lundef=false" ];
  });

  format = pkgs.runCommand "vigil-format" { nativeBuildInputs = [ pkgs.clang-tools pkgs.git ]; } ''
    cd ${./..}
    for f in $(find . -name '*.[ch]' -not -path './build*'); do
      clang-format "$f" | cmp -s - "$f" || { echo "needs formatting: $f"; exit 1; }
    done
    touch $out
  '';
}
