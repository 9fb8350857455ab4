"""Failure and rollback, and the rollback steps `ferryman recover` calls too (one rule,
written once).

The undo stack (core/engine/undo.py) is unwound newest first: the twin is stopped before
the source is resumed from its own checkpoint, so two copies never run; the source is
brought back before anything else is removed, so the container never stops existing. A
decisive step whose host does not answer stops the rollback in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core import events as ev
from core import remote
from core.dockerapi import EngineError
from core.engine import (
    checkpoint,
    criu_options,
    direct_path,
    postcopy,
    restore,
    restore_runtime,
)
from core.engine.context import Run, source_own_conf
from core.engine.errors import MigrationError, Stuck
from core.engine.host_ops import is_running, running_strict
from core.engine.states import State
from core.engine.transfer import relay
from core.events import Phase
from core.ssh import CommandError, HostError

# Undo steps whose failure could leave two copies running or none: when their host does
# not answer, the rollback stops there (in doubt) instead of going on.
RESUME_SOURCE = "resume the container on the source"
STOP_TWIN = "stop the twin on the target"
RESCUE_SOURCE = "bring the container back from its frozen copy"


async def fail(m: Run, e: BaseException) -> None:
    phase = m.current_phase
    cause = e.cause if isinstance(e, MigrationError) else str(e)
    fix = e.fix if isinstance(e, MigrationError) else ""
    host = e.host if isinstance(e, MigrationError) else getattr(e, "host", "")
    excerpt: tuple[str, ...] = ()
    log_path = ""
    if isinstance(e, MigrationError) and e.log:
        log_path = m.keep_log(e.log_name or "criu.log", e.log)
        diag = diagnose(e.log)
        if diag is not None:
            cause = f"{cause}. {diag.cause}"
            fix = fix or diag.fix
            excerpt = tuple(x.text for x in diag.evidence[:8])
        else:
            excerpt = tuple(line for line in e.log.splitlines() if "Error" in line)[:8]
    m.set_state(State.ROLLING_BACK)
    m.emit(ev.RollbackStarted(reason=cause))
    running_on, ok, detail = await rollback(m, phase)
    m.set_state(State.IN_DOUBT if m.in_doubt else State.ROLLED_BACK)
    if m.in_doubt:
        fix = "the rollback could not finish: " + m.in_doubt
    m.emit(ev.RollbackFinished(running_on=running_on, ok=ok, detail=detail))
    m.emit(
        ev.MigrationFailed(
            phase=phase.value,
            cause=cause,
            fix=fix,
            host=host,
            log_excerpt=excerpt,
            log_path=log_path,
            running_on=running_on,
        )
    )
    if m.journal is not None:
        m.journal.result = "in doubt" if m.in_doubt else "rolled back" if ok else "failed"
        if m.left and not m.in_doubt:
            m.journal.result = "incomplete"
            m.journal.cause += "; left for `ferryman recover`: " + "; ".join(m.left)
        m.save_journal()


async def rollback(m: Run, phase: Phase) -> tuple[str, bool, str]:
    m.current_phase = Phase.ROLLBACK
    m.emit(ev.PhaseStarted(phase=Phase.ROLLBACK.value))
    t0 = time.monotonic()
    problems = []
    if not m.undo:
        m.log("ferryman", "rollback: nothing had changed yet")
    while m.undo:
        step = m.undo.pop()
        label = step.label
        m.log("ferryman", f"rollback: {label}")
        try:
            await retry_while_unreachable(step.run, m.log)
        except (HostError, EngineError, Stuck) as e:
            if not step.decisive:
                # Tidying only (a never-started twin, a volume, a throttle): leave it.
                m.left.append(f"{label} ({e})")
                m.log("ferryman", f"rollback: left for `ferryman recover`: {label}", "error")
                continue
            # A host that does not answer leaves the outcome in doubt: going on could
            # start a second copy (the twin may run) or lose the memory for good (it may
            # be only on that host). Stop here, keep the lock, leave it to recovery.
            m.undo.clear()
            who = getattr(e, "host", "") or "that host"
            who = who if isinstance(who, str) else getattr(who, "name", "that host")
            m.in_doubt = (
                f"{label}: {e}. Nothing more was changed"
                if isinstance(e, Stuck)
                else f"{label}: {e}. Nothing more was changed: when {who} answers again, "
                "`ferryman recover` (or the console at its next start) finishes the rollback"
            )
            m.log("ferryman", f"rollback stopped: {m.in_doubt}", "error")
            break
        except Exception as e:  # noqa: BLE001 - keep unwinding; report every problem
            problems.append(f"{label}: {e}")
            m.log("ferryman", f"rollback step failed: {label}: {e}", "error")
    where = "" if m.in_doubt else await where_running(m)
    if where in ("BOTH", "nowhere", "unknown"):
        # Never saved as a plain failure with the lock gone: recovery must see it.
        m.in_doubt = (
            f"after the rollback {m.ctx.name or m.req.container} runs "
            + {"BOTH": "on both hosts", "nowhere": "nowhere"}.get(
                where, "where it cannot be told (a host does not answer)"
            )
            + ": `ferryman recover` puts it right"
        )
        m.log("ferryman", m.in_doubt, "error")
    if not m.in_doubt and not m.left:
        await m.unlock()
    m.emit(ev.PhaseFinished(phase=Phase.ROLLBACK.value, seconds=time.monotonic() - t0))
    if m.in_doubt:
        return where if where == "BOTH" else "", False, m.in_doubt
    return where, not problems and where == m.src.name, "; ".join(problems)


async def where_running(m: Run) -> str:
    """Where the container runs after the rollback (core/engine/host_ops.py)."""
    c = m.ctx
    return await m.ops.where_running(m.src, m.dst, c.container_id or m.req.container, c.twin_id)


async def resume_source(m: Run) -> None:
    """Bring the source container back from its own checkpoint (or, failing that, restart
    it); a source frozen by `runc pause` (Docker >= 28) is thawed instead."""
    c = m.ctx
    if c.src_paused:
        await thaw_source(m)
        return
    if await is_running(m.src, c.container_id):
        m.log(m.src.name, f"{c.name} is still running on {m.src.name}: nothing to resume")
        if c.frozen_at is not None:
            m.emit(
                ev.FreezeEnded(
                    total_s=time.monotonic() - c.frozen_at,
                    dump_s=0,
                    transfer_s=0,
                    restore_s=0,
                    where=m.src.name,
                )
            )
        return
    t0 = time.monotonic()
    try:
        if c.pages_streamed and c.dump_fired:
            # The dump streamed its memory to the target: bring the pages back first.
            m.log(m.src.name, f"copying the memory pages back from {m.dst.name}")
            try:
                await relay(
                    m.dst.ssh,
                    remote.quote(remote.tar_create(f"{c.dst_dir}/img")),
                    m.src.ssh,
                    # Only what the page server wrote there: the source's own image files
                    # win over the target's copies, which a failed transfer may have cut.
                    remote.quote(remote.tar_extract_missing(f"{c.src_dir}/img")),
                    m.ops.meter(),
                    lambda: False,
                )
            except HostError:
                raise
            except (CommandError, MigrationError, OSError) as e:
                # The pages exist only on the target: never a cold start that drops them.
                raise Stuck(
                    m.src.name,
                    f"the memory pages could not be copied back to {m.src.name} ({e}); "
                    f"they are kept in {c.dst_dir} on {m.dst.name}. Free space in "
                    f"{m.src.spec.images_dir} on {m.src.name}, then run `ferryman recover`",
                ) from e
        if restore_runtime.needs_restore_runtime(c.src_engine or "0"):
            raise MigrationError(
                f"Docker {c.src_engine} on {m.src.name} cannot restore a checkpoint "
                "(`docker start --checkpoint` fails there)"
            )
        name = f"{c.checkpoint_name}-back"
        own = source_own_conf(m.ctx)
        script = restore.restore_script(
            docker_socket=m.src.spec.docker_socket,
            data_root=c.src_data_root,
            container_id=c.container_id,
            name=name,
            images_dir=f"{c.src_dir}/img",
            work_dir=f"{c.src_dir}/restore-work",
            extra=(c.src_cgroup.criu_options(c.container_id) if c.src_cgroup else ())
            + criu_options.config_lines(m.req.criu_options)
            + tuple(c.restore_lines),
            criu_conf_file=own,
            copy_images=c.src_copies_images,
        )
        await m.ops.sh(m.src, script, what="resuming from the source's checkpoint")
        await m.ops.rm(m.src, restore.checkpoint_folder(c.src_data_root, c.container_id, name))
    except HostError:
        raise  # a host that does not answer: no cold restart, the rollback is in doubt
    except (MigrationError, CommandError) as e:
        log = await m.ops.fetch(m.src, f"{c.src_dir}/restore-work/restore.log")
        if log:
            m.keep_log("source-restore.log", log)
        why = e.cause if isinstance(e, MigrationError) else str(e)
        await cold_start_source(
            m,
            f"could not resume {c.name} from its checkpoint ({why}); "
            "restarting it instead: its memory state is lost",
        )
    freeze_ended_on_source(m, t0)


async def thaw_source(m: Run) -> None:
    """Rollback of a source frozen by `runc pause`: thaw it (its memory never left it).
    A source that is no longer frozen and does not run is restarted (said)."""
    c = m.ctx
    t0 = time.monotonic()
    out = await m.ops.sh(
        m.src,
        remote.quote(checkpoint.thaw_cmd(m.src.spec.runc_root, c.container_id, c.src_systemd)),
        what="thawing the frozen source",
    )
    status = checkpoint.thaw_status(out)
    if status == "running":
        m.log(m.src.name, f"{c.name} thawed on {m.src.name}: it runs on, memory intact")
    elif status == "paused":
        raise MigrationError(
            f"{c.name} stays frozen on {m.src.name} (runc resume did not thaw it)",
            host=m.src.name,
        )
    else:
        await cold_start_source(
            m,
            f"{c.name} is {status} on {m.src.name}, not frozen: restarting it "
            "instead, its memory state is lost",
        )
    freeze_ended_on_source(m, t0)


async def source_runc_state(m: Run) -> str:
    """runc's word for the source container (`running`, `paused`, `stopped`, `gone`)."""
    c = m.ctx
    r = await m.src.ssh.run(
        remote.quote(
            checkpoint.thaw_cmd(m.src.spec.runc_root, c.container_id, c.src_systemd, thaw=False)
        ),
        check=False,
        timeout=30,
    )
    return checkpoint.thaw_status(r.stdout)


