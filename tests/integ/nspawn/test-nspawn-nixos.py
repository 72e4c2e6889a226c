#!/usr/bin/python3
# Proves NixOS containers run as the reference runs them: vigil installed as nixos-test-driver takes `containers` in
# --config and containerNames/containerStartScripts in the environment, runs NixOS-shaped run-<name>-nspawn scripts
# (tests/helpers/make-fake-nspawn, booting the Debian tree from an empty root dir) beside a NixOS-shaped VM, and the
# test script drives them: succeed, wait_for_unit, pings across the VLAN between both containers and the VM, block().
# Why it matters: nixpkgs tests with `containers.<name>` must run unchanged, and their bridges must reach vigil's switch.
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from vmrun import SOURCE_ROOT, Tap, junit_cases, reference_run, skip_unless_nspawn  # noqa: E402

SCRIPT = r'''
import time

tic = time.monotonic()
start_all()
alpha.wait_for_unit("multi-user.target")
beta.wait_for_unit("multi-user.target")
print(f"FIGURE containers_up_s {time.monotonic() - tic:.2f}", flush=True)
vm.succeed("true")
t.assertEqual(sorted(m.name for m in machines_nspawn), ["alpha", "beta"])
t.assertEqual([m.name for m in machines_qemu], ["vm"])
t.assertIsInstance(alpha, NspawnMachine)

with subtest("the shell is the container's, as the reference's nsenter gets it"):
    t.assertEqual(alpha.succeed("hostname").strip(), "alpha")
    t.assertIn("NixOS", alpha.succeed("cat /etc/os-release"))
    t.assertEqual(alpha.succeed("echo $$ > /dev/null; cat /proc/1/comm").strip(), "systemd")
    status, out = alpha.execute("echo out; exit 3")
    t.assertEqual((status, out), (3, "out\n"))
    alpha.fail("false")
    alpha.succeed("systemctl is-system-running --wait || true")

with subtest("the containers and the VM ping each other across VLAN 1"):
    alpha.succeed("ping -c 1 -W 2 beta")
    beta.succeed("ping -c 1 -W 2 192.168.1.1")
    alpha.succeed("ping -c 1 -W 2 vm")
    vm.succeed("ping -c 1 -W 2 alpha")
    vm.succeed("ping -c 1 -W 2 beta")

with subtest("a service in a container reached from the VM"):
    beta.succeed("mkdir -p /srv/www && echo vigil-nixos-container > /srv/www/index.html",
                 "systemd-run --unit=www python3 -m http.server 8000 --directory /srv/www")
    beta.wait_for_unit("www.service")
    beta.wait_for_open_port(8000)
    t.assertIn("vigil-nixos-container", vm.succeed("wget -q -O - http://beta:8000/"))

with subtest("block() cuts a container at the switch"):
    alpha.block()
    vm.fail("ping -c 1 -W 1 alpha")
    alpha.unblock()
    vm.wait_until_succeeds("ping -c 1 -W 1 alpha", timeout=30)

with subtest("a SIGKILLed worker re-attaches; after a crash the script boots the same root again"):
    import os
    import signal

    import vigil
    alpha.succeed("echo before > /root/marker")
    npid = vigil.machine_state(alpha)["pid"]
    wpid = vigil.machine_worker_pid(alpha)
    os.kill(wpid, signal.SIGKILL)
    alpha.wait_until_succeeds("test -e /root/marker")
    t.assertNotEqual(vigil.machine_worker_pid(alpha), wpid)
    t.assertEqual(vigil.machine_state(alpha)["pid"], npid)
    t.assertEqual(alpha.succeed("hostname").strip(), "alpha")
    alpha.crash()
    alpha.start()
    alpha.wait_for_unit("multi-user.target")
    t.assertEqual(alpha.succeed("cat /root/marker"), "before\n")  # RUN_NSPAWN_ROOT_DIR is the state dir
    vm.wait_until_succeeds("ping -c 1 -W 1 alpha", timeout=30)

with subtest("shutdown powers the container off"):
    beta.shutdown()
    t.assertFalse(beta.is_up())
'''

SUBTESTS = ("the shell is the container's, as the reference's nsenter gets it",
            "the containers and the VM ping each other across VLAN 1",
            "a service in a container reached from the VM", "block() cuts a container at the switch",
            "a SIGKILLed worker re-attaches; after a crash the script boots the same root again",
            "shutdown powers the container off")


