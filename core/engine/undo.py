"""The undo stack: how to take back each thing a migration changed, newest first.

Each step says whether it is *decisive*: a step whose failure could leave two copies
running or none (stop the twin, resume the source, bring it back from its frozen copy).
When a decisive step's host does not answer, the rollback stops there and the migration
is in doubt; a tidying step that fails is left for `ferryman recover` and the rollback
goes on. A step has a `kind` when a later phase must find it again (post-copy replaces
"resume the source" by "restart it" once the memory has left the source).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    label: str
    run: Callable[[], Awaitable[object]]
    decisive: bool = False
    kind: str = ""


class UndoStack:
    def __init__(self) -> None:
        self._steps: list[Step] = []

    def push(
        self,
        label: str,
        run: Callable[[], Awaitable[object]],
        *,
        decisive: bool = False,
        kind: str = "",
    ) -> None:
        self._steps.append(Step(label, run, decisive, kind))

    def pop(self) -> Step:
        return self._steps.pop()

    def clear(self) -> None:
        self._steps.clear()

    def drop(self, kind: str) -> None:
        self._steps = [s for s in self._steps if s.kind != kind]

    def replace(self, kind: str, step: Step) -> None:
        self._steps = [step if s.kind == kind else s for s in self._steps]

    def labels(self) -> list[str]:
        """Newest first: the order a rollback runs them in."""
        return [s.label for s in reversed(self._steps)]

    def __bool__(self) -> bool:
        return bool(self._steps)

    def __len__(self) -> int:
        return len(self._steps)