async def stop_twin(m: Run) -> None:
    """Stop the twin, and make sure it is stopped: the source is resumed next, so a
    twin that may still run (a refusing or hung dockerd) stops the rollback here."""
    c = m.ctx
    if c.lazy_link is not None and not c.lazy_done:
        c.lazy_link.hold()
    if not c.twin_id:
        return
    with contextlib.suppress(EngineError):  # it must not restart on its own
        await m.dst.engine.set_restart_policy(c.twin_id, {"Name": "no"})
    await m.dst.engine.kill(c.twin_id)
    for _ in range(50):
        if not await running_strict(m.dst, c.twin_id):
            return
        await asyncio.sleep(0.1)
    raise EngineError(f"{m.dst.name}: the twin {c.twin_id[:12]} still runs after kill")


async def remove_twin(m: Run) -> None:
    if m.ctx.twin_id:
        await m.dst.engine.remove(m.ctx.twin_id)
    await disarm_twin(m)


async def disarm_twin(m: Run) -> None:
    """No restore marker and no CRIU file of this migration's twin left on the target
    (the restore script removes them itself; a killed one may not have)."""
    c = m.ctx
    if c.twin_route == restore_runtime.ROUTE_RUNTIME and c.twin_id and c.twin_criu_conf:
        await m.ops.run_quiet(m.dst, restore_runtime.disarm_cmd(c.twin_id, c.twin_criu_conf))
    elif c.twin_criu_conf:
        await m.ops.run_quiet(m.dst, ["rm", "-f", c.twin_criu_conf])


