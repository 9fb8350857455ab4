"""The migration state machine.

    preflight → prepare → checkpoint (freeze) → transfer → restore → verify → commit → cleanup

Each state that changes something registers how to undo it on a stack (one rollback path
per state, as QEMU's migration states have). A failure or an abort before commit unwinds
the stack in reverse: the twin is stopped before the source is resumed from its own
checkpoint, so two copies never run; the source is brought back before anything else is
removed, so the container never stops existing. After commit there is nothing to undo.

The machine emits typed events (core/events.py) into a queue; iterating the Migration
yields them. Every event is also folded into the journal, saved as it goes.

This file holds the order of the phases and that plumbing; the phases themselves are
functions of the migration (core/engine/context.py's `Run`), each in a file of its own:
preflight_phase.py, prepare_phase.py, precopy_loop.py (with the planner, planner.py),
arming.py and freeze.py (checkpoint, transfer, restore), lazy_phase.py (post-copy),
finish.py (verify, commit, cleanup), rollback.py (failure, rollback and the steps
`ferryman recover` shares); host operations and the lock in host_ops.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import time
import traceback
from collections.abc import AsyncIterator, Callable

from core import events as ev
from core.container_settings import health_wait_s
from core.dockerapi import EngineError
from core.engine import (
    finish,
    freeze,
    heartbeat,
    lazy_phase,
    precopy_loop,
    preflight_phase,
    prepare_phase,
    rollback,
    watch,
)
from core.engine.context import Ctx
from core.engine.errors import Aborted, MigrationError
from core.engine.facts import Facts
from core.engine.host_ops import HostOps, MigrationLock, is_running
from core.engine.states import FINAL, State, transition
from core.engine.strategy import Strategy
from core.engine.transfer import StreamCancelled
from core.engine.undo import UndoStack
from core.events import Phase
from core.fleet import Fleet, Host
from core.journal import JournalEntry, journal_dir
from core.models import MigrationRequest
from core.ssh import CommandError, HostError

__all__ = [
    "Aborted",
    "Ctx",
    "Migration",
    "MigrationError",
    "health_wait_s",
    "is_running",
    "new_id",
    "process_start",
]


def process_start(pid: int) -> str:
    """When a process started (clock ticks since boot): with the pid, it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class Migration:
    def __init__(
        self,
        fleet: Fleet,
        request: MigrationRequest,
        *,
        migration_id: str | None = None,
        on_event: Callable[[ev.Event], None] | None = None,
    ) -> None:
        """`on_event`: where events go instead of the iterator (recovery's narration)."""
        self._on_event = on_event
        self.fleet = fleet
        self.req = request
        self.id = migration_id or new_id()
        self.src: Host = fleet[request.source]
        self.dst: Host = fleet[request.target]
        self.ctx = Ctx()
        self.strategy = Strategy.of(request.strategy) or Strategy.AUTO  # resolved in preflight
        self.journal: JournalEntry | None = None
        self._q: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self.undo = UndoStack()
        self.ops = HostOps(fleet, self.emit)
        self.lock = MigrationLock(self.src)
        self._aborted = False
        self.state = State.NEW
        self.current_phase = Phase.PREFLIGHT  # the phase a failure is reported in
        self.left: list[str] = []  # steps after the commit that could not be done
        self.in_doubt = ""  # why the rollback stopped in doubt, once it did
        self.throttle = 0  # the CPU throttle on the source, in percent (pre-copy)
        self.target_log_tail = ""  # the twin's first log lines (verify)
        self._journal_error = ""  # why the journal could not be written, once said
        self.task: asyncio.Task[None] | None = None  # the machine, once iterated

    @property
    def aborted(self) -> bool:
        """An abort was asked for (honoured at the next safe point before commit)."""
        return self._aborted

    @property
    def _committed(self) -> bool:
        return self.ctx.committed

    def set_state(self, new: State) -> None:
        """The one place the migration's state changes (core/engine/states.py)."""
        self.state = transition(self.state, new)

    # --- the face's side -----------------------------------------------------------------

    def abort(self) -> None:
        """Ask for a rollback; honoured at the next safe point before commit."""
        if not self._committed:
            self._aborted = True

    async def __aiter__(self) -> AsyncIterator[ev.Event]:
        task = self.task = asyncio.create_task(self._run(), name=f"migration {self.id}")
        try:
            while True:
                item = await self._q.get()
                if item is None:
                    break
                yield item
        finally:
            if not task.done():
                # The face went away: let the machine finish (or roll back) on its own.
                self.abort()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            elif not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]

    # --- plumbing (the face the phases see: core/engine/context.py's Run) ------------------------------------------------------------------------

    def emit(self, e: ev.Event) -> None:
        if self.journal is not None:
            self.journal.record(e)
            if not isinstance(e, ev.BytesMoved | ev.LogLine) or getattr(e, "done", False):
                self.save_journal()
        if self._on_event is not None:
            self._on_event(e)
        else:
            self._q.put_nowait(e)

    def adopt(self, facts: Facts) -> None:
        """Take over a migration from its journaled facts (`ferryman recover`): its lock
        is held, and the rollback and cleanup steps work from these facts."""
        self.ctx = Ctx(**dataclasses.asdict(facts))
        self.lock.held = True

    def save_journal(self) -> None:
        """Write the journal entry; a journal that cannot be written (the console's disk
        full) is said once and never stops the migration or its rollback."""
        if self.journal is None:
            return
        try:
            self.journal.save()
        except OSError as e:
            if not self._journal_error:
                self._journal_error = str(e)
                self._q.put_nowait(
                    ev.Warning(
                        text=f"the journal cannot be written ({e}): the move goes on, but a "
                        f"console killed now leaves nothing for `ferryman recover`"
                    )
                )
        else:
            self._journal_error = ""

    def log(self, host: str, text: str, stream: str = "ferryman") -> None:
        self.emit(ev.LogLine(host=host, text=text, stream=stream))

    def check_abort(self) -> None:
        if self._aborted and not self._committed:
            raise Aborted("aborted by the user")

    @contextlib.asynccontextmanager
    async def phase(self, p: Phase) -> AsyncIterator[None]:
        self.check_abort()
        self.set_state(State(p.value))
        self.current_phase = p
        t0 = time.monotonic()
        self.emit(ev.PhaseStarted(phase=p.value))
        yield
        self.emit(ev.PhaseFinished(phase=p.value, seconds=time.monotonic() - t0))

    def save_ctx(self) -> None:
        """Journal the facts recovery needs (core/engine/facts.py)."""
        if self.journal is None:
            return
        c = self.ctx
        c.frozen = c.frozen_at is not None
        c.dump_done = bool(c.t_dump_end)
        c.lazy_runc_pid = c.lazy_dump.runc_pid if c.lazy_dump else 0
        c.console_pid, c.console_started = os.getpid(), process_start(os.getpid())
        c.src_address, c.dst_address = self.src.spec.address, self.dst.spec.address
        self.journal.checkpoint_name = c.checkpoint_name
        self.journal.target_twin = c.twin_id
        self.journal.events.append(c.to_record())
        self.save_journal()

    # --- the machine ---------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._machine()
        except asyncio.CancelledError:
            # Cancelled (Ctrl-C, SIGTERM, the console quit): never a final "failed". Roll
            # back now if nothing was committed; a second cancel leaves it for recovery.
            await self._interrupted("the migration was interrupted (cancelled)")
            raise
        except BaseException as e:  # never leave the face waiting
            if self.state not in FINAL:
                self.set_state(State.INTERRUPTED)
            self._mark_interrupted(f"internal error: {e!r}")
            raise
        finally:
            self._q.put_nowait(None)

    def _mark_interrupted(self, why: str, result: str = "running") -> None:
        """The journal says the migration is unfinished (and the lock stays): whatever
        happens next, `ferryman recover` sees it. "running" while this process still
        works on it; "in doubt" once it has given up (recovery must not wait for it)."""
        if self.journal is not None and self.journal.result not in (
            "succeeded",
            "rolled back",
        ):
            self.journal.result = result
            self.journal.cause = f"{why}: `ferryman recover` finishes or rolls it back"
            self.save_ctx()

    async def _interrupted(self, why: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        self._mark_interrupted(why)
        if self.journal is None or self.state in (
            State.SUCCEEDED,
            State.ROLLED_BACK,
            State.INCOMPLETE,
            State.IN_DOUBT,
        ):
            return
        if self.state is State.ROLLING_BACK:
            # Cancelled again during the rollback: stop, hold the lock, leave it to recovery.
            self.set_state(State.INTERRUPTED)
            self._mark_interrupted(why + " during the rollback", "in doubt")
            self.emit(ev.Warning(text=f"{why} during the rollback: run `ferryman recover`"))
            return
        try:
            if self._committed:
                self.left.append("the cleanup after the commit")
                self.set_state(State.INTERRUPTED)
                self.journal.result = "incomplete"
                self.journal.cause = f"{why} after the commit: left for `ferryman recover`"
                self.save_journal()
            else:
                await rollback.fail(self, Aborted(why))
        except asyncio.CancelledError:
            if self.state is not State.INTERRUPTED:
                self.set_state(State.INTERRUPTED)
            self._mark_interrupted(why + " twice", "in doubt")

    async def _machine(self) -> None:
        started, started_wall = time.monotonic(), time.time()
        try:
            await preflight_phase.preflight(self)
            await prepare_phase.prepare(self)
            if self.strategy.iterative:
                await precopy_loop.precopy(self)
            await freeze.checkpoint_phase(self)
            await freeze.transfer_phase(self)
            await freeze.restore_phase(self)
            if self.strategy.lazy:
                await lazy_phase.lazy_phase(self)
            await finish.verify(self)
        except (MigrationError, Aborted, HostError, EngineError, CommandError) as e:
            await rollback.fail(self, e)
            return
        except StreamCancelled as e:
            await rollback.fail(self, Aborted(str(e)))
            return
        except Exception as e:  # a bug of ours: still roll back, and say what it was
            self.log("ferryman", traceback.format_exc(), "error")
            await rollback.fail(
                self,
                MigrationError(
                    f"internal error in {self.current_phase.value}: {e!r}",
                    "please report it with the journal entry",
                ),
            )
            return
        try:
            await finish.commit(self)
        except (MigrationError, Aborted, HostError, EngineError, CommandError) as e:
            await rollback.fail(self, e)
            return
        await finish.cleanup(self)
        c = self.ctx
        gap = heartbeat.gap(c.source_log_tail, self.target_log_tail)
        seen = await watch.observe(self, started_wall)
        self.set_state(State.INCOMPLETE if self.left else State.SUCCEEDED)
        self.emit(
            ev.MigrationSucceeded(
                container=c.name,
                target=self.dst.name,
                total_s=time.monotonic() - started,
                freeze_s=c.dump_s + c.transfer_s + c.restore_s,
                dump_s=c.dump_s,
                transfer_s=c.transfer_s,
                restore_s=c.restore_s,
                bytes_moved=c.bytes_moved,
                app_gap_s=gap.seconds if gap else None,
                rounds=c.rounds.n if c.rounds else 0,
                client=f"{seen.container}@{seen.host}" if seen else "",
                client_wait_s=seen.longest_wait_s if seen else None,
            )
        )
        if self.left and self.journal is not None:
            self.journal.result = "incomplete"
            self.journal.cause = "left for `ferryman recover`: " + "; ".join(self.left)
            self.save_journal()

    # --- the steps, for whoever holds a Migration (core/engine/recovery.py) ---------------

    async def unlock(self) -> None:
        await self.lock.release(self.ctx.container_id)

    def keep_log(self, name: str, text: str) -> str:
        """Keep a log beside the journal; "" when it cannot be written (the console's
        disk full): said, and never in the way of the rollback that asked for it."""
        try:
            d = journal_dir() / self.id
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            p = d / name
            p.write_text(text)
        except OSError as e:
            self._q.put_nowait(ev.Warning(text=f"{name} could not be kept ({e})"))
            return ""
        return str(p)
