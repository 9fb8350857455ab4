"""Preflight: the strategy chosen against what the hosts can do, every check run, the
container inspected and the engines' versions read (what they decide: how the source is
frozen, how the twin is restored). Nothing is changed on either host yet."""

from __future__ import annotations

import asyncio
from typing import Any

from core import events as ev
from core.dockerapi import EngineError
from core.engine import (
    criu_options,
    direct_path,
    restore,
    restore_runtime,
    twin,
    watch,
)
from core.engine.context import Run
from core.engine.errors import MigrationError
from core.engine.planner import choose_strategy
from core.engine.precopy import RESTORE_ESTIMATE_S
from core.engine.strategy import Strategy
from core.events import Phase
from core.journal import journal_dir, new_entry, restore_estimate, throughput_estimate
from core.models import HostFacts
from core.preflight import container_checks, host_report, pair_checks
from core.ssh import HostError


async def preflight(m: Run) -> None:
    req = m.req
    try:
        criu_options.validate(req.criu_options)
    except criu_options.OptionError as e:
        raise MigrationError(str(e), "drop the option, or pass one the list names") from None
    if req.source == req.target:
        raise MigrationError(f"{req.container} is already on {req.source}: pick another target")
    # Lazy pages are tried, not trusted: when post-copy is asked for, or may be picked.
    trial = Strategy.tries_lazy_pages(req.strategy, req.accept_risk)
    reps = await asyncio.gather(
        host_report(m.src, lazy_trial_run=trial),
        host_report(m.dst, lazy_trial_run=trial),
    )
    try:
        strategy, why = choose_strategy(
            req.strategy,
            reps[0].facts.dirty_tracking,
            reps[1].facts.dirty_tracking,
            reps[0].facts.lazy_pages,
            reps[1].facts.lazy_pages,
            predicted_stop_copy_s=await predicted_stop_copy_s(m, reps[1].facts),
            budget_s=req.downtime_budget_s,
            accept_risk=req.accept_risk,
        )
    except ValueError as e:
        raise MigrationError(
            f"strategy {req.strategy}: {e}",
            "choose another strategy (`ferryman check` shows what each host can do)",
        ) from None
    m.strategy = Strategy(strategy)
    ins = await m.src.engine.inspect(req.container)
    cid = ins["Id"] if ins else req.container
    start = ev.MigrationStarted(
        migration_id=m.id,
        container=req.container,
        source=req.source,
        target=req.target,
        strategy=strategy,
        downtime_budget_s=req.downtime_budget_s,
        strategy_reason=why,
        data_path="direct" if req.direct else "relay",
    )
    m.journal = new_entry(start)
    m.journal.logs_dir = str(journal_dir() / m.id)
    m.emit(start)
    m.ctx.container_id = cid
    m.save_ctx()
    async with m.phase(Phase.PREFLIGHT):
        if ins is not None and reps[0].reachable:
            await m.lock.refuse_if_locked(ins["Id"], req.container)
        checks = [c for r in reps for c in r.checks] + pair_checks(*reps)
        if all(r.reachable for r in reps):
            checks += await container_checks(m.fleet, req.container, req.source, req.target)
        for c in checks:
            m.log(c.host, f"{c.status.value:4} {c.name}: {c.reason}", "check")
        failed = [
            c
            for c in checks
            if c.status.value == "fail" and c.name not in ("soft-dirty", "userfaultfd")
        ]
        if failed:
            f = failed[0]
            raise MigrationError(f"preflight: {f.host}: {f.reason}", f.fix, host=f.host)
        if not m.strategy.implemented:
            raise MigrationError(
                f"strategy {strategy} is not available in this version of the engine",
                "run with --strategy stop-and-copy",
            )
        assert ins is not None
        m.ctx.inspect = ins
        m.ctx.container_id = cid
        m.ctx.name = twin.container_name(ins)
        m.ctx.restore_lines = [
            *twin.restore_conf_lines(ins),
            *criu_options.connection_defaults(req.criu_options)[2],
        ]
        si, di = await asyncio.gather(m.src.engine.info(), m.dst.engine.info())
        m.ctx.src_data_root = si["DockerRootDir"]
        m.ctx.dst_data_root = di["DockerRootDir"]
        m.ctx.src_systemd = si.get("CgroupDriver") == "systemd"
        m.ctx.src_cgroup = restore.CgroupLayout.from_info(si)
        m.ctx.dst_cgroup = restore.CgroupLayout.from_info(di)
        engines(m, si, di, reps[0].facts, reps[1].facts)
        await watch.check(m)
        if req.direct:
            await direct_route(m)


