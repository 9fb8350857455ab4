"""The Kubernetes lab: a small cluster in network namespaces on this machine.

    fk-cp     10.79.0.10  etcd (loopback) + kube-apiserver (:6443)
    fk-node1  10.79.0.11  containerd 2.1 + kubelet (:10250) + sshd (:22), pods 10.79.1.0/24
    fk-node2  10.79.0.12  containerd 2.1 + kubelet (:10250) + sshd (:22), pods 10.79.2.0/24

on the bridge fmk8s0 (10.79.0.1), and a registry (Debian's docker-registry) on a UNIX
socket, reached from each node's loopback (127.0.0.1:5000) through a forwarder.

Each node also has its own mount namespace (bound to /run/fk/mnt/NODE, as `ip netns`
binds network namespaces), shared by its containerd, kubelet and sshd: in it, files
holding the kubelet's wanted values are bound over the /proc/sys entries it would set
(vm.overcommit_memory, kernel.panic, ...), so the machine keeps its own, and /var/lib/cni
and /var/log/containers are the node's own folders. The mounts other labs had when the
namespace was made are dropped from its copy, so it never keeps their namespaces or
overlays alive.

Binaries come from lab/k8s/build.sh (cached under /var/cache/ferryman). Run as root:

    python -m lab.k8s.cluster up | down | status [--json] | prove
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.k8s import oci
from core.k8s.api import Client, KubeError, node_ready
from core.k8s.registry import Registry
from lab import net
from lab.k8s.layout import (
    ALL,
    APISERVER_PORT,
    BIN,
    BRIDGE,
    BRIDGE_ADDR,
    CNI_BIN,
    CP,
    CRIU,
    HOSTS_FILE,
    K8S_VERSION,
    KEY,
    KNOWN_HOSTS,
    KUBECONFIG,
    KUBELET_PORT,
    MNT_DIR,
    NODES,
    PAUSE_IMAGE,
    PKI,
    PREFIX,
    REGISTRY,
    REGISTRY_SOCKET,
    RUN_DIR,
    RUNC,
    SERVICE_IP,
    SERVICE_RANGE,
    STATE_DIR,
    STATUS_FILE,
    Host,
)
from lab.shell import LabError, ok, run
from lab.sshd import config_text

# CRIU first (the wrapper in /usr/local/sbin), then sid's containerd and its shim before
# Debian 12's own (1.6, in /usr/bin).
PATH = f"/usr/local/sbin:{PREFIX}/usr/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HERE = Path(__file__).parent
# What the kubelet sets machine-wide unless protectKernelDefaults; bound inside each
# node's mount namespace, so it reads its own values and writes nothing.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


def log(msg: str) -> None:
    print(f"k8s lab: {msg}", file=sys.stderr, flush=True)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the Kubernetes lab needs root (namespaces, mounts, cgroups)")


def binaries() -> dict[str, Path]:
    b = {
        "kubelet": BIN / "kubelet",
        "kube-apiserver": BIN / "kube-apiserver",
        "etcd": PREFIX / "usr/bin/etcd",
        "containerd": PREFIX / "usr/bin/containerd",
        "ctr": PREFIX / "usr/bin/ctr",
        "registry": PREFIX / "usr/bin/docker-registry",
        "cni-bridge": CNI_BIN / "bridge",
    }
    missing = [str(p) for p in b.values() if not os.access(p, os.X_OK)]
    if missing:
        raise LabError(f"missing {', '.join(missing)}: run lab/k8s/build.sh first (as root)")
    if not os.access(CRIU, os.X_OK):
        raise LabError(f"no CRIU at {CRIU}: run lab/setup/install-deps.sh")
    return b


# --- processes ----------------------------------------------------------------------


def ns(h: Host, argv: list[str], *, mount: bool = True) -> list[str]:
    """A command in a lab host's network namespace (and its mount namespace for nodes);
    nsenter --net, not ip netns exec (that remounts /sys)."""
    pre = ["nsenter", f"--net=/var/run/netns/{h.netns}"]
    if mount and h is not CP:
        pre.append(f"--mount={h.mntns}")
    return [*pre, *argv]


def _pidfile(h: Host, name: str) -> Path:
    return h.run / f"{name}.pid"


def pid_of(h: Host, name: str) -> int | None:
    try:
        p = int(_pidfile(h, name).read_text().strip())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def daemon(h: Host, name: str, argv: list[str]) -> int:
    """Start a daemon that stays in the foreground; its pid in RUN/HOST/NAME.pid (nsenter
    execs the program, so the pid is the daemon's), its output in STATE/HOST/NAME.log."""
    if p := pid_of(h, name):
        return p
    for d in (h.run, h.state, h.bin_dir):
        d.mkdir(parents=True, exist_ok=True)
    with open(h.state / f"{name}.log", "ab") as out:
        p = subprocess.Popen(
            argv,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # The host's own bin folder first: fault tests put a failing `criu` there.
            env={"PATH": f"{h.bin_dir}:{PATH}", "HOME": "/root", "LANG": "C.UTF-8"},
        )
    _pidfile(h, name).write_text(str(p.pid))
    return p.pid


def _alive(p: int) -> bool:
    try:
        os.kill(p, 0)
    except OSError:
        return False
    try:  # a zombie (our own child not yet reaped) counts as gone
        return Path(f"/proc/{p}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def kill_pid(p: int, timeout: float = 20) -> None:
    try:
        os.kill(p, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(p):
        time.sleep(0.05)
    if _alive(p):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def stop(h: Host, name: str, timeout: float = 20) -> None:
    if p := pid_of(h, name):
        kill_pid(p, timeout)
    _pidfile(h, name).unlink(missing_ok=True)


def wait(what: str, check: Any, timeout: float, logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    tail = ""
    if logfile and logfile.exists():
        tail = "\n  " + "\n  ".join(logfile.read_text(errors="replace").splitlines()[-15:])
    raise LabError(
        f"{what} not up within {timeout:.0f} s{f'; {logfile}:' if logfile else ''}{tail}"
    )


# --- network -------------------------------------------------------------------------


def host_net_up(h: Host) -> None:
    if not ok(["ip", "netns", "pids", h.netns]):
        run(["ip", "netns", "add", h.netns])
    if not ok(["ip", "link", "show", h.veth_host]):
        run(["ip", "link", "add", h.veth_host, "type", "veth", "peer", "name", h.veth_ns])
        run(["ip", "link", "set", h.veth_ns, "netns", h.netns])
    run(["ip", "link", "set", h.veth_host, "master", BRIDGE, "up"])
    ip = lambda *a: ns(h, ["ip", *a], mount=False)  # noqa: E731
    if h.address not in run(ip("-4", "addr", "show", h.veth_ns)).stdout.decode():
        run(ip("addr", "add", f"{h.address}/24", "dev", h.veth_ns))
    run(ip("link", "set", h.veth_ns, "up"))
    run(ip("link", "set", "lo", "up"))
    if "default" not in run(ip("route")).stdout.decode():
        run(ip("route", "add", "default", "via", BRIDGE_ADDR))


def host_net_down(h: Host) -> None:
    if ok(["ip", "link", "show", h.veth_host]):
        run(["ip", "link", "del", h.veth_host])
    if ok(["ip", "netns", "pids", h.netns]):
        run(["ip", "netns", "del", h.netns])


# --- a node's mount namespace ---------------------------------------------------------


def _mountpoints(h: Host) -> list[str]:
    text = run(["nsenter", f"--mount={h.mntns}", "cat", "/proc/self/mountinfo"]).stdout.decode()
    unescape = lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)  # noqa: E731
    return [unescape(line.split()[4]) for line in text.splitlines() if line.strip()]


def _foreign(mp: str) -> bool:
    """A mount the node's namespace copied from the machine and must not keep: anything
    but the base file systems (other labs' netns bindings, overlays, volumes)."""
    return not (mp == "/" or mp.startswith(("/proc", "/sys", "/dev", "/mnt/sandboxing")))


def mntns_up(h: Host) -> None:
    MNT_DIR.mkdir(parents=True, exist_ok=True)
    if not ok(["mountpoint", "-q", str(MNT_DIR)]):
        run(["mount", "--bind", str(MNT_DIR), str(MNT_DIR)])
        run(["mount", "--make-private", str(MNT_DIR)])
    if ok(["mountpoint", "-q", str(h.mntns)]):
        return
    h.mntns.touch()
    run(["unshare", f"--mount={h.mntns}", "--propagation", "private", "true"])
    # Drop the copies of other labs' mounts (deepest first): a copy here would keep
    # their network namespaces and overlays alive after they remove them.
    foreign = [mp for mp in _mountpoints(h) if _foreign(mp)]
    for mp in sorted(foreign, key=lambda m: -m.count("/")):
        run(["nsenter", f"--mount={h.mntns}", "umount", "-l", mp], check=False)
    # The kubelet's sysctls, as files bound over /proc/sys in this namespace only.
    sysdir = h.state / "sysctl"
    sysdir.mkdir(parents=True, exist_ok=True)
    binds: list[tuple[Path, str]] = []
    for key, value in KUBELET_SYSCTLS.items():
        f = sysdir / key.replace("/", ".")
        f.write_text(value + "\n")
        binds.append((f, f"/proc/sys/{key}"))
    for sub, target in (("cni-lib", "/var/lib/cni"), ("log-containers", "/var/log/containers")):
        d = h.state / sub
        d.mkdir(parents=True, exist_ok=True)
        Path(target).mkdir(parents=True, exist_ok=True)
        binds.append((d, target))
    for src, target in binds:
        run(["nsenter", f"--mount={h.mntns}", "mount", "--bind", str(src), target])


def mntns_down(h: Host) -> None:
    if ok(["mountpoint", "-q", str(h.mntns)]):
        run(["umount", str(h.mntns)], check=False)
    h.mntns.unlink(missing_ok=True)


# --- cgroups (v1 here: one folder per hierarchy; v2: one) ----------------------------


def _cgroup_dirs(h: Host) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # cgroup v2
        return [base / h.cgroup_root.lstrip("/")]
    dirs = []
    for d in sorted(base.iterdir()):
        # every hierarchy, the hybrid's unified one too (runc makes the pods' there)
        if d.is_dir() and not d.is_symlink() and (d / "cgroup.procs").exists():
            dirs.append(d / h.cgroup_root.lstrip("/"))
    return dirs


def cgroups_up(h: Host) -> None:
    """The kubelet's --cgroup-root must exist (in every v1 hierarchy)."""
    for d in _cgroup_dirs(h):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (d / f).read_text().strip():
                    (d / f).write_text((d.parent / f).read_text())


def cgroup_pids(h: Host) -> set[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs(h):
        if d.exists():
            for procs in d.rglob("cgroup.procs"):
                try:
                    pids |= {int(x) for x in procs.read_text().split()}
                except OSError:
                    pass
    return pids


def cgroups_down(h: Host) -> None:
    for d in _cgroup_dirs(h):
        if not d.exists():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass


# --- certificates ---------------------------------------------------------------------


def _cert(
    name: str, subject: str, *, sans: list[str] | None = None, usage: str = "clientAuth"
) -> None:
    key, crt = PKI / f"{name}.key", PKI / f"{name}.crt"
    if crt.exists() and key.exists():
        return
    ext = PKI / f"{name}.ext"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    csr = PKI / f"{name}.csr"
    run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-subj",
            subject,
            "-out",
            str(csr),
        ]
    )
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(PKI / "ca.crt"),
            "-CAkey",
            str(PKI / "ca.key"),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        ]
    )
    csr.unlink()
    ext.unlink()
    key.chmod(0o600)


