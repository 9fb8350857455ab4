"""The runtime path of a pod move on the Kubernetes lab (lab/k8s): real kube-apiserver,
kubelets, containerd 2.1, CRIU, sshd. Not in the default run (pyproject's
norecursedirs): `sudo lab/k8s/build.sh && sudo .venv/bin/pytest tests/lab_k8s` runs it.
The binaries' cold build takes ~26 min (one core), which CI does not pay until pod
migration is in the engine."""

from __future__ import annotations

import os

import pytest

if os.geteuid() != 0:
    pytest.skip("the Kubernetes lab needs root (namespaces, kubelets)", allow_module_level=True)


@pytest.fixture(scope="module")
def cluster():
    from lab.k8s import cluster

    cluster.up()
    yield cluster
    cluster.down()


def _pods_on(cluster, node):
    c = cluster.admin()
    items = c.get("/api/v1/namespaces/default/pods")["items"]
    return [p["metadata"]["name"] for p in items if p["spec"].get("nodeName") == node]


def test_pod_moves_with_its_memory_rootfs_and_emptydir(cluster):
    from lab.k8s import prove
    from lab.k8s.layout import NODES

    out = prove.run_proof()
    assert out["counter_continued"], out
    assert out["source_printed_while_frozen"] == [], out
    assert out["source_freezer_after_checkpoint"] == "FROZEN"
    assert out["rootfs_file_after_restore"] == "changed"
    assert out["emptydir_file_after_restore"] == "kept"
    # Nothing left on the source node: no pod, no container process in its cgroups.
    assert _pods_on(cluster, NODES[0].node_name) == []
    assert _pods_on(cluster, NODES[1].node_name) == ["counter-restored"]


def test_forced_restore_failure_leaves_the_pod_running_on_the_source(cluster):
    from lab.k8s import prove
    from lab.k8s.layout import NODES

    out = prove.run_rollback_proof()
    assert out["restored_state"]["terminated"]["reason"] == "StartError", out
    assert out["source_continued"], out
    assert out["source_pod"].startswith("phase Running")
    assert _pods_on(cluster, NODES[1].node_name) == []
    assert _pods_on(cluster, NODES[0].node_name) == ["counter"]