async def remove_target_volumes(m: Run) -> None:
    for v in list(m.ctx.moved_volumes):
        await m.dst.engine.remove_volume(v)
        m.ctx.moved_volumes.remove(v)


async def stop_page_server(m: Run) -> None:
    if m.ctx.dst_dir:
        await m.ops.run_quiet(m.dst, remote.kill_pidfile(f"{m.ctx.dst_dir}/work/page-server.pid"))


async def revoke_direct_key(m: Run) -> None:
    """Remove the direct path's one-time key from the target (core/engine/direct_path.py)."""
    c = m.ctx
    if c.direct_keys_file:
        await direct_path.revoke(m.dst, c.direct_keys_file, m.id)
        c.direct_keys_file = ""
        m.save_ctx()


async def put_back_policy(m: Run) -> None:
    if m.ctx.restart_policy:
        await m.src.engine.set_restart_policy(m.ctx.container_id, m.ctx.restart_policy)


async def restart_source(m: Run) -> None:
    c = m.ctx
    await cold_start_source(
        m,
        f"{c.name}'s memory was only on {m.dst.name} after the lazy phase; "
        f"restarting it on {m.src.name}: its memory state is lost",
    )


async def cold_start_source(m: Run, warning: str) -> None:
    """The last resort of a rollback: start the source container afresh, said."""
    m.emit(ev.Warning(text=warning))
    await m.ops.sh(
        m.src,
        remote.quote(remote.docker("start", m.ctx.container_id, socket=m.src.spec.docker_socket)),
        what="docker start",
    )


