"""`ferryman migrate POD --to NODE`: a Kubernetes pod moved to another node with exactly
one live copy, through the API server and SSH to the two nodes.

The steps (the pieces are core/k8s/podmove.py, api.py and oci.py; lab/k8s/prove.py
showed them working):

1. preflight: the pod (Running, no controller, volumes that move), both nodes (Ready,
   containerd >= 2.1, the kubelet's ContainerCheckpoint gate), CRIU and ctr on both;
2. checkpoint: each container paused through containerd (the freeze: the source prints
   nothing from here on), then checkpointed by the kubelet (the pause is kept);
3. transfer: each checkpoint tar streamed from the source node into `ctr images import`
   on the target, inside an OCI layout that makes it a checkpoint image;
4. restore: the restored pod created bound to the target (same spec, the checkpoint
   images, name NAME-mXXXXXX), the emptyDir folders copied from the frozen source into
   it, until it runs and is Ready;
5. commit: the frozen source killed, its pod deleted; 6. cleanup: the checkpoint tars and
   images removed.

Any failure before the commit rolls back: the restored pod deleted, the source resumed.
The events are core/events.py's, the journal entry core/journal.py's (kind "pod").
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import events as ev
from core.config import ClusterSpec, ConfigError, HostSpec, Inventory
from core.events import Phase
from core.journal import JournalEntry, journal_dir, new_entry
from core.k8s import oci, podmove
from core.k8s.api import Client, KubeError, pod_ready
from core.k8s.podmove import Refusal
from core.models import ContainerInfo
from core.remote import quote
from core.ssh import CommandError, HostConnection, HostError

READY_TIMEOUT_S = 120.0
IMAGE_REPO = "ferryman.local/checkpoint"


class PodMoveError(Exception):
    """Bad input found before anything was touched: no such pod, node or cluster."""


@dataclass(frozen=True)
class PodMoveRequest:
    pod: str
    namespace: str
    target: str  # a node name, or the name of the host that reaches it
    cluster: str | None = None
    keep_images: bool = False


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def restored_name(name: str, migration_id: str) -> str:
    """The restored pod's name: the source's (less a suffix of an earlier move) and
    -m + the move's id (the source pod exists until the commit, so the name must differ)."""
    base = re.sub(r"-m[0-9a-f]{6}$", "", name)[: 253 - 8]
    return f"{base}-m{migration_id[-6:]}"


def image_ref(namespace: str, pod: str, container: str, migration_id: str) -> str:
    safe = re.sub(r"[^a-z0-9._-]", "-", f"{namespace}-{pod}-{container}".lower())[:100]
    return f"{IMAGE_REPO}/{safe}:{migration_id}"


def container_ids(pod: dict[str, Any]) -> dict[str, str]:
    """container name -> containerd id (from containerStatuses' containerd://ID)."""
    return {
        str(c["name"]): str(c["containerID"]).split("://", 1)[-1]
        for c in (pod.get("status") or {}).get("containerStatuses") or []
        if c.get("containerID")
    }


def tool_refusals(node: str, tools: dict[str, str | None]) -> list[Refusal]:
    """`tools`: tool -> its version line on the node, None when it did not answer."""
    fixes = {
        "criu": "install CRIU (criu.org) on the node, on the PATH of containerd's runc",
        "ctr": "install containerd's ctr on the node (the freeze is `ctr task pause`)",
    }
    return [
        Refusal(f"node {node}", f"{tool} does not run there", fixes.get(tool, ""))
        for tool, version in tools.items()
        if version is None
    ]


def preflight_refusals(
    pod: dict[str, Any],
    source: dict[str, Any] | None,
    target: dict[str, Any] | None,
    configz: dict[str, Any] | None,
    tools: dict[str, dict[str, str | None]],
) -> list[Refusal]:
    """Everything that keeps this pod from moving to `target` (empty: it can go)."""
    out = podmove.why_not_movable(pod)
    out += podmove.node_refusals(source, configz, role="source")
    out += podmove.node_refusals(target, None, role="target")
    for node, t in tools.items():
        out += tool_refusals(node, t)
    return out