async def direct_route(m: Run) -> None:
    """--direct: the source must reach the target's sshd (core/engine/direct_path.py)."""
    try:
        m.ctx.direct = await direct_path.probe(m.src, m.dst, m.id)
    except direct_path.DirectUnavailable as e:
        raise MigrationError(
            f"preflight: no direct path from {m.src.name} to {m.dst.name}: {e}",
            "run without --direct (the data is then relayed, encrypted by SSH, through this "
            "console), or let the source reach the target's sshd",
            host=m.src.name,
        ) from None
    m.log(m.src.name, f"ok   direct path: {m.ctx.direct.describe()}", "check")


def engines(m: Run, si: dict[str, Any], di: dict[str, Any], sf: HostFacts, df: HostFacts) -> None:
    """What the engines' versions decide: how the source is frozen, how the twin is
    restored, which CRIU file runc reads for the source (core/engine/restore_runtime.py),
    and whether Docker copies the image folder (CRIU < 4.2, core/engine/restore.py)."""
    c = m.ctx
    c.src_engine = str(si.get("ServerVersion") or "")
    c.dst_engine = str(di.get("ServerVersion") or "")
    try:
        src_new = restore_runtime.needs_restore_runtime(c.src_engine)
        c.twin_route = restore_runtime.route(c.dst_engine, df.api_version)
    except restore_runtime.RouteError as e:
        raise MigrationError(f"engine version not understood: {e}") from None
    # A Docker >= 28 source could not be restored from its checkpoint on rollback: it is
    # frozen (runc pause) and dumped leaving it frozen. Post-copy's dump keeps the
    # source frozen by itself (CRIU holds it until the last page has left).
    c.src_paused = src_new and not m.strategy.lazy
    c.src_criu_conf = restore_runtime.container_criu_conf(c.inspect)
    c.src_copies_images = not restore.reads_in_place(sf.criu_version)
    c.twin_copies_images = restore.copies_images(c.twin_route, df.criu_version)
    if c.twin_copies_images:
        m.emit(
            ev.Warning(
                text=f"CRIU {df.criu_version} on {m.dst.name} cannot read the image folder in "
                "place (that needs CRIU >= 4.2): Docker copies the whole image before the "
                f"restore starts, about {restore.copy_cost_s(2**30):.0f} s per GiB of the "
                "container's memory, inside the freeze"
            )
        )
    if (
        m.strategy.lazy
        and c.src_criu_conf != restore.CONF
        and not restore_runtime.is_ours(c.src_criu_conf)
    ):
        raise MigrationError(
            f"{c.name} names its own CRIU file ({restore_runtime.CRIU_CONFIG_ANNOTATION}="
            f"{c.src_criu_conf}): runc reads only that one, so ferryman cannot keep the "
            "lazy page server on the loopback",
            "use stop-and-copy, or recreate the container without that annotation",
            host=m.src.name,
        )
    if c.twin_route == restore_runtime.ROUTE_RUNTIME and any(
        o.lstrip("-").startswith("tcp-established") for o in m.req.criu_options
    ):
        m.emit(
            ev.Warning(
                text=f"--tcp-established onto Docker {c.dst_engine}: the restore runtime "
                "restores into a network namespace dockerd configures only afterwards, so "
                "established connections (and sockets bound to the container's address) "
                "are not expected to restore; if the restore fails, the move rolls back"
            )
        )
    m.log(
        "ferryman",
        f"engines: {m.src.name} Docker {c.src_engine or '?'}, {m.dst.name} Docker "
        f"{c.dst_engine or '?'}; the source is "
        + (
            "frozen with runc pause and dumped leaving it frozen (a rollback thaws it)"
            if c.src_paused
            else "dumped as usual"
        )
        + f"; the twin is restored through {c.twin_route}",
    )


async def predicted_stop_copy_s(m: Run, df: HostFacts) -> float | None:
    """A stop-and-copy freeze of this container: its memory over the throughput past
    moves to the target streamed (100 MiB/s without any), plus the restore, plus Docker's
    copy of the image where the target's CRIU cannot read it in place."""
    if Strategy.of(m.req.strategy) is not Strategy.AUTO:
        return None

    def usage(cl: Any) -> int:
        try:
            st = cl.api.stats(m.req.container, stream=False)
        except Exception:  # noqa: BLE001 - a prediction only
            return 0
        return int((st.get("memory_stats") or {}).get("usage") or 0)

    try:
        mem = await m.src.engine.call(usage)
    except (HostError, EngineError):
        return None
    if not mem:
        return None
    rate = throughput_estimate(m.dst.name, 100 * 2**20)
    copies = restore.copies_images(df.restore_route, df.criu_version)
    copy = restore.copy_cost_s(mem) if copies else 0.0
    return mem / rate + restore_estimate(m.dst.name, RESTORE_ESTIMATE_S) + copy
