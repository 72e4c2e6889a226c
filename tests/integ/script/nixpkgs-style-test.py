# A testScript written for nixpkgs' driver, using only the reference API: it must run unchanged.
# (vm_compat.py runs it through both nix->driver contracts: environment variables and --config.)
from test_driver.errors import RequestedAssertionFailed

start_all()

server.succeed("mkdir -p /srv && echo 'hello from server' > /srv/index.html")
server.succeed("httpd -p 80 -h /srv")
client.wait_until_succeeds("wget -qO- http://server/ | grep -q hello")

with subtest("the page is served"):
    t.assertIn("hello", client.succeed("wget -qO- http://server/"))

with subtest("a failing command is a requested assertion"):
    try:
        client.succeed("false")
    except RequestedAssertionFailed as e:
        t.assertEqual(str(e), "command `false` failed (exit code 1)")
    else:
        raise Exception("succeed('false') did not raise")

with subtest("retry"):
    retry(lambda last_try: "hello" in client.succeed("wget -qO- http://server/"), 30)

machine_names = sorted(m.name for m in machines)
assert machine_names == ["client", "server"], machine_names

server.shutdown()
client.shutdown()