def restore_failure(pod: Any) -> str:
    """Why the restored pod will not become Ready ("" while it still may)."""
    if not isinstance(pod, dict):
        return "the restored pod is gone"
    st = pod.get("status") or {}
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        state = cs.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
            t = state["terminated"]
            return (
                f"container {cs.get('name')}: {t.get('reason', 'terminated')}: "
                f"{str(t.get('message') or '').strip()[:400]}"
            ).rstrip(": ")
        if "terminated" in state and cs in (st.get("containerStatuses") or []):
            return f"container {cs.get('name')} exited"
        waiting = state.get("waiting") or {}
        if waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            return f"container {cs.get('name')}: {waiting['reason']}: {waiting.get('message', '')}"
    if st.get("phase") in ("Failed", "Succeeded"):
        why = st.get("message") or st.get("reason") or "its containers ended"
        return f"the restored pod is {st['phase']}: {why}"
    return ""


@dataclass(frozen=True)
class PodRow:
    """A pod as `ferryman ps` lists it: where it runs and why it cannot move ("": it can)."""

    cluster: str
    node: str
    namespace: str
    name: str
    phase: str
    containers: int
    why_not: str


def pod_rows(cluster: str, pods: list[dict[str, Any]]) -> list[PodRow]:
    """The pods of a cluster (the API's pod list items), by node then name, each with the
    first reason it cannot move (the pod's own: the nodes are checked by the move)."""
    out = []
    for p in pods:
        meta, spec = p.get("metadata") or {}, p.get("spec") or {}
        why = podmove.why_not_movable(p)
        out.append(
            PodRow(
                cluster=cluster,
                node=str(spec.get("nodeName") or ""),
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name") or ""),
                phase=str((p.get("status") or {}).get("phase") or "Unknown"),
                containers=len(spec.get("containers") or []),
                why_not=why[0].reason if why else "",
            )
        )
    return sorted(out, key=lambda r: (r.node, r.namespace, r.name))


POD_ID_PREFIX = "pod:"


def pod_info(inv: Inventory, row: PodRow) -> ContainerInfo:
    """A pod as a row of the console's container list, on the host that reaches its
    node: movable, or why_not says why it cannot move (the console moves it through
    core/k8s/pod_run.py)."""
    try:
        host = inv.cluster(row.cluster).nodes.get(row.node, row.node)
    except ConfigError:
        host = row.node
    label = f"{row.namespace}/{row.name}"
    return ContainerInfo(
        host=host,
        id=f"{POD_ID_PREFIX}{row.cluster}/{label}",
        name=label,
        image=f"pod, {row.containers} container(s)",
        state=row.phase.lower(),
        migratable=not row.why_not,
        why_not=f"pod: {row.why_not}" if row.why_not else "",
    )


async def list_pods(inv: Inventory) -> list[PodRow]:
    """Every pod of every cluster the hosts file names (a cluster that does not answer:
    PodMoveError)."""
    out: list[PodRow] = []
    for c in inv.clusters:
        try:
            client = Client.from_kubeconfig(c.kubeconfig, c.context)
            doc = await asyncio.to_thread(client.get, "/api/v1/pods")
        except KubeError as e:
            raise PodMoveError(f"cluster {c.name}: {e}") from None
        out += pod_rows(c.name, list(doc.get("items") or []))
    return out


def _fix_of(refusals: list[Refusal]) -> str:
    return "; ".join(r.fix for r in refusals if r.fix)


@dataclass
class _Ctx:
    client: Client
    cluster: ClusterSpec
    pod: dict[str, Any]
    src_node: str
    dst_node: str
    src_host: HostSpec
    dst_host: HostSpec