def pki_up() -> None:
    PKI.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (PKI / "ca.crt").exists():
        run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(PKI / "ca.key"),
                "-out",
                str(PKI / "ca.crt"),
                "-days",
                "3650",
                "-subj",
                "/CN=ferryman-k8s-lab-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            ]
        )
    _cert(
        "apiserver",
        "/CN=kube-apiserver",
        usage="serverAuth",
        sans=[
            f"IP:{CP.address}",
            "IP:127.0.0.1",
            f"IP:{SERVICE_IP}",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:localhost",
        ],
    )
    _cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    _cert("admin", "/O=system:masters/CN=ferryman")
    for h in NODES:
        _cert(f"{h.name}-client", f"/O=system:nodes/CN=system:node:{h.node_name}")
        _cert(
            f"{h.name}-serving",
            f"/CN={h.node_name}",
            usage="serverAuth",
            sans=[f"IP:{h.address}", f"DNS:{h.node_name}"],
        )
    if not (PKI / "sa.key").exists():
        run(["openssl", "genrsa", "-out", str(PKI / "sa.key"), "2048"])
        run(["openssl", "rsa", "-in", str(PKI / "sa.key"), "-pubout", "-out", str(PKI / "sa.pub")])
        (PKI / "sa.key").chmod(0o600)


