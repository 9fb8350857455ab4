"""Unfinished migrations found at start: what recovery would do, done on the user's yes.

A migration is unfinished when its console died, when its rollback met a host that did
not answer ("in doubt"), or when steps after its commit were left ("incomplete"). The
plan for each comes from core/engine/recovery.py (the same as `ferryman recover`).
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, RichLog, Static

from core.engine.recovery import Pending
from tui.errors import operation
from tui.format import inert_text


class RecoverScreen(ModalScreen[bool]):
    """Dismisses with True when recovery ran (the hosts should be listed again)."""

    AUTO_FOCUS = "#later"  # "Later" has the focus: nothing happens on a stray Enter

    DEFAULT_CSS = """
    RecoverScreen { align: center middle; }
    RecoverScreen > #recover {
        width: 96; height: auto; max-height: 90%; padding: 1 2;
        border: thick $warning; background: $surface;
    }
    RecoverScreen #recover-title { text-style: bold; margin-bottom: 1; }
    RecoverScreen #recover-log { height: auto; max-height: 12; margin-top: 1; display: none; }
    RecoverScreen #recover-log.shown { display: block; }
    RecoverScreen #recover-buttons { height: auto; margin-top: 1; align-horizontal: right; }
    RecoverScreen Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("y", "recover", "Recover", id="recover.yes", tooltip="Recover the unfinished migrations now"),
        Binding("n,escape", "later", "Later", id="recover.later", tooltip="Later: they stay in the journal"),
    ]

    def __init__(self, items: list[Pending]) -> None:
        super().__init__()
        self.items = items
        self.running = False
        self.done = False

    def compose(self) -> ComposeResult:
        n = len(self.items)
        with Vertical(id="recover"):
            yield Static(
                Text(f"{n} unfinished migration{'s' if n != 1 else ''} in the journal"),
                id="recover-title",
            )
            yield Static(self.describe(), id="recover-message")
            yield RichLog(id="recover-log", wrap=True, markup=False)
            with Horizontal(id="recover-buttons"):
                yield Button("Later (n)", id="later")
                yield Button(
                    "Recover (y)",
                    id="yes",
                    variant="warning",
                    disabled=not any(it.plan.to_do for it in self.items),
                )

    def describe(self) -> Text:
        t = Text()
        for it in self.items:
            e, p = it.entry, it.plan
            t.append_text(inert_text(e.container, "bold cyan"))
            t.append(f"  {e.source} → {e.target}  ", style="bold")
            t.append(f"{e.migration_id}, stopped in {e.phase or 'start'} ({e.result})\n", style="dim")
            t.append("  → ", style="bold")
            t.append_text(inert_text(p.reason, "" if p.to_do else "dim"))
            t.append("\n")
        if not any(it.plan.to_do for it in self.items):
            t.append("\nNothing can be done now; they stay in the journal.", style="dim")
        else:
            t.append("\nRecover now? (the same as `ferryman recover --yes`)", style="bold")
        return t

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "yes":
            self.action_recover()
        else:
            self.action_later()

    def action_later(self) -> None:
        if not self.running:
            self.dismiss(self.done)

    def action_recover(self) -> None:
        if self.running or self.done or not any(it.plan.to_do for it in self.items):
            return
        self.running = True
        self.query_one("#yes", Button).disabled = True
        self.query_one("#recover-log", RichLog).add_class("shown")
        self.run_recovery()

    def say(self, text: str, style: str = "") -> None:
        self.query_one("#recover-log", RichLog).write(inert_text(text, style))

    @work(group="recover", exclusive=True, exit_on_error=False)
    async def run_recovery(self) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        try:
            for it in self.items:
                if not it.plan.to_do:
                    continue
                e = it.entry
                self.say(f"{e.container} ({e.migration_id}): {it.plan.reason}", "bold")
                try:
                    with operation("recover", e.source):
                        where = await backend.recover(it, self.say)
                except Exception as err:  # noqa: BLE001 - shown, the entry stays open
                    self.say(f"failed: {err}; it stays in the journal", "bold red")
                    continue
                self.say(f"done: {e.container} runs on {where}", "bold green")
        finally:
            self.running = False
            self.done = True
            later = self.query_one("#later", Button)
            later.label = "Close (n)"
            later.focus()