def host_leftovers() -> str:
    """What a run must not leave in the host's network namespace or /run/netns."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    bad = [ln.split(":")[1].strip() for ln in links.splitlines()
           if ln.split(":")[1].strip().split("@")[0] in ("br1", "alpha-eth1", "beta-eth1")]
    netns = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else []) if n.startswith("nixos-nspawn-")]
    return " ".join(bad + netns)


def main() -> None:
    tree = skip_unless_nspawn(qemu=True)
    tap = Tap()
    tmp = Path(tempfile.mkdtemp(prefix="vigil-nixct-"))
    guest = subprocess.run([str(SOURCE_ROOT / "tools/mkguest")], capture_output=True, text=True,
                           check=True).stdout.strip()
    hosts = "192.168.1.1:alpha,192.168.1.2:beta,192.168.1.3:vm"
    containers = {}
    for k, name in enumerate(["alpha", "beta"], start=1):
        subprocess.run([str(SOURCE_ROOT / "tests/helpers/make-fake-nspawn"), name, tree, str(tmp / name), "--vlan", "1",
                        "--node-number", str(k), "--hosts", hosts], check=True)
        containers[name] = str(tmp / name / "bin" / f"run-{name}-nspawn")
    subprocess.run([str(SOURCE_ROOT / "tests/helpers/make-fake-vm"), "vm", guest, str(tmp / "vm"), "--vlan", "1",
                    "--node-number", "3", "--hosts", hosts], check=True)
    vm_script = str(tmp / "vm" / "bin" / "run-vm-vm")
    (tmp / "t.py").write_text(SCRIPT)
    before = host_leftovers()

    cfg = {
        "vms": {"vm": {"name": "vm", "start_script": vm_script}},
        "containers": {n: {"name": n, "start_script": s} for n, s in containers.items()},
        "vlans": [1],
        "global_timeout": 240,
        "enable_ssh_backdoor": False,
        "test_script": str(tmp / "t.py"),
    }
    (tmp / "config.json").write_text(json.dumps(cfg))
    (tmp / "out").mkdir()
    tic = time.monotonic()
    r = reference_run(["--config", str(tmp / "config.json"), "-o", "out", "--junit-xml", "junit.xml"], tmp, {},
                      timeout=300)
    print(f"# --config run took {time.monotonic() - tic:.1f} s", flush=True)
    for line in r.stdout.splitlines():
        if line.startswith("FIGURE "):
            print("# " + line, flush=True)
    tap.check(r.rc == 0, "--config with containers and a VM: the test passes", r.tail())
    cases = junit_cases(tmp / "out" / "junit.xml")
    for sub in SUBTESTS:
        tap.check(cases.get(sub) is False, f"subtest passed: {sub}", str(cases))
    tap.check("additionally exposed symbols:\n    alpha, beta, vm," in r.stdout, "machines sorted by name, as the reference")
    # The start script's container is the machine; the nsenter shell into it is a helper, whose spawn and exit
    # are no boot and no machine going down in the progress and `vigil ps` (test-run-registry folds these roles).
    events = [json.loads(line) for line in (tmp / "out" / "timeline.jsonl").read_text().splitlines()]
    roles = {(e.get("child"), e.get("name"), e.get("role")) for e in events if e.get("event") == "proc_spawned"}
    tap.check({("alpha", "nspawn", "machine"), ("alpha", "nsenter-shell", "helper"), ("vm", "qemu", "machine")} <= roles,
              "the timeline names the container and the VM as machines, the nsenter shell a helper", str(sorted(roles)))
    tap.check(host_leftovers() == before, "no bridge, veth or nixos-nspawn-* namespace left on the host",
              host_leftovers())

    # The environment-variable form (E3): containers only, names given and derived.
    (tmp / "t2.py").write_text("start_all()\nalpha.wait_for_unit('multi-user.target')\n"
                               "alpha.succeed('ping -c 1 -W 2 beta')\nbeta.succeed('ping -c 1 -W 2 alpha')\n")
    (tmp / "out2").mkdir()
    env = {"containerNames": "alpha beta", "containerStartScripts": " ".join(containers.values()),
           "testScript": str(tmp / "t2.py"), "vlans": "1", "globalTimeout": "200"}
    r = reference_run(["-o", "out2"], tmp, env, timeout=260)
    tap.check(r.rc == 0, "containerNames/containerStartScripts: the test passes", r.tail())

    # Bad input is refused before anything starts, naming the problem.
    (tmp / "out3").mkdir()
    r = reference_run(["-o", "out3", "--container-start-scripts", str(tmp / "whatever")],
                      tmp, {"testScript": str(tmp / "t2.py")}, timeout=60)
    tap.check(r.rc == 2 and "cannot name the container of" in r.stderr,
              "a start script not named run-<name>-nspawn is refused (exit 2)", r.tail())
    r = reference_run(["-o", "out3"], tmp, {**env, "containerNames": "alpha"}, timeout=60)
    tap.check(r.rc == 2 and "containerNames lists 1 containers but containerStartScripts lists 2" in r.stderr,
              "names and scripts that do not pair up are refused (exit 2)", r.tail())
    tap.done()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
