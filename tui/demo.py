"""Recorded migrations for demos, screenshots and tests of the console.

`HoldBackend` wraps a backend and holds a migration after a chosen event (until it is
aborted), so a screen can be shown mid-flight with deterministic content.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from core.events import Event
from core.journal import JournalEntry
from core.models import CheckResult, ContainerInfo, HostStatus, MigrationRequest
from core.replay import Recording, ReplayBackend

RECORDINGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "recordings"
PRECOPY = RECORDINGS / "synthetic-precopy.json"
FAILED_RESTORE = RECORDINGS / "synthetic-failed-restore.json"
FIXED_NOW = 1763985600.0  # 2025-11-24 12:00:00 UTC, where the synthetic recordings start


def replay(path: str | Path = PRECOPY, speed: float = 0.0) -> ReplayBackend:
    return ReplayBackend(Recording.load(path), speed=speed)


class HeldRun:
    def __init__(self, run, hold: Callable[[Event], bool]) -> None:
        self._run = run
        self._hold = hold
        self._released = asyncio.Event()
        self.held = False
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True
        self._run.abort()
        self._released.set()

    def release(self) -> None:
        self._released.set()

    async def __aiter__(self) -> AsyncIterator[Event]:
        async for ev in self._run:
            yield ev
            if not self._released.is_set() and self._hold(ev):
                self.held = True
                await self._released.wait()
                self.held = False


class HoldBackend:
    """A Backend that passes through, but holds each migration after `hold(event)` is true."""

    def __init__(self, inner: ReplayBackend, hold: Callable[[Event], bool]) -> None:
        self.inner = inner
        self.hold = hold
        self.runs: list[HeldRun] = []

    async def hosts(self) -> list[HostStatus]:
        return await self.inner.hosts()

    async def containers(self, host: str) -> list[ContainerInfo]:
        return await self.inner.containers(host)

    async def preflight(self, request: MigrationRequest) -> list[CheckResult]:
        return await self.inner.preflight(request)

    def migrate(self, request: MigrationRequest) -> HeldRun:
        run = HeldRun(self.inner.migrate(request), self.hold)
        self.runs.append(run)
        return run

    def history(self) -> list[JournalEntry]:
        return self.inner.history()

    async def close(self) -> None:
        await self.inner.close()
