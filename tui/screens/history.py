"""Past migrations from the journal, each openable with its rounds, freeze and logs."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from core.journal import JournalEntry
from core.outcome import Outcome, outcome_of
from tui.format import cause_text, doctor_name, duration, inert_text, size, where_text
from tui.screens.base import ReportsWorkerErrors
from tui.widgets.footer import Footer

RESULT_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "rolled back": "magenta",
    "running": "yellow",
}


def when(t: float | None) -> str:
    if t is None:
        return "—"
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def entry_outcome(e: JournalEntry) -> Outcome:
    return outcome_of(e.typed_events())


def took_of(e: JournalEntry) -> float | None:
    return (e.finished - e.started) if e.finished else None


def running_on(e: JournalEntry) -> str:
    """Where the container runs after this move: what its events say. Recovery changes the
    journal without an event: then the journal's word."""
    if e.result == "recovered":
        return e.running_on
    o = entry_outcome(e)
    if o.failed is not None or o.succeeded is not None or o.rolled_back is not None:
        return o.running_on
    return e.running_on


def failure_phase(e: JournalEntry) -> str:
    o = entry_outcome(e)
    return o.failed.phase if o.failed is not None else e.phase


class HistoryScreen(ReportsWorkerErrors, Screen):
    DEFAULT_CSS = """
    HistoryScreen #history { height: 1fr; border: round $panel; }
    HistoryScreen #history-detail { height: auto; padding: 0 1; border: round $primary; }
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="history.down", tooltip="Next migration"),
        Binding("k", "cursor_up", "Up", id="history.up", tooltip="Previous migration"),
        Binding("enter", "open", "Open", show=False, id="history.open", tooltip="Open it: its phases, rounds, freeze and log"),
        Binding("o", "open", "Open", id="history.open-key", tooltip="Open it: its phases, rounds, freeze and log"),
        Binding("d", "doctor", "Doctor", id="history.doctor", tooltip="The doctor of a failed migration"),
        Binding("escape", "app.pop_screen", "Back", id="history.back", tooltip="Back where you came from"),
    ]

    def __init__(self, entries: list[JournalEntry]) -> None:
        super().__init__()
        self.entries = {e.migration_id: e for e in entries}

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="history", cursor_type="row", zebra_stripes=True)
        table.border_title = "migration history (UTC)"
        yield table
        yield Static("", id="history-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#history", DataTable)
        for col in (
            "started",
            "container",
            "from → to",
            "strategy",
            "result",
            "phase",
            "freeze",
            "moved",
            "took",
        ):
            table.add_column(col, key=col)
        for e in self.entries.values():
            o = entry_outcome(e)
            moved = o.bytes or e.bytes_moved
            table.add_row(
                when(e.started),
                inert_text(e.container, "bold"),
                f"{e.source} → {e.target}",
                e.strategy,
                Text(e.result, style=RESULT_STYLE.get(e.result, "")),
                o.failed.phase if o.failed is not None else e.phase,  # where it failed
                duration(e.freeze.get("total_s")) if e.freeze else "—",
                size(moved) if moved else "—",
                duration(o.seconds if o.seconds is not None else took_of(e)),
                key=e.migration_id,
            )
        if not self.entries:
            self.query_one("#history-detail", Static).update(
                Text("no migrations recorded yet", style="dim")
            )
        table.focus()

    def selected(self) -> JournalEntry | None:
        table = self.query_one("#history", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.entries.get(key or "")

    @on(DataTable.RowHighlighted, "#history")
    def _highlighted(self) -> None:
        e = self.selected()
        if e is None:
            return
        t = Text()
        t.append(e.migration_id, style="bold")
        t.append("   ")
        t.append_text(where_text(running_on(e)))
        if e.cause:
            t.append("\ncause: ", style="bold red")
            t.append_text(cause_text(e.cause))
        if e.phases:
            t.append("\nphases: ", style="dim")
            t.append(" · ".join(f"{p['phase']} {duration(p['seconds'])}" for p in e.phases))
        if e.freeze:
            f = e.freeze
            t.append("\nfreeze: ", style="dim")
            t.append(duration(f.get("total_s")))
            if e.result == "succeeded":
                t.append(
                    f" = dump {duration(f.get('dump_s'))} + transfer "
                    f"{duration(f.get('transfer_s'))} + restore {duration(f.get('restore_s'))}"
                )
            else:  # the freeze of a rollback: only what was measured
                parts = [
                    f"{name} {duration(f.get(k))}"
                    for name, k in (("dump", "dump_s"), ("transfer", "transfer_s"), ("resume", "restore_s"))
                    if f.get(k)
                ]
                t.append(" (rolled back" + (": " + " + ".join(parts) if parts else "") + ")")
        t.append("\nenter opens it", style="dim italic")
        failure = failure_phase(e)
        if e.result != "succeeded":
            t.append(f" · d opens the {doctor_name(failure)}", style="dim italic")
        self.query_one("#history-detail", Static).update(t)

    @on(DataTable.RowSelected, "#history")
    def _selected(self) -> None:
        self.action_open()

    def action_cursor_down(self) -> None:
        self.query_one("#history", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#history", DataTable).action_cursor_up()

    def action_open(self) -> None:
        e = self.selected()
        if e is None:
            return
        from tui.screens.migration import MigrationScreen

        self.app.push_screen(MigrationScreen(events=e.typed_events(), entry=e))

    def action_doctor(self) -> None:
        e = self.selected()
        if e is None:
            return
        if e.result == "succeeded":
            self.notify("That migration succeeded: nothing to diagnose")
            return
        from tui.screens.doctor import DoctorScreen

        self.app.push_screen(DoctorScreen(None, entry=e))
