"""The pure decisions of `ferryman migrate POD` (core/k8s/podmigration.py), the hosts
file's `clusters:` (core/config.py), and which moves the CLI takes for pod moves."""

from __future__ import annotations

import argparse

import pytest

from core.config import ConfigError, load
from core.k8s import podmigration as pm
from core.k8s.podmove import why_not_movable

HOSTS = (
    "hosts:\n"
    "  - {name: n1, address: 10.0.0.1}\n"
    "  - {name: n2, address: 10.0.0.2}\n"
    "  - {name: docker1, address: 10.0.0.3}\n"
)


def write(tmp_path, text: str):
    p = tmp_path / "hosts.yaml"
    p.write_text(text)
    return p


def err(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    return str(e.value)


def test_clusters_load_with_their_nodes_and_kubelet_roots(tmp_path):
    inv = load(
        write(
            tmp_path,
            HOSTS + "clusters:\n"
            "  - name: prod\n"
            "    kubeconfig: ~/.kube/config\n"
            "    context: admin\n"
            "    nodes: {node-a: n1, node-b: n2}\n"
            "    kubelet_root: {node-b: /srv/kubelet}\n",
        )
    )
    [c] = inv.clusters
    assert c.name == "prod" and c.context == "admin"
    assert not c.kubeconfig.startswith("~")
    assert c.root_of("node-a") == "/var/lib/kubelet" and c.root_of("node-b") == "/srv/kubelet"
    assert c.node_of("node-b") == "node-b" and c.node_of("n2") == "node-b"
    assert c.node_of("docker1") is None
    assert inv.cluster() is c and inv.cluster("prod") is c
    with pytest.raises(ConfigError, match="no cluster named 'x'.*clusters: prod"):
        inv.cluster("x")


def test_a_hosts_file_without_clusters_says_how_to_add_one(tmp_path):
    inv = load(write(tmp_path, HOSTS))
    assert inv.clusters == ()
    with pytest.raises(ConfigError, match="names no Kubernetes cluster; add `clusters:`"):
        inv.cluster()


def test_cluster_errors_name_the_line_and_the_fix(tmp_path):
    base = HOSTS + "clusters:\n  - name: prod\n    kubeconfig: /k\n"
    assert "cluster is missing 'nodes'" in err(tmp_path, base)
    m = err(tmp_path, base + "    nodes: {node-a: nx}\n")
    assert "node 'node-a' names host 'nx', which is not in `hosts:`" in m and ":8:" in m
    m = err(tmp_path, base + "    nodes: {node-a: n1}\n    kubeconfg: /x\n")
    assert "unknown cluster key 'kubeconfg'" in m and "did you mean 'kubeconfig'" in m
    m = err(tmp_path, base + "    nodes: {node-a: n1}\n    kubelet_root: rel/path\n")
    assert "must be an absolute path" in m
    m = err(tmp_path, base + "    nodes: {node-a: n1}\n    kubelet_root: {node-z: /x}\n")
    assert "kubelet_root names 'node-z', which is not in `nodes:`" in m
    assert "`clusters:` must be a list" in err(tmp_path, HOSTS + "clusters: {}\n")
    assert "expected `hosts:` or `clusters:`" in err(tmp_path, HOSTS + "cluster: []\n")
    two = base + "    nodes: {node-a: n1}\n"
    assert "used twice" in err(
        tmp_path, two + "  - name: prod\n    kubeconfig: /k\n    nodes: {b: n2}\n"
    )


def test_several_clusters_need_a_name(tmp_path):
    inv = load(
        write(
            tmp_path,
            HOSTS + "clusters:\n"
            "  - {name: a, kubeconfig: /k, nodes: {x: n1}}\n"
            "  - {name: b, kubeconfig: /k, nodes: {y: n2}}\n",
        )
    )
    with pytest.raises(ConfigError, match="several clusters \\(a, b\\): say which with --cluster"):
        inv.cluster()
    assert inv.cluster("b").nodes == {"y": "n2"}


def _pod(**over):
    pod = {
        "metadata": {"name": "counter", "namespace": "default", "uid": "u-1"},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "c", "image": "img:1"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "c", "state": {"running": {}}, "containerID": "containerd://abc123"}
            ],
        },
    }
    for k, v in over.items():
        pod[k].update(v)
    return pod


def _node(name, ready="True"):
    return {
        "metadata": {"name": name},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletNotReady"}],
            "nodeInfo": {
                "containerRuntimeVersion": "containerd://2.1.9",
                "kubeletVersion": "v1.35.4",
            },
        },
    }


TOOLS = {
    "node-a": {"criu": "Version: 4.2.1", "ctr": "ctr 2.1.9"},
    "node-b": {"criu": "4.2.1", "ctr": "x"},
}


def test_preflight_passes_a_bare_pod_with_an_emptydir():
    assert pm.preflight_refusals(_pod(), _node("node-a"), _node("node-b"), {}, TOOLS) == []
    assert pm.container_ids(_pod()) == {"c": "abc123"}


