"""Replay a recorded migration: for demos without hosts, screenshots and console tests.

A recording is a JSON file: {"hosts": [...HostStatus...], "containers": [...ContainerInfo...],
"checks": [...CheckResult...], "events": [...event dicts...]} — `ferryman migrate --json`
output (one event per line) can be turned into one with `Recording.from_jsonl`.
Events are replayed with their original spacing, scaled by `speed` (0 = as fast as possible).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.events import (
    Event,
    FreezeEnded,
    MigrationFailed,
    PhaseStarted,
    RollbackFinished,
    RollbackStarted,
    event_from_dict,
)
from core.journal import JournalEntry
from core.models import (
    CheckResult,
    CheckStatus,
    ContainerInfo,
    HostFacts,
    HostState,
    HostStatus,
    MigrationRequest,
)

if TYPE_CHECKING:
    from core.engine.recovery import Pending


@dataclass
class Recording:
    hosts: list[HostStatus] = field(default_factory=list)
    containers: list[ContainerInfo] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    history: list[JournalEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        d = json.loads(Path(path).read_text())
        hosts = [
            HostStatus(
                name=h["name"],
                address=h["address"],
                state=HostState(h["state"]),
                reason=h.get("reason", ""),
                facts=HostFacts(**h.get("facts", {})),
            )
            for h in d.get("hosts", [])
        ]
        return cls(
            hosts=hosts,
            containers=[ContainerInfo(**c) for c in d.get("containers", [])],
            checks=[
                CheckResult(**{**c, "status": CheckStatus(c["status"])})
                for c in d.get("checks", [])
            ],
            events=[event_from_dict(e) for e in d.get("events", [])],
            history=[JournalEntry.from_dict(j) for j in d.get("history", [])],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hosts": [asdict(h) for h in self.hosts],
            "containers": [asdict(c) for c in self.containers],
            "checks": [asdict(c) for c in self.checks],
            "events": [e.to_dict() for e in self.events],
            "history": [j.to_dict() for j in self.history],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")


class ReplayRun:
    def __init__(self, events: list[Event], speed: float, source: str) -> None:
        self._events = events
        self._speed = speed
        self._source = source
        self._abort = asyncio.Event()

    def abort(self) -> None:
        self._abort.set()

    async def __aiter__(self) -> AsyncIterator[Event]:
        prev_t = self._events[0].t if self._events else 0.0
        committed = False  # past commit, an abort changes nothing: the move is done
        for ev in self._events:
            gap = max(0.0, ev.t - prev_t) * self._speed
            prev_t = ev.t
            if gap:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._abort.wait(), timeout=gap)
            else:
                await asyncio.sleep(0)
            if isinstance(ev, PhaseStarted) and ev.phase in ("commit", "cleanup"):
                committed = True
            if self._abort.is_set() and not committed:
                yield RollbackStarted(reason="aborted by the user")
                yield FreezeEnded(
                    total_s=0.0, dump_s=0.0, transfer_s=0.0, restore_s=0.0, where="source"
                )
                yield RollbackFinished(running_on=self._source)
                yield MigrationFailed(
                    phase="rollback", cause="aborted by the user", running_on=self._source
                )
                return
            yield ev


class ReplayBackend:
    """A Backend that answers from a Recording."""

    def __init__(
        self, recording: Recording, speed: float = 1.0, pending: list[Pending] | None = None
    ) -> None:
        self.recording = recording
        self.speed = speed
        self.pending = list(pending or [])
        self.recovered: list[str] = []

    async def hosts(self) -> list[HostStatus]:
        return list(self.recording.hosts)

    async def containers(self, host: str) -> list[ContainerInfo]:
        return [c for c in self.recording.containers if c.host == host]

    async def preflight(self, request: MigrationRequest) -> list[CheckResult]:
        return list(self.recording.checks)

    def migrate(self, request: MigrationRequest) -> ReplayRun:
        return ReplayRun(self.recording.events, self.speed, request.source)

    def history(self) -> list[JournalEntry]:
        return list(self.recording.history)

    async def pending_recoveries(self) -> list[Pending]:
        return list(self.pending)

    async def recover(self, item: Pending, log: Callable[[str], None]) -> str:
        """Replays have no hosts: say what would be done, record it, change nothing."""
        log(f"(replay) {item.plan.action}: {item.plan.reason}")
        self.recovered.append(item.entry.migration_id)
        return item.entry.target if item.plan.action in ("finish", "start-twin") else item.entry.source

    async def close(self) -> None:
        return None
