#!/usr/bin/env python3
# Proves that two tiny guests on one VLAN reach each other (ping, HTTP with wget) when vigil runs as in a nix build
# sandbox: unprivileged, no network namespace of the host, no KVM. Multi-machine tests are what nix builds run most.
import sys

import sandbox
import sbtest
from runtap import check, done, failed

VIGIL = sbtest.setup(sys.argv[1])

SCRIPT = r'''
start_all()
a.succeed("ping -c1 -W5 b")
b.succeed("ping -c1 -W5 192.168.1.1")
print("CHECK ok ping: a and b ping each other over VLAN 1")
b.succeed("mkdir -p /tmp/www && head -c 1000000 /dev/urandom | base64 -w 0 > /tmp/www/blob && httpd -p 8080 -h /tmp/www")
want = b.succeed("sha256sum /tmp/www/blob").split()[0]
got = a.succeed("timeout 60 wget -q -O - http://b:8080/blob | sha256sum").split()[0]
t.assertEqual(got, want)
print("CHECK ok wget: a fetches 1.3 MB from b's httpd exact")
'''

sb = sandbox.Sandbox()
try:
    p = sbtest.run_vigil(sb, VIGIL, SCRIPT, ["--node", "a", "--node", "b"], timeout=400)
    text = p.stdout + p.stderr
    check(sbtest.checks(text) == 2, "ping and wget both reported")
    check(p.returncode == 0, f"the 2-VM run passes in the sandbox ({sb.describe()}): exit {p.returncode}")
    if failed():
        print(sbtest.tail(text))
finally:
    sb.cleanup()
done()
