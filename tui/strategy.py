"""What `auto` would pick for a container between two hosts, and why.

The choice itself is core's (core.precopy_planner.choose_strategy), so the dialog
shows exactly what the engine will do.
"""

from __future__ import annotations

from core.models import ContainerInfo, HostFacts
from core.precopy_planner import STRATEGIES, choose_strategy

__all__ = ["STRATEGIES", "auto_strategy"]


def auto_strategy(
    container: ContainerInfo, source: HostFacts, target: HostFacts, budget_s: float
) -> tuple[str, str]:
    del container, budget_s  # the engine decides on the hosts' capabilities alone
    return choose_strategy(
        "auto", source.dirty_tracking, target.dirty_tracking, source.lazy_pages, target.lazy_pages
    )
