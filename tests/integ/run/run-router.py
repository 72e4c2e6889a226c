#!/usr/bin/env python3
# Proves multi-VLAN machines through `vigil run`: a router on VLANs 1 and 2 forwards between a client (VLAN 1)
# and a server (VLAN 2) that share no VLAN, TCP crosses it, and a fault rule on one VLAN only (cut router-server on
# VLAN 2) breaks the path while VLAN 1 stays up. Router topologies are the classic nixpkgs multi-VLAN test.
import json
import os
import subprocess
import sys
import tempfile

from runtap import check, done, failed

VIGIL = sys.argv[1]

# Numbered by sorted name: client 1, router 2, server 3.
SCRIPT = r'''
import vigil
start_all()
client.fail("ping -c1 -W1 192.168.2.3")
print("ISOLATED: client cannot reach VLAN 2 without a route")
router.succeed("echo 1 > /proc/sys/net/ipv4/ip_forward")
t.assertEqual(sorted(router.succeed("ip -4 -o addr show | grep -o '192.168.[12].2/24'").split()),
              ["192.168.1.2/24", "192.168.2.2/24"])
client.succeed("ip route add 192.168.2.0/24 via 192.168.1.2")
server.succeed("ip route add 192.168.1.0/24 via 192.168.2.2")
client.succeed("ping -c1 -W5 192.168.2.3")
server.succeed("mkdir -p /tmp/www && echo via-router > /tmp/www/index.html && httpd -p 8080 -h /tmp/www")
t.assertEqual(client.succeed("timeout 10 wget -q -O - http://192.168.2.3:8080/"), "via-router\n")
print("ROUTED: ping and TCP cross the router")
vigil.cut(router, server, vlan=2)
client.fail("ping -c1 -W2 192.168.2.3")
client.succeed("ping -c1 -W5 192.168.1.2")
print("CUT: VLAN 2 cut, VLAN 1 up")
vigil.restore(router, server, vlan=2)
client.succeed("ping -c1 -W5 192.168.2.3")
print("RESTORED")
'''


with tempfile.TemporaryDirectory(prefix="vigil-run-router-") as d:
    with open(os.path.join(d, "t.py"), "w") as f:
        f.write(SCRIPT)
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump({"nodes": {"client": {"vlans": [1]}, "router": {"vlans": [1, 2]}, "server": {"vlans": [2]}}}, f)
    out = os.path.join(d, "out")
    p = subprocess.run([VIGIL, "run", os.path.join(d, "t.py"), "--spec", os.path.join(d, "spec.json"), "-o", out],
                       capture_output=True, text=True, timeout=400)
    text = p.stdout + p.stderr
    check(p.returncode == 0, f"the router run passes (exit {p.returncode})")
    check("ISOLATED:" in text, "client and server share no VLAN: no path without a route")
    check("ROUTED:" in text, "ping and HTTP cross the router between VLAN 1 and VLAN 2")
    check("CUT:" in text and "RESTORED" in text, "a cut on VLAN 2 alone breaks the path, VLAN 1 stays up, restore heals")
    check(all(os.path.getsize(os.path.join(out, f"vlan{v}.pcap")) > 24 for v in (1, 2)), "one pcap per VLAN")
    if failed():
        print("# output tail:\n# " + text[-3000:].replace("\n", "\n# "))
done()
