# SPDX-License-Identifier: MIT
# A fleet test in the spirit of a decentralised name service.
#
#     vigil run examples/fleet.py --node alpha --node beta --node gamma
#
# Every node runs a tiny name service (busybox httpd + a shell loop): it
# serves the names it claims, and once a second merges the claims of every
# peer it can reach into its own view. A name claimed twice belongs to the
# claimant whose node name sorts first. The script then makes nodes claim,
# stop, come back, split and heal, and asserts what every node sees.
#
# It is an ordinary nixosTest-style script (start_all, subtest, succeed,
# wait_until_succeeds, shutdown/start) plus `vigil.partition`/`vigil.heal`,
# which cut and restore the network in vigil's switch.

import shlex

import vigil

NODES = [alpha, beta, gamma]  # noqa: F821 (one global per --node)
PORT = 8053

# The service: /srv/claims/<name> files are this node's claims;
# /srv/www/claims is what peers fetch; /var/fleet/view is what this node
# believes ("name owner" lines, sorted).
SERVICE = r"""
me=$(hostname)
mkdir -p /srv/claims /srv/www /var/fleet
httpd -p PORT -h /srv/www
while true; do
    for f in /srv/claims/*; do
        [ -e "$f" ] && echo "${f##*/} $me"
    done > /srv/www/claims.tmp
    mv /srv/www/claims.tmp /srv/www/claims
    for peer in $PEERS; do
        # (busybox 1.35's wget crashes with -T: GNU timeout bounds it instead)
        timeout 2 wget -q -O - "http://$peer:PORT/claims" 2>/dev/null || true
    done > /var/fleet/peers.tmp
    sort -k1,1 -k2,2 /srv/www/claims /var/fleet/peers.tmp | awk '!seen[$1]++' > /var/fleet/view.tmp
    mv /var/fleet/view.tmp /var/fleet/view
    sleep 1
done
""".replace("PORT", str(PORT))


def start_service(node):
    peers = " ".join(n.name for n in NODES if n is not node)
    node.succeed(
        # created here, not only by the loop, so a claim right after start never races it
        "mkdir -p /etc/fleet /srv/claims /srv/www /var/fleet",
        f"printf '%s' {shlex.quote(SERVICE)} > /etc/fleet/ns.sh",
        # the loop must not keep the command's stdout (the guest shell) open
        f"PEERS={shlex.quote(peers)} setsid sh /etc/fleet/ns.sh </dev/null >/dev/null 2>&1 &",
    )


def claim(node, *names):
    node.succeed(*(f"touch /srv/claims/{n}" for n in names))


def release(node, name):
    node.succeed(f"rm -f /srv/claims/{name}")


def expect_view(nodes, view):
    """Every node in `nodes` converges to `view` ({name: owner})."""
    text = "\n".join(f"{name} {owner.name}" for name, owner in sorted(view.items()))
    for node in nodes:
        node.wait_until_succeeds(f"test \"$(cat /var/fleet/view 2>/dev/null)\" = {shlex.quote(text)}", timeout=60)


start_all()

with subtest("every node claims its names"):
    for node in NODES:
        start_service(node)
    claim(alpha, "www", "mail")
    claim(beta, "db")
    claim(gamma, "cache", "www")  # taken by alpha, which sorts first
    expect_view(NODES, {"www": alpha, "mail": alpha, "db": beta, "cache": gamma})

with subtest("a stopped node's names vanish"):
    gamma.shutdown()
    expect_view([alpha, beta], {"www": alpha, "mail": alpha, "db": beta})

with subtest("the node comes back and claims again"):
    gamma.start()
    start_service(gamma)
    claim(gamma, "cache", "www")
    expect_view(NODES, {"www": alpha, "mail": alpha, "db": beta, "cache": gamma})

with subtest("a partition splits the views"):
    vigil.partition([alpha], [beta, gamma])
    expect_view([alpha], {"www": alpha, "mail": alpha})
    # without alpha, gamma's claim on www wins on the other side
    expect_view([beta, gamma], {"www": gamma, "db": beta, "cache": gamma})

with subtest("healing reunites them"):
    vigil.heal()
    expect_view(NODES, {"www": alpha, "mail": alpha, "db": beta, "cache": gamma})

with subtest("a released name passes to the next claimant"):
    release(alpha, "www")
    expect_view(NODES, {"www": gamma, "mail": alpha, "db": beta, "cache": gamma})
