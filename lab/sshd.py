"""One OpenSSH sshd per lab host: key auth only, its own host key, its own engine."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lab.layout import KEY, KNOWN_HOSTS, STATE_DIR, LabHost
from lab.shell import in_ns, run

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def client_key() -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ferryman-lab", "-f", str(KEY)])


def _host_key(h: LabHost) -> Path:
    return h.state / "ssh_host_ed25519_key"


def write_config(h: LabHost, path_prefix: list[str] | None = None) -> None:
    """`path_prefix`: the host engine's folders, after its bin folder and before the
    system's on the PATH of every session (lab/engine.py)."""
    h.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _host_key(h)
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    auth = h.state / "authorized_keys"
    auth.write_text(Path(f"{KEY}.pub").read_text())
    auth.chmod(0o600)
    h.sshd_config.write_text(
        config_text(
            f"lab host {h.name} (written by `ferryman lab up`)",
            address=h.address,
            host_key=key,
            pidfile=h.sshd_pidfile,
            authorized_keys=auth,
            docker_socket=h.docker_socket,
            bin_dir=":".join([str(h.bin_dir), *(path_prefix or [])]),
            name=h.name,
        )
    )


def config_text(
    title: str,
    *,
    address: str,
    host_key: Path,
    pidfile: Path | str,
    authorized_keys: Path,
    docker_socket: Path | str,
    bin_dir: Path | str,
    name: str,
) -> str:
    """A lab host's sshd_config (both lab kinds): key auth only, forwarding for the console,
    no agent forwarding, the host's own engine and PATH prefix in every session."""
    return f"""# sshd of {title}
ListenAddress {address}:22
HostKey {host_key}
PidFile {pidfile}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes no
AllowAgentForwarding no
AllowTcpForwarding yes
AllowStreamLocalForwarding local
X11Forwarding no
MaxSessions 64
MaxStartups 64:30:128
ClientAliveInterval 15
Subsystem sftp /usr/lib/openssh/sftp-server
SetEnv DOCKER_HOST=unix://{docker_socket} FERRYMAN_PATH_PREFIX={bin_dir} FERRYMAN_LAB_HOST={name}
"""


def known_hosts_line(h: LabHost) -> str:
    pub = Path(f"{_host_key(h)}.pub").read_text().split()
    return f"{h.address} {pub[0]} {pub[1]}\n"


def write_known_hosts(hs: list[LabHost]) -> None:
    KNOWN_HOSTS.write_text("".join(known_hosts_line(h) for h in hs))


def pid(h: LabHost) -> int | None:
    try:
        p = int(h.sshd_pidfile.read_text().strip())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def start(h: LabHost) -> None:
    if pid(h):
        return
    Path("/run/sshd").mkdir(exist_ok=True)
    h.run.mkdir(parents=True, exist_ok=True)
    run(in_ns(h.netns, ["/usr/sbin/sshd", "-f", str(h.sshd_config)]))


def stop(h: LabHost) -> None:
    if p := pid(h):
        os.kill(p, signal.SIGTERM)
    h.sshd_pidfile.unlink(missing_ok=True)
