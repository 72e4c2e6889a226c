# SPDX-License-Identifier: MIT
"""The SSH backend's test fixture: sshd inside an nspawn node of the run, on
vigil's own VLAN. The node boots the Debian tree built with openssh-server
(`VIGIL_MKDEBIAN_EXTRA_PACKAGES=openssh-server tools/mkdebian`: its own base in
the cache, so the ordinary tree's key and build stay as they are); the tree's
vigil-sshd.socket listens on /run/vigil-host/sshd.sock, which is
<state dir>/host/sshd.sock on the host, and an SSH node reaches it with a
ProxyCommand through that socket (the ssh process gets VIGIL_STATE_DIR). A key
pair is generated per test (ssh-keygen); the script installs the public key in
the container before it connects; known_hosts holds the tree's host key."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "script"))
from vmrun import SOURCE_ROOT, skip_unless_nspawn  # noqa: E402

HOST_NODE = "sshbox"  # the nspawn node that runs sshd


def skip(why: str) -> None:
    print(f"1..0 # SKIP {why}")
    sys.exit(77)


def ssh_tree() -> str:
    """The Debian tree with openssh-server, built into the cache if needed (root and
    the Debian mirror; ~5 min once). Skips (77) with the reason otherwise."""
    if not shutil.which("ssh") or not shutil.which("ssh-keygen") or not shutil.which("socat"):
        skip("no OpenSSH client or socat on the host (apt-get install openssh-client socat)")
    env = dict(os.environ, VIGIL_MKDEBIAN_EXTRA_PACKAGES="openssh-server")
    p = subprocess.run([str(SOURCE_ROOT / "tools/mkdebian")], env=env, capture_output=True, text=True, timeout=1500)
    if p.returncode in (3, 6, 7):
        skip(f"no Debian tree with openssh-server: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    if p.returncode != 0:
        print(p.stderr, file=sys.stderr)
        raise SystemExit(f"tools/mkdebian failed ({p.returncode})")
    return p.stdout.strip()


class Fixture:
    """Keys and spec pieces for one run."""

    def __init__(self, tmp: Path) -> None:
        skip_unless_nspawn(qemu=True)
        self.tree = ssh_tree()
        self.dir = tmp
        self.key = tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vigil-test", "-f", str(self.key)],
                       check=True)
        self.pubkey = (tmp / "id_ed25519.pub").read_text().strip()
        host_key = Path(self.tree, "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts = tmp / "known_hosts"
        self.known_hosts.write_text(f"{HOST_NODE} {host_key[0]} {host_key[1]}\n")

    def host_node(self, vlans: list[int] | None = None) -> dict:
        return {"backend": "nspawn", "tree": self.tree, "vlans": vlans or [1]}

    def ssh_node(self, known_hosts: str | None = None, **extra: object) -> dict:
        proxy = f"ProxyCommand=socat - UNIX-CONNECT:$VIGIL_STATE_DIR/../vm-state-{HOST_NODE}/host/sshd.sock"
        node = {"backend": "ssh", "host": HOST_NODE, "user": "root", "identity_file": str(self.key),
                "known_hosts": known_hosts or str(self.known_hosts), "ssh_options": [proxy]}
        node.update(extra)
        return node

    def authorize(self) -> str:
        """Script lines: put the public key in the container and wait for its sshd socket."""
        cmd = f"install -d -m 700 /root/.ssh && echo {shlex.quote(self.pubkey)} > /root/.ssh/authorized_keys"
        return f"{HOST_NODE}.wait_for_unit('vigil-sshd.socket')\n{HOST_NODE}.succeed({cmd!r})\n"