def kubeconfig(user: str, cert: str, path: Path) -> None:
    b64 = lambda p: base64.b64encode((PKI / p).read_bytes()).decode()  # noqa: E731
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ferryman-lab",
                "cluster": {
                    "server": f"https://{CP.address}:{APISERVER_PORT}",
                    "certificate-authority-data": b64("ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(f"{cert}.crt"),
                    "client-key-data": b64(f"{cert}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "ferryman-lab", "context": {"cluster": "ferryman-lab", "user": user}}
        ],
        "current-context": "ferryman-lab",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


# --- control plane --------------------------------------------------------------------


def registry_up() -> None:
    cfg = STATE_DIR / "registry.yml"
    (STATE_DIR / "registry").mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {
                    "filesystem": {"rootdirectory": str(STATE_DIR / "registry")},
                    "delete": {"enabled": True},
                },
                "http": {"net": "unix", "addr": str(REGISTRY_SOCKET)},
            }
        )
    )
    if pid_of(CP, "registry") is None:
        REGISTRY_SOCKET.unlink(missing_ok=True)
    daemon(CP, "registry", ns(CP, [str(PREFIX / "usr/bin/docker-registry"), "serve", str(cfg)]))
    reg = Registry(f"unix:{REGISTRY_SOCKET}")
    wait(
        "the registry", lambda: reg.manifest("none", "none") is None, 30, CP.state / "registry.log"
    )