def resolve(inv: Inventory, req: PodMoveRequest) -> _Ctx:
    """The cluster, the pod and both nodes, or PodMoveError naming what is wrong."""
    try:
        cluster = inv.cluster(req.cluster)
    except ConfigError as e:
        raise PodMoveError(str(e)) from None
    try:
        client = Client.from_kubeconfig(cluster.kubeconfig, cluster.context)
        pod = client.maybe_get(f"/api/v1/namespaces/{req.namespace}/pods/{req.pod}")
    except KubeError as e:
        raise PodMoveError(f"cluster {cluster.name}: {e}") from None
    if pod is None:
        raise PodMoveError(
            f"no pod {req.pod!r} in namespace {req.namespace!r} of cluster {cluster.name}; "
            f"nothing was changed (`kubectl get pods -n {req.namespace}` lists them)"
        )
    src = str((pod.get("spec") or {}).get("nodeName") or "")
    if not src:
        raise PodMoveError(f"pod {req.namespace}/{req.pod} is not on a node yet (not scheduled)")
    if src not in cluster.nodes:
        raise PodMoveError(
            f"pod {req.namespace}/{req.pod} runs on node {src}, which {inv.path} does not "
            f"name under cluster {cluster.name}'s nodes: add `{src}: HOST` there"
        )
    dst = cluster.node_of(req.target)
    if dst is None:
        raise PodMoveError(
            f"no node {req.target!r} in cluster {cluster.name} of {inv.path} "
            f"(nodes: {', '.join(cluster.nodes)}); nothing was changed"
        )
    if dst == src:
        raise PodMoveError(f"pod {req.namespace}/{req.pod} already runs on {dst}")
    return _Ctx(
        client, cluster, pod, src, dst, inv.get(cluster.nodes[src]), inv.get(cluster.nodes[dst])
    )