def test_preflight_refuses_with_the_reason_and_the_fix():
    off = {"kubeletconfig": {"featureGates": {"ContainerCheckpoint": False}}}
    tools = {**TOOLS, "node-b": {"criu": None, "ctr": "x"}}
    owned = _pod(
        metadata={"ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}]},
        spec={"volumes": [{"name": "data", "hostPath": {"path": "/srv"}}]},
    )
    why = pm.preflight_refusals(owned, _node("node-a"), _node("node-b", "False"), off, tools)
    text = "; ".join(map(str, why))
    assert "owned by Deployment web" in text and "kubectl cordon" in text
    assert "hostPath volume cannot move" in text
    assert "node node-b: not Ready (KubeletNotReady)" in text
    assert "ContainerCheckpoint feature gate is off" in text
    assert "node node-b: criu does not run there" in text and "install CRIU" in text
    assert pm._fix_of(why)
    assert "does not exist" in str(
        pm.preflight_refusals(_pod(), _node("node-a"), None, {}, TOOLS)[0]
    )
    # An owner that is not a controller (e.g. a plain reference) is no reason.
    ref = _pod(metadata={"ownerReferences": [{"kind": "ConfigMap", "name": "x"}]})
    assert why_not_movable(ref) == []


def test_restore_failure_tells_a_failing_restore_from_a_slow_one():
    creating = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ],
        }
    }
    assert pm.restore_failure(creating) == ""
    assert pm.restore_failure({"status": {"phase": "Pending"}}) == ""
    failed = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "c",
                    "state": {
                        "terminated": {
                            "reason": "StartError",
                            "exitCode": 128,
                            "message": "CRIU version check failed",
                        }
                    },
                }
            ],
        }
    }
    assert "StartError" in pm.restore_failure(failed)
    init = {
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {
                    "name": "ferryman-wait",
                    "state": {"terminated": {"reason": "Error", "exitCode": 1}},
                }
            ],
        }
    }
    assert "ferryman-wait: Error" in pm.restore_failure(init)
    done_init = {
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {
                    "name": "ferryman-wait",
                    "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                }
            ],
        }
    }
    assert pm.restore_failure(done_init) == ""
    pull = {
        "status": {
            "containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": "ErrImagePull", "message": "no"}}}
            ]
        }
    }
    assert "ErrImagePull" in pm.restore_failure(pull)
    assert pm.restore_failure(None) == "the restored pod is gone"


def test_restored_names_and_image_refs():
    mid = "20261201-152459-290fc0"
    assert pm.restored_name("counter", mid) == "counter-m290fc0"
    assert pm.restored_name("counter-m290fc0", "20261201-160000-aaaaaa") == "counter-maaaaaa"
    assert len(pm.restored_name("x" * 253, mid)) <= 253
    ref = pm.image_ref("default", "Counter", "c_1", mid)
    assert ref == f"ferryman.local/checkpoint/default-counter-c_1:{mid}"


def test_the_cli_takes_a_move_to_a_cluster_node_as_a_pod_move(tmp_path):
    from ferryman.commands import _is_pod_move

    inv = load(
        write(tmp_path, HOSTS + "clusters:\n  - {name: a, kubeconfig: /k, nodes: {x: n1}}\n")
    )
    ns = lambda **kw: argparse.Namespace(**{"namespace": None, "cluster": None, **kw})  # noqa: E731
    assert _is_pod_move(inv, ns(target="x"))
    assert _is_pod_move(inv, ns(target="n1"))  # the node's host
    assert not _is_pod_move(inv, ns(target="docker1"))
    assert _is_pod_move(inv, ns(target="docker1", namespace="default"))


def test_pod_rows_say_per_node_why_a_pod_cannot_move():
    owned = _pod(
        metadata={
            "name": "web-1",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "controller": True}],
        },
        spec={"nodeName": "node-b"},
    )
    rows = pm.pod_rows("prod", [owned, _pod()])
    assert [(r.node, r.name) for r in rows] == [("node-a", "counter"), ("node-b", "web-1")]
    assert rows[0].why_not == "" and rows[0].phase == "Running" and rows[0].containers == 1
    assert rows[1].why_not.startswith("owned by ReplicaSet web")


def test_a_node_whose_kubelet_lost_its_runtime_is_refused_once():
    n = _node("node-b")
    n["status"]["nodeInfo"]["containerRuntimeVersion"] = "containerd://Unknown"
    why = pm.preflight_refusals(_pod(), _node("node-a"), n, {}, TOOLS)
    assert len(why) == 1 and "does not reach its container runtime" in str(why[0])


def test_a_pod_as_a_console_row_is_on_its_nodes_host(tmp_path):
    inv = load(
        write(tmp_path, HOSTS + "clusters:\n  - {name: a, kubeconfig: /k, nodes: {x: n1}}\n")
    )
    [row] = pm.pod_rows("a", [_pod(spec={"nodeName": "x"})])
    info = pm.pod_info(inv, row)
    assert info.host == "n1" and info.name == "default/counter" and info.id.startswith("pod:")
    assert info.migratable and info.why_not == ""


def test_a_streamed_archive_holds_what_the_in_memory_one_does():
    import io
    import os
    import tarfile

    from core.k8s import oci

    data = os.urandom(3000)
    ref = "ferryman.local/checkpoint/x:1"
    whole = oci.oci_archive(oci.checkpoint_image(data, "c"), ref)
    config, manifest = oci.checkpoint_image_file(oci.digest(data), len(data), "c")
    head, tail = oci.streamed_archive(config, manifest, oci.digest(data), len(data), ref)

    def members(b: bytes) -> dict[str, bytes | None]:
        with tarfile.open(fileobj=io.BytesIO(b)) as t:
            return {
                m.name: (t.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                for m in t.getmembers()
            }

    assert members(head + data + tail) == members(whole)
    assert len(head) % 512 == 0 and (len(head) + len(data) + len(tail)) % 512 == 0
