# SPDX-License-Identifier: MIT
# The test script of nix's checks.<system>.vm-smoke: two tiny guests on VLAN 1 boot and reach each
# other inside the build sandbox (no root, no journald, no network, TCG without /dev/kvm). Why it
# matters: a vigil test must run wherever `nix build` runs, not only on a prepared host.
start_all()
with subtest("both machines answer"):
    alpha.succeed("true")
    beta.succeed("true")
with subtest("VLAN 1 connects them"):
    alpha.wait_until_succeeds("ping -c1 -W2 beta", timeout=60)
    beta.succeed("ping -c1 -W2 alpha")
