"""What a migration came to, folded from its events: one way, wherever it is shown.

The live view, the console's history and `ferryman history` all show a move's total time,
bytes and where the container runs from this fold of the same events (the journal keeps
them), so the figures of one move agree wherever they are read.

- time: the engine's own `MigrationSucceeded.total_s` when the move succeeded (it counts
  from the engine's start, before `MigrationStarted`); else from the first event to the last.
- bytes: every finished transfer (`BytesMoved` with `done`), the image stream of the
  prepare phase and the pre-copy rounds included: what crossed the wire. Without any
  finished transfer, the success event's own count.
- where the container runs: what the last event that says so says (`RollbackFinished`,
  `MigrationFailed.running_on`, `MigrationSucceeded.target`); "" when none does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.events import (
    BytesMoved,
    Event,
    MigrationFailed,
    MigrationStarted,
    MigrationSucceeded,
    RollbackFinished,
)


@dataclass
class Outcome:
    first_t: float | None = None
    last_t: float | None = None
    started: MigrationStarted | None = None
    succeeded: MigrationSucceeded | None = None
    failed: MigrationFailed | None = None
    rolled_back: RollbackFinished | None = None
    transfers_bytes: int = 0  # finished transfers, summed
    bytes_by_phase: dict[str, int] = field(default_factory=dict)
    running_on: str = ""

    def add(self, ev: Event) -> None:
        if self.first_t is None:
            self.first_t = ev.t
        self.last_t = ev.t
        if isinstance(ev, BytesMoved):
            if ev.done:
                self.transfers_bytes += ev.total_bytes
                self.bytes_by_phase[ev.phase] = self.bytes_by_phase.get(ev.phase, 0) + (
                    ev.total_bytes
                )
        elif isinstance(ev, MigrationStarted):
            self.started = ev
        elif isinstance(ev, RollbackFinished):
            self.rolled_back = ev
            self.running_on = ev.running_on
        elif isinstance(ev, MigrationFailed):
            self.failed = ev
            if ev.running_on:
                self.running_on = ev.running_on
        elif isinstance(ev, MigrationSucceeded):
            self.succeeded = ev
            self.running_on = ev.target

    @property
    def seconds(self) -> float | None:
        if self.succeeded is not None:
            return self.succeeded.total_s
        if self.failed is None or self.first_t is None or self.last_t is None:
            return None
        return self.last_t - self.first_t

    @property
    def bytes(self) -> int:
        if self.transfers_bytes:
            return self.transfers_bytes
        return self.succeeded.bytes_moved if self.succeeded is not None else 0

    @property
    def image_bytes(self) -> int:
        """The part of `bytes` that was the image streamed to the target (prepare)."""
        return self.bytes_by_phase.get("prepare", 0)

    @property
    def where_unknown(self) -> bool:
        """A failed move whose rollback could not tell (or finish) where it runs."""
        return self.failed is not None and not self.running_on


def outcome_of(events: Iterable[Event]) -> Outcome:
    out = Outcome()
    for ev in events:
        out.add(ev)
    return out
