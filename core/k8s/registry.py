"""A small client of an OCI distribution registry (v2 API): push blobs and a manifest,
read a manifest. Plain HTTP over TCP or a UNIX socket (the lab's registry listens on a
socket); stdlib only."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.k8s.oci import MANIFEST, Blob, Image


class RegistryError(RuntimeError):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


@dataclass(frozen=True)
class Registry:
    """`unix:/path/to.sock` or `host:port` (plain HTTP: a registry on loopback)."""

    address: str
    timeout: float = 60.0

    def _conn(self) -> http.client.HTTPConnection:
        if self.address.startswith("unix:"):
            return _UnixConnection(self.address[5:], self.timeout)
        host, _, port = self.address.rpartition(":")
        return http.client.HTTPConnection(host, int(port), timeout=self.timeout)

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        c = self._conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except OSError as e:
            raise RegistryError(f"registry {self.address}: {method} {path}: {e}") from e
        finally:
            c.close()

    def has_blob(self, repo: str, digest: str) -> bool:
        status, _, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}")
        return status == 200

    def push_blob(self, repo: str, blob: Blob) -> None:
        self.push_blob_bytes(repo, blob.digest, blob.data)

    def push_blob_bytes(self, repo: str, digest: str, data: bytes) -> None:
        if self.has_blob(repo, digest):
            return
        status, headers, body = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202 or "location" not in headers:
            raise RegistryError(
                f"registry {self.address}: upload refused ({status}): {body[:200]!r}"
            )
        loc = urlsplit(headers["location"])
        path = loc.path + "?" + (loc.query + "&" if loc.query else "") + f"digest={digest}"
        status, _, body = self._request(
            "PUT",
            path,
            body=data,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        if status != 201:
            raise RegistryError(
                f"registry {self.address}: blob {digest} refused ({status}): {body[:200]!r}"
            )

    def push_manifest(self, repo: str, tag: str, manifest: bytes) -> None:
        status, _, body = self._request(
            "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest, headers={"Content-Type": MANIFEST}
        )
        if status != 201:
            raise RegistryError(
                f"registry {self.address}: manifest {repo}:{tag} refused ({status}): {body[:300]!r}"
            )

    def push(self, repo: str, tag: str, image: Image) -> str:
        """Push an image; returns its manifest digest."""
        for b in image.blobs:
            self.push_blob(repo, b)
        self.push_manifest(repo, tag, image.manifest)
        return image.manifest_digest

    def manifest(self, repo: str, ref: str) -> dict[str, Any] | None:
        status, _, body = self._request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST}
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"registry {self.address}: manifest {repo}:{ref}: {status}")
        doc: dict[str, Any] = json.loads(body)
        return doc