def etcd_up() -> None:
    url = "http://127.0.0.1:2379"
    daemon(
        CP,
        "etcd",
        ns(
            CP,
            [
                str(PREFIX / "usr/bin/etcd"),
                "--name",
                "fk-cp",
                "--data-dir",
                str(CP.state / "etcd"),
                "--listen-client-urls",
                url,
                "--advertise-client-urls",
                url,
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "fk-cp=http://127.0.0.1:2380",
                "--log-level",
                "warn",
            ],
        ),
    )
    probe = ns(CP, ["curl", "-sf", "--max-time", "2", f"{url}/health"])
    wait("etcd", lambda: ok(probe), 60, CP.state / "etcd.log")


def apiserver_up() -> None:
    p = lambda n: str(PKI / n)  # noqa: E731
    daemon(
        CP,
        "kube-apiserver",
        ns(
            CP,
            [
                str(BIN / "kube-apiserver"),
                "--etcd-servers=http://127.0.0.1:2379",
                f"--bind-address={CP.address}",
                f"--advertise-address={CP.address}",
                f"--secure-port={APISERVER_PORT}",
                f"--tls-cert-file={p('apiserver.crt')}",
                f"--tls-private-key-file={p('apiserver.key')}",
                f"--client-ca-file={p('ca.crt')}",
                f"--kubelet-client-certificate={p('apiserver-kubelet-client.crt')}",
                f"--kubelet-client-key={p('apiserver-kubelet-client.key')}",
                f"--kubelet-certificate-authority={p('ca.crt')}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={p('sa.pub')}",
                f"--service-account-signing-key-file={p('sa.key')}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        ),
    )
    client = admin()
    wait(
        "kube-apiserver",
        lambda: client.request("GET", "/readyz") is not None,
        120,
        CP.state / "kube-apiserver.log",
    )
    # What kube-controller-manager would make (the lab runs none): the default service
    # account and the CA bundle its token volumes mount.
    for path, obj in (
        (
            "/api/v1/namespaces/default/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt"},
                "data": {"ca.crt": (PKI / "ca.crt").read_text()},
            },
        ),
    ):
        try:
            client.create(path, obj)
        except KubeError as e:
            if e.reason != "AlreadyExists":
                raise


def admin() -> Client:
    return Client.from_kubeconfig(KUBECONFIG)


# --- images ---------------------------------------------------------------------------


def _static(src: Path, out: Path) -> Path:
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    run(["gcc", "-O2", "-static", "-o", str(out), str(src)])
    return out


def _tar_of(files: dict[str, Path], dirs: list[str], links: dict[str, str]) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for sub in dirs:
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777) if (root / "tmp").exists() else None
        for name, src in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / name)
        for name, target in links.items():
            (root / name).symlink_to(target)
        return run(
            [
                "tar",
                "--sort=name",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "-C",
                str(root),
                "-c",
                ".",
            ]
        ).stdout


