"""A pod move as the console follows it: the MigrationRun its live view iterates
(core/backend.py), around core/k8s/podmigration.migrate_pod.

The console names a pod by its row's id, `pod:<cluster>/<namespace>/<name>`
(podmigration.pod_info), and its target by the host that reaches the node. `abort()`
cancels the move as Ctrl-C does in the CLI: before the restored pod is Ready, the move
rolls back (the source pod thawed, the restored one removed), and its events, the
rollback's and the failure, still reach the view.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from core import events as ev
from core.config import Inventory
from core.k8s import podmigration as pm
from core.models import MigrationRequest


def parse_pod_id(row_id: str) -> tuple[str, str, str]:
    """(cluster, namespace, name) of a pod row's id; ValueError for anything else."""
    if not row_id.startswith(pm.POD_ID_PREFIX):
        raise ValueError(f"not a pod: {row_id!r}")
    parts = row_id[len(pm.POD_ID_PREFIX) :].split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a pod row id: {row_id!r}")
    cluster, namespace, name = parts
    return cluster, namespace, name


def is_pod_request(request: MigrationRequest) -> bool:
    return request.container.startswith(pm.POD_ID_PREFIX)


def pod_request(request: MigrationRequest) -> pm.PodMoveRequest:
    cluster, namespace, name = parse_pod_id(request.container)
    return pm.PodMoveRequest(
        pod=name,
        namespace=namespace,
        target=request.target,
        cluster=cluster,
        keep_images=request.keep_images,
    )


def move_targets(inv: Inventory, row_id: str, source_host: str) -> list[str]:
    """The hosts that reach the other nodes of the pod's cluster (the console's choices)."""
    cluster, _, _ = parse_pod_id(row_id)
    nodes = inv.cluster(cluster).nodes
    return sorted({h for n, h in nodes.items() if h != source_host and n != source_host})


_DONE = object()


class PodRun:
    """The events of one pod move, pumped by a task of its own so that `abort()` can
    cancel the move and the rollback's events still arrive."""

    def __init__(self, inv: Inventory, request: MigrationRequest) -> None:
        self._inv = inv
        self._request = request
        self._task: asyncio.Task[None] | None = None
        self._abort = False

    def abort(self) -> None:
        self._abort = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def __aiter__(self) -> AsyncIterator[ev.Event]:
        return self._events()

    async def _pump(self, q: asyncio.Queue[object]) -> None:
        try:
            req = pod_request(self._request)
            async for e in pm.migrate_pod(self._inv, req):
                q.put_nowait(e)
        except (pm.PodMoveError, ValueError) as e:
            # Bad input, found before anything was touched: a failure in preflight.
            q.put_nowait(
                ev.MigrationStarted(
                    migration_id="",
                    container=self._request.container.removeprefix(pm.POD_ID_PREFIX),
                    source=self._request.source,
                    target=self._request.target,
                    strategy="stop-and-copy",
                    downtime_budget_s=0.0,
                    strategy_reason="pod",
                )
            )
            q.put_nowait(
                ev.MigrationFailed(
                    phase=ev.Phase.PREFLIGHT.value,
                    cause=str(e),
                    fix="`ferryman ps` lists the pods and the nodes they can move to",
                    host=self._request.source,
                    running_on=self._request.source,
                )
            )

    async def _events(self) -> AsyncIterator[ev.Event]:
        q: asyncio.Queue[object] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(q))
        # The end, however the task ends (even cancelled before its first step).
        self._task.add_done_callback(lambda _t: q.put_nowait(_DONE))
        if self._abort:
            self._task.cancel()
        try:
            while (e := await q.get()) is not _DONE:
                assert isinstance(e, ev.Event)
                yield e
        finally:
            if not self._task.done():  # the view stopped following: the move is cancelled
                self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if not self._abort:
                    raise