class PodMigration:
    """One pod move; `run()` yields its events as they happen."""

    def __init__(self, inv: Inventory, req: PodMoveRequest, ctx: _Ctx) -> None:
        self.inv, self.req, self.c = inv, req, ctx
        self.id = new_id()
        self.label = f"{req.namespace}/{req.pod}"
        self.restored = restored_name(req.pod, self.id)
        self.pods = f"/api/v1/namespaces/{req.namespace}/pods"
        self.src = HostConnection(ctx.src_host)
        self.dst = HostConnection(ctx.dst_host)
        self.journal: JournalEntry | None = None
        self._out: list[ev.Event] = []
        self._wake = asyncio.Event()
        self.paused: list[str] = []
        self.tars: list[str] = []
        self.images: list[str] = []
        self.created = False
        self.committed = False
        self.phase = Phase.PREFLIGHT
        self.times: dict[str, float] = {}
        self.bytes = 0
        self.log_path = ""
        self.log_excerpt: tuple[str, ...] = ()

    # --- plumbing ---------------------------------------------------------------------

    def emit(self, e: ev.Event) -> None:
        self._out.append(e)
        self._wake.set()
        if self.journal is not None:
            self.journal.record(e)
            if not isinstance(e, ev.LogLine):
                self.journal.save()

    def say(self, host: str, text: str, stream: str = "ferryman") -> None:
        self.emit(ev.LogLine(host=host, text=text, stream=stream))

    def _drain(self) -> list[ev.Event]:
        out, self._out = self._out, []
        return out

    async def _live(self, coro: Any) -> AsyncIterator[ev.Event]:
        """Run one step, yielding its events as it emits them."""
        task = asyncio.ensure_future(coro)
        try:
            while not task.done():
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                self._wake.clear()
                for e in self._drain():
                    yield e
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        task.result()

    async def api(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)

    async def ssh(self, h: HostConnection, argv: list[str], timeout: float = 60) -> str:
        return (await h.run(quote(argv), timeout=timeout)).stdout

    async def relay(
        self,
        a: HostConnection,
        out_argv: list[str],
        b: HostConnection,
        in_argv: list[str],
        *,
        head: bytes = b"",
        tail: bytes = b"",
    ) -> int:
        """`a OUT | b IN`, relayed by this machine (`head` and `tail` written around
        OUT's bytes); returns the bytes of OUT moved."""
        pa = await a.process(quote(out_argv))
        pb = await b.process(quote(in_argv))
        pa.stdin.write_eof()
        if head:
            pb.stdin.write(head)
        n = 0
        while chunk := await pa.stdout.read(1 << 20):
            pb.stdin.write(chunk)
            await pb.stdin.drain()
            n += len(chunk)
        if tail:
            pb.stdin.write(tail)
        pb.stdin.write_eof()
        err_a, err_b = await asyncio.gather(pa.stderr.read(), pb.stderr.read())
        await asyncio.gather(pa.wait(), pb.wait())
        for h, p, err, argv in ((a, pa, err_a, out_argv), (b, pb, err_b, in_argv)):
            if p.exit_status != 0:
                raise CommandError(
                    h.name, " ".join(argv), p.exit_status, bytes(err).decode(errors="replace")
                )
        return n

    # --- the move ---------------------------------------------------------------------

    async def run(self) -> AsyncIterator[ev.Event]:
        c = self.c
        start = ev.MigrationStarted(
            migration_id=self.id,
            container=self.label,
            source=c.src_host.name,
            target=c.dst_host.name,
            strategy="stop-and-copy",
            downtime_budget_s=0.0,
            strategy_reason=f"pod of cluster {c.cluster.name}: frozen by containerd, "
            "checkpointed by the kubelet",
        )
        self.journal = new_entry(start)
        self.journal.kind = "pod"
        self.journal.pod = {
            "cluster": c.cluster.name,
            "namespace": self.req.namespace,
            "name": self.req.pod,
            "source_node": c.src_node,
            "target_node": c.dst_node,
            "restored": self.restored,
            "containers": container_ids(c.pod),
        }
        self.emit(start)
        t0 = time.monotonic()
        try:
            for step in (self.preflight, self.checkpoint, self.transfer, self.restore, self.commit):
                async for e in self._live(step()):
                    yield e
            async for e in self._live(self.cleanup()):
                yield e
            self.emit(
                ev.MigrationSucceeded(
                    container=self.label,
                    target=c.dst_host.name,
                    total_s=time.monotonic() - t0,
                    freeze_s=self.times.get("freeze", 0.0),
                    dump_s=self.times.get("dump", 0.0),
                    transfer_s=self.times.get("transfer", 0.0),
                    restore_s=self.times.get("restore", 0.0),
                    bytes_moved=self.bytes,
                )
            )
            for e in self._drain():
                yield e
        except (Exception, asyncio.CancelledError) as e:
            cancelled = isinstance(e, asyncio.CancelledError)
            for x in self._drain():
                yield x
            cause = "interrupted" if cancelled else str(e) or type(e).__name__
            fix = getattr(e, "fix", "")
            await self.fail(cause, fix)
            for x in self._drain():
                yield x
            if cancelled:
                raise
        finally:
            await self.src.close()
            await self.dst.close()

    async def fail(self, cause: str, fix: str) -> None:
        c, phase = self.c, self.phase
        ok, running_on = True, c.src_host.name
        if self.committed:
            running_on = c.dst_host.name
        elif phase != Phase.PREFLIGHT:
            ok = await self.rollback(cause)
        self.emit(
            ev.MigrationFailed(
                phase=phase.value,
                cause=cause,
                fix=fix,
                host=c.dst_host.name if self.log_path else c.src_host.name,
                log_excerpt=self.log_excerpt,
                log_path=self.log_path,
                running_on=running_on,
            )
        )
        if self.journal is not None:
            if self.committed:
                self.journal.result = "incomplete"
                self.journal.cause += "; left for `ferryman recover`"
            elif phase != Phase.PREFLIGHT:
                self.journal.result = "rolled back" if ok else "in doubt"
            self.journal.save()

    async def _phase(self, p: Phase) -> float:
        self.phase = p
        self.emit(ev.PhaseStarted(phase=p.value))
        return time.monotonic()

    def _done(self, p: Phase, t: float) -> float:
        dt = time.monotonic() - t
        self.emit(ev.PhaseFinished(phase=p.value, seconds=dt))
        return dt

    async def preflight(self) -> None:
        c = self.c
        t = await self._phase(Phase.PREFLIGHT)
        nodes = {}
        for n in (c.src_node, c.dst_node):
            nodes[n] = await self.api(c.client.maybe_get, f"/api/v1/nodes/{n}")
        try:
            configz = await self.api(c.client.get, f"/api/v1/nodes/{c.src_node}/proxy/configz")
        except KubeError as e:
            configz = None
            self.emit(ev.Warning(text=f"{c.src_node}: the kubelet's /configz did not answer ({e})"))

        async def versions(node: str, h: HostConnection) -> dict[str, str | None]:
            out: dict[str, str | None] = {}
            for tool in ("criu", "ctr"):
                try:
                    r = await h.run(quote([tool, "--version"]), check=False, timeout=20)
                except HostError as e:
                    raise _Refused(
                        f"{node} ({h.name}) cannot be reached over SSH: {e}",
                        "check the host's address and key in the hosts file",
                    ) from None
                line = (r.stdout.strip().splitlines() or [""])[0]
                out[tool] = line if r.ok else None
                if r.ok:
                    self.say(h.name, f"{tool}: {line}", "check")
            return out

        # Both nodes at once (each its own SSH connection).
        src_tools, dst_tools = await asyncio.gather(
            versions(c.src_node, self.src), versions(c.dst_node, self.dst)
        )
        tools = {c.src_node: src_tools, c.dst_node: dst_tools}
        refusals = preflight_refusals(c.pod, nodes[c.src_node], nodes[c.dst_node], configz, tools)
        if refusals:
            raise _Refused(
                f"pod {self.label} cannot move from {c.src_node} to {c.dst_node}: "
                + "; ".join(map(str, refusals))
                + " (nothing was changed)",
                _fix_of(refusals),
            )
        gates = ((configz or {}).get("kubeletconfig") or {}).get("featureGates") or {}
        self.say(
            c.src_host.name,
            f"pod {self.label} on {c.src_node}: movable; {c.dst_node} Ready; checkpoint gate "
            + ("on" if gates.get("ContainerCheckpoint", True) else "off"),
            "check",
        )
        self._done(Phase.PREFLIGHT, t)

    async def checkpoint(self) -> None:
        c = self.c
        t = await self._phase(Phase.CHECKPOINT)
        self.emit(ev.FreezeStarted())
        self.t_freeze = time.monotonic()
        for name, cid in container_ids(c.pod).items():
            await self.ssh(self.src, podmove.ctr_task("pause", cid))
            self.paused.append(cid)
            self.say(c.src_host.name, f"{name}: paused (containerd)")
        for name in container_ids(c.pod):
            items = await self.api(
                c.client.checkpoint, c.src_node, self.req.namespace, self.req.pod, name
            )
            self.tars.append(items[0])
            if self.journal is not None:
                self.journal.pod["tars"] = list(self.tars)
            self.say(c.src_host.name, f"{name}: checkpoint {items[0]}")
        self.times["dump"] = self._done(Phase.CHECKPOINT, t)

    async def transfer(self) -> None:
        c = self.c
        t = await self._phase(Phase.TRANSFER)
        self.image_of: dict[str, str] = {}
        for (name, _), tar in zip(container_ids(c.pod).items(), self.tars, strict=True):
            # The checkpoint tar goes from the source node into the target's `ctr images
            # import` as it is read, wrapped in an OCI layout whose documents name its
            # digest (taken on the source): no copy of it in this machine's memory.
            out = await self.ssh(
                self.src, ["sh", "-c", 'stat -c %s "$1" && sha256sum "$1"', "digest", tar]
            )
            size_line, sum_line = out.splitlines()[:2]
            size, layer = int(size_line), "sha256:" + sum_line.split()[0]
            ref = image_ref(self.req.namespace, self.req.pod, name, self.id)
            config, manifest = oci.checkpoint_image_file(layer, size, name)
            head, tail = oci.streamed_archive(config, manifest, layer, size, ref)
            n = await self.relay(
                self.src,
                ["cat", tar],
                self.dst,
                ["ctr", "-n", "k8s.io", "images", "import", "-"],
                head=head,
                tail=tail,
            )
            if n != size:
                raise RuntimeError(f"{tar} on {c.src_node}: read {n} bytes of {size}")
            data_len = size
            self.images.append(ref)
            if self.journal is not None:
                self.journal.pod["images"] = list(self.images)
            self.image_of[name] = ref
            self.bytes += data_len
            dt = time.monotonic() - t
            self.emit(
                ev.BytesMoved(
                    phase=Phase.TRANSFER.value,
                    total_bytes=data_len,
                    rate_bps=data_len / dt if dt > 0 else 0.0,
                    done=True,
                )
            )
            self.say(c.dst_host.name, f"{name}: image {ref} imported")
        self.times["transfer"] = self._done(Phase.TRANSFER, t)

    async def restore(self) -> None:
        c = self.c
        t = await self._phase(Phase.RESTORE)
        first = (c.pod["spec"]["containers"] or [{}])[0]
        manifest = podmove.restored_pod(
            c.pod,
            c.dst_node,
            self.image_of,
            name=self.restored,
            source_node=c.src_node,
            wait_image=first.get("image"),
        )
        created = await self.api(c.client.create, self.pods, manifest)
        self.created = True
        self.say(
            c.dst_host.name, f"pod {self.req.namespace}/{self.restored} created on {c.dst_node}"
        )
        src_dirs = podmove.emptydir_paths(c.pod, c.cluster.root_of(c.src_node))
        dst_dirs = podmove.emptydir_paths(created, c.cluster.root_of(c.dst_node))
        for vol, dst in dst_dirs.items():
            await self.ssh(self.dst, podmove.wait_folder_argv(dst))
            n = await self.relay(
                self.src, podmove.tar_out_argv(src_dirs[vol]), self.dst, podmove.tar_in_argv(dst)
            )
            await self.ssh(self.dst, podmove.mark_ready_argv(dst))
            self.bytes += n
            self.say(c.dst_host.name, f"emptyDir {vol}: copied ({n} bytes of tar)")
        path = f"{self.pods}/{self.restored}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            p = await self.api(c.client.maybe_get, path)
            if pod_ready(p):
                break
            why = restore_failure(p)
            if why:
                await self.keep_criu_log(why)
                raise _Refused(
                    f"restore on {c.dst_node} failed: {why}",
                    f"ferryman doctor {self.log_path}" if self.log_path else "",
                )
            if time.monotonic() > deadline:
                raise _Refused(
                    f"the restored pod {self.restored} was not Ready on {c.dst_node} within "
                    f"{READY_TIMEOUT_S:.0f} s",
                    "",
                )
            await asyncio.sleep(0.1)
        self.times["restore"] = self._done(Phase.RESTORE, t)
        self.times["freeze"] = time.monotonic() - self.t_freeze
        self.emit(
            ev.FreezeEnded(
                total_s=self.times["freeze"],
                dump_s=self.times["dump"],
                transfer_s=self.times["transfer"],
                restore_s=self.times["restore"],
                where=c.dst_host.name,
            )
        )
        self.say(c.dst_host.name, f"pod {self.req.namespace}/{self.restored} Ready on {c.dst_node}")

    async def keep_criu_log(self, why: str) -> None:
        """CRIU's restore log on the target (named in the runtime's error), copied into
        the journal's folder before the rollback removes the container with it."""
        m = re.search(r"(/\S+/restore\.log)", why)
        if not m or self.journal is None:
            return
        try:
            text = await self.ssh(self.dst, ["tail", "-c", "262144", m.group(1)], timeout=20)
        except (CommandError, HostError):
            return
        d = Path(journal_dir()) / self.id
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = d / "restore.log"
        path.write_text(text)
        self.journal.logs_dir = str(d)
        self.log_path = str(path)
        lines = [ln for ln in text.splitlines() if "Error" in ln or "rror (" in ln]
        self.log_excerpt = tuple((lines or text.splitlines())[-6:])

    async def commit(self) -> None:
        c = self.c
        t = await self._phase(Phase.COMMIT)
        for cid in self.paused:
            await self.ssh(self.src, podmove.ctr_task("kill", cid, "-s", "SIGKILL"))
        self.committed = True
        if self.journal is not None:
            self.journal.running_on = c.dst_host.name
            self.journal.pod["committed"] = True
            self.journal.save()
        await delete_pod(c.client, f"{self.pods}/{self.req.pod}")
        self.say(c.src_host.name, f"pod {self.label} deleted from {c.src_node}")
        self._done(Phase.COMMIT, t)

    async def cleanup(self) -> None:
        t = await self._phase(Phase.CLEANUP)
        for w in await remove_leftovers(
            self.src, self.tars, self.dst, [] if self.req.keep_images else self.images
        ):
            self.emit(ev.Warning(text=w))
        self._done(Phase.CLEANUP, t)

    async def rollback(self, reason: str) -> bool:
        c = self.c
        self.phase = Phase.ROLLBACK
        self.emit(ev.PhaseStarted(phase=Phase.ROLLBACK.value))
        self.emit(ev.RollbackStarted(reason=reason))
        t = time.monotonic()
        ok, detail = True, []
        if self.created:
            try:
                await delete_pod(c.client, f"{self.pods}/{self.restored}")
                self.say(c.dst_host.name, f"restored pod {self.restored} removed")
            except Exception as e:  # noqa: BLE001 - the source comes back first of all
                ok = False
                detail.append(f"the restored pod {self.restored} could not be removed: {e}")
        for cid in self.paused:
            try:
                await self.ssh(self.src, podmove.ctr_task("resume", cid))
            except Exception as e:  # noqa: BLE001
                ok = False
                detail.append(f"resume of {cid[:12]} on {c.src_node} failed: {e}")
        if self.paused:
            self.say(c.src_host.name, f"pod {self.label} resumed on {c.src_node}")
        for w in await remove_leftovers(self.src, self.tars, self.dst, self.images):
            self.emit(ev.Warning(text=w))
        self.emit(ev.RollbackFinished(running_on=c.src_host.name, ok=ok, detail="; ".join(detail)))
        self.emit(ev.PhaseFinished(phase=Phase.ROLLBACK.value, seconds=time.monotonic() - t))
        return ok


