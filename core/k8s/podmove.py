"""The pure parts of a pod move: why a pod cannot move, the restored pod's manifest,
where a pod's emptyDir volumes and cgroups are on its node, and the node commands a move
runs (argument lists, quoted once by core.remote).

The I/O (the API client, SSH) is elsewhere; these functions take the objects the API
server returned and give back data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

# Volumes whose content the move carries or the target node makes anew.
RECREATED = ("configMap", "secret", "projected", "downwardAPI")  # the kubelet fills them again
COPIED = ("emptyDir",)  # ferryman copies their files (node A -> node B)
# Everything else (hostPath, persistentVolumeClaim, nfs, csi, ephemeral, ...) is refused.

MIGRATION_ANNOTATION = "ferryman.io/migrated-from"


@dataclass(frozen=True)
class Refusal:
    field: str
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" + (f" ({self.fix})" if self.fix else "")


def volume_kind(v: dict[str, Any]) -> str:
    return next((k for k in v if k != "name"), "unknown")


def why_not_movable(pod: dict[str, Any], *, allow_owned: bool = False) -> list[Refusal]:
    """Reasons why this pod cannot move (empty: it can)."""
    out: list[Refusal] = []
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    if status.get("phase") != "Running":
        out.append(
            Refusal("status.phase", f"the pod is {status.get('phase') or 'unknown'}, not Running")
        )
    if meta.get("deletionTimestamp"):
        out.append(Refusal("metadata.deletionTimestamp", "the pod is being deleted"))
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if owners and not allow_owned:
        o = owners[0]
        out.append(
            Refusal(
                "metadata.ownerReferences",
                f"owned by {o.get('kind')} {o.get('name')}: the controller would replace the "
                "moved pod (deleting the source makes it start a fresh copy, and it may "
                "delete the restored one as a surplus), so two copies would run",
                f"a {o.get('kind')}'s pods are replaced, not moved: let the controller "
                "reschedule it (kubectl cordon the node, kubectl delete the pod), or run "
                "the workload as a pod of its own to move it live",
            )
        )
    for v in spec.get("volumes") or []:
        kind = volume_kind(v)
        if kind in RECREATED or kind in COPIED:
            continue
        out.append(
            Refusal(
                f"spec.volumes[{v.get('name')}]",
                f"a {kind} volume cannot move with the pod",
                "only emptyDir (copied), configMap, secret, projected and downwardAPI volumes move",
            )
        )
    if spec.get("hostNetwork"):
        out.append(Refusal("spec.hostNetwork", "a pod on the node's network cannot move"))
    if spec.get("hostPID") or spec.get("hostIPC"):
        out.append(
            Refusal(
                "spec.hostPID/hostIPC", "a pod sharing the node's PID or IPC namespace cannot move"
            )
        )
    if spec.get("ephemeralContainers"):
        out.append(
            Refusal(
                "spec.ephemeralContainers", "ephemeral (debug) containers cannot be checkpointed"
            )
        )
    running = {
        c.get("name")
        for c in status.get("containerStatuses") or []
        if "running" in (c.get("state") or {})
    }
    for c in spec.get("containers") or []:
        if c.get("name") not in running:
            out.append(Refusal(f"spec.containers[{c.get('name')}]", "the container is not running"))
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            out.append(
                Refusal(
                    f"spec.initContainers[{c.get('name')}]",
                    "sidecar containers are not handled yet",
                )
            )
    return out


WAIT_CONTAINER = "ferryman-wait"
READY_MARK = ".ferryman-ready"
# Waits until ferryman has copied every emptyDir volume and marked it (at most ~60 s:
# then it fails, and so does the restored pod, which the move then rolls back).
WAIT_SCRIPT = (
    'for d in "$@"; do i=0; until [ -e "$d/' + READY_MARK + '" ]; do i=$((i+1)); '
    '[ $i -gt 600 ] && echo "ferryman: $d was never filled" >&2 && exit 1; sleep 0.1; done; '
    'rm -f "$d/' + READY_MARK + '"; done'
)


def restored_pod(
    source: dict[str, Any],
    target_node: str,
    images: dict[str, str],
    *,
    name: str | None = None,
    source_node: str | None = None,
    wait_image: str | None = None,
    keep_owner: bool = False,
) -> dict[str, Any]:
    """The pod to create on `target_node`: the source's spec, bound to the target
    (spec.nodeName: no scheduler involved), each container's image its checkpoint image
    (`images`: container name -> image reference), pulled if absent. What the API server
    set (uid, resourceVersion, status, ...) is left out.

    The source's init containers ran already (their effects are in the volumes that
    move): they are left out. With `wait_image` (an image with /bin/sh, e.g. the source
    container's own), and emptyDir volumes to carry, the pod gets one init container
    instead that holds the restore until ferryman has filled each emptyDir folder on the
    target and left READY_MARK in it: the checkpoint does not hold volume contents, and
    the restored processes must find their files there."""
    missing = [c["name"] for c in source["spec"]["containers"] if c["name"] not in images]
    if missing:
        raise ValueError(f"no checkpoint image for container(s) {', '.join(missing)}")
    meta = source.get("metadata") or {}
    spec = copy.deepcopy(source["spec"])
    spec["nodeName"] = target_node
    for key in ("nodeSelector", "affinity"):  # bound by name: scheduling rules do not apply
        spec.pop(key, None)
    for c in spec["containers"]:
        c["image"] = images[c["name"]]
        c["imagePullPolicy"] = "IfNotPresent"
    spec.pop("initContainers", None)
    empty = [v["name"] for v in spec.get("volumes") or [] if volume_kind(v) == "emptyDir"]
    if wait_image and empty:
        spec["initContainers"] = [
            {
                "name": WAIT_CONTAINER,
                "image": wait_image,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "/bin/sh",
                    "-c",
                    WAIT_SCRIPT,
                    WAIT_CONTAINER,
                    *(f"/ferryman/{v}" for v in empty),
                ],
                "volumeMounts": [{"name": v, "mountPath": f"/ferryman/{v}"} for v in empty],
            }
        ]
    annotations = dict(meta.get("annotations") or {})
    annotations[MIGRATION_ANNOTATION] = (
        f"{source_node or source['spec'].get('nodeName', '')}/{meta.get('uid', '')}"
    )
    new_meta: dict[str, Any] = {
        "name": name or meta["name"],
        "namespace": meta.get("namespace", "default"),
        "labels": dict(meta.get("labels") or {}),
        "annotations": annotations,
    }
    # Not by default: a ReplicaSet that counts the restored pod beside the source one
    # deletes the surplus, and it ranks the newer, more recently ready pod first. Untried
    # here (the lab runs no controller manager).
    if keep_owner and meta.get("ownerReferences"):
        new_meta["ownerReferences"] = copy.deepcopy(meta["ownerReferences"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": new_meta, "spec": spec}


def emptydir_paths(pod: dict[str, Any], kubelet_root: str = "/var/lib/kubelet") -> dict[str, str]:
    """Where the kubelet keeps each emptyDir volume of the pod on its node."""
    uid = pod["metadata"]["uid"]
    return {
        v["name"]: f"{kubelet_root}/pods/{uid}/volumes/kubernetes.io~empty-dir/{v['name']}"
        for v in pod["spec"].get("volumes") or []
        if volume_kind(v) == "emptyDir"
    }


def qos_class(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("qosClass") or "BestEffort")


def pod_cgroup(pod: dict[str, Any], cgroup_root: str = "/") -> str:
    """The pod's cgroup (kubelet with the cgroupfs driver), relative to a hierarchy's
    mount: {root}/kubepods[/burstable|/besteffort]/pod<uid>."""
    qos = qos_class(pod)
    parts = [cgroup_root.strip("/"), "kubepods"]
    if qos != "Guaranteed":
        parts.append(qos.lower())
    parts.append("pod" + pod["metadata"]["uid"])
    return "/" + "/".join(p for p in parts if p)


def freezer_argv(cgroup: str, freeze: bool, *, v2: bool = False) -> list[str]:
    """Freeze or thaw a pod's cgroup on its node (v1: freezer.state; v2: cgroup.freeze)."""
    if v2:
        path, value = f"/sys/fs/cgroup{cgroup}/cgroup.freeze", "1" if freeze else "0"
    else:
        path, value = (
            f"/sys/fs/cgroup/freezer{cgroup}/freezer.state",
            "FROZEN" if freeze else "THAWED",
        )
    return ["sh", "-c", 'printf %s "$1" > "$2"', "freezer", value, path]


def ctr_task(action: str, container_id: str, *extra: str, address: str | None = None) -> list[str]:
    """containerd's own pause / resume / kill of a pod's container on its node.

    The freeze of a move is `pause` through containerd (not a write to the freezer):
    the CRI checkpoint pauses and resumes a running task itself, but leaves a task that
    containerd already has paused as it found it, so the source stays frozen after its
    checkpoint (a cgroup frozen behind containerd's back makes the checkpoint fail:
    "OCI runtime pause failed: container not running"). Rollback: `resume`. Commit:
    `kill -s SIGKILL` while frozen (runc signals the frozen tasks, then thaws them: they
    die without running; a `resume` after it finds no task)."""
    addr = ["--address", address] if address else []
    return ["ctr", *addr, "-n", "k8s.io", "task", action, *extra, container_id]


def tar_out_argv(folder: str) -> list[str]:
    """A volume's files as a tar on stdout (node A)."""
    return ["tar", "-C", folder, "--numeric-owner", "-cf", "-", "."]


def tar_in_argv(folder: str) -> list[str]:
    """A tar from stdin into a volume folder (node B), owners kept."""
    return ["tar", "-C", folder, "--numeric-owner", "--same-permissions", "-xf", "-"]


def wait_folder_argv(folder: str, timeout_s: float = 30) -> list[str]:
    """Waits (on node B) until the kubelet has made the restored pod's volume folder."""
    return [
        "sh",
        "-c",
        'i=0; until [ -d "$1" ]; do i=$((i+1)); [ $i -gt $2 ] && exit 1; sleep 0.05; done',
        "wait_folder",
        folder,
        str(int(timeout_s * 20)),
    ]


def mark_ready_argv(folder: str) -> list[str]:
    """Tells the restored pod's wait container that this folder is filled."""
    return ["touch", f"{folder}/{READY_MARK}"]


def _minor(version: str) -> tuple[int, int]:
    """'v1.35.4' -> (1, 35); 'containerd://2.1.9' -> (2, 1); unknown -> (0, 0)."""
    v = version.rsplit("/", 1)[-1].lstrip("v")
    try:
        major, minor = v.split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except ValueError:
        return 0, 0


def node_refusals(
    node: dict[str, Any] | None, configz: dict[str, Any] | None, *, role: str
) -> list[Refusal]:
    """Why a node cannot take part in a pod move (`role`: "source" or "target"): not
    there, not Ready, a runtime without checkpoint/restore, the kubelet's gate off.
    `configz` is the kubelet's /configz answer (through the API server's node proxy)."""
    if node is None:
        return [Refusal("node", f"the {role} node does not exist")]
    name = node["metadata"]["name"]
    out: list[Refusal] = []
    conds = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
    ready = conds.get("Ready") or {}
    if ready.get("status") != "True":
        out.append(
            Refusal(
                f"node {name}",
                f"not Ready ({ready.get('reason') or ready.get('status') or 'no status'})",
            )
        )
    if (node.get("spec") or {}).get("unschedulable") and role == "target":
        out.append(Refusal(f"node {name}", "cordoned (spec.unschedulable)", "uncordon it first"))
    info = (node.get("status") or {}).get("nodeInfo") or {}
    runtime = str(info.get("containerRuntimeVersion", ""))
    kubelet = str(info.get("kubeletVersion", ""))
    if runtime.rsplit("/", 1)[-1].lower() == "unknown":
        out.append(
            Refusal(
                f"node {name}",
                f"its kubelet does not reach its container runtime ({runtime})",
                "check containerd on the node; retry once the node reports its version again",
            )
        )
    elif runtime.startswith("containerd://"):
        if _minor(runtime) < (2, 1) and role == "target":
            out.append(
                Refusal(
                    f"node {name}",
                    f"{runtime}: restore from a checkpoint image needs containerd ≥ 2.1",
                )
            )
        if _minor(runtime) < (1, 7):
            out.append(Refusal(f"node {name}", f"{runtime}: CRI checkpoint needs containerd ≥ 1.7"))
    elif not runtime.startswith("cri-o://"):
        out.append(
            Refusal(f"node {name}", f"runtime {runtime or 'unknown'} has no CRI checkpoint/restore")
        )
    if _minor(kubelet) < (1, 25):
        out.append(
            Refusal(f"node {name}", f"kubelet {kubelet or 'unknown'} has no checkpoint API (1.25+)")
        )
    if role == "source":
        gates = ((configz or {}).get("kubeletconfig") or {}).get("featureGates") or {}
        on_by_default = _minor(kubelet) >= (1, 30)
        if not gates.get("ContainerCheckpoint", on_by_default):
            out.append(
                Refusal(
                    f"node {name}",
                    "the kubelet's ContainerCheckpoint feature gate is off",
                    "featureGates: {ContainerCheckpoint: true} in its configuration",
                )
            )
    return out
