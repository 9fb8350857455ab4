"""Verify, commit and what follows the commit point: the twin is checked, given the
container's restart policy, the source copy removed, the images and the lock tidied.
After the commit a step that cannot be done is left, by name, for `ferryman recover`;
`ferryman recover` calls these same steps."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

from core import events as ev
from core import remote
from core.container_settings import health_wait_s
from core.dockerapi import EngineError
from core.engine import (
    heartbeat,
    restore,
    rollback,
)
from core.engine.context import Run
from core.engine.errors import MigrationError
from core.engine.host_ops import is_running
from core.engine.states import State
from core.events import Phase
from core.ssh import CommandError, HostError


async def verify(m: Run) -> None:
    c = m.ctx
    async with m.phase(Phase.VERIFY):
        deadline = time.monotonic() + health_wait_s(c.inspect)
        settle = time.monotonic() + 0.5
        while True:
            st = (await m.dst.engine.inspect(c.twin_id) or {}).get("State", {})
            if not st.get("Running"):
                raise MigrationError(
                    f"{c.name} stopped on {m.dst.name} right after the restore "
                    f"(exit code {st.get('ExitCode')}, {st.get('Error') or 'no error given'})",
                    host=m.dst.name,
                )
            health = (st.get("Health") or {}).get("Status")
            if time.monotonic() >= settle and health in (None, "healthy"):
                break
            if health == "unhealthy" or time.monotonic() > deadline:
                raise MigrationError(
                    f"{c.name} is {health} on {m.dst.name} after the restore",
                    host=m.dst.name,
                )
            await asyncio.sleep(0.1)
        m.target_log_tail = await m.ops.logs(m.dst, c.twin_id, head=True)
        gap = heartbeat.gap(c.source_log_tail, m.target_log_tail)
        if gap is not None and not gap.continued:
            raise MigrationError(
                f"{c.name}'s heartbeat counter went from {gap.last_source.counter} on "
                f"{m.src.name} to {gap.first_target.counter} on {m.dst.name}: the "
                "application state did not continue",
                "see the doctor and the CRIU logs; the move is rolled back",
                host=m.dst.name,
            )
        m.log(
            m.dst.name,
            f"{c.name} runs on {m.dst.name}" + (f" ({health})" if health else ""),
        )


async def commit(m: Run) -> None:
    c = m.ctx
    async with m.phase(Phase.COMMIT):
        # The twin must still run now (a dockerd restart since verify would have stopped
        # it): until the source copy is removed, a rollback can still bring it back.
        if not await is_running(m.dst, c.twin_id):
            raise MigrationError(
                f"{c.name} no longer runs on {m.dst.name} (checked before removing the "
                f"source copy)",
                host=m.dst.name,
            )
        await give_twin_its_policy(m)
        m.check_abort()  # the last moment an abort is honoured
        m.undo.clear()  # past this point the move stands
        c.committed = True
        m.set_state(State.COMMITTED)
        m.save_ctx()
        await remove_source_copy(m)


async def give_twin_its_policy(m: Run) -> None:
    c = m.ctx
    if c.restart_policy:
        await m.dst.engine.set_restart_policy(c.twin_id, c.restart_policy)
        m.log(m.dst.name, f"restart policy {c.restart_policy['Name']} set")


async def remove_source_copy(m: Run) -> None:
    """After the commit: the stopped source copy and the volumes whose data moved."""
    c = m.ctx
    await after_commit(
        m,
        f"remove the stopped copy of {c.name} from {m.src.name}",
        lambda: m.src.engine.remove(c.container_id),
    )
    m.log(m.src.name, f"removed {c.name} ({c.container_id[:12]}) from {m.src.name}")
    for v in list(c.moved_volumes):
        await after_commit(
            m,
            f"remove volume {v} from {m.src.name} (its data is on {m.dst.name})",
            functools.partial(m.src.engine.remove_volume, v, force=False),
        )


async def start_twin(m: Run) -> None:
    c = m.ctx
    await m.ops.sh(
        m.dst,
        remote.quote(remote.docker("start", c.twin_id, socket=m.dst.spec.docker_socket)),
        what="docker start",
    )


async def after_commit(m: Run, what: str, step: Callable[[], Awaitable[None]]) -> None:
    """A step after the commit point: the move stands whatever happens; a step that
    cannot be done is left, by name, for `ferryman recover`."""
    try:
        await step()
    except (HostError, EngineError, CommandError, MigrationError) as e:
        m.left.append(what)
        m.emit(ev.Warning(text=f"left for `ferryman recover`: {what} ({e})"))


async def cleanup(m: Run) -> None:
    async with m.phase(Phase.CLEANUP):
        await tidy(m)


async def tidy(m: Run) -> None:
    """Delete the images and Docker's checkpoint folder, release the lock (also what
    `ferryman recover` does last)."""
    c = m.ctx
    await after_commit(m, "delete the checkpoint images", functools.partial(cleanup_images, m))
    await after_commit(
        m,
        f"remove the twin's restore marker and CRIU file on {m.dst.name}",
        functools.partial(rollback.disarm_twin, m),
    )
    await after_commit(
        m,
        f"delete Docker's checkpoint folder on {m.dst.name}",
        lambda: m.ops.rm(
            m.dst,
            restore.checkpoint_folder(c.dst_data_root, c.twin_id, c.checkpoint_name),
        ),
    )
    if c.direct_keys_file:
        await after_commit(
            m,
            f"remove the one-time transfer key from {m.dst.name}:{c.direct_keys_file}",
            functools.partial(rollback.revoke_direct_key, m),
        )
    if not m.left:
        await after_commit(m, "release the migration lock", m.unlock)


async def cleanup_images(m: Run) -> None:
    c = m.ctx
    if m.req.keep_images:
        m.log(
            m.src.name,
            f"images kept: {m.src.name}:{c.src_dir}, {m.dst.name}:{c.dst_dir} "
            "(they hold the process memory: delete them when done)",
        )
        return
    for h, d in ((m.src, c.src_dir), (m.dst, c.dst_dir)):
        if d:
            await m.ops.rm(h, d)