def freeze_ended_on_source(m: Run, t0: float) -> None:
    """After a rollback brought the source back: the freeze it saw, from its start."""
    c = m.ctx
    if c.frozen_at is not None:
        m.emit(
            ev.FreezeEnded(
                total_s=time.monotonic() - c.frozen_at,
                dump_s=c.dump_s,
                transfer_s=0,
                restore_s=time.monotonic() - t0,
                where=m.src.name,
            )
        )


async def rescue_source(m: Run) -> str:
    """Rollback during post-copy: the twin is already stopped (the step before this one).
    Stop the dump process, whose tasks then stay frozen with all their memory, and thaw
    them: the container runs on the source again, never beside the twin."""
    c = m.ctx
    pid = c.lazy_dump.runc_pid if c.lazy_dump is not None else c.lazy_runc_pid
    if not pid:
        return "gone"
    out = await m.ops.sh(
        m.src,
        remote.quote(postcopy.rescue_script(m.src.spec.runc_root, c.container_id, pid)),
        what="bringing the container back from its frozen copy",
    )
    if c.lazy_link is not None:
        await c.lazy_link.close()
    status = out.strip().rsplit(" ", 1)[-1] if out.strip() else "gone"
    if status == "running":
        m.log(
            m.src.name,
            f"{c.name} runs on {m.src.name} again, from its frozen copy (memory intact)",
        )
    else:
        m.log(m.src.name, f"the frozen copy of {c.name} is {status}", "error")
    return status


async def retry_while_unreachable(
    step: Callable[[], Awaitable[object]], log: Callable[[str, str], None], pauses=(1.0, 2.0, 4.0)
) -> None:
    """Run a rollback step; while its host does not answer, try again after a pause (a
    dropped connection is opened again on the next try)."""
    waits = list(pauses)
    while True:
        try:
            await step()
            return
        except HostError as e:
            if not waits:
                raise
            log(e.host, f"{e}; trying again in {waits[0]:.0f} s")
            await asyncio.sleep(waits.pop(0))


def diagnose(log: str) -> Any:
    try:
        from core.doctor import diagnose
    except ImportError:
        return None
    found = diagnose(log)
    return found[0] if found else None
