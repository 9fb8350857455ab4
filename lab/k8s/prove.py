"""The runtime path of a pod move, by hand, on the Kubernetes lab (`cluster.py up` first):

1. a pod with a counter (the lab workload's heartbeat lines) runs on fk-node1;
2. the kubelet's checkpoint call (`POST https://NODE:10250/checkpoint/NS/POD/CONTAINER`,
   and the same through the API server's node proxy) writes a checkpoint tar;
3. a checkpoint image (one layer: the tar; annotation org.criu.checkpoint.container.name)
   is pushed to the lab registry;
4. before the checkpoint the source container is paused through containerd (over SSH, as
   ferryman reaches a node), and stays frozen after it; a pod bound to fk-node2 whose
   image is the checkpoint image is created: containerd restores the container and the
   counter continues from the frozen source's; then the source is killed while frozen
   and its pod deleted. Exactly one copy runs at any moment.

Prints timings and the counter values as JSON. Not ferryman's move (no journal, no
rollback): the proof that the pieces it uses work here.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.k8s import oci, podmove
from core.k8s.api import Client, KubeError, pod_ready, ssl_context, summary
from core.k8s.registry import Registry
from core.remote import path_export, quote
from lab.k8s.cluster import PREFIX, admin, daemon, ns, stop
from lab.k8s.layout import (
    KEY,
    KNOWN_HOSTS,
    KUBELET_PORT,
    NODES,
    REGISTRY,
    REGISTRY_SOCKET,
    WORKLOAD_IMAGE,
    Host,
)

NS = "default"
POD = "counter"
CONTAINER = "counter"
SCRIPT = "echo kept > /data/in-emptydir; echo changed > /tmp/in-rootfs; exec /workload 16 1 200"


def pod_spec(name: str, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "counter"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": CONTAINER,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sh", "-c", SCRIPT],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }


def last_heartbeat(c: Client, pod: str) -> tuple[int, int] | None:
    try:
        text = c.request("GET", f"/api/v1/namespaces/{NS}/pods/{pod}/log?tailLines=5")
    except KubeError:
        return None
    beats = [ln.split() for ln in str(text).splitlines() if ln.startswith("hb ")]
    return (int(beats[-1][1]), int(beats[-1][2])) if beats else None


def first_heartbeat(c: Client, pod: str) -> tuple[int, int] | None:
    try:
        text = c.request("GET", f"/api/v1/namespaces/{NS}/pods/{pod}/log?limitBytes=4096")
    except KubeError:
        return None
    beats = [ln.split() for ln in str(text).splitlines() if ln.startswith("hb ")]
    return (int(beats[0][1]), int(beats[0][2])) if beats else None


def heartbeats_since(c: Client, pod: str, since_ns: int) -> list[int]:
    """Counters the pod printed after `since_ns` (the restored container's log starts
    with a copy of the source's: containerd restores container.log from the checkpoint)."""
    text = c.request("GET", f"/api/v1/namespaces/{NS}/pods/{pod}/log?timestamps=true")
    out = []
    for ln in str(text).splitlines():
        parts = ln.split()
        if len(parts) >= 4 and parts[1] == "hb" and int(parts[3]) > since_ns:
            out.append(int(parts[2]))
    return out


def in_container(node_mntns: str, task_root: str, cid: str, path: str) -> str | None:
    """A file of a running container, read from its root file system on the node."""
    f = f"{task_root}/{cid}/rootfs{path}"
    p = subprocess.run(
        ["nsenter", f"--mount={node_mntns}", "cat", f], capture_output=True, timeout=10
    )
    return p.stdout.decode().strip() if p.returncode == 0 else None


def kubelet_checkpoint(
    c: Client, address: str, pod: str, container: str
) -> tuple[list[str], float]:
    """The kubelet's own endpoint, straight (the client certificate authenticates; the
    kubelet asks the API server whether it may: webhook authorization)."""
    conn = http.client.HTTPSConnection(
        address, KUBELET_PORT, context=ssl_context(c.creds), timeout=70
    )
    t = time.monotonic()
    conn.request("POST", f"/checkpoint/{NS}/{pod}/{container}?timeout=60")
    r = conn.getresponse()
    body = r.read()
    dt = time.monotonic() - t
    if r.status != 200:
        raise KubeError(f"kubelet {address}: checkpoint: {r.status} {body[:300]!r}", r.status)
    return json.loads(body)["items"], dt


def delete_pod(c: Client, name: str) -> None:
    try:
        c.delete(f"/api/v1/namespaces/{NS}/pods/{name}", grace_seconds=0)
    except KubeError as e:
        if e.status != 404:
            raise
    c.wait_for(f"/api/v1/namespaces/{NS}/pods/{name}", lambda p: p is None, 60)


def ssh(h: Host, argv: list[str], timeout: float = 30) -> tuple[float, str]:
    """A command on a node over SSH (as ferryman reaches it), quoted once by core.remote."""
    t = time.monotonic()
    cmd = path_export() + quote(argv)
    p = subprocess.run(
        [
            "ssh",
            "-i",
            str(KEY),
            "-o",
            f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o",
            "BatchMode=yes",
            f"root@{h.address}",
            cmd,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if p.returncode != 0:
        raise KubeError(f"{h.node_name}: {argv[:4]}: exit {p.returncode}: {p.stderr.strip()}")
    return time.monotonic() - t, p.stdout


def copy_over_ssh(a: Host, out_argv: list[str], b: Host, in_argv: list[str]) -> None:
    """`ssh a OUT | ssh b IN`, relayed by this machine (as the console relays)."""
    base = ["ssh", "-i", str(KEY), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "BatchMode=yes"]
    src = subprocess.Popen(
        [*base, f"root@{a.address}", path_export() + quote(out_argv)], stdout=subprocess.PIPE
    )
    dst = subprocess.run(
        [*base, f"root@{b.address}", path_export() + quote(in_argv)],
        stdin=src.stdout,
        capture_output=True,
        timeout=60,
    )
    assert src.stdout is not None
    src.stdout.close()
    if src.wait(timeout=60) != 0 or dst.returncode != 0:
        raise KubeError(
            f"copy {a.node_name} -> {b.node_name}: {dst.stderr.decode(errors='replace').strip()}"
        )


def run_proof() -> dict[str, Any]:
    """The one-live-copy path: pause (containerd, over SSH) -> checkpoint (kubelet,
    through the API server) -> checkpoint image -> restored pod on node2 -> the source
    killed while frozen and deleted."""
    c = admin()
    n1, n2 = NODES
    out: dict[str, Any] = {}
    for name in (POD, f"{POD}-restored"):
        delete_pod(c, name)
    pods = f"/api/v1/namespaces/{NS}/pods"

    t = time.monotonic()
    c.create(pods, pod_spec(POD, n1.node_name, WORKLOAD_IMAGE))
    src = c.wait_for(f"{pods}/{POD}", pod_ready, 120)
    out["source_pod_running_s"] = round(time.monotonic() - t, 2)
    c.wait_for(f"{pods}/{POD}", lambda p: last_heartbeat(c, POD) is not None, 30)
    time.sleep(2)
    cid = src["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]

    # 1. The kubelet's own endpoint, straight (a forensic checkpoint: the container runs on).
    items, dt = kubelet_checkpoint(c, n1.address, POD, CONTAINER)
    out["kubelet_10250_checkpoint_s"] = round(dt, 3)
    out["kubelet_10250_checkpoint_tar"] = items[0]

    # 2. The move: freeze through containerd, so the checkpoint leaves it frozen.
    freeze_t = time.monotonic()
    dt, _ = ssh(n1, podmove.ctr_task("pause", cid))
    frozen_ns = time.time_ns()  # from here on the source must print nothing
    out["pause_over_ssh_s"] = round(dt, 3)
    last_src = last_heartbeat(c, POD)
    out["source_last_counter"] = last_src[0] if last_src else None
    t = time.monotonic()
    items = c.checkpoint(n1.node_name, NS, POD, CONTAINER)
    out["proxy_checkpoint_s"] = round(time.monotonic() - t, 3)
    tar = Path(items[0])
    out["checkpoint_tar"] = str(tar)
    out["checkpoint_tar_bytes"] = tar.stat().st_size
    _, state = ssh(
        n1,
        [
            "cat",
            f"/sys/fs/cgroup/freezer{podmove.pod_cgroup(src, n1.cgroup_root)}/{cid}/freezer.state",
        ],
    )
    out["source_freezer_after_checkpoint"] = state.strip()

    t = time.monotonic()
    img = oci.checkpoint_image(tar.read_bytes(), CONTAINER)
    tag = f"{int(time.time())}"
    Registry(f"unix:{REGISTRY_SOCKET}").push("ferryman/counter-checkpoint", tag, img)
    out["image_build_push_s"] = round(time.monotonic() - t, 3)
    image = f"{REGISTRY}/ferryman/counter-checkpoint:{tag}"
    out["checkpoint_image"] = image

    t = time.monotonic()
    restore_ns = time.time_ns()
    new = podmove.restored_pod(
        src, n2.node_name, {CONTAINER: image}, name=f"{POD}-restored", wait_image=WORKLOAD_IMAGE
    )
    created = c.create(pods, new)
    try:
        # The emptyDir folders: from the frozen source's to the restored pod's, over SSH.
        t2 = time.monotonic()
        src_dirs = podmove.emptydir_paths(src, str(n1.kubelet_root))
        dst_dirs = podmove.emptydir_paths(created, str(n2.kubelet_root))
        for vol, dst in dst_dirs.items():
            ssh(n2, podmove.wait_folder_argv(dst))
            copy_over_ssh(n1, podmove.tar_out_argv(src_dirs[vol]), n2, podmove.tar_in_argv(dst))
            ssh(n2, podmove.mark_ready_argv(dst))
        out["emptydir_copy_s"] = round(time.monotonic() - t2, 3)
        c.wait_for(f"{pods}/{POD}-restored", pod_ready, 120)
    finally:
        out["restored_pod_ready_s"] = round(time.monotonic() - t, 2)
    out["freeze_to_restored_ready_s"] = round(time.monotonic() - freeze_t, 2)
    out["source_printed_while_frozen"] = heartbeats_since(c, POD, frozen_ns)

    # Commit: kill the frozen source (runc sends SIGKILL to the frozen tasks and thaws
    # them: they die without running), then delete its pod object.
    t = time.monotonic()
    ssh(n1, podmove.ctr_task("kill", cid, "-s", "SIGKILL"))
    delete_pod(c, POD)
    out["source_kill_delete_s"] = round(time.monotonic() - t, 2)

    time.sleep(1.5)
    # The restored log starts with the source's (containerd restores container.log).
    after = heartbeats_since(c, f"{POD}-restored", restore_ns)
    out["restored_counters"] = after[:3] + (["..."] if len(after) > 4 else []) + after[-1:]
    out["counter_continued"] = bool(
        after and last_src and after[0] in (last_src[0], last_src[0] + 1)
    )
    p = c.get(f"{pods}/{POD}-restored")
    rcid = p["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    task_root = f"{n2.run}/containerd/io.containerd.runtime.v2.task/k8s.io"
    out["rootfs_file_after_restore"] = in_container(
        str(n2.mntns), task_root, rcid, "/tmp/in-rootfs"
    )
    emptydir = Path(podmove.emptydir_paths(p, str(n2.kubelet_root))["scratch"], "in-emptydir")
    out["emptydir_file_after_restore"] = emptydir.read_text().strip() if emptydir.exists() else None
    return out


def _restore_failed(p: Any) -> bool:
    for cs in (p or {}).get("status", {}).get("containerStatuses") or []:
        st = cs.get("state") or {}
        waiting = (st.get("waiting") or {}).get("reason")
        if waiting not in (None, "ContainerCreating", "PodInitializing") or "terminated" in st:
            return True
    return False


def run_rollback_proof() -> dict[str, Any]:
    """A forced restore failure: node2's containerd finds a failing `criu` first on its
    PATH; the restored pod fails to start; the restored pod is deleted and the source,
    frozen through containerd, resumed: its counter continues."""
    c = admin()
    out: dict[str, Any] = {}
    for n in ("counter", "counter-restored"):
        delete_pod(c, n)
    with failing_criu(NODES[1]):
        return _rollback(c, out)


def restart_containerd(h: Host) -> None:
    stop(h, "containerd")
    daemon(
        h,
        "containerd",
        ns(h, [str(PREFIX / "usr/bin/containerd"), "--config", str(h.state / "containerd.toml")]),
    )
    time.sleep(2)


@contextmanager
def failing_criu(h: Host) -> Iterator[None]:
    """A `criu` that fails, first on the PATH of the node's containerd (so runc's)."""
    h.bin_dir.mkdir(parents=True, exist_ok=True)
    fake = h.bin_dir / "criu"
    fake.write_text("#!/bin/sh\necho 'ferryman fault test: criu fails on this node' >&2\nexit 1\n")
    fake.chmod(0o755)
    restart_containerd(h)
    try:
        yield
    finally:
        fake.unlink(missing_ok=True)
        restart_containerd(h)


def _rollback(c: Client, out: dict[str, Any]) -> dict[str, Any]:
    n1, n2 = NODES
    pods = "/api/v1/namespaces/default/pods"
    c.create(pods, pod_spec("counter", n1.node_name, WORKLOAD_IMAGE))
    src = c.wait_for(f"{pods}/counter", pod_ready, 60)
    time.sleep(2)
    cid = src["status"]["containerStatuses"][0]["containerID"].split("://")[1]
    ssh(n1, podmove.ctr_task("pause", cid))
    frozen_ns = time.time_ns()
    last = last_heartbeat(c, "counter")
    out["source_last_counter"] = last[0]
    items = c.checkpoint(n1.node_name, "default", "counter", "counter")
    img = oci.checkpoint_image(Path(items[0]).read_bytes(), "counter")
    tag = str(int(time.time()))
    Registry(f"unix:{REGISTRY_SOCKET}").push("ferryman/counter-checkpoint", tag, img)
    c.create(
        pods,
        podmove.restored_pod(
            src,
            n2.node_name,
            {"counter": f"{REGISTRY}/ferryman/counter-checkpoint:{tag}"},
            name="counter-restored",
        ),
    )
    t = time.monotonic()
    p = c.wait_for(f"{pods}/counter-restored", _restore_failed, 60)
    out["restore_failed_after_s"] = round(time.monotonic() - t, 2)
    cs = p["status"]["containerStatuses"][0]["state"]
    out["restored_state"] = {k: {kk: str(vv)[:400] for kk, vv in v.items()} for k, v in cs.items()}
    # rollback: remove the restored pod, resume the source
    t = time.monotonic()
    delete_pod(c, "counter-restored")
    ssh(n1, podmove.ctr_task("resume", cid))
    out["rollback_s"] = round(time.monotonic() - t, 2)
    time.sleep(1.5)
    after = heartbeats_since(c, "counter", frozen_ns)
    out["source_after_resume"] = after[:3] + after[-1:]
    out["source_continued"] = bool(after) and after[0] in (last[0], last[0] + 1)
    out["source_pod"] = summary(c.get(f"{pods}/counter"))
    return out


if __name__ == "__main__":
    print(
        json.dumps({"move": run_proof(), "forced_restore_failure": run_rollback_proof()}, indent=1)
    )
