"""The hosts file: load with pyyaml into typed records, validated strictly.

Every error names the file, the line and what was expected; an unknown key is an error.
Hosts come from `--hosts FILE`, else $FERRYMAN_HOSTS, else ~/.config/ferryman/hosts.yaml.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20  # a hosts file is a few KiB; anything bigger is a mistake
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str  # an address, a DNS name or an ~/.ssh/config alias
    port: int | None = None  # None: from ~/.ssh/config, else 22
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    docker_socket: str = "/var/run/docker.sock"
    exec_root: str = "/var/run/docker"  # dockerd --exec-root; runc's state is below it
    images_dir: str = "/var/lib/ferryman"  # where checkpoint images go on this host
    # The file this host's sshd reads the SSH user's keys from (a direct transfer adds a
    # one-time key there for the migration's length); None: ~/.ssh/authorized_keys there.
    authorized_keys: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0  # seconds for TCP, the SSH handshake and the login

    @property
    def runc_root(self) -> str:
        return f"{self.exec_root}/runtime-runc/moby"


@dataclass(frozen=True)
class ClusterSpec:
    """A Kubernetes cluster whose nodes are hosts of this file: its API server (a
    kubeconfig and a context in it) and, for each node, the host that reaches it by SSH
    and the kubelet's root folder on it (its emptyDir volumes and checkpoints are there)."""

    name: str
    kubeconfig: str
    context: str | None = None  # None: the kubeconfig's current-context
    nodes: dict[str, str] = field(default_factory=dict)  # Kubernetes node name -> host name
    kubelet_root: dict[str, str] = field(default_factory=dict)  # node -> folder
    default_kubelet_root: str = "/var/lib/kubelet"

    def root_of(self, node: str) -> str:
        return self.kubelet_root.get(node, self.default_kubelet_root)

    def node_of(self, name: str) -> str | None:
        """The node that `name` is (a node name, or the name of the host that reaches it)."""
        if name in self.nodes:
            return name
        return next((n for n, h in self.nodes.items() if h == name), None)


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[HostSpec, ...]
    clusters: tuple[ClusterSpec, ...] = ()

    def cluster(self, name: str | None = None) -> ClusterSpec:
        """The cluster named `name`, or the only one when `name` is None."""
        if not self.clusters:
            raise ConfigError(
                f"{self.path}: names no Kubernetes cluster; add `clusters:` with a kubeconfig "
                "and the nodes' hosts (see hosts.example.yaml)"
            )
        if name is None:
            if len(self.clusters) > 1:
                names = ", ".join(c.name for c in self.clusters)
                raise ConfigError(
                    f"{self.path}: several clusters ({names}): say which with --cluster"
                )
            return self.clusters[0]
        for c in self.clusters:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self.clusters)
        raise ConfigError(f"no cluster named {name!r} in {self.path} (clusters: {names})")

    def get(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts)
        raise ConfigError(f"no host named {name!r} in {self.path} (hosts: {known})")


FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "address": (str,),
    "port": (int,),
    "user": (str,),
    "key": (str,),
    "known_hosts": (str,),
    "docker_socket": (str,),
    "exec_root": (str,),
    "images_dir": (str,),
    "authorized_keys": (str,),
    "labels": (dict,),
    "connect_timeout": (int, float),
}
REQUIRED = ("name", "address")


def default_path() -> Path | None:
    if env := os.environ.get("FERRYMAN_HOSTS"):
        return Path(env)
    p = Path.home() / ".config" / "ferryman" / "hosts.yaml"
    return p if p.exists() else None


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