def images_up() -> None:
    """The pause (sandbox) image and the workload image, pushed to the lab registry."""
    from lab.image import APPLETS, BUSYBOX, workload_binary

    reg = Registry(f"unix:{REGISTRY_SOCKET}")
    build = STATE_DIR / "build"
    pause = _static(HERE / "pause.c", build / "pause")
    img = oci.rootfs_image(
        _tar_of({"pause": pause}, ["dev", "proc", "sys", "etc"], {}), entrypoint=["/pause"]
    )
    reg.push("ferryman/pause", "1", img)
    files = {"bin/busybox": BUSYBOX, "workload": workload_binary(build)}
    links = {f"bin/{a}": "busybox" for a in APPLETS}
    img = oci.rootfs_image(
        _tar_of(files, ["bin", "tmp", "data", "dev", "proc", "sys", "etc"], links),
        cmd=["/workload"],
    )
    reg.push("ferryman/workload", "1", img)


# --- nodes ----------------------------------------------------------------------------


def containerd_config(h: Host) -> str:
    return f"""version = 3
root = '{h.state}/containerd'
state = '{h.run}/containerd'
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.blockfile', 'io.containerd.snapshotter.v1.erofs',
  'io.containerd.differ.v1.erofs', 'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing']

[grpc]
  address = '{h.containerd_socket}'

[ttrpc]
  address = '{h.containerd_socket}.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{PAUSE_IMAGE}'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '{h.state}/certs.d'

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        pod_annotations = ['org.criu.config']
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{RUNC}'
          Root = '{h.run}/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{CNI_BIN}']
      conf_dir = '{h.state}/cni/net.d'

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.internal.v1.opt']
    path = '{h.state}/opt'
"""


def cni_config(h: Host) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "ferryman-lab",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": h.pod_subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(h.state / "cni/ipam"),
                },
            }
        ],
    }


def kubelet_config(h: Host) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this machine's cgroups are v1; from 1.35 refused unless said
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": h.cgroup_root,
        "address": h.address,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(PKI / f"{h.name}-serving.crt"),
        "tlsPrivateKeyFile": str(PKI / f"{h.name}-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(PKI / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{h.containerd_socket}",
        "podLogsDir": str(h.state / "pod-logs"),
        "volumePluginDir": str(h.state / "volume-plugins"),
        "oomScoreAdj": 0,  # a negative one needs CAP_SYS_RESOURCE, which root lacks here
        "failSwapOn": False,
        "protectKernelDefaults": False,  # it sets them: in its own mount namespace (above)
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "featureGates": {"ContainerCheckpoint": True},
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
    }


def node_up(h: Host) -> None:
    for d in (
        h.state,
        h.run,
        h.state / "cni/net.d",
        h.state / "pod-logs",
        h.state / f"certs.d/{REGISTRY}",
        h.kubelet_root,
    ):
        d.mkdir(parents=True, exist_ok=True)
    mntns_up(h)
    cgroups_up(h)
    (h.state / "containerd.toml").write_text(containerd_config(h))
    (h.state / "cni/net.d/10-ferryman-lab.conflist").write_text(json.dumps(cni_config(h), indent=1))
    (h.state / f"certs.d/{REGISTRY}/hosts.toml").write_text(
        f'server = "http://{REGISTRY}"\n\n[host."http://{REGISTRY}"]\n'
        '  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n'
    )
    kubeconfig(f"system:node:{h.node_name}", f"{h.name}-client", h.state / "kubeconfig")

    daemon(
        h,
        "forward",
        ns(
            h,
            [
                sys.executable,
                str(HERE / "forward.py"),
                "127.0.0.1",
                REGISTRY.split(":")[1],
                str(REGISTRY_SOCKET),
            ],
            mount=False,
        ),
    )
    daemon(
        h,
        "containerd",
        ns(h, [str(PREFIX / "usr/bin/containerd"), "--config", str(h.state / "containerd.toml")]),
    )
    ctr = ns(h, [str(PREFIX / "usr/bin/ctr"), "--address", str(h.containerd_socket), "version"])
    wait(f"{h.name}: containerd", lambda: ok(ctr), 60, h.state / "containerd.log")
    kubelet_up(h)
    sshd_up(h)


