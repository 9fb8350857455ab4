"""When to stop pre-copying and freeze: a switchover decided by a downtime budget.

Iterative pre-copy runs ``criu pre-dump`` rounds while the container keeps running; each
round ships the pages dirtied since the previous one (soft-dirty tracking). The final
``criu dump`` freezes the container and ships what is still dirty. The planner looks at
each round, as QEMU does for virtual machines (rather than by page counts, as P.Haul and
LXD do), and predicts how long the freeze would last if the final dump started now::

    predicted_freeze_s = final_pages * page_size / throughput
                         + final_dump_overhead_s + restore_s
                         [+ (every round's pages + final_pages) * page_size / copy rate]

(the last term on the copy route only, where Docker copies the whole chain before the
restore: a target whose CRIU is older than 4.2, core/engine/restore.py).

It switches as soon as that fits the budget, throttles (or switches, or goes post-copy)
when the workload dirties memory as fast as the link can carry it, and always stops at
the round and time caps.

Estimator for ``final_pages`` (the pages the final dump will write)
-------------------------------------------------------------------
Round N's pages were dirtied between round N-1's snapshot and round N's snapshot. CRIU
takes the snapshot while the task is frozen at the start of a round, so that window is

    dirty_window_N = (duration_{N-1} - frozen_{N-1}) + since_previous_N

(the rest of the previous round after its freeze, plus the gap before this round). The
final dump's window is the same thing one step on: the rest of round N after its freeze,
plus a gap like the last one. The estimate is the last round's written pages scaled by
the ratio of the two windows (equivalently: last dirty rate × final window), rounded up,
at least one page and at most the pages the last round scanned (a dump cannot write more
than is mapped; growth shows up in the next round)::

    final_pages = clamp(ceil(pages_written_N * final_window / dirty_window_N),
                        1, pages_scanned_N)

This uses the latest round only, as QEMU does: it tracks changes in the workload at once,
and because rounds usually shrink, the last round's rate is the most relevant. The
estimate errs high: pages re-dirtied several times count once in the real dump, and the
window ignores the final dump's own start-up before the freeze.

Round 1 has no previous snapshot: it copies the whole resident set, which says nothing
about the dirty rate (20 MiB copied in 0.2 s is not a 100 MB/s dirty rate), so its
``dirty_rate_bps`` is ``None`` (unknown). The planner then assumes the worst case, that
every page round 1 wrote is dirty again (``final_pages = pages_written_1``): it switches
after round 1 only when even a full second copy fits the budget.

Throughput is the last transfer whose window was at least ``bandwidth_window_s`` (100 ms)
long; shorter transfers are dominated by start-up and socket buffering, so they are
ignored and the previous estimate is kept. Without any estimate (and no
``bandwidth_override_bps``) there is no prediction: the planner continues until a cap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.engine.strategy import Strategy

ACTIONS = ("continue", "switch", "throttle", "postcopy", "abort")
CONVERGE_POLICIES = ("throttle", "switch", "postcopy")
STRATEGIES = tuple(s.value for s in Strategy)  # the words, in the order the CLI lists them

# A round does not converge when the dirty rate reaches this share of the throughput.
NONCONVERGE_RATIO = 0.9
# That many consecutive non-converging rounds trigger the converge policy.
NONCONVERGE_ROUNDS = 2


@dataclass(frozen=True, kw_only=True)
class RoundStats:
    """One pre-copy round: CRIU's pre-dump statistics plus the engine's timings."""

    index: int  # 1-based
    pages_scanned: int
    pages_skipped_parent: int
    pages_written: int
    duration_s: float  # the whole round: pre-dump and transfer
    transfer_s: float  # how long moving this round's pages took
    transfer_bytes: int  # bytes moved in that time
    frozen_time_s: float  # CRIU's frozen_time of the pre-dump
    since_previous_s: float  # wall time from the previous round's end to this one's start
    page_size: int = 4096
    # Wall time between the previous round's snapshot and this one's. The planner fills it
    # in from its history when the engine leaves it None (see the module docstring).
    dirty_window_s: float | None = None

    def __post_init__(self) -> None:
        if self.index < 1:
            raise ValueError(f"round index starts at 1, got {self.index}")
        counts = (self.pages_scanned, self.pages_skipped_parent, self.pages_written)
        if min(counts) < 0 or self.transfer_bytes < 0:
            raise ValueError("page and byte counts cannot be negative")
        if self.page_size <= 0:
            raise ValueError(f"page size must be positive, got {self.page_size}")
        times = (self.duration_s, self.transfer_s, self.frozen_time_s, self.since_previous_s)
        if min(times) < 0:
            raise ValueError("durations cannot be negative")

    @property
    def bytes_written(self) -> int:
        return self.pages_written * self.page_size

    @property
    def throughput_bps(self) -> float | None:
        """Bytes per second of this round's transfer; None when it took no time."""
        if self.transfer_s <= 0:
            return None
        return self.transfer_bytes / self.transfer_s

    @property
    def dirty_rate_bps(self) -> float | None:
        """Bytes dirtied per second between the previous snapshot and this one.

        None for round 1 (it copies everything, no rate can be read from it) and when the
        window is unknown or empty.
        """
        if self.index == 1 or self.dirty_window_s is None or self.dirty_window_s <= 0:
            return None
        return self.bytes_written / self.dirty_window_s

    @property
    def after_snapshot_s(self) -> float:
        """How long the round ran after its snapshot (the container was running)."""
        return max(0.0, self.duration_s - self.frozen_time_s)


