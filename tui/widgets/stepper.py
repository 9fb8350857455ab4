"""The phases of a migration in a row: done, current, pending, skipped, failed, rollback."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from core.engine.strategy import ITERATIVE, LAZY
from tui.progress import PHASES, Progress

SYMBOL = {
    "pending": ("○", "dim"),
    "active": ("◉", "bold yellow"),
    "done": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "skipped": ("·", "dim"),
}


class PhaseStepper(Static):
    DEFAULT_CSS = """
    PhaseStepper { height: 1; padding: 0 1; }
    """

    def show(self, progress: Progress) -> None:
        self.update(self.render_steps(progress))

    @staticmethod
    def render_steps(progress: Progress) -> Text:
        out = Text()
        strategy = progress.strategy
        uses = {
            "precopy": strategy in ITERATIVE,
            "lazy": strategy in LAZY,
        }
        steps = []
        failed = progress.failed is not None or progress.rollback is not None
        for p in PHASES:
            state = progress.state_of(p)
            if p in uses and strategy and not uses[p] and state in ("pending", "skipped"):
                continue  # a phase this strategy has not: not shown (it fits 120 columns)
            if failed and state == "pending":
                continue  # after a failure the rest will not run: the rollback follows
            steps.append((p, state))
        if progress.rollback is not None or "rollback" in progress.phase_state:
            if progress.rolled_back is not None:
                state = "done" if progress.rolled_back.ok else "failed"
            else:
                state = progress.phase_state.get("rollback", "active")
            steps.append(("rollback", state))
        for i, (phase, state) in enumerate(steps):
            if i:
                out.append(" ─ ", style="dim")
            sym, style = SYMBOL[state]
            if phase == "rollback":
                style = "bold red" if state != "done" else "bold magenta"
            if phase == "lazy" and progress.lazy_at_risk:
                style = "bold red"
            out.append(f"{sym} {phase}", style=style)
            if phase == "lazy" and progress.lazy_at_risk:
                out.append(" AT RISK", style="bold red reverse")
        return out