def kubelet_up(h: Host, *, checkpoint_gate: bool = True) -> None:
    """The node's kubelet, with its configuration written first. `checkpoint_gate=False`:
    the ContainerCheckpoint feature gate off, as on a cluster that disabled it (the lab's
    tests restart a kubelet so; its pods keep running meanwhile)."""
    conf = kubelet_config(h)
    conf["featureGates"] = {"ContainerCheckpoint": checkpoint_gate}
    (h.state / "kubelet.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    daemon(
        h,
        "kubelet",
        ns(
            h,
            [
                str(BIN / "kubelet"),
                "--config",
                str(h.state / "kubelet.yaml"),
                "--kubeconfig",
                str(h.state / "kubeconfig"),
                "--hostname-override",
                h.node_name,
                "--node-ip",
                h.address,
                "--root-dir",
                str(h.kubelet_root),
                "--cert-dir",
                str(h.state / "kubelet-pki"),
                "--v=2",
            ],
        ),
    )


def restart_kubelet(h: Host, *, checkpoint_gate: bool = True) -> None:
    stop(h, "kubelet")
    kubelet_up(h, checkpoint_gate=checkpoint_gate)


def sshd_up(h: Host) -> None:
    if not KEY.exists():
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ferryman-k8s-lab",
                "-f",
                str(KEY),
            ]
        )
    key = h.state / "ssh_host_ed25519_key"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    auth = h.state / "authorized_keys"
    auth.write_text(Path(f"{KEY}.pub").read_text())
    auth.chmod(0o600)
    text = config_text(
        f"Kubernetes lab node {h.node_name} (written by lab/k8s/cluster.py)",
        address=h.address,
        host_key=key,
        pidfile=h.sshd_pidfile,
        authorized_keys=auth,
        docker_socket="",
        bin_dir=PREFIX / "usr/bin",
        name=h.node_name,
    )
    text = re.sub(
        r"^SetEnv .*$",
        (
            f"SetEnv CONTAINERD_ADDRESS={h.containerd_socket} CONTAINERD_NAMESPACE=k8s.io "
            f"FERRYMAN_PATH_PREFIX={h.bin_dir}:{PREFIX}/usr/bin FERRYMAN_LAB_HOST={h.node_name} "
            f"FERRYMAN_KUBELET_ROOT={h.kubelet_root}"
        ),
        text,
        flags=re.M,
    )
    h.sshd_config.write_text(text)
    try:
        if int(h.sshd_pidfile.read_text()) and _alive(int(h.sshd_pidfile.read_text())):
            return
    except (OSError, ValueError):
        pass
    Path("/run/sshd").mkdir(exist_ok=True)
    run(ns(h, ["/usr/sbin/sshd", "-f", str(h.sshd_config)]))


def known_hosts() -> None:
    lines = []
    for h in NODES:
        pub = Path(f"{h.state}/ssh_host_ed25519_key.pub").read_text().split()
        lines.append(f"{h.address} {pub[0]} {pub[1]}\n")
    KNOWN_HOSTS.write_text("".join(lines))


def hosts_file() -> None:
    """The nodes as SSH hosts for ferryman, labelled with their node and cluster, and the
    cluster (kubeconfig, context, each node's host and kubelet root) under `clusters:`;
    cluster.yaml beside it says the same for the lab's own tools."""
    doc = {
        "hosts": [
            {
                "name": h.node_name,
                "address": h.address,
                "user": "root",
                "key": str(KEY),
                "known_hosts": str(KNOWN_HOSTS),
                "labels": {"k8s-node": h.node_name, "k8s-cluster": "ferryman-lab"},
            }
            for h in NODES
        ],
        "clusters": [
            {
                "name": "ferryman-lab",
                "kubeconfig": str(KUBECONFIG),
                "context": "ferryman-lab",
                "nodes": {h.node_name: h.node_name for h in NODES},
                "kubelet_root": {h.node_name: str(h.kubelet_root) for h in NODES},
            }
        ],
    }
    HOSTS_FILE.write_text(yaml.safe_dump(doc, sort_keys=False))
    (STATE_DIR / "cluster.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "ferryman-lab",
                "kubeconfig": str(KUBECONFIG),
                "context": "ferryman-lab",
                "nodes": {h.node_name: h.node_name for h in NODES},
                "kubelet_root": {h.node_name: str(h.kubelet_root) for h in NODES},
            },
            sort_keys=False,
        )
    )


# --- up / down / status ---------------------------------------------------------------


