"""What `auto` would pick for a container between two hosts, and why (from host facts).

The backend makes the real choice; this is the console's explanation of it.
"""

from __future__ import annotations

from core.models import ContainerInfo, HostFacts
from tui.format import duration, size

SMALL = 64 * 1024 * 1024
LARGE = 4 * 1024 * 1024 * 1024

STRATEGIES = ("auto", "stop-and-copy", "pre-copy", "post-copy", "hybrid")


def auto_strategy(
    container: ContainerInfo, source: HostFacts, target: HostFacts, budget_s: float
) -> tuple[str, str]:
    mem = container.memory_bytes or 0
    precopy = bool(source.dirty_tracking)
    postcopy = bool(source.lazy_pages) and bool(target.lazy_pages)
    if mem and mem <= SMALL:
        return (
            "stop-and-copy",
            f"{size(mem)} to move: one dump fits a {duration(budget_s)} budget",
        )
    if precopy and postcopy and mem >= LARGE:
        return (
            "hybrid",
            f"{size(mem)} to move, soft-dirty on source and userfaultfd on both: "
            "pre-copy rounds, then post-copy for the rest",
        )
    if precopy:
        return (
            "pre-copy",
            f"soft-dirty tracking on the source: {size(mem) if mem else 'memory'} is copied "
            "while it runs, the freeze moves only what changed",
        )
    if postcopy:
        return (
            "post-copy",
            "no soft-dirty on the source, userfaultfd on both: restore first, "
            "pull pages on demand (at risk until done)",
        )
    return "stop-and-copy", "neither soft-dirty nor userfaultfd available"