class _StrictLoader(yaml.SafeLoader):
    """Safe loading, with duplicate keys refused and aliases (YAML bombs) refused."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            ev = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "anchors and aliases (*name) are not allowed", ev.start_mark
            )
        return super().compose_node(parent, index)


def _scalar(path: Path, key: str, node: yaml.Node, types: tuple[type, ...]) -> Any:
    loader = _StrictLoader("")
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{_where(path, node)}: {key!r}: {problem}") from None
    if isinstance(value, bool) or not isinstance(value, types):
        want = " or ".join("a mapping" if t is dict else t.__name__ for t in types)
        raise ConfigError(f"{_where(path, node)}: {key!r} must be {want}, not {value!r}")
    return value


def load(path: str | Path) -> Inventory:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the hosts file: {e.strerror}") from None
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {size} bytes is too big for a hosts file (limit 1 MiB)")
    text = path.read_text(errors="replace")
    try:
        root = yaml.compose(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if root is None:
        raise ConfigError(
            f"{path}: empty; expected `hosts:` with a list of hosts (see hosts.example.yaml)"
        )
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{_where(path, root)}: expected a mapping with the key `hosts:`")
    hosts_node = None
    clusters_node = None
    for k, v in root.value:
        if k.value == "clusters":
            if clusters_node is not None:
                raise ConfigError(f"{_where(path, k)}: `clusters:` given twice")
            clusters_node = v
            continue
        if k.value != "hosts":
            raise ConfigError(
                f"{_where(path, k)}: unknown key {k.value!r} (expected `hosts:` or `clusters:`)"
            )
        if hosts_node is not None:
            raise ConfigError(
                f"{_where(path, k)}: `hosts:` given twice (the first at line "
                f"{hosts_node.start_mark.line}): put every host in one list"
            )
        hosts_node = v
    if not isinstance(hosts_node, yaml.SequenceNode) or not hosts_node.value:
        node = hosts_node or root
        raise ConfigError(
            f"{_where(path, node)}: `hosts:` must be a list of hosts, each with name and address"
        )
    specs: list[HostSpec] = []
    seen: dict[str, int] = {}
    for item in hosts_node.value:
        if not isinstance(item, yaml.MappingNode):
            raise ConfigError(
                f"{_where(path, item)}: each host must be a mapping (name:, address:, ...)"
            )
        values: dict[str, Any] = {}
        for k, v in item.value:
            key = k.value
            if key not in FIELDS:
                close = difflib.get_close_matches(str(key), list(FIELDS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"{_where(path, k)}: unknown key {key!r}{hint}; known keys: {', '.join(FIELDS)}"
                )
            if key in values:
                raise ConfigError(f"{_where(path, k)}: {key!r} given twice")
            values[key] = _scalar(path, key, v, FIELDS[key])
            if isinstance(values[key], str) and any(ch in values[key] for ch in "\n\r\0"):
                raise ConfigError(
                    f"{_where(path, k)}: {key!r} holds a line break or NUL; a host's values "
                    "are one line each (they reach remote commands and CRIU's config file)"
                )
            if key == "labels":
                values[key] = {str(a): str(b) for a, b in values[key].items()}
        for key in REQUIRED:
            if key not in values:
                raise ConfigError(f"{_where(path, item)}: host is missing {key!r}")
        name = values["name"]
        if not NAME_RE.match(name):
            raise ConfigError(
                f"{_where(path, item)}: host name {name!r} must be letters, digits, '.', '_' or '-'"
            )
        if name in seen:
            raise ConfigError(
                f"{_where(path, item)}: host name {name!r} used twice (first at line {seen[name]})"
            )
        seen[name] = item.start_mark.line + 1
        port = values.get("port")
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"{_where(path, item)}: port {port} is not a TCP port (1-65535)")
        timeout = values.get("connect_timeout")
        if timeout is not None and not 0 < timeout <= 300:
            raise ConfigError(
                f"{_where(path, item)}: connect_timeout {timeout} must be seconds, above 0 "
                "and at most 300"
            )
        for pkey in ("docker_socket", "exec_root", "images_dir", "authorized_keys"):
            if pkey in values and not values[pkey].startswith("/"):
                raise ConfigError(
                    f"{_where(path, item)}: {pkey} must be an absolute path, not {values[pkey]!r}"
                )
        for pkey in ("key", "known_hosts"):
            if pkey in values:
                values[pkey] = str(Path(values[pkey]).expanduser())
        specs.append(HostSpec(**values))
    clusters = _clusters(path, clusters_node, {h.name for h in specs}) if clusters_node else ()
    return Inventory(path=path, hosts=tuple(specs), clusters=clusters)


CLUSTER_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "kubeconfig": (str,),
    "context": (str,),
    "nodes": (dict,),
    "kubelet_root": (str, dict),
}


def _clusters(path: Path, node: yaml.Node, hosts: set[str]) -> tuple[ClusterSpec, ...]:
    """`clusters:`: a list of {name, kubeconfig, context?, nodes: {NODE: HOST},
    kubelet_root?: PATH or {NODE: PATH}}."""
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise ConfigError(
            f"{_where(path, node)}: `clusters:` must be a list of clusters, each with name, "
            "kubeconfig and nodes"
        )
    out: list[ClusterSpec] = []
    for item in node.value:
        if not isinstance(item, yaml.MappingNode):
            raise ConfigError(
                f"{_where(path, item)}: each cluster must be a mapping (name:, kubeconfig:, nodes:)"
            )
        values: dict[str, Any] = {}
        at: dict[str, str] = {}
        for k, v in item.value:
            key = k.value
            at[key] = _where(path, k)
            if key not in CLUSTER_FIELDS:
                close = difflib.get_close_matches(str(key), list(CLUSTER_FIELDS), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"{_where(path, k)}: unknown cluster key {key!r}{hint}; known keys: "
                    f"{', '.join(CLUSTER_FIELDS)}"
                )
            if key in values:
                raise ConfigError(f"{_where(path, k)}: {key!r} given twice")
            values[key] = _scalar(path, key, v, CLUSTER_FIELDS[key])
        where = _where(path, item)
        for key in ("name", "kubeconfig", "nodes"):
            if key not in values:
                raise ConfigError(f"{where}: cluster is missing {key!r}")
        if not NAME_RE.match(values["name"]):
            raise ConfigError(
                f"{where}: cluster name {values['name']!r} must be letters, digits, '.', '_' or '-'"
            )
        if values["name"] in {c.name for c in out}:
            raise ConfigError(f"{where}: cluster name {values['name']!r} used twice")
        nodes = {str(a): str(b) for a, b in values["nodes"].items()}
        if not nodes:
            raise ConfigError(
                f"{where}: cluster {values['name']!r}: `nodes:` is empty (NODE: HOST)"
            )
        for n, h in nodes.items():
            if h not in hosts:
                raise ConfigError(
                    f"{at['nodes']}: cluster {values['name']!r}: node {n!r} names host {h!r}, which "
                    f"is not in `hosts:` ({', '.join(sorted(hosts))})"
                )
        root = values.get("kubelet_root", "/var/lib/kubelet")
        roots = {str(a): str(b) for a, b in root.items()} if isinstance(root, dict) else {}
        default_root = root if isinstance(root, str) else "/var/lib/kubelet"
        for n, r in [("(all)", default_root), *roots.items()]:
            if not r.startswith("/"):
                raise ConfigError(
                    f"{at['kubelet_root']}: kubelet_root of {n} must be an absolute path, not {r!r}"
                )
        for n in roots:
            if n not in nodes:
                raise ConfigError(
                    f"{at['kubelet_root']}: kubelet_root names {n!r}, which is not in `nodes:`"
                )
        out.append(
            ClusterSpec(
                name=values["name"],
                kubeconfig=str(Path(values["kubeconfig"]).expanduser()),
                context=values.get("context"),
                nodes=nodes,
                kubelet_root=roots,
                default_kubelet_root=default_root,
            )
        )
    return tuple(out)
