"""Runs whose pace a test decides: held at an event, with a rollback that waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from core.events import (
    Event,
    FreezeEnded,
    LogLine,
    MigrationFailed,
    PhaseFinished,
    PhaseStarted,
    RollbackFinished,
    RollbackStarted,
)
from core.replay import ReplayBackend


class GatedRun:
    """Replays `events`, stopping after the first one `hold(ev)` is true for until `release()`
    or `abort()`. An abort before the commit yields a rollback that waits for `finish_rollback()`
    before its last events, as a real rollback takes its time."""

    def __init__(self, events: list[Event], hold: Callable[[Event], bool], source: str) -> None:
        self.events = events
        self.hold = hold
        self.source = source
        self.held = False
        self.aborted = False
        self.rolling_back = False
        self._go = asyncio.Event()
        self._rollback_done = asyncio.Event()

    def abort(self) -> None:
        self.aborted = True
        self._go.set()

    def release(self) -> None:
        self._go.set()

    def finish_rollback(self) -> None:
        self._rollback_done.set()

    async def __aiter__(self) -> AsyncIterator[Event]:
        committed = False
        for ev in self.events:
            if isinstance(ev, PhaseStarted) and ev.phase in ("commit", "cleanup"):
                committed = True
            if self.aborted and not committed:
                self.rolling_back = True
                yield RollbackStarted(reason="aborted by the user")
                yield PhaseStarted(phase="rollback")
                yield LogLine(host="ferryman", text="rollback: stop the twin", stream="ferryman")
                await self._rollback_done.wait()
                yield FreezeEnded(
                    total_s=0.3, dump_s=0.1, transfer_s=0.0, restore_s=0.2, where=self.source
                )
                yield PhaseFinished(phase="rollback", seconds=1.0)
                yield RollbackFinished(running_on=self.source)
                yield MigrationFailed(
                    phase="rollback", cause="aborted by the user", running_on=self.source
                )
                return
            yield ev
            await asyncio.sleep(0)
            if not self._go.is_set() and self.hold(ev):
                self.held = True
                await self._go.wait()
                self.held = False


class GatedBackend:
    """A replay backend whose migrations are GatedRuns."""

    def __init__(self, inner: ReplayBackend, hold: Callable[[Event], bool]) -> None:
        self.inner = inner
        self.hold = hold
        self.runs: list[GatedRun] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def migrate(self, request) -> GatedRun:
        run = GatedRun(list(self.inner.recording.events), self.hold, request.source)
        self.runs.append(run)
        return run
