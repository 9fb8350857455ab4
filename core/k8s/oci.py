"""OCI images as data: a checkpoint image from a kubelet checkpoint tar, a plain image from
a root file system tar. Pure functions: bytes in, JSON documents and digests out; pushing
them is the registry client's job (core/k8s/registry.py).

A checkpoint image (the format CRI-O and containerd ≥ 2.1 restore from, and that
`buildah` makes in Kubernetes' own how-to) is one layer holding the checkpoint tar as it
is, and a manifest annotated `org.criu.checkpoint.container.name` with the name of the
container it was taken from. A pod whose container `image:` is such an image is restored
instead of started.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

CHECKPOINT_NAME = "org.criu.checkpoint.container.name"
# Set by podman/CRI-O/buildah on checkpoint images too; informational for containerd.
CHECKPOINT_ANNOTATIONS = (
    "io.kubernetes.cri-o.annotations.checkpoint.name",
    CHECKPOINT_NAME,
)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(doc: dict[str, Any]) -> bytes:
    """A JSON document as the bytes whose digest names it (sorted keys, no spaces)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return digest(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Image:
    """An image ready to push: its blobs (config first) and its manifest's bytes."""

    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes

    @property
    def manifest_digest(self) -> str:
        return digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


def image_config(
    diff_ids: list[str],
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: list[str] | None = None,
    labels: dict[str, str] | None = None,
    created: str = "1970-01-01T00:00:00Z",
    architecture: str = "amd64",
) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if entrypoint:
        cfg["Entrypoint"] = list(entrypoint)
    if cmd:
        cfg["Cmd"] = list(cmd)
    cfg["Env"] = list(env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    if labels:
        cfg["Labels"] = dict(labels)
    return {
        "architecture": architecture,
        "os": "linux",
        "created": created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }


def manifest(config: Blob, layers: list[Blob], annotations: dict[str, str] | None = None) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical(doc)


def rootfs_image(
    rootfs_tar: bytes,
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    created: str = "1970-01-01T00:00:00Z",
) -> Image:
    """A one-layer image from an uncompressed tar of a root file system."""
    layer = Blob(LAYER_TAR, rootfs_tar)
    config = Blob(
        CONFIG,
        canonical(image_config([layer.digest], entrypoint=entrypoint, cmd=cmd, created=created)),
    )
    return Image(config, (layer,), manifest(config, [layer]))


def checkpoint_image(
    checkpoint_tar: bytes, container: str, *, created: str = "1970-01-01T00:00:00Z"
) -> Image:
    """The checkpoint image of `container` from the tar the kubelet's checkpoint call
    wrote (uncompressed: the layer is the tar itself, so its digest is its diff id)."""
    if not container:
        raise ValueError("a checkpoint image needs the name of the container it restores")
    layer = Blob(LAYER_TAR, checkpoint_tar)
    annotations = {k: container for k in CHECKPOINT_ANNOTATIONS}
    config = Blob(
        CONFIG,
        canonical(image_config([layer.digest], labels=annotations, created=created)),
    )
    return Image(config, (layer,), manifest(config, [layer], annotations))


def checkpoint_image_file(
    tar_digest: str, tar_size: int, container: str, *, created: str = "1970-01-01T00:00:00Z"
) -> tuple[bytes, bytes]:
    """The config and manifest of a checkpoint image whose layer (the checkpoint tar) is
    not in memory: it stays on the node and is uploaded from there. Returns (config
    bytes, manifest bytes); the layer's descriptor is made from its digest and size."""
    if not container:
        raise ValueError("a checkpoint image needs the name of the container it restores")
    annotations = {k: container for k in CHECKPOINT_ANNOTATIONS}
    config = canonical(image_config([tar_digest], labels=annotations, created=created))
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": LAYER_TAR, "digest": tar_digest, "size": tar_size}],
        "annotations": annotations,
    }
    return config, canonical(doc)


def oci_archive(image: Image, ref: str) -> bytes:
    """An OCI image layout as one tar (what `ctr images import` reads), naming the image
    `ref`: for bringing a checkpoint image to a node without a registry push."""
    import io
    import tarfile

    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": MANIFEST,
                    "digest": image.manifest_digest,
                    "size": len(image.manifest),
                    "annotations": {
                        "org.opencontainers.image.ref.name": ref,
                        "io.containerd.image.name": ref,
                    },
                }
            ],
        }
    )
    files: list[tuple[str, bytes]] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", index),
    ]
    for blob in (*image.blobs, Blob(MANIFEST, image.manifest)):
        files.append((f"blobs/sha256/{blob.digest.split(':', 1)[1]}", blob.data))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def streamed_archive(
    config: bytes, manifest_bytes: bytes, layer_digest: str, layer_size: int, ref: str
) -> tuple[bytes, bytes]:
    """The OCI layout tar of `oci_archive`, for a layer that is not in memory (a
    checkpoint tar streamed from the node that has it): returns (head, tail); the archive
    is head + the layer's `layer_size` bytes + tail. `config` and `manifest_bytes` are
    `checkpoint_image_file`'s."""
    import io
    import tarfile

    manifest_digest = digest(manifest_bytes)
    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "annotations": {
                        "org.opencontainers.image.ref.name": ref,
                        "io.containerd.image.name": ref,
                    },
                }
            ],
        }
    )
    files: list[tuple[str, bytes]] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("index.json", index),
        (f"blobs/sha256/{digest(config).split(':', 1)[1]}", config),
        (f"blobs/sha256/{manifest_digest.split(':', 1)[1]}", manifest_bytes),
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    # tarfile.close() added the end-of-archive blocks: cut them, add the layer's header.
    info = tarfile.TarInfo(f"blobs/sha256/{layer_digest.split(':', 1)[1]}")
    info.size, info.mode = layer_size, 0o644
    members = _members_end(body)
    head_bytes = body[:members] + info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    tail = b"\0" * (-layer_size % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)
    return head_bytes, tail


def _members_end(archive: bytes) -> int:
    """Where a tar's last member ends (the start of its end-of-archive zero blocks)."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        last = tar.getmembers()[-1]
    size = last.size if last.isfile() else 0
    return last.offset_data + size + (-size % tarfile.BLOCKSIZE)