class _Refused(RuntimeError):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


async def delete_pod(client: Client, path: str, timeout: float = 60) -> None:
    def go() -> None:
        try:
            client.delete(path, grace_seconds=0)
        except KubeError as e:
            if e.status != 404:
                raise
        client.wait_for(path, lambda p: p is None, timeout)

    await asyncio.to_thread(go)


async def remove_leftovers(
    src: HostConnection, tars: list[str], dst: HostConnection, images: list[str]
) -> list[str]:
    """The checkpoint tars on the source node and the checkpoint images on the target;
    returns a warning per thing left."""
    out = []
    if tars:
        try:
            await src.run(quote(["rm", "-f", "--", *tars]), timeout=30)
        except (CommandError, HostError) as e:
            out.append(f"checkpoint tars left on {src.name}: {e}")
    for ref in images:
        try:
            await dst.run(quote(["ctr", "-n", "k8s.io", "images", "rm", ref]), timeout=30)
        except (CommandError, HostError) as e:
            out.append(f"checkpoint image {ref} left on {dst.name}: {e}")
    return out


async def migrate_pod(inv: Inventory, req: PodMoveRequest) -> AsyncIterator[ev.Event]:
    """The move's events; PodMoveError (before any event) for bad input."""
    ctx = await asyncio.to_thread(resolve, inv, req)
    async for e in PodMigration(inv, req, ctx).run():
        yield e