@dataclass(frozen=True, kw_only=True)
class PlannerSettings:
    downtime_budget_s: float = 0.3  # QEMU's default downtime limit
    max_rounds: int = 8
    max_total_s: float = 120.0
    converge_policy: str = "throttle"  # throttle | switch | postcopy
    postcopy_allowed: bool = False
    final_dump_overhead_s: float = 0.0  # measured fixed cost of the final dump
    restore_s: float = 0.0  # measured (or estimated) restore time on the target
    # The copy route (target CRIU < 4.2, core/engine/restore.py): Docker copies every
    # round's image and the final one before the restore, at this rate. None: no copy.
    copy_bytes_per_s: float | None = None
    bandwidth_override_bps: float | None = None  # the user's figure, if the estimate is bad
    bandwidth_window_s: float = 0.1  # shorter transfer samples are ignored
    throttle_initial: int = 20
    throttle_increment: int = 10
    throttle_max: int = 99
    # A forced switch (cap or non-convergence) whose predicted freeze exceeds this aborts
    # instead, leaving the container running on the source. None: never abort.
    max_freeze_s: float | None = None

    def __post_init__(self) -> None:
        if self.downtime_budget_s <= 0:
            raise ValueError(f"downtime budget must be positive, got {self.downtime_budget_s}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be at least 1, got {self.max_rounds}")
        if self.max_total_s <= 0:
            raise ValueError(f"max_total_s must be positive, got {self.max_total_s}")
        if self.converge_policy not in CONVERGE_POLICIES:
            raise ValueError(
                f"unknown converge policy {self.converge_policy!r}; "
                f"use one of {', '.join(CONVERGE_POLICIES)}"
            )
        if self.final_dump_overhead_s < 0 or self.restore_s < 0:
            raise ValueError("fixed costs cannot be negative")
        if self.copy_bytes_per_s is not None and self.copy_bytes_per_s <= 0:
            raise ValueError("copy rate must be positive")
        if self.bandwidth_override_bps is not None and self.bandwidth_override_bps <= 0:
            raise ValueError("bandwidth override must be positive")
        if self.bandwidth_window_s < 0:
            raise ValueError("bandwidth window cannot be negative")
        if not 0 < self.throttle_initial <= self.throttle_max <= 99 or self.throttle_increment < 0:
            raise ValueError("throttle schedule needs 0 < initial <= max <= 99, increment >= 0")
        if self.max_freeze_s is not None and self.max_freeze_s <= 0:
            raise ValueError("max_freeze_s must be positive")


@dataclass(frozen=True)
class Decision:
    action: str  # continue | switch | throttle | postcopy | abort
    reason: str  # a sentence for users, with the numbers
    predicted_freeze_s: float | None  # None when no throughput is known yet
    throttle_percent: int = 0  # the CPU throttle to hold from now on (0: none)
    budget_s: float = 0.0
    final_pages: int = 0  # the estimate behind the prediction

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}")

    @property
    def final(self) -> bool:
        """Whether pre-copy ends with this decision."""
        return self.action in ("switch", "postcopy", "abort")


def throttle_schedule(step: int, initial: int = 20, increment: int = 10, maximum: int = 99) -> int:
    """QEMU's auto-converge schedule: step 1 → 20 %, +10 % a step, capped at 99 %.

    Step 0 means no throttle.
    """
    if step < 0:
        raise ValueError(f"throttle step cannot be negative, got {step}")
    if step == 0:
        return 0
    return min(maximum, initial + increment * (step - 1))


