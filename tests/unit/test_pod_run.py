"""The console's pod move (core/k8s/pod_run.py): the row id it names, and a run that an
abort cancels while its rollback's events still arrive."""

from __future__ import annotations

import asyncio

import pytest

from core import events as ev
from core.k8s import pod_run
from core.k8s import podmigration as pm
from core.models import MigrationRequest


def test_a_pod_row_id_parses_and_anything_else_is_refused():
    assert pod_run.parse_pod_id("pod:lab/default/counter") == ("lab", "default", "counter")
    for bad in ("counter", "pod:lab/counter", "pod:lab//counter", "pod:a/b/c/d"):
        with pytest.raises(ValueError):
            pod_run.parse_pod_id(bad)
    req = MigrationRequest(container="pod:lab/web/api-0", source="n1", target="n2")
    assert pod_run.is_pod_request(req)
    assert pod_run.pod_request(req) == pm.PodMoveRequest(
        pod="api-0", namespace="web", target="n2", cluster="lab"
    )
    assert not pod_run.is_pod_request(MigrationRequest(container="web", source="a", target="b"))


def _started() -> ev.MigrationStarted:
    return ev.MigrationStarted(
        migration_id="m", container="default/counter", source="n1", target="n2",
        strategy="stop-and-copy", downtime_budget_s=0.0,
    )


def test_an_abort_cancels_the_move_and_its_rollback_still_reaches_the_view(monkeypatch):
    gate = asyncio.Event()

    async def fake_migrate(inv, req):
        yield _started()
        try:
            gate.set()
            await asyncio.sleep(60)  # a checkpoint that takes long
            yield ev.PhaseStarted(phase="restore")
        except asyncio.CancelledError:
            yield ev.MigrationFailed(phase="checkpoint", cause="interrupted", running_on="n1")
            raise

    monkeypatch.setattr(pm, "migrate_pod", fake_migrate)

    async def follow() -> list[ev.Event]:
        run = pod_run.PodRun(None, MigrationRequest(container="pod:c/default/counter", source="n1", target="n2"))  # type: ignore[arg-type]
        seen = []
        async for e in run:
            seen.append(e)
            if isinstance(e, ev.MigrationStarted):
                await gate.wait()
                run.abort()
        return seen

    seen = asyncio.run(asyncio.wait_for(follow(), 10))
    assert [type(e) for e in seen] == [ev.MigrationStarted, ev.MigrationFailed]
    assert seen[-1].cause == "interrupted" and seen[-1].running_on == "n1"


def test_bad_input_is_a_failure_in_preflight_naming_the_pod(monkeypatch):
    async def fake_migrate(inv, req):
        raise pm.PodMoveError(f"no pod {req.pod} in namespace {req.namespace}")
        yield  # an async generator

    monkeypatch.setattr(pm, "migrate_pod", fake_migrate)

    async def follow() -> list[ev.Event]:
        run = pod_run.PodRun(None, MigrationRequest(container="pod:c/default/gone", source="n1", target="n2"))  # type: ignore[arg-type]
        return [e async for e in run]

    seen = asyncio.run(asyncio.wait_for(follow(), 10))
    assert isinstance(seen[0], ev.MigrationStarted) and seen[0].container == "c/default/gone"
    failed = seen[-1]
    assert isinstance(failed, ev.MigrationFailed) and failed.phase == "preflight"
    assert failed.cause == "no pod gone in namespace default" and failed.running_on == "n1"
