"""Remote commands' output and the planner's decisions, shown inert."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from core.events import Decision, Event, LogLine, RollbackFinished, RollbackStarted, Warning
from tui.format import inert_text


def line_for(ev: Event) -> Text | None:
    if isinstance(ev, LogLine):
        t = Text()
        t.append(f"{ev.host:>6} ", style="cyan")
        style = {"cmd": "bold", "stderr": "red"}.get(ev.stream, "")
        t.append_text(inert_text(ev.text, style))
        return t
    if isinstance(ev, Decision):
        t = Text()
        t.append("  plan ", style="bold magenta")
        t.append(f"{ev.action}", style="bold magenta")
        if ev.throttle_percent:
            t.append(f" (throttle {ev.throttle_percent}%)", style="magenta")
        t.append(" — ")
        t.append_text(inert_text(ev.reason, "magenta"))
        return t
    if isinstance(ev, Warning):
        t = Text("  warn ", style="bold yellow")
        t.append_text(inert_text(ev.text, "yellow"))
        return t
    if isinstance(ev, RollbackStarted):
        t = Text("  ROLLBACK ", style="bold red")
        t.append_text(inert_text(ev.reason, "red"))
        return t
    if isinstance(ev, RollbackFinished):
        t = Text("  rollback done ", style="bold magenta")
        t.append_text(inert_text(f"running on {ev.running_on}. {ev.detail}".strip()))
        return t
    return None


class LogPane(RichLog):
    DEFAULT_CSS = """
    LogPane { border: round $panel; height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, highlight=False, wrap=False, max_lines=1000, **kwargs)
        self.pending: list[Text] = []

    def queue(self, ev: Event) -> bool:
        line = line_for(ev)
        if line is None:
            return False
        self.pending.append(line)
        return True

    def flush(self) -> None:
        if not self.pending:
            return
        # At a redraw, only what can still be read: a flood of lines is summarised.
        dropped = max(0, len(self.pending) - 200)
        lines, self.pending = self.pending[-200:], []
        if dropped:
            self.write(Text(f"  … {dropped} lines not shown (the full log is in the journal)", style="dim"),
                       scroll_end=False)
        for line in lines:
            self.write(line, scroll_end=False)
        self.scroll_end(animate=False)
