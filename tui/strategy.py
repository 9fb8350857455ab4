"""Which strategies a container can move with between two hosts, what `auto` picks, and
what each risks.

The choice itself is core's (core.engine.planner.choose_strategy), so the dialog shows
exactly what the engine will do; preflight's own checks (the lazy-pages trial, soft-dirty,
userfaultfd) can only rule out more, as they would in the engine's preflight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.engine.planner import STRATEGIES, choose_strategy
from core.engine.strategy import ITERATIVE, LAZY
from core.models import CheckResult, CheckStatus, ContainerInfo, HostFacts, HostStatus
from tui.format import size

__all__ = [
    "LAZY",
    "STRATEGIES",
    "STRATEGY_CHECKS",
    "StrategyChoices",
    "auto_strategy",
    "risk_of",
    "strategy_choices",
]

# Checks that rule out strategies rather than the move (the engine does not stop on them).
STRATEGY_CHECKS = ("soft-dirty", "userfaultfd", "post-copy")

SPLIT_RISK = (
    "the container's memory is split between two hosts until the lazy phase ends; "
    "losing either loses it"
)


def risk_of(strategy: str, container: ContainerInfo | None = None) -> str:
    """What the strategy risks or costs, in one sentence."""
    mem = f" ({size(container.memory_bytes)})" if container and container.memory_bytes else ""
    if strategy == "stop-and-copy":
        return (
            "the container is frozen for the whole dump, copy and restore: the freeze grows "
            f"with its memory{mem} and the downtime budget is not planned for"
        )
    if strategy == "pre-copy":
        return (
            "the container keeps running while memory is copied in rounds; the final freeze "
            "depends on how fast it rewrites memory, and rounds send more bytes than it holds"
        )
    if strategy == "post-copy":
        return SPLIT_RISK
    if strategy == "hybrid":
        return "after pre-copy rounds, " + SPLIT_RISK
    return ""


def auto_strategy(
    container: ContainerInfo, source: HostFacts, target: HostFacts, budget_s: float
) -> tuple[str, str]:
    del container, budget_s  # the engine decides on the hosts' capabilities alone
    return choose_strategy(
        "auto", source.dirty_tracking, target.dirty_tracking, source.lazy_pages, target.lazy_pages
    )


@dataclass
class StrategyChoices:
    auto: str  # what auto picks
    auto_reason: str
    reasons: dict[str, str] = field(default_factory=dict)  # strategy -> the engine's words
    ruled_out: dict[str, str] = field(default_factory=dict)  # strategy -> why, in full
    short: dict[str, str] = field(default_factory=dict)  # strategy -> why, a few words


def _failed(checks: list[CheckResult] | None, host: str, name: str) -> CheckResult | None:
    for c in checks or []:
        if c.host != host or c.name != name or c.status == CheckStatus.PASS:
            continue
        if name != "post-copy" or c.status == CheckStatus.FAIL:  # a trial that did not run
            return c
    return None


def strategy_choices(
    container: ContainerInfo,
    source: HostStatus,
    target: HostStatus,
    checks: list[CheckResult] | None = None,
) -> StrategyChoices:
    sf, tf = source.facts, target.facts
    src_dirty = sf.dirty_tracking
    dst_lazy = tf.lazy_pages
    dirty_check = _failed(checks, source.name, "soft-dirty")
    lazy_check = _failed(checks, target.name, "post-copy") or _failed(
        checks, target.name, "userfaultfd"
    )
    if dirty_check is not None:
        src_dirty = False
    if lazy_check is not None:
        dst_lazy = False
    auto, auto_reason = choose_strategy(
        "auto", src_dirty, tf.dirty_tracking, sf.lazy_pages, dst_lazy
    )
    out = StrategyChoices(auto=auto, auto_reason=auto_reason)
    for s in STRATEGIES:
        if s == "auto":
            continue
        try:
            _, why = choose_strategy(s, src_dirty, tf.dirty_tracking, sf.lazy_pages, dst_lazy)
        except ValueError as e:
            full = str(e)
            if s in LAZY and lazy_check is not None:
                full = f"{lazy_check.host}: {lazy_check.reason}"
            out.ruled_out[s] = full
            shorts = []
            if s in ITERATIVE and src_dirty is False:
                shorts.append(f"no soft-dirty on {source.name}")
            if s in LAZY and dst_lazy is False:
                what = "lazy pages fail" if _failed(checks, target.name, "post-copy") else (
                    "no userfaultfd"
                )
                shorts.append(f"{what} on {target.name}")
            out.short[s] = "; ".join(shorts) or "not possible here"
            continue
        out.reasons[s] = why
    return out