# --- formatting for the reasons --------------------------------------------------------


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms} ms"
    if seconds < 100:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def _fmt_rate(bps: float | None) -> str:
    if bps is None:
        return "unknown"
    if bps >= 1e9:
        return f"{bps / 1e9:.2f} GB/s"
    if bps >= 1e6:
        return f"{bps / 1e6:.1f} MB/s"
    return f"{bps / 1e3:.1f} kB/s"


def _fmt_prediction(predicted: float | None, budget: float) -> str:
    if predicted is None:
        return f"predicted freeze unknown (no throughput measured yet), budget {_fmt_s(budget)}"
    sign = "≤" if predicted <= budget else ">"
    return f"predicted {_fmt_s(predicted)} {sign} budget {_fmt_s(budget)}"


# --- the planner -------------------------------------------------------------------------


class PrecopyPlanner:
    """Decides after each pre-copy round; keeps the rounds it has seen."""

    def __init__(self, settings: PlannerSettings | None = None) -> None:
        self.settings = settings or PlannerSettings()
        self._history: list[RoundStats] = []
        self._decisions: list[Decision] = []
        self._throughput: float | None = None
        self._nonconverging_streak = 0
        self._throttle_step = 0

    @property
    def history(self) -> tuple[RoundStats, ...]:
        return tuple(self._history)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(self._decisions)

    @property
    def measured_throughput_bps(self) -> float | None:
        """The latest throughput from a transfer window long enough to trust."""
        return self._throughput

    @property
    def throughput_bps(self) -> float | None:
        """The throughput predictions use: the user's override, else the measurement."""
        if self.settings.bandwidth_override_bps is not None:
            return self.settings.bandwidth_override_bps
        return self._throughput

    @property
    def throttle_percent(self) -> int:
        s = self.settings
        return throttle_schedule(
            self._throttle_step, s.throttle_initial, s.throttle_increment, s.throttle_max
        )

    @property
    def elapsed_s(self) -> float:
        """Wall time of pre-copy so far: every round plus the gaps before them."""
        return sum(r.since_previous_s + r.duration_s for r in self._history)

    def estimate_final_pages(self) -> int:
        """Pages the final dump would write if it started now (see the module docstring)."""
        if not self._history:
            raise ValueError("no round observed yet")
        last = self._history[-1]
        window = last.dirty_window_s
        if last.index == 1 or window is None or window <= 0:
            pages = last.pages_written  # worst case: all of it dirty again
        else:
            final_window = last.after_snapshot_s + last.since_previous_s
            pages = math.ceil(last.pages_written * final_window / window)
        if last.pages_scanned > 0:
            pages = min(pages, last.pages_scanned)
        return max(1, pages)

    def predict_freeze_s(self) -> float | None:
        bandwidth = self.throughput_bps
        if bandwidth is None:
            return None
        last = self._history[-1]
        s = self.settings
        final = self.estimate_final_pages()
        transfer = final * last.page_size / bandwidth
        copy = 0.0
        if s.copy_bytes_per_s:
            chain = sum(r.pages_written for r in self._history) + final
            copy = chain * last.page_size / s.copy_bytes_per_s
        return transfer + s.final_dump_overhead_s + s.restore_s + copy

    def observe(self, stats: RoundStats) -> Decision:
        """Record a finished round and decide what to do next."""
        if self._decisions and self._decisions[-1].final:
            raise RuntimeError(
                f"pre-copy already ended ({self._decisions[-1].action}); no more rounds"
            )
        expected = len(self._history) + 1
        if stats.index != expected:
            raise ValueError(f"expected round {expected}, got round {stats.index}")
        if stats.index > 1 and stats.dirty_window_s is None:
            prev = self._history[-1]
            stats = replace(stats, dirty_window_s=prev.after_snapshot_s + stats.since_previous_s)
        self._history.append(stats)
        self._update_throughput(stats)
        decision = self._decide(stats)
        self._decisions.append(decision)
        return decision

    def _update_throughput(self, stats: RoundStats) -> None:
        sample = stats.throughput_bps
        if sample is None or sample <= 0:
            return
        if stats.transfer_s < self.settings.bandwidth_window_s:
            return  # too short to trust: keep the previous estimate
        self._throughput = sample

    def _nonconvergence(self, stats: RoundStats) -> str | None:
        """Why this round did not converge, or None if it did."""
        dirty = stats.dirty_rate_bps
        bandwidth = self.throughput_bps
        if dirty is not None and bandwidth is not None and dirty >= NONCONVERGE_RATIO * bandwidth:
            return (
                f"dirty rate {_fmt_rate(dirty)} ≥ {NONCONVERGE_RATIO * 100:.0f} % of "
                f"throughput {_fmt_rate(bandwidth)}"
            )
        if len(self._history) >= 2:
            prev = self._history[-2]
            if stats.pages_written >= prev.pages_written:
                return (
                    f"pages written did not shrink ({prev.pages_written} → {stats.pages_written})"
                )
        return None

    def _decide(self, stats: RoundStats) -> Decision:
        s = self.settings
        budget = s.downtime_budget_s
        final_pages = self.estimate_final_pages()
        predicted = self.predict_freeze_s()
        prediction = _fmt_prediction(predicted, budget)

        why_not = self._nonconvergence(stats)
        self._nonconverging_streak = self._nonconverging_streak + 1 if why_not else 0

        def make(action: str, reason: str) -> Decision:
            return Decision(
                action=action,
                reason=reason,
                predicted_freeze_s=predicted,
                throttle_percent=self.throttle_percent,
                budget_s=budget,
                final_pages=final_pages,
            )

        def forced_switch(reason: str) -> Decision:
            if predicted is not None and s.max_freeze_s is not None and predicted > s.max_freeze_s:
                return make(
                    "abort",
                    f"aborting: {reason}, but a freeze of {_fmt_s(predicted)} exceeds the "
                    f"{_fmt_s(s.max_freeze_s)} limit; the container keeps running on the source",
                )
            return make("switch", reason)

        if predicted is not None and predicted <= budget:
            bandwidth = self.throughput_bps
            return make(
                "switch",
                f"switching: {prediction} ({final_pages} pages left at {_fmt_rate(bandwidth)})",
            )

        if stats.index >= s.max_rounds:
            return forced_switch(f"round cap {s.max_rounds} reached: {prediction}")

        elapsed = self.elapsed_s
        if elapsed >= s.max_total_s:
            return forced_switch(
                f"time cap {_fmt_s(s.max_total_s)} reached after {stats.index} rounds "
                f"({_fmt_s(elapsed)}): {prediction}"
            )

        if why_not and self._nonconverging_streak >= NONCONVERGE_ROUNDS:
            return self._on_nonconvergence(why_not, prediction, make, forced_switch)

        detail = f"; {why_not}" if why_not else ""
        return make("continue", f"continuing: {prediction}{detail}")

    def _on_nonconvergence(
        self,
        why_not: str,
        prediction: str,
        make: Callable[[str, str], Decision],
        forced_switch: Callable[[str], Decision],
    ) -> Decision:
        s = self.settings
        streak = self._nonconverging_streak
        what = f"not converging for {streak} rounds ({why_not})"
        if s.converge_policy == "throttle":
            before = self.throttle_percent
            self._throttle_step += 1
            after = self.throttle_percent
            if after == before:
                return make(
                    "continue",
                    f"continuing: {what}; the CPU throttle is already at its "
                    f"{after} % cap; {prediction}",
                )
            return make("throttle", f"throttling the container to {after} %: {what}; {prediction}")
        if s.converge_policy == "postcopy":
            if s.postcopy_allowed:
                return make(
                    "postcopy",
                    f"switching to post-copy: {what}; a stop-and-copy freeze would be "
                    f"{prediction.removeprefix('predicted ')}",
                )
            return forced_switch(
                f"switching anyway (post-copy is not allowed): {what}; "
                f"{prediction}, so the freeze will exceed the budget"
            )
        return forced_switch(
            f"switching anyway: {what}; {prediction}, so the freeze will exceed the budget"
        )


