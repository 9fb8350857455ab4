"""Finishing or rolling back a migration whose console died (`ferryman recover`).

The journal holds what the machine had done (the `ctx` records: the container, the
twin, the image folders, whether the container was frozen and the dump complete).
Recovery looks at where the container actually runs now and restores the invariant,
exactly one copy running:

- the twin runs on the target and the source copy does not → finish: remove the
  source copy, clean up;
- the source runs → roll back: remove the twin, clean up;
- both run → the twin was never committed: stop and remove it;
- neither runs → the source is resumed from its own checkpoint (or restarted, losing
  its memory, when the checkpoint is gone) — or, when the source copy no longer exists,
  the twin is started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import events as ev
from core import journal, remote
from core.config import ConfigError
from core.engine import postcopy
from core.engine.machine import Migration, _running, process_start
from core.fleet import Fleet
from core.journal import JournalEntry
from core.models import MigrationRequest


@dataclass(frozen=True)
class Plan:
    action: str  # finish | rollback | resume | start-twin | nothing | busy | other-hosts | unreachable
    reason: str

    @property
    def to_do(self) -> bool:
        """Something to carry out (after the user's yes)."""
        return self.action in ("finish", "rollback", "resume", "start-twin", "rescue")


@dataclass(frozen=True)
class Pending:
    entry: JournalEntry
    plan: Plan


async def pending(fleet: Fleet) -> list[Pending]:
    """Every unfinished migration of the journal, with what recovery would do about it."""
    out = []
    for entry in journal.unfinished():
        try:
            fleet[entry.source], fleet[entry.target]
        except ConfigError as e:
            out.append(Pending(entry, Plan("other-hosts", str(e))))
            continue
        try:
            p = await plan(fleet, entry)
        except Exception as e:  # noqa: BLE001 - one broken entry must not hide the others
            p = Plan("unreachable", f"cannot look at it now: {e}")
        if p.action == "nothing":
            entry.result = "recovered"
            entry.save()
        out.append(Pending(entry, p))
    return out


def last_ctx(entry: JournalEntry) -> dict[str, Any]:
    ctxs = [e for e in entry.events if e.get("kind") == "ctx"]
    return ctxs[-1] if ctxs else {}


def console_alive(ctx: dict[str, Any]) -> bool:
    """Whether the process that ran the migration still runs (same pid, same start time)."""
    pid = ctx.get("console_pid")
    if not pid or pid == os.getpid():
        return False
    started = process_start(int(pid))
    return bool(started) and started == ctx.get("console_started", started)


async def _migration(fleet: Fleet, entry: JournalEntry) -> Migration:
    req = MigrationRequest(
        container=entry.container, source=entry.source, target=entry.target, strategy=entry.strategy
    )
    m = Migration(fleet, req, migration_id=entry.migration_id)
    m.journal = entry
    x = last_ctx(entry)
    c = m.ctx
    c.name = entry.container
    c.container_id = x.get("container_id") or entry.container
    c.twin_id = x.get("twin_id") or entry.target_twin
    c.src_dir, c.dst_dir = x.get("src_dir", ""), x.get("dst_dir", "")
    c.checkpoint_name = x.get("checkpoint_name") or entry.checkpoint_name
    c.frozen_at = 0.0 if x.get("frozen") else None
    c.t_dump_end = 1.0 if x.get("dump_done") else 0.0
    c.dump_fired = bool(x.get("dump_fired", x.get("dump_done")))
    c.pages_streamed = bool(x.get("pages_streamed"))
    c.committed = bool(x.get("committed"))
    c.restart_policy = x.get("restart_policy") or None
    c.moved_volumes = list(x.get("moved_volumes") or [])
    m._locked = True  # noqa: SLF001 - it died holding the lock
    c.src_data_root = (await m.src.engine.info())["DockerRootDir"]
    c.dst_data_root = (await m.dst.engine.info())["DockerRootDir"]
    return m


async def plan(fleet: Fleet, entry: JournalEntry) -> Plan:
    x = last_ctx(entry)
    if entry.result == "running" and console_alive(x):
        return Plan("busy", f"still in progress in process {x.get('console_pid')}")
    for role, name in (("src", entry.source), ("dst", entry.target)):
        was, now = x.get(f"{role}_address"), fleet[name].spec.address
        if was and was != now:
            return Plan(
                "other-hosts",
                f"recorded against other hosts ({name} was {was}, here it is {now}): "
                "run `ferryman recover` with that hosts file",
            )
    m = await _migration(fleet, entry)
    c = m.ctx
    if x.get("lazy_runc_pid") and not x.get("lazy_done") and entry.result in ("running", "in doubt"):
        # Cut in the lazy phase: the whole copy is the frozen source, held by its dump.
        return Plan(
            "rescue",
            f"the lazy phase was cut: the copy on {entry.target} will be stopped and "
            f"{entry.container} thawed on {entry.source} from its frozen copy (memory intact)",
        )
    src_runs = await _running(m.src, c.container_id)
    dst_runs = bool(c.twin_id) and await _running(m.dst, c.twin_id)
    src_exists = await m.src.engine.inspect(c.container_id) is not None
    if c.committed:
        # Past the commit point the move stands: the source's checkpoint is stale, and the
        # twin may be the only whole copy. Never resume or roll back.
        if dst_runs:
            return Plan(
                "finish", f"{entry.container} runs on {entry.target}: the move will be finished"
            )
        if c.twin_id and await m.dst.engine.inspect(c.twin_id) is not None:
            return Plan(
                "start-twin",
                f"the move was committed but {entry.container} runs nowhere: it will be "
                f"started on {entry.target}",
            )
        return Plan("nothing", "nothing of this migration is left to recover")
    if dst_runs and src_runs:
        return Plan(
            "rollback", f"two copies run: the uncommitted one on {entry.target} will be stopped"
        )
    if dst_runs:
        return Plan(
            "finish", f"{entry.container} runs on {entry.target}: the move will be finished"
        )
    if src_runs:
        return Plan(
            "rollback", f"{entry.container} runs on {entry.source}: the move will be undone"
        )
    if src_exists:
        return Plan(
            "resume",
            f"{entry.container} runs nowhere: it will be resumed on {entry.source} "
            "from its checkpoint",
        )
    if c.twin_id:
        return Plan(
            "start-twin",
            f"{entry.container} runs nowhere and the source copy is gone: "
            f"it will be started on {entry.target}",
        )
    return Plan("nothing", "nothing of this migration is left to recover")


async def apply(fleet: Fleet, entry: JournalEntry, p: Plan, log: Callable[[str], None]) -> str:
    """Carry out `p`; returns the host where the container runs afterwards."""
    m = await _migration(fleet, entry)
    c = m.ctx
    m.emit = lambda e: log(e.text) if isinstance(e, ev.LogLine | ev.Warning) else None  # type: ignore[method-assign]
    if p.action == "finish":
        if c.restart_policy:
            await m.dst.engine.set_restart_policy(c.twin_id, c.restart_policy)
        await m.src.engine.remove(c.container_id)
        for v in c.moved_volumes:
            with contextlib.suppress(Exception):  # in use by another container: it stays
                await m.src.engine.remove_volume(v, force=False)
        await m.tidy()
        where = entry.target
    elif p.action == "rollback":
        await m._stop_twin()  # noqa: SLF001
        await m._remove_twin()  # noqa: SLF001
        await m.tidy()
        where = entry.source
    elif p.action == "resume":
        await m._stop_twin()  # noqa: SLF001
        await m._resume_source()  # noqa: SLF001
        await m._remove_twin()  # noqa: SLF001
        await m.tidy()
        where = entry.source
    elif p.action == "rescue":
        await m._stop_twin()  # noqa: SLF001 - first: never two copies
        out = await m.sh(
            m.src,
            remote.quote(
                postcopy.rescue_script(
                    m.src.spec.runc_root, c.container_id, int(last_ctx(entry)["lazy_runc_pid"])
                )
            ),
            what="bringing the container back from its frozen copy",
        )
        if not out.strip().endswith("running"):
            raise RuntimeError(
                f"the frozen copy of {entry.container} on {entry.source} is "
                f"{out.strip().rsplit(' ', 1)[-1] or 'gone'}: start it by hand (its memory is lost)"
            )
        await m._remove_twin()  # noqa: SLF001
        await m.tidy()
        where = entry.source
    elif p.action == "start-twin":
        await m.dst.ssh.run(
            remote.quote(remote.docker("start", c.twin_id, socket=m.dst.spec.docker_socket))
        )
        if c.restart_policy:
            await m.dst.engine.set_restart_policy(c.twin_id, c.restart_policy)
        await m.tidy()
        where = entry.target
    else:
        return entry.running_on
    if where == entry.source and c.restart_policy:
        await m._put_back_policy()  # noqa: SLF001
    if c.dst_dir:
        await m.dst.ssh.run(
            remote.quote(remote.kill_pidfile(f"{c.dst_dir}/work/page-server.pid")), check=False
        )
    entry.result = "recovered"
    entry.running_on = where
    entry.cause = (entry.cause + "; " if entry.cause else "") + f"recovered: {p.reason}"
    entry.save()
    return where
