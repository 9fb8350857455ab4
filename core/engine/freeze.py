"""The freeze: the checkpoint (the dump fired), the transfer (the armed streams), the
restore on the target; and how much of the dump the container really spent frozen."""

from __future__ import annotations

import asyncio
import functools
import time

from core import criu_stats, remote
from core import events as ev
from core.dockerapi import EngineError
from core.engine import (
    arming,
    checkpoint,
    direct_path,
    lazy_phase,
    postcopy,
    restore_runtime,
    rollback,
)
from core.engine.context import Run
from core.engine.errors import MigrationError
from core.engine.page_stream import PageStream
from core.engine.transfer import pipe
from core.events import Phase
from core.ssh import HostError, read_remote_file


async def checkpoint_phase(m: Run) -> None:
    c = m.ctx
    async with m.phase(Phase.CHECKPOINT):
        c.source_log_tail = ""
        await arming.arm(m)
        m.emit(ev.FreezeStarted())
        c.frozen_at = time.monotonic()
        c.dump_fired = True
        m.save_ctx()
        m.undo.push(
            rollback.RESUME_SOURCE,
            functools.partial(rollback.resume_source, m),
            decisive=True,
            kind="resume",
        )
        c.t_fire = time.monotonic()
        if m.strategy.lazy:
            await lazy_phase.fire_lazy_dump(m)
        else:
            if c.pages is not None:
                c.pages.dump_fired()
            try:
                await m.ops.fire(
                    c.armed_dump, "runc checkpoint", f"{c.src_dir}/work/dump.log", "dump.log"
                )
            except MigrationError:
                if c.pages is not None and c.pages.refused:  # say who was turned away
                    m.emit(ev.Warning(text=refused_dump_text(m, c.pages)))
                raise
        if c.pages is not None:
            await c.pages.wait_done()
        c.t_dump_end = time.monotonic()
        m.save_ctx()


def refused_dump_text(m: Run, pages: PageStream) -> str:
    text = postcopy.refused_text(m.src.name, pages.refused, "CRIU's dump")
    return f"{text}; the last: {pages.last_refusal}" if pages.last_refusal else text


async def frozen_part_of_dump(m: Run, wall_s: float) -> float:
    """How much of the dump the container spent frozen: CRIU's own frozen_time.

    runc and CRIU start up (and CRIU freezes the cgroup) before the freeze begins; the
    wall time of the command would count that start-up as downtime.
    """
    c = m.ctx
    data = await read_remote_file(m.src.ssh, f"{c.src_dir}/work/stats-dump")
    try:
        stats = criu_stats.parse_dump_stats(data) if data else None
    except criu_stats.StatsError:
        stats = None
    if stats is None or not stats.frozen_time_us:
        m.log(m.src.name, "no CRIU dump statistics: the freeze counts the whole dump command")
        return wall_s
    frozen = min(wall_s, stats.frozen_time_s)
    m.log(
        m.src.name,
        f"dump: {wall_s * 1000:.0f} ms in all, {frozen * 1000:.0f} ms frozen "
        f"(CRIU: {stats.pages_written} pages written)",
    )
    return frozen


async def paused_part_of_dump(m: Run, wall_s: float) -> float:
    """A source frozen by `runc pause`: frozen from the pause (before CRIU starts) to
    the dump's end, as the source's own clock saw it (core/engine/checkpoint.py)."""
    c = m.ctx
    w = f"{c.src_dir}/work"
    r = await m.src.ssh.run(
        remote.quote(["cat", f"{w}/{checkpoint.FROZEN_FROM}", f"{w}/{checkpoint.FROZEN_TO}"]),
        check=False,
        timeout=30,
    )
    frozen = checkpoint.frozen_seconds(r.stdout)
    if frozen is None:
        m.log(m.src.name, "no pause time stamps: the freeze counts the whole command")
        return wall_s
    frozen = min(wall_s, frozen)
    m.log(
        m.src.name,
        f"dump: {wall_s * 1000:.0f} ms in all, {frozen * 1000:.0f} ms frozen (from the "
        "end of runc pause to the dump's end)",
    )
    return frozen


async def transfer_phase(m: Run) -> None:
    c = m.ctx
    async with m.phase(Phase.TRANSFER):
        meter = c.meter or m.ops.meter()
        m.check_abort()
        pipes = []
        for out, into in c.armed_streams:
            if into is None:  # direct: the source's ssh carries it to the target
                m.log(out.host.name, f"$ {out.command}", "cmd")
                p = out.fire(last=True)
                pipes.append(
                    direct_path.send(out.host.name, out.command, p, meter, lambda: m.aborted)
                )
                continue
            m.log(out.host.name, f"$ {out.command} | (relay) | {into.command}", "cmd")
            p_in = into.fire()  # the newline first, then the stream
            p_out = out.fire(last=True)
            pipes.append(
                pipe(
                    out.host.name,
                    out.command,
                    p_out,
                    into.host.name,
                    into.command,
                    p_in,
                    meter,
                    lambda: m.aborted,
                )
            )
        # In parallel: the streams share the link, and none waits for another's start.
        await asyncio.gather(*pipes)
        meter.finish()
        c.bytes_moved = meter.total


async def restore_phase(m: Run) -> None:
    c = m.ctx
    async with m.phase(Phase.RESTORE):
        m.undo.push(rollback.STOP_TWIN, functools.partial(rollback.stop_twin, m), decisive=True)
        t0 = time.monotonic()
        await m.ops.fire(
            c.armed_restore,
            "docker start (restore runtime)"
            if c.twin_route == restore_runtime.ROUTE_RUNTIME
            else "docker start --checkpoint",
            f"{c.dst_dir}/work/restore.log",
            "restore.log",
        )
        t_end = time.monotonic()
        # The container runs again. Only now the bookkeeping that the freeze need not wait for.
        if c.pages is not None:
            await c.pages.close()
            if c.pages.refused:
                m.emit(ev.Warning(text=refused_dump_text(m, c.pages)))
        c.restore_s = t_end - t0
        # The source may be lost now without harm to the move: its bookkeeping is a
        # courtesy, and never a reason to stop the only running copy.
        try:
            if m.strategy.lazy:
                c.dump_s = await lazy_phase.frozen_part_of_lazy_dump(m, c.t_dump_end - c.t_fire)
            elif c.src_paused:
                c.dump_s = await paused_part_of_dump(m, c.t_dump_end - c.t_fire)
            else:
                c.dump_s = await frozen_part_of_dump(m, c.t_dump_end - c.t_fire)
        except (HostError, EngineError) as e:
            c.dump_s = c.t_dump_end - c.t_fire
            m.log(m.src.name, f"no dump statistics ({e}): the freeze counts it all")
        c.transfer_s = t0 - c.t_dump_end  # the streams, and whatever else ran in between
        m.emit(
            ev.FreezeEnded(
                total_s=c.dump_s + c.transfer_s + c.restore_s,
                dump_s=c.dump_s,
                transfer_s=c.transfer_s,
                restore_s=c.restore_s,
                where=m.dst.name,
            )
        )
        # Docker noticed the exit of the checkpointed process; its logs stay readable.
        try:
            c.source_log_tail = await m.ops.logs(m.src, c.container_id)
        except (HostError, EngineError) as e:
            m.log(m.src.name, f"the source's last log lines are out of reach ({e})")