# --- strategy choice -----------------------------------------------------------------------

_ALIASES = {
    "precopy": "pre-copy",
    "pre_copy": "pre-copy",
    "postcopy": "post-copy",
    "post_copy": "post-copy",
    "lazy": "post-copy",
    "stop-copy": "stop-and-copy",
    "stop_and_copy": "stop-and-copy",
    "stopandcopy": "stop-and-copy",
}


def _normalize(requested: str) -> str:
    name = requested.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in STRATEGIES:
        raise ValueError(
            f"unknown migration strategy {requested!r}; use one of {', '.join(STRATEGIES)}"
        )
    return name


POSTCOPY_RISK = (
    "Risk: until the lazy phase ends the container's memory is split between the two "
    "hosts; losing either host or the link then loses the container"
)


def choose_strategy(
    requested: str,
    source_dirty_tracking: bool | None,
    target_dirty_tracking: bool | None,
    source_lazy: bool | None,
    target_lazy: bool | None,
    *,
    predicted_stop_copy_s: float | None = None,
    budget_s: float = 0.3,
    accept_risk: bool = False,
) -> tuple[str, str]:
    """Resolve "auto" and check an explicit strategy against what the hosts can do.

    Returns (strategy, reason). Capabilities are True/False from preflight, None when
    unknown. What CRIU actually needs:

    * pre-copy: soft-dirty tracking where ``criu pre-dump`` runs, i.e. on the source
      (CRIU forces ``--track-mem`` and refuses without it). Restoring a pre-dumped image
      chain does not track memory, so the target's soft-dirty is not required; it is
      only mentioned when missing (migrating back with pre-copy would not work).
    * post-copy: userfaultfd where the restored process faults pages in, i.e. on the
      target (``criu lazy-pages``); ``criu dump --lazy-pages`` needs no userfaultfd.
    * hybrid: both of the above.

    "auto" picks pre-copy when the source is known to track dirty memory. Else, when the
    target can serve lazy pages and a stop-and-copy freeze (`predicted_stop_copy_s`) would
    be over the downtime budget, post-copy would keep the freeze near CRIU's floor, at a
    risk: until its lazy phase ends, a failure of either host or the link loses the
    container. So auto picks post-copy only when that risk is accepted (`accept_risk`:
    the console asks, scripts pass --accept-risk), and otherwise stop-and-copy, saying
    what post-copy would have given. An explicit request that a host
    is known not to support raises ValueError; an unknown capability lets it through,
    saying it was not verified.
    """
    strategy = _normalize(requested)
    target_note = (
        " (the target has no soft-dirty tracking: fine for this move, but it could not "
        "pre-copy the container back)"
        if target_dirty_tracking is False
        else ""
    )
    lazy_note = "; post-copy fallback available" if target_lazy else ""
    # source_lazy is accepted for symmetry with the preflight facts: the source needs no
    # userfaultfd for post-copy, so it never changes the outcome.

    if strategy == "auto":
        if source_dirty_tracking:
            return (
                "pre-copy",
                f"pre-copy: the source tracks dirty memory (soft-dirty), so the container "
                f"keeps running while most of its memory is copied{lazy_note}{target_note}",
            )
        if source_dirty_tracking is False:
            why = "the source kernel has no soft-dirty memory tracking, which pre-copy needs"
        else:
            why = "preflight could not tell whether the source tracks dirty memory (soft-dirty)"
        over = (
            predicted_stop_copy_s is not None
            and predicted_stop_copy_s > budget_s
            and target_lazy is True
        )
        if over and accept_risk:
            return (
                "post-copy",
                f"post-copy: {why}, and a stop-and-copy freeze would be about "
                f"{predicted_stop_copy_s:.1f} s, over the {budget_s * 1000:.0f} ms budget; "
                f"post-copy's freeze does not grow with memory. {POSTCOPY_RISK} (accepted)",
            )
        note = (
            f"; its freeze would be about {predicted_stop_copy_s:.1f} s, over the "
            f"{budget_s * 1000:.0f} ms budget: post-copy would stay near CRIU's floor, at a "
            "risk (accept it with --accept-risk, or in the console)"
            if over
            else ""
        )
        return (
            "stop-and-copy",
            f"stop-and-copy: {why}; the container stays frozen for the copy{note}",
        )

    if strategy == "stop-and-copy":
        return ("stop-and-copy", "stop-and-copy, as requested: one frozen dump, copy, restore")

    problems: list[str] = []
    unverified: list[str] = []
    if strategy in ("pre-copy", "hybrid"):
        if source_dirty_tracking is False:
            problems.append(
                "the source kernel has no soft-dirty memory tracking "
                "(CONFIG_MEM_SOFT_DIRTY), so criu pre-dump cannot run there"
            )
        elif source_dirty_tracking is None:
            unverified.append("soft-dirty on the source")
    if strategy in ("post-copy", "hybrid"):
        if target_lazy is False:
            problems.append(
                "the target has no usable userfaultfd, so criu lazy-pages cannot serve "
                "page faults there"
            )
        elif target_lazy is None:
            unverified.append("userfaultfd on the target")
    if problems:
        instead = "stop-and-copy"
        if strategy == "hybrid" and source_dirty_tracking is not False:
            instead = "pre-copy or stop-and-copy"
        elif strategy == "hybrid" and target_lazy is not False:
            instead = "post-copy or stop-and-copy"
        raise ValueError(f"{strategy} is not possible: {'; '.join(problems)}. Use {instead}.")
    reason = f"{strategy}, as requested"
    if unverified:
        reason += f" (not verified: {' and '.join(unverified)})"
    if strategy in ("pre-copy", "hybrid"):
        reason += target_note
    return (strategy, reason)
