"""The migration strategies, and what each implies.

The values are the words the CLI takes, the events carry and the journal keeps; the
planner (core/engine/planner.py) resolves "auto" and checks an explicit choice against
what the hosts can do.
"""

from __future__ import annotations

from enum import StrEnum


class Strategy(StrEnum):
    AUTO = "auto"
    STOP_AND_COPY = "stop-and-copy"
    PRE_COPY = "pre-copy"
    POST_COPY = "post-copy"
    HYBRID = "hybrid"

    @property
    def iterative(self) -> bool:
        """Pre-copy rounds run before the freeze."""
        return self in (Strategy.PRE_COPY, Strategy.HYBRID)

    @property
    def lazy(self) -> bool:
        """The move ends with a lazy restore: the memory follows the running twin."""
        return self in (Strategy.POST_COPY, Strategy.HYBRID)

    @property
    def implemented(self) -> bool:
        """The engine runs it (auto is resolved to one of the others first)."""
        return self is not Strategy.AUTO

    @property
    def streams_pages(self) -> bool:
        """The dump streams its memory to the target's page server as it goes."""
        return self is Strategy.STOP_AND_COPY

    @classmethod
    def of(cls, name: str) -> Strategy | None:
        """The strategy a name stands for exactly; None for any other word (an alias
        or a mistake: the planner's choice resolves those, or says why not)."""
        try:
            return cls(name)
        except ValueError:
            return None

    @classmethod
    def tries_lazy_pages(cls, requested: str, accept_risk: bool) -> bool:
        """Whether preflight tries lazy pages for the strategy asked for: post-copy is
        asked for, or may be picked (lazy pages are tried, not trusted)."""
        s = cls.of(requested)
        return s is not None and (s.lazy or (s is Strategy.AUTO and accept_risk))


# The words, for faces that hold a strategy as the string an event or a request carries.
ITERATIVE = tuple(s.value for s in Strategy if s.iterative)  # pre-copy rounds first
LAZY = tuple(s.value for s in Strategy if s.lazy)  # the memory is split between the hosts a while