def up(timeout: float = 180) -> dict[str, Any]:
    require_root()
    binaries()
    t0 = time.monotonic()
    times: dict[str, float] = {}
    STATE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    net.bridge_up(BRIDGE, BRIDGE_ADDR)
    for h in ALL:
        host_net_up(h)
    pki_up()
    kubeconfig("ferryman", "admin", KUBECONFIG)
    times["network+pki"] = time.monotonic() - t0
    registry_up()
    etcd_up()
    times["etcd"] = time.monotonic() - t0
    apiserver_up()
    times["kube-apiserver"] = time.monotonic() - t0
    images_up()
    for h in NODES:
        node_up(h)
    client = admin()
    for h in NODES:
        client.wait_for(f"/api/v1/nodes/{h.node_name}", node_ready, timeout)
    times["nodes ready"] = time.monotonic() - t0
    known_hosts()
    hosts_file()
    st = status()
    st["up_seconds"] = {k: round(v, 2) for k, v in times.items()}
    STATUS_FILE.write_text(json.dumps(st, indent=1))
    log(f"up in {times['nodes ready']:.1f} s; kubeconfig {KUBECONFIG}, hosts {HOSTS_FILE}")
    return st


def _shim_pids(h: Host) -> list[int]:
    """containerd shims of this node only: they name its socket on their command line."""
    want = str(h.containerd_socket)
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and want.encode() in argv:
            pids.append(int(d.name))
    return pids


def node_down(h: Host) -> None:
    stop(h, "kubelet")
    # The pods' processes: everything in this node's cgroup tree, then its shims.
    for _ in range(3):
        pids = cgroup_pids(h)
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.3)
    stop(h, "containerd")
    for p in _shim_pids(h):
        kill_pid(p, 5)
    stop(h, "forward")
    try:
        p = int(h.sshd_pidfile.read_text())
        if _alive(p):
            kill_pid(p, 5)
    except (OSError, ValueError):
        pass
    h.sshd_pidfile.unlink(missing_ok=True)
    mntns_down(h)
    cgroups_down(h)


def down() -> None:
    require_root()
    for h in NODES:
        node_down(h)
    for name in ("kube-apiserver", "etcd", "registry"):
        stop(CP, name)
    for h in ALL:
        host_net_down(h)
    net.bridge_down(BRIDGE)
    if ok(["mountpoint", "-q", str(MNT_DIR)]):
        run(["umount", str(MNT_DIR)], check=False)
    # Runtime state goes; the PKI and SSH keys stay.
    for h in ALL:
        for sub in (
            "containerd",
            "kubelet",
            "etcd",
            "cni",
            "pod-logs",
            "kubelet-pki",
            "opt",
            "cni-lib",
            "log-containers",
        ):
            shutil.rmtree(h.state / sub, ignore_errors=True)
    # The registry's storage too: checkpoint images hold process memory (up pushes the
    # lab's two images again in about a second).
    shutil.rmtree(STATE_DIR / "registry", ignore_errors=True)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    STATUS_FILE.unlink(missing_ok=True)
    log("down")


def status() -> dict[str, Any]:
    st: dict[str, Any] = {
        "version": K8S_VERSION,
        "kubeconfig": str(KUBECONFIG),
        "hosts_file": str(HOSTS_FILE),
        "hosts": {},
    }
    for h in ALL:
        names = (
            ["etcd", "kube-apiserver", "registry"]
            if h is CP
            else ["forward", "containerd", "kubelet"]
        )
        procs = {n: pid_of(h, n) for n in names}
        if h is not CP:
            try:
                sp = int(h.sshd_pidfile.read_text())
                procs["sshd"] = sp if _alive(sp) else None
            except (OSError, ValueError):
                procs["sshd"] = None
        st["hosts"][h.node_name] = {
            "address": h.address,
            "netns": ok(["ip", "netns", "pids", h.netns]),
            "processes": procs,
        }
    try:
        nodes = admin().get("/api/v1/nodes")
        st["nodes"] = {n["metadata"]["name"]: node_ready(n) for n in nodes.get("items", [])}
    except (KubeError, LabError, OSError) as e:
        st["nodes"] = f"API server: {e}"
    return st


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "status"
    try:
        if cmd == "up":
            print(json.dumps(up(), indent=1))
        elif cmd == "down":
            down()
        elif cmd == "status":
            print(json.dumps(status(), indent=1))
        else:
            # The runtime proof (lab/k8s/prove.py) runs as `python -m lab.k8s.prove`: it
            # builds on this module, never the other way round.
            print("usage: python -m lab.k8s.cluster up|down|status", file=sys.stderr)
            return 2
    except (LabError, KubeError) as e:
        print(f"k8s lab: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
