"""Where the local lab puts things, and how its hosts are named and addressed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_HOSTS = 8
BRIDGE = "fmbr0"
SUBNET_PREFIX = "10.77.0"
BRIDGE_ADDR = f"{SUBNET_PREFIX}.1"
STATE_DIR = Path(os.environ.get("FERRYMAN_LAB_DIR", "/var/lib/ferryman-lab"))
RUN_DIR = Path("/run/fm")  # short: UNIX socket paths have a length limit
IMAGE = "ferryman-lab/workload:1"
WORKLOAD = "workload"


@dataclass(frozen=True)
class LabHost:
    index: int

    @property
    def name(self) -> str:
        return f"host{self.index}"

    @property
    def netns(self) -> str:
        return f"fm-{self.name}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{10 + self.index}"

    @property
    def veth_host(self) -> str:  # the end on the bridge, in the root namespace
        return f"fmv{self.index}"

    @property
    def veth_ns(self) -> str:  # the end inside the host's namespace
        return f"fmp{self.index}"

    @property
    def state(self) -> Path:
        return STATE_DIR / self.name

    @property
    def run(self) -> Path:
        return RUN_DIR / f"h{self.index}"

    @property
    def docker_socket(self) -> Path:
        return self.run / "docker.sock"

    @property
    def data_root(self) -> Path:
        return self.state / "docker"

    @property
    def exec_root(self) -> Path:
        return self.run / "docker"

    @property
    def bin_dir(self) -> Path:
        """Comes first on this host's PATH (its sshd sessions and its dockerd): for
        putting a host-specific tool in place, e.g. a failing `criu` in fault tests."""
        return self.run / "bin"

    @property
    def sshd_config(self) -> Path:
        return self.state / "sshd_config"

    @property
    def sshd_pidfile(self) -> Path:
        return self.run / "sshd.pid"

    @property
    def dockerd_pidfile(self) -> Path:
        return self.run / "dockerd.pid"

    @property
    def dockerd_log(self) -> Path:
        return self.state / "dockerd.log"

    @property
    def engine_file(self) -> Path:
        """Which engine the host runs (lab/engine.py), written when the host is made."""
        return self.state / "engine"

    @property
    def daemon_json(self) -> Path:
        return self.state / "daemon.json"


def hosts(n: int) -> list[LabHost]:
    return [LabHost(i) for i in range(1, n + 1)]


KEY = STATE_DIR / "id_ed25519"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
HOSTS_FILE = STATE_DIR / "hosts.yaml"
STATUS_FILE = STATE_DIR / "lab.json"
