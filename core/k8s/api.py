"""A small Kubernetes API client: a kubeconfig's cluster, user and context, and JSON
requests over HTTPS with the stdlib (http.client + ssl). No kubernetes package.

Only what a pod move needs: get / list / create / delete objects, wait for a condition,
and the kubelet's checkpoint call through the API server's node proxy
(`POST /api/v1/nodes/{node}/proxy/checkpoint/{namespace}/{pod}/{container}`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import yaml


class KubeError(RuntimeError):
    """An API answer that is not a success: `status` is the HTTP status (0: no answer),
    `reason` the Status object's reason (NotFound, AlreadyExists, Forbidden, ...)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    context: str = ""
    namespace: str = "default"


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    """`key-data` (base64) or `key` (a path, relative to the kubeconfig's folder)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / str(entry[key])).read_bytes()
    return None


def load_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """The credentials of `context` (default: the file's current-context)."""
    p = Path(path).expanduser()
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except OSError as e:
        raise KubeError(f"kubeconfig {p}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise KubeError(f"kubeconfig {p}: not YAML: {e}") from e
    name = context or doc.get("current-context")
    if not name:
        raise KubeError(f"kubeconfig {p}: no context named and no current-context")
    by = lambda kind: {e["name"]: e.get(kind[:-1], {}) for e in doc.get(kind) or []}  # noqa: E731
    contexts, clusters, users = by("contexts"), by("clusters"), by("users")
    if name not in contexts:
        raise KubeError(
            f"kubeconfig {p}: no context {name!r} (has: {', '.join(contexts) or 'none'})"
        )
    ctx = contexts[name]
    cluster = clusters.get(ctx.get("cluster"))
    if cluster is None:
        raise KubeError(
            f"kubeconfig {p}: context {name!r} names cluster {ctx.get('cluster')!r}, which is not there"
        )
    user = users.get(ctx.get("user"), {})
    base = p.parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    return Credentials(
        server=str(cluster.get("server", "")).rstrip("/"),
        ca_pem=_data(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_pem=_data(user, "client-certificate", base),
        key_pem=_data(user, "client-key", base),
        token=token,
        context=name,
        namespace=str(ctx.get("namespace") or "default"),
    )


def ssl_context(c: Credentials) -> ssl.SSLContext:
    if c.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cadata=c.ca_pem.decode() if c.ca_pem else None)
    if c.cert_pem and c.key_pem:
        # ssl wants files: a private one, gone once read.
        fd, name = tempfile.mkstemp(prefix="ferryman-kube-", suffix=".pem")
        try:
            os.write(fd, c.cert_pem.rstrip(b"\n") + b"\n" + c.key_pem)
            os.close(fd)
            ctx.load_cert_chain(name)
        finally:
            os.unlink(name)
    return ctx


def object_path(
    kind: str, name: str | None = None, namespace: str | None = None, *, group: str = ""
) -> str:
    """`/api/v1/namespaces/NS/pods/NAME` and the like. `kind` is the plural resource;
    `group` e.g. "apps/v1" (default: the core group, /api/v1)."""
    base = f"/apis/{group}" if group else "/api/v1"
    p = base + (f"/namespaces/{quote(namespace, safe='')}" if namespace else "")
    p += f"/{kind}"
    if name:
        p += f"/{quote(name, safe='')}"
    return p


def checkpoint_path(
    node: str, namespace: str, pod: str, container: str, timeout_s: int | None = None
) -> str:
    """The kubelet's checkpoint call, through the API server's node proxy."""
    p = "/api/v1/nodes/{}/proxy/checkpoint/{}/{}/{}".format(
        *(quote(x, safe="") for x in (node, namespace, pod, container))
    )
    return p + (f"?{urlencode({'timeout': timeout_s})}" if timeout_s else "")


@dataclass
class Client:
    creds: Credentials
    timeout: float = 30.0
    _ctx: ssl.SSLContext | None = field(default=None, repr=False)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None) -> Client:
        return cls(load_kubeconfig(path, context))

    def _conn(self, timeout: float) -> http.client.HTTPSConnection:
        u = urlsplit(self.creds.server)
        if u.scheme != "https":
            raise KubeError(f"API server {self.creds.server}: only https is supported")
        if self._ctx is None:
            self._ctx = ssl_context(self.creds)
        return http.client.HTTPSConnection(
            u.hostname or "", u.port or 443, context=self._ctx, timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.creds.token:
            headers["Authorization"] = f"Bearer {self.creds.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        c = self._conn(timeout or self.timeout)
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
        except (OSError, ssl.SSLError) as e:
            raise KubeError(f"API server {self.creds.server}: {method} {path}: {e}") from e
        finally:
            c.close()
        doc: Any = None
        if raw:
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = raw.decode(errors="replace")
        if r.status >= 400:
            reason, message = "", str(doc)[:500]
            if isinstance(doc, dict):
                reason, message = doc.get("reason", ""), doc.get("message", message)
            raise KubeError(
                f"{method} {path}: {r.status} {reason}: {message}".strip(), r.status, reason
            )
        return doc

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def maybe_get(self, path: str) -> Any | None:
        try:
            return self.get(path)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.request("POST", path, obj)

    def delete(self, path: str, grace_seconds: int | None = None) -> Any:
        body = None
        if grace_seconds is not None:
            body = {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": grace_seconds,
            }
        return self.request("DELETE", path, body)

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def checkpoint(
        self, node: str, namespace: str, pod: str, container: str, timeout_s: int = 60
    ) -> list[str]:
        """Checkpoint one container through the kubelet; returns the paths of the
        checkpoint tars on the node (the kubelet's answer `{"items": [...]}`)."""
        doc = self.request(
            "POST",
            checkpoint_path(node, namespace, pod, container, timeout_s),
            timeout=timeout_s + 10,
        )
        items = doc.get("items") if isinstance(doc, dict) else None
        if not items:
            raise KubeError(
                f"checkpoint of {namespace}/{pod}/{container} on {node}: no archive in the answer {doc!r}"
            )
        return [str(i) for i in items]

    def wait_for(
        self, path: str, done: Callable[[Any], bool], timeout: float, interval: float = 0.1
    ) -> Any:
        """GET `path` until `done(obj)` holds (obj None: not found). Returns the object."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.maybe_get(path)
            if done(obj):
                return obj
            if time.monotonic() > deadline:
                raise KubeError(f"{path}: not there within {timeout:.0f} s (last: {summary(obj)})")
            time.sleep(interval)


def summary(obj: Any) -> str:
    if not isinstance(obj, dict):
        return repr(obj)[:200]
    st = obj.get("status") or {}
    if obj.get("kind") == "Pod":
        cs = [
            f"{c.get('name')}={next(iter(c.get('state') or {'?': 0}))}"
            + (
                f"({(c.get('state') or {}).get('waiting', {}).get('reason', '')})"
                if "waiting" in (c.get("state") or {})
                else ""
            )
            for c in st.get("containerStatuses") or []
        ]
        return f"phase {st.get('phase')}, containers {', '.join(cs) or 'none'}"
    return json.dumps(st)[:200]


def pod_ready(pod: Any) -> bool:
    if not isinstance(pod, dict):
        return False
    conds = {
        c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []
    }
    return pod.get("status", {}).get("phase") == "Running" and conds.get("Ready") == "True"


def node_ready(node: Any) -> bool:
    if not isinstance(node, dict):
        return False
    conds = {
        c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []
    }
    return conds.get("Ready") == "True"
