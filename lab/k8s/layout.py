"""Where the Kubernetes lab puts things, and how its hosts are named and addressed.

Its own bridge, subnet, namespaces and folders: nothing shared with the Docker lab
(`fmbr0`, `fm-*`, /var/lib/ferryman-lab, /run/fm)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = os.environ.get("FERRYMAN_K8S_VERSION", "v1.35.4")
CACHE = Path(os.environ.get("FERRYMAN_CACHE", "/var/cache/ferryman"))
BIN = CACHE / f"k8s-{K8S_VERSION}"
PREFIX = Path(os.environ.get("FERRYMAN_K8S_PREFIX", "/opt/ferryman/k8s"))
CNI_BIN = PREFIX / "usr/lib/cni"
CRIU = "/usr/local/sbin/criu"
RUNC = "/usr/sbin/runc"

BRIDGE = "fmk8s0"
SUBNET_PREFIX = "10.79.0"
BRIDGE_ADDR = f"{SUBNET_PREFIX}.1"
SERVICE_RANGE = "10.79.128.0/24"
SERVICE_IP = "10.79.128.1"
STATE_DIR = Path(os.environ.get("FERRYMAN_K8S_LAB_DIR", "/var/lib/ferryman-k8s"))
RUN_DIR = Path("/run/fk")  # short: UNIX socket paths have a length limit
MNT_DIR = RUN_DIR / "mnt"  # the nodes' mount namespaces, bound to files (like ip netns)
PKI = STATE_DIR / "pki"
KUBECONFIG = STATE_DIR / "kubeconfig"  # for ferryman (cluster admin, client certificate)
HOSTS_FILE = STATE_DIR / "hosts.yaml"
KEY = STATE_DIR / "id_ed25519"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
STATUS_FILE = STATE_DIR / "lab.json"
REGISTRY_SOCKET = RUN_DIR / "registry.sock"
REGISTRY = "127.0.0.1:5000"  # as each node sees it (a forwarder on its loopback)
PAUSE_IMAGE = f"{REGISTRY}/ferryman/pause:1"
WORKLOAD_IMAGE = f"{REGISTRY}/ferryman/workload:1"
APISERVER_PORT = 6443
KUBELET_PORT = 10250


@dataclass(frozen=True)
class Host:
    name: str  # cp, node1, node2
    index: int

    @property
    def node_name(self) -> str:  # the Kubernetes node name, and the SSH host's name
        return f"fk-{self.name}"

    @property
    def netns(self) -> str:
        return f"fk-{self.name}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{10 + self.index}"

    @property
    def veth_host(self) -> str:
        return f"fkv{self.index}"

    @property
    def veth_ns(self) -> str:
        return f"fkp{self.index}"

    @property
    def state(self) -> Path:
        return STATE_DIR / self.name

    @property
    def run(self) -> Path:
        return RUN_DIR / self.name

    @property
    def mntns(self) -> Path:
        return MNT_DIR / self.name

    @property
    def pod_subnet(self) -> str:
        return f"10.79.{self.index}.0/24"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def cgroup_root(self) -> str:  # the kubelet's --cgroup-root (each kubelet its own)
        return f"/fk-{self.name}"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def bin_dir(self) -> Path:
        """First on the PATH of this host's daemons (containerd, so runc and CRIU): for a
        host-specific tool, e.g. a failing `criu` in fault tests."""
        return self.run / "bin"

    @property
    def sshd_config(self) -> Path:
        return self.state / "sshd_config"

    @property
    def sshd_pidfile(self) -> Path:
        return self.run / "sshd.pid"


CP = Host("cp", 0)
NODES = (Host("node1", 1), Host("node2", 2))
ALL = (CP, *NODES)


def node(name: str) -> Host:
    for h in NODES:
        if name in (h.name, h.node_name):
            return h
    raise KeyError(name)
