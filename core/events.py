"""Typed, immutable events that a migration yields.

The console and `ferryman migrate --json` consume the same stream. Every event has a
`kind` (its JSON tag) and round-trips through `to_json()` / `event_from_json()`, so a
recorded migration (one JSON object per line) can be replayed into the console.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class Phase(StrEnum):
    """The states of a migration, in order. Pre-copy and lazy are optional."""

    PREFLIGHT = "preflight"
    PREPARE = "prepare"
    PRECOPY = "precopy"
    CHECKPOINT = "checkpoint"
    TRANSFER = "transfer"
    RESTORE = "restore"
    LAZY = "lazy"
    VERIFY = "verify"
    COMMIT = "commit"
    CLEANUP = "cleanup"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["kind"] = self.kind
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True)
class MigrationStarted(Event):
    kind: ClassVar[str] = "migration_started"
    migration_id: str
    container: str
    source: str
    target: str
    strategy: str
    downtime_budget_s: float
    strategy_reason: str = ""
    data_path: str = "relay"  # "relay" (through the console) or "direct" (host to host)


@dataclass(frozen=True)
class PhaseStarted(Event):
    kind: ClassVar[str] = "phase_started"
    phase: str


@dataclass(frozen=True)
class PhaseFinished(Event):
    kind: ClassVar[str] = "phase_finished"
    phase: str
    seconds: float


@dataclass(frozen=True)
class LogLine(Event):
    """A line of a remote command's output (or of ferryman's own narration)."""

    kind: ClassVar[str] = "log"
    host: str
    text: str
    stream: str = "stdout"


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - the event's name is the word users read
    kind: ClassVar[str] = "warning"
    text: str


@dataclass(frozen=True)
class BytesMoved(Event):
    """Cumulative bytes of one transfer, with the rate over the last window."""

    kind: ClassVar[str] = "bytes"
    phase: str
    total_bytes: int
    rate_bps: float
    done: bool = False


@dataclass(frozen=True)
class RoundFinished(Event):
    """One pre-copy round, from CRIU's own dump statistics."""

    kind: ClassVar[str] = "round"
    round: int
    pages_scanned: int
    pages_skipped: int
    pages_written: int
    bytes_sent: int
    duration_s: float
    frozen_s: float
    throughput_bps: float
    dirty_rate_bps: float
    predicted_freeze_s: float


@dataclass(frozen=True)
class Decision(Event):
    """What the pre-copy planner decided after a round, and why."""

    kind: ClassVar[str] = "decision"
    action: str  # continue | switch | throttle | postcopy | abort
    reason: str
    predicted_freeze_s: float
    budget_s: float
    throttle_percent: int = 0


@dataclass(frozen=True)
class ThrottleChanged(Event):
    kind: ClassVar[str] = "throttle"
    percent: int


@dataclass(frozen=True)
class FreezeStarted(Event):
    kind: ClassVar[str] = "freeze_started"


@dataclass(frozen=True)
class FreezeEnded(Event):
    """The container runs again (on the target, or on the source after a rollback)."""

    kind: ClassVar[str] = "freeze_ended"
    total_s: float
    dump_s: float
    transfer_s: float
    restore_s: float
    where: str = "target"


@dataclass(frozen=True)
class LazyProgress(Event):
    """Post-copy: memory still split between hosts until `done`."""

    kind: ClassVar[str] = "lazy"
    pages_on_fault: int
    pages_prefetched: int
    total_bytes: int
    rate_bps: float
    done: bool = False


@dataclass(frozen=True)
class RollbackStarted(Event):
    kind: ClassVar[str] = "rollback_started"
    reason: str


@dataclass(frozen=True)
class RollbackFinished(Event):
    kind: ClassVar[str] = "rollback_finished"
    running_on: str  # the host where the container runs now
    ok: bool = True
    detail: str = ""


@dataclass(frozen=True)
class MigrationFailed(Event):
    kind: ClassVar[str] = "failed"
    phase: str
    cause: str
    fix: str = ""
    host: str = ""
    log_excerpt: tuple[str, ...] = ()
    log_path: str = ""
    running_on: str = ""


@dataclass(frozen=True)
class MigrationSucceeded(Event):
    kind: ClassVar[str] = "succeeded"
    container: str
    target: str
    total_s: float
    freeze_s: float
    dump_s: float
    transfer_s: float
    restore_s: float
    bytes_moved: int
    app_gap_s: float | None = None
    rounds: int = 0
    client: str = ""  # the watched client (--watch), NAME@HOST
    client_wait_s: float | None = None  # its longest wait between two answers


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        MigrationStarted,
        PhaseStarted,
        PhaseFinished,
        LogLine,
        Warning,
        BytesMoved,
        RoundFinished,
        Decision,
        ThrottleChanged,
        FreezeStarted,
        FreezeEnded,
        LazyProgress,
        RollbackStarted,
        RollbackFinished,
        MigrationFailed,
        MigrationSucceeded,
    )
}


def event_from_dict(d: dict[str, Any]) -> Event:
    d = dict(d)
    cls = EVENT_TYPES[d.pop("kind")]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
    return cls(**kwargs)  # type: ignore[arg-type]


def event_from_json(line: str) -> Event:
    return event_from_dict(json.loads(line))