# --- recovery -------------------------------------------------------------------------


async def recover_pod(inv: Inventory, entry: JournalEntry, say: Callable[[str], None]) -> str:
    """Finish or roll back a pod move whose console died; returns where the pod runs.

    The restored pod Ready: the move is finished (the frozen source killed, its pod
    deleted). Otherwise it is rolled back (the restored pod deleted, the source resumed).
    Then the checkpoint tars and images are removed."""
    d = entry.pod
    cluster = inv.cluster(d.get("cluster"))
    client = Client.from_kubeconfig(cluster.kubeconfig, cluster.context)
    ns, name, restored = d["namespace"], d["name"], d["restored"]
    pods = f"/api/v1/namespaces/{ns}/pods"
    src_host = inv.get(cluster.nodes[d["source_node"]])
    dst_host = inv.get(cluster.nodes[d["target_node"]])
    src, dst = HostConnection(src_host), HostConnection(dst_host)
    try:
        source = await asyncio.to_thread(client.maybe_get, f"{pods}/{name}")
        new = await asyncio.to_thread(client.maybe_get, f"{pods}/{restored}")
        cids = list((d.get("containers") or {}).values())
        if pod_ready(new):
            if source is not None:
                for cid in cids:
                    await src.run(
                        quote(podmove.ctr_task("kill", cid, "-s", "SIGKILL")), check=False
                    )
                await delete_pod(client, f"{pods}/{name}")
                say(f"the restored pod {restored} is Ready: source {ns}/{name} killed and deleted")
            where, result = dst_host.name, "recovered"
        else:
            if new is not None:
                await delete_pod(client, f"{pods}/{restored}")
                say(f"the restored pod {restored} was not Ready: deleted")
            if source is None:
                raise RuntimeError(
                    f"neither {ns}/{name} nor a Ready {ns}/{restored} exists: the pod is lost"
                )
            for cid in cids:
                await src.run(quote(podmove.ctr_task("resume", cid)), check=False)
            say(f"{ns}/{name} resumed on {d['source_node']}")
            where, result = src_host.name, "recovered"
        # The tars and images the journal did not get to name (the console died between
        # the kubelet's answer or the import and the journal's save) are found by name.
        r = await src.run(
            quote(
                [
                    "sh",
                    "-c",
                    'find "$1"/checkpoints -maxdepth 1 -name "checkpoint-$2_$3-*.tar" '
                    '-newermt "@$4" 2>/dev/null; true',
                    "tars",
                    cluster.root_of(d["source_node"]),
                    name,
                    ns,
                    str(int(entry.started) - 1),
                ]
            ),
            check=False,
        )
        tars = sorted({*(d.get("tars") or []), *r.stdout.split()})
        r = await dst.run(quote(["ctr", "-n", "k8s.io", "images", "ls", "-q"]), check=False)
        mine = [
            i
            for i in r.stdout.split()
            if i.startswith(IMAGE_REPO) and i.endswith(":" + entry.migration_id)
        ]
        images = sorted({*(d.get("images") or []), *mine})
        for w in await remove_leftovers(src, tars, dst, images):
            say(f"! {w}")
    finally:
        await src.close()
        await dst.close()
    entry.result, entry.running_on, entry.finished = result, where, time.time()
    entry.save()
    return where
