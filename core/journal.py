"""The migration journal: one JSON file per migration on the console machine.

Written as the migration goes (so a console killed mid-migration leaves a record that
`ferryman recover` can finish), read by `ferryman history` and the console's history.
Location: $FERRYMAN_STATE_DIR, else $XDG_STATE_HOME/ferryman, else ~/.local/state/ferryman.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.events import (
    BytesMoved,
    Event,
    FreezeEnded,
    MigrationFailed,
    MigrationStarted,
    MigrationSucceeded,
    PhaseFinished,
    PhaseStarted,
    RollbackFinished,
    event_from_dict,
)


def state_dir() -> Path:
    if d := os.environ.get("FERRYMAN_STATE_DIR"):
        return Path(d)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ferryman"


def journal_dir() -> Path:
    return state_dir() / "migrations"


@dataclass
class JournalEntry:
    migration_id: str
    container: str
    source: str
    target: str
    strategy: str
    started: float
    result: str = "running"  # running | succeeded | failed | rolled back | in doubt | incomplete | recovered
    phase: str = ""  # the phase it is in (or died in)
    finished: float | None = None
    cause: str = ""
    running_on: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)
    freeze: dict[str, float] = field(default_factory=dict)
    bytes_moved: int = 0
    logs_dir: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_name: str = ""
    target_twin: str = ""
    kind: str = "container"  # container (Docker) | pod (Kubernetes: `pod` says which)
    pod: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return journal_dir() / f"{self.migration_id}.json"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JournalEntry:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def typed_events(self) -> list[Event]:
        out = []
        for d in self.events:
            try:
                out.append(event_from_dict(d))
            except (KeyError, TypeError):
                continue
        return out

    def record(self, ev: Event) -> None:
        """Fold one event into the entry; bytes events are kept only when a transfer ends."""
        if isinstance(ev, BytesMoved) and not ev.done:
            return
        self.events.append(ev.to_dict())
        if isinstance(ev, PhaseStarted):
            self.phase = ev.phase
        elif isinstance(ev, PhaseFinished):
            self.phases.append({"phase": ev.phase, "seconds": round(ev.seconds, 4)})
        elif isinstance(ev, BytesMoved):
            self.bytes_moved += ev.total_bytes
        elif isinstance(ev, FreezeEnded):
            self.freeze = {
                "total_s": ev.total_s,
                "dump_s": ev.dump_s,
                "transfer_s": ev.transfer_s,
                "restore_s": ev.restore_s,
            }
        elif isinstance(ev, MigrationSucceeded):
            self.result, self.finished, self.running_on = "succeeded", ev.t, ev.target
        elif isinstance(ev, MigrationFailed):
            self.result, self.finished, self.cause = "failed", ev.t, ev.cause
            self.running_on = ev.running_on or self.running_on
        elif isinstance(ev, RollbackFinished):
            self.running_on = ev.running_on

    @property
    def reserve_path(self) -> Path:
        return self.path.with_name(f".{self.migration_id}.reserve")

    def save(self) -> None:
        """Durably (`_write`). While the migration is unfinished, RESERVE_BYTES of the
        folder's disk are kept in a file of its own; a write that finds the disk full
        (the console's disk filled during the move) gives that space up and writes again,
        so the entry that recovery needs still says how the move ended. The reserve goes
        once the entry is final."""
        try:
            self._write()
        except OSError as e:
            if e.errno != errno.ENOSPC or not self.reserve_path.exists():
                raise
            self.reserve_path.unlink()
            self._write()
        if self.result in UNFINISHED:
            if not self.reserve_path.exists():
                try:
                    fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
                    try:
                        os.posix_fallocate(fd, 0, RESERVE_BYTES)
                    finally:
                        os.close(fd)
                except OSError:
                    self.reserve_path.unlink(missing_ok=True)  # no room: none kept
        else:
            self.reserve_path.unlink(missing_ok=True)

    def _write(self) -> None:
        """A temporary file of this process's own, flushed to disk, renamed over the
        entry, and the folder flushed, so a crash leaves the old entry or the new one."""
        p = self.path
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        data = json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, p)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


UNFINISHED = ("running", "in doubt", "incomplete")  # results recovery still acts on
RESERVE_BYTES = 1 << 20  # kept on the journal's disk per unfinished migration (save)


def new_entry(start: MigrationStarted) -> JournalEntry:
    return JournalEntry(
        migration_id=start.migration_id,
        container=start.container,
        source=start.source,
        target=start.target,
        strategy=start.strategy,
        started=start.t,
        running_on=start.source,
    )


def load_all() -> list[JournalEntry]:
    return load()[0]


def load() -> tuple[list[JournalEntry], list[str]]:
    """Every entry, newest first, and a line for each file that could not be read (never
    skipped in silence: it may be a migration that recovery should see)."""
    out, broken = [], []
    d = journal_dir()
    if not d.is_dir():
        return [], []
    for p in d.glob("*.json"):
        try:
            out.append(JournalEntry.from_dict(json.loads(p.read_text())))
        except (OSError, ValueError, TypeError) as e:
            broken.append(f"{p}: unreadable journal entry ({type(e).__name__}: {e})")
    out.sort(key=lambda e: e.started, reverse=True)
    return out, broken


def unfinished() -> list[JournalEntry]:
    """Migrations to finish or roll back: their console died ("running"), their rollback
    met a host that did not answer ("in doubt"), or steps after the commit were left
    ("incomplete")."""
    return [
        e
        for e in load_all()
        if e.result in UNFINISHED and e.kind != "pod"
    ]


def unfinished_pods() -> list[JournalEntry]:
    """Pod moves (Kubernetes) to finish or roll back: recovered by core.k8s, not by the
    Docker engine's recovery (which `unfinished` feeds)."""
    return [
        e
        for e in load_all()
        if e.result in UNFINISHED and e.kind == "pod"
    ]


def restore_estimate(target: str, default: float) -> float:
    """The restore time measured by past migrations to `target` (median of the last 5),
    for the pre-copy planner's prediction; `default` when there are none."""
    past = [
        e.freeze["restore_s"]
        for e in load_all()
        if e.target == target and e.result == "succeeded" and e.freeze.get("restore_s")
    ][:5]
    if not past:
        return default
    past.sort()
    return float(past[len(past) // 2])


def throughput_estimate(target: str, default: float) -> float:
    """Bytes per second that past stop-and-copy moves to `target` streamed during their
    dump (median of the last 5); `default` when there are none."""
    past = [
        e.bytes_moved / e.freeze["dump_s"]
        for e in load_all()
        if e.target == target
        and e.result == "succeeded"
        and e.strategy == "stop-and-copy"
        and e.freeze.get("dump_s", 0) > 0.05
        and e.bytes_moved >= 60 * 2**20  # smaller dumps measure their fixed costs, not the link
    ][:5]
    if not past:
        return default
    past.sort()
    return float(past[len(past) // 2])


def now() -> float:
    return time.time()
