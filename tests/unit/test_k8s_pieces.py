"""The pure parts of the Kubernetes pod move (core/k8s): OCI documents, kubeconfig,
API paths, movability, the restored pod."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import yaml

from core.k8s import oci, podmove
from core.k8s.api import (
    KubeError,
    checkpoint_path,
    load_kubeconfig,
    node_ready,
    object_path,
    pod_ready,
)
from core.remote import quote


def test_checkpoint_image_is_one_layer_annotated_with_the_container():
    tar = b"checkpoint tar bytes"
    img = oci.checkpoint_image(tar, "counter")
    m = json.loads(img.manifest)
    assert m["mediaType"] == oci.MANIFEST
    assert m["annotations"][oci.CHECKPOINT_NAME] == "counter"
    assert m["layers"] == [
        {
            "mediaType": oci.LAYER_TAR,
            "digest": "sha256:" + hashlib.sha256(tar).hexdigest(),
            "size": len(tar),
        }
    ]
    cfg = json.loads(img.config.data)
    assert m["config"]["digest"] == oci.digest(img.config.data)
    assert cfg["rootfs"]["diff_ids"] == [m["layers"][0]["digest"]]
    assert img.manifest_digest == oci.digest(img.manifest)
    assert [b.digest for b in img.blobs] == [m["config"]["digest"], m["layers"][0]["digest"]]


def test_checkpoint_image_file_matches_the_in_memory_one():
    tar = b"x" * 1000
    img = oci.checkpoint_image(tar, "app")
    config, manifest = oci.checkpoint_image_file(oci.digest(tar), len(tar), "app")
    assert config == img.config.data
    assert manifest == img.manifest


def test_checkpoint_image_needs_a_container_name():
    with pytest.raises(ValueError):
        oci.checkpoint_image(b"", "")


def test_rootfs_image_names_its_command():
    img = oci.rootfs_image(b"tar", cmd=["/workload"])
    cfg = json.loads(img.config.data)
    assert cfg["config"]["Cmd"] == ["/workload"]
    assert "annotations" not in json.loads(img.manifest)


def _kubeconfig(tmp_path, **user):
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://10.79.0.10:6443/",
                    "certificate-authority-data": base64.b64encode(b"CA").decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "apps"}}
        ],
        "current-context": "ctx",
    }
    p = tmp_path / "kubeconfig"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_kubeconfig_with_embedded_client_certificate(tmp_path):
    p = _kubeconfig(
        tmp_path,
        **{
            "client-certificate-data": base64.b64encode(b"CERT").decode(),
            "client-key-data": base64.b64encode(b"KEY").decode(),
        },
    )
    c = load_kubeconfig(p)
    assert (c.server, c.ca_pem, c.cert_pem, c.key_pem, c.namespace) == (
        "https://10.79.0.10:6443",
        b"CA",
        b"CERT",
        b"KEY",
        "apps",
    )


def test_kubeconfig_with_token_file_relative_to_the_file(tmp_path):
    (tmp_path / "tok").write_text("secret\n")
    c = load_kubeconfig(_kubeconfig(tmp_path, tokenFile="tok"), "ctx")
    assert c.token == "secret"


def test_kubeconfig_errors_name_the_file_and_the_context(tmp_path):
    p = _kubeconfig(tmp_path, token="t")
    with pytest.raises(KubeError, match="no context 'other'.*has: ctx"):
        load_kubeconfig(p, "other")
    with pytest.raises(KubeError, match="nothere"):
        load_kubeconfig(tmp_path / "nothere")


def test_paths_are_quoted():
    assert object_path("pods", "a b", "default") == "/api/v1/namespaces/default/pods/a%20b"
    assert (
        object_path("deployments", namespace="x", group="apps/v1")
        == "/apis/apps/v1/namespaces/x/deployments"
    )
    assert checkpoint_path("fk-node1", "default", "p", "c", 30) == (
        "/api/v1/nodes/fk-node1/proxy/checkpoint/default/p/c?timeout=30"
    )


def _pod(**over):
    pod = {
        "metadata": {
            "name": "counter",
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": "9",
            "labels": {"app": "counter"},
        },
        "spec": {
            "nodeName": "fk-node1",
            "containers": [{"name": "c", "image": "img:1"}],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "kube-api-access-x", "projected": {"sources": []}},
            ],
        },
        "status": {
            "phase": "Running",
            "qosClass": "BestEffort",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "c", "state": {"running": {}}}],
        },
    }
    for k, v in over.items():
        pod[k].update(v)
    return pod


def test_a_running_pod_with_emptydir_and_token_volume_can_move():
    assert podmove.why_not_movable(_pod()) == []
    assert pod_ready(_pod())
    assert node_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert not node_ready({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})


def test_refusals_say_why_and_how():
    pod = _pod(
        spec={
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}],
            "hostNetwork": True,
        },
        metadata={"ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": True}]},
    )
    why = {r.field: str(r) for r in podmove.why_not_movable(pod)}
    assert "persistentVolumeClaim volume cannot move" in why["spec.volumes[data]"]
    assert "ReplicaSet web-1" in why["metadata.ownerReferences"]
    assert "spec.hostNetwork" in why
    assert "metadata.ownerReferences" not in {
        r.field for r in podmove.why_not_movable(pod, allow_owned=True)
    }
    pending = _pod(status={"phase": "Pending", "containerStatuses": []})
    assert {r.field for r in podmove.why_not_movable(pending)} == {
        "status.phase",
        "spec.containers[c]",
    }


def test_restored_pod_is_bound_to_the_target_with_checkpoint_images():
    src = _pod(spec={"nodeSelector": {"zone": "a"}})
    new = podmove.restored_pod(src, "fk-node2", {"c": "127.0.0.1:5000/ck:1"}, name="counter-2")
    assert new["spec"]["nodeName"] == "fk-node2"
    assert new["spec"]["containers"][0]["image"] == "127.0.0.1:5000/ck:1"
    assert new["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "nodeSelector" not in new["spec"]
    assert new["metadata"]["name"] == "counter-2"
    assert "uid" not in new["metadata"] and "resourceVersion" not in new["metadata"]
    assert new["metadata"]["annotations"][podmove.MIGRATION_ANNOTATION] == "fk-node1/u-1"
    assert "status" not in new
    owned = _pod(
        metadata={"ownerReferences": [{"kind": "ReplicaSet", "name": "r", "controller": True}]}
    )
    assert "ownerReferences" not in podmove.restored_pod(owned, "n", {"c": "i"})["metadata"]
    assert podmove.restored_pod(owned, "n", {"c": "i"}, keep_owner=True)["metadata"][
        "ownerReferences"
    ]
    assert src["spec"]["nodeName"] == "fk-node1"  # the source object is untouched
    with pytest.raises(ValueError, match="container"):
        podmove.restored_pod(src, "fk-node2", {})


def test_node_paths_of_a_pod():
    pod = _pod()
    assert podmove.emptydir_paths(pod, "/var/lib/ferryman-k8s/node1/kubelet") == {
        "scratch": "/var/lib/ferryman-k8s/node1/kubelet/pods/u-1/volumes/kubernetes.io~empty-dir/scratch"
    }
    assert podmove.pod_cgroup(pod, "/fk-node1") == "/fk-node1/kubepods/besteffort/podu-1"
    assert podmove.pod_cgroup(_pod(status={"qosClass": "Guaranteed"})) == "/kubepods/podu-1"


def test_node_commands_are_argument_lists():
    argv = podmove.freezer_argv("/kubepods/besteffort/pod u", True)
    assert argv[-2:] == ["FROZEN", "/sys/fs/cgroup/freezer/kubepods/besteffort/pod u/freezer.state"]
    assert quote(argv).count("'") >= 2
    assert podmove.freezer_argv("/x", False, v2=True)[-2:] == [
        "0",
        "/sys/fs/cgroup/x/cgroup.freeze",
    ]
    assert podmove.tar_out_argv("/a")[:3] == ["tar", "-C", "/a"]


def _node(ready="True", runtime="containerd://2.1.9", kubelet="v1.35.4"):
    return {
        "metadata": {"name": "fk-node2"},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletNotReady"}],
            "nodeInfo": {"containerRuntimeVersion": runtime, "kubeletVersion": kubelet},
        },
    }


def test_node_refusals():
    assert podmove.node_refusals(_node(), {}, role="target") == []
    assert podmove.node_refusals(_node(), {"kubeletconfig": {}}, role="source") == []
    assert "does not exist" in str(podmove.node_refusals(None, None, role="target")[0])
    assert "not Ready (KubeletNotReady)" in str(
        podmove.node_refusals(_node(ready="False"), {}, role="target")[0]
    )
    old = podmove.node_refusals(_node(runtime="containerd://1.7.24"), {}, role="target")
    assert "containerd ≥ 2.1" in str(old[0])
    off = {"kubeletconfig": {"featureGates": {"ContainerCheckpoint": False}}}
    assert "gate is off" in str(podmove.node_refusals(_node(), off, role="source")[0])
    assert "gate is off" in str(
        podmove.node_refusals(_node(kubelet="v1.29.0"), {}, role="source")[0]
    )
    assert "no CRI checkpoint" in str(
        podmove.node_refusals(_node(runtime="docker://20.10"), {}, role="source")[0]
    )


def test_oci_archive_is_an_image_layout_naming_the_image():
    import io
    import tarfile

    img = oci.checkpoint_image(b"tar", "c")
    with tarfile.open(fileobj=io.BytesIO(oci.oci_archive(img, "ferryman.local/ck:1"))) as arch:
        names = set(arch.getnames())
        assert {"oci-layout", "index.json"} <= names
        for b in img.blobs:
            assert f"blobs/sha256/{b.digest.split(':')[1]}" in names
        index = json.loads(arch.extractfile("index.json").read())
        m = index["manifests"][0]
        assert m["digest"] == img.manifest_digest
        assert m["annotations"]["io.containerd.image.name"] == "ferryman.local/ck:1"
        assert arch.extractfile(f"blobs/sha256/{m['digest'].split(':')[1]}").read() == img.manifest


def test_restored_pod_waits_for_its_emptydir_copies():
    src = _pod(spec={"initContainers": [{"name": "setup", "image": "x"}]})
    new = podmove.restored_pod(src, "fk-node2", {"c": "ck"}, wait_image="img:1")
    (wait,) = new["spec"]["initContainers"]
    assert wait["name"] == podmove.WAIT_CONTAINER and wait["image"] == "img:1"
    assert wait["command"][-1] == "/ferryman/scratch"
    assert wait["volumeMounts"] == [{"name": "scratch", "mountPath": "/ferryman/scratch"}]
    assert "initContainers" not in podmove.restored_pod(src, "fk-node2", {"c": "ck"})["spec"]
    assert podmove.mark_ready_argv("/v")[-1] == "/v/" + podmove.READY_MARK
