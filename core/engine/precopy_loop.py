"""The pre-copy loop: rounds of dumps while the container runs (core/engine/precopy.py),
each judged by the planner (core/engine/planner.py), with the CPU throttle it asks for
(QEMU's auto-converge, through Docker's CPU limit)."""

from __future__ import annotations

from core import events as ev
from core.engine import restore
from core.engine.context import Run
from core.engine.errors import MigrationError
from core.engine.planner import PlannerSettings, PrecopyPlanner
from core.engine.precopy import RESTORE_ESTIMATE_S, RoundError, Rounds
from core.engine.strategy import Strategy
from core.events import Phase
from core.fleet import Host
from core.journal import restore_estimate


async def precopy(m: Run) -> None:
    c, req = m.ctx, m.req
    async with m.phase(Phase.PRECOPY):
        planner = PrecopyPlanner(
            PlannerSettings(
                downtime_budget_s=req.downtime_budget_s,
                max_rounds=req.max_rounds,
                max_total_s=req.max_precopy_s,
                converge_policy="postcopy"
                if m.strategy is Strategy.HYBRID
                else req.converge_policy,
                postcopy_allowed=m.strategy is Strategy.HYBRID,
                restore_s=restore_estimate(m.dst.name, RESTORE_ESTIMATE_S),
                copy_bytes_per_s=restore.COPY_BYTES_PER_S if c.twin_copies_images else None,
            )
        )

        async def run(host: Host, command: str, what: str) -> str:
            return await m.ops.sh(host, command, what=what)

        c.rounds = Rounds(
            m.src,
            m.dst,
            runc_root=m.src.spec.runc_root,
            container_id=c.container_id,
            src_dir=c.src_dir,
            dst_dir=c.dst_dir,
            systemd_cgroup=c.src_systemd,
            planner=planner,
            run=run,
            meter=m.ops.meter,
            direct=c.direct,
        )
        while True:
            m.check_abort()
            try:
                r = await c.rounds.round()
            except MigrationError as e:
                e.log = await m.ops.fetch(m.src, f"{c.src_dir}/prework{c.rounds.n}/dump.log")
                e.log_name = f"pre-dump-{c.rounds.n}.log"
                raise
            except RoundError as e:
                raise MigrationError(
                    str(e),
                    host=m.src.name,
                    log=await m.ops.fetch(m.src, e.log_path),
                    log_name=f"pre-dump-{c.rounds.n}.log",
                ) from e
            st, d = r.stats, r.decision
            m.emit(
                ev.RoundFinished(
                    round=st.index,
                    pages_scanned=st.pages_scanned,
                    pages_skipped=st.pages_skipped_parent,
                    pages_written=st.pages_written,
                    bytes_sent=st.transfer_bytes,
                    duration_s=st.duration_s,
                    frozen_s=st.frozen_time_s,
                    throughput_bps=st.throughput_bps or 0.0,
                    dirty_rate_bps=r.dirty_rate_bps or 0.0,
                    predicted_freeze_s=d.predicted_freeze_s or 0.0,
                )
            )
            m.emit(
                ev.Decision(
                    action=d.action,
                    reason=d.reason,
                    predicted_freeze_s=d.predicted_freeze_s or 0.0,
                    budget_s=req.downtime_budget_s,
                    throttle_percent=d.throttle_percent,
                )
            )
            if d.throttle_percent and d.throttle_percent != m.throttle:
                await set_throttle(m, d.throttle_percent)
            if d.action == "abort":
                raise MigrationError(
                    f"pre-copy gave up: {d.reason}",
                    "raise the downtime budget, or move it when it is quieter",
                )
            if d.action == "postcopy" and m.strategy is not Strategy.HYBRID:
                m.emit(
                    ev.Warning(
                        text="post-copy is not available in this version: switching over now"
                    )
                )
            if d.final:
                break
        await set_throttle(m, 0)


async def set_throttle(m: Run, percent: int) -> None:
    """Throttle the source container's CPU (QEMU's auto-converge, through Docker's CPU limit)."""
    c = m.ctx
    hc = c.inspect.get("HostConfig") or {}
    base = hc.get("NanoCpus") or 0
    if not base:
        info = await m.src.engine.info()
        base = int(info.get("NCPU") or 1) * 10**9
    nano = (
        (hc.get("NanoCpus") or 0) if percent == 0 else max(10**7, int(base * (100 - percent) / 100))
    )
    await m.src.engine.set_cpu_limit(c.container_id, nano)
    if percent and not c.throttled:
        c.throttled = True
        m.undo.push("remove the CPU throttle", lambda: set_throttle(m, 0))
    m.throttle = percent
    m.emit(ev.ThrottleChanged(percent=percent))
