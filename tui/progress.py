"""A migration's progress folded from its events: what the live view and history show."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.engine.strategy import ITERATIVE
from core.events import (
    BytesMoved,
    Decision,
    Event,
    FreezeEnded,
    FreezeStarted,
    LazyProgress,
    LogLine,
    MigrationFailed,
    MigrationStarted,
    MigrationSucceeded,
    Phase,
    PhaseFinished,
    PhaseStarted,
    RollbackFinished,
    RollbackStarted,
    RoundFinished,
    ThrottleChanged,
    Warning,
)
from core.outcome import Outcome

PHASES: tuple[str, ...] = tuple(p.value for p in Phase if p is not Phase.ROLLBACK)
PAST_COMMIT = ("commit", "cleanup")

# What a change touches, so the view redraws only that part.
HEADER, PHASE, ROUND, BYTES, LOG, FREEZE, LAZY, RESULT, PLAN = (
    "header",
    "phase",
    "round",
    "bytes",
    "log",
    "freeze",
    "lazy",
    "result",
    "plan",
)


@dataclass
class Progress:
    started: MigrationStarted | None = None
    phase_state: dict[str, str] = field(default_factory=dict)  # pending|active|done|failed
    phase_seconds: dict[str, float] = field(default_factory=dict)
    current: str = ""
    rounds: list[RoundFinished] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)  # throughput samples, bytes/s
    bytes_phase: str = ""
    bytes_total: int = 0
    bytes_rate: float = 0.0
    budget_s: float | None = None
    predicted_s: float | None = None
    decisions: list[Decision] = field(default_factory=list)
    throttle: int = 0
    frozen_at: float | None = None  # console clock when the freeze began
    freeze: FreezeEnded | None = None
    lazy: LazyProgress | None = None
    rollback: RollbackStarted | None = None
    rolled_back: RollbackFinished | None = None
    failed: MigrationFailed | None = None
    succeeded: MigrationSucceeded | None = None
    stream_lost: str = ""
    outcome: Outcome = field(default_factory=Outcome)  # totals, as history computes them
    warnings: list[str] = field(default_factory=list)  # the engine's warnings, as said

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None and self.freeze is None

    @property
    def committed(self) -> bool:
        return any(self.phase_state.get(p) in ("active", "done") for p in PAST_COMMIT)

    @property
    def finished(self) -> bool:
        return self.failed is not None or self.succeeded is not None or bool(self.stream_lost)

    @property
    def strategy(self) -> str:
        return self.started.strategy if self.started is not None else ""

    @property
    def has_rounds(self) -> bool:
        return self.strategy in ITERATIVE or bool(self.rounds)

    @property
    def lazy_at_risk(self) -> bool:
        return self.lazy is not None and not self.lazy.done

    def state_of(self, phase: str) -> str:
        """pending | active | done | failed | skipped (a later phase began without it)."""
        s = self.phase_state.get(phase, "pending")
        if s != "pending":
            return s
        order = list(PHASES)
        if phase in order:
            later = order[order.index(phase) + 1 :]
            if any(self.phase_state.get(p, "pending") != "pending" for p in later):
                return "skipped"
        return "pending"

    def apply(self, ev: Event, now: float) -> set[str]:
        """Fold one event in; returns what it changed."""
        self.outcome.add(ev)
        if isinstance(ev, BytesMoved):
            self.bytes_phase = ev.phase
            self.bytes_total = ev.total_bytes
            if ev.rate_bps:
                self.bytes_rate = ev.rate_bps
                self.rates.append(ev.rate_bps)
                if len(self.rates) > 600:
                    del self.rates[:-300]
            return {BYTES}
        if isinstance(ev, Warning):
            self.warnings.append(ev.text)
            return {LOG, RESULT} if self.finished else {LOG}
        if isinstance(ev, LogLine):
            return {LOG}
        if isinstance(ev, PhaseStarted):
            if self.current and self.phase_state.get(self.current) == "active":
                self.phase_state[self.current] = "done"
            self.current = ev.phase
            self.phase_state[ev.phase] = "active"
            return {PHASE}
        if isinstance(ev, PhaseFinished):
            if self.phase_state.get(ev.phase) != "failed":
                self.phase_state[ev.phase] = "done"
            self.phase_seconds[ev.phase] = ev.seconds
            return {PHASE}
        if isinstance(ev, RoundFinished):
            self.rounds.append(ev)
            self.predicted_s = ev.predicted_freeze_s
            return {ROUND, PLAN}
        if isinstance(ev, Decision):
            self.decisions.append(ev)
            self.predicted_s = ev.predicted_freeze_s
            self.budget_s = ev.budget_s
            if ev.throttle_percent:
                self.throttle = ev.throttle_percent
            return {PLAN, LOG}
        if isinstance(ev, ThrottleChanged):
            self.throttle = ev.percent
            return {PLAN, LOG}
        if isinstance(ev, FreezeStarted):
            self.frozen_at = now
            self.freeze = None
            return {FREEZE}
        if isinstance(ev, FreezeEnded):
            if self.frozen_at is None:
                self.frozen_at = now
            self.freeze = ev
            return {FREEZE}
        if isinstance(ev, LazyProgress):
            self.lazy = ev
            return {LAZY}
        if isinstance(ev, RollbackStarted):
            self.rollback = ev
            if self.current and self.phase_state.get(self.current) == "active":
                self.phase_state[self.current] = "failed"
            return {PHASE, LOG, RESULT}
        if isinstance(ev, RollbackFinished):
            self.rolled_back = ev
            if self.phase_state.get("rollback") == "active":
                self.phase_state["rollback"] = "done"
            return {PHASE, LOG, RESULT}
        if isinstance(ev, MigrationStarted):
            self.started = ev
            self.budget_s = ev.downtime_budget_s
            return {HEADER, PLAN}
        if isinstance(ev, MigrationFailed):
            self.failed = ev
            if ev.phase in PHASES and ev.phase not in self.phase_state:
                self.phase_state[ev.phase] = "failed"  # it failed before it said it began
            elif ev.phase in self.phase_state and ev.phase != "rollback":
                self.phase_state[ev.phase] = "failed"
            elif self.current and self.phase_state.get(self.current) == "active":
                self.phase_state[self.current] = "failed"
            return {PHASE, RESULT, LOG}
        if isinstance(ev, MigrationSucceeded):
            self.succeeded = ev
            if self.current and self.phase_state.get(self.current) == "active":
                self.phase_state[self.current] = "done"
            return {PHASE, RESULT}
        return set()
