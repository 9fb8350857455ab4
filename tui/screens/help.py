"""`?`: every key of every screen, from their bindings."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {"escape": "esc", "enter": "enter", "slash": "/", "question_mark": "?"}


def key_label(key: str) -> str:
    return ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in key.split(","))


def keys_table() -> list[tuple[str, str, str, str]]:
    """(screen, key, what it does, binding id) for every binding of the console."""
    from tui.app import FerrymanApp
    from tui.screens.doctor import DoctorScreen, LogScreen
    from tui.screens.history import HistoryScreen
    from tui.screens.hosts import HostsScreen
    from tui.screens.migrate_dialog import MigrateDialog
    from tui.screens.migration import MigrationScreen
    from tui.screens.recover import RecoverScreen
    from tui.widgets.confirm import ConfirmScreen

    owners = (
        ("everywhere", FerrymanApp),
        ("hosts", HostsScreen),
        ("migrate dialog", MigrateDialog),
        ("confirmation", ConfirmScreen),
        ("live migration", MigrationScreen),
        ("doctor", DoctorScreen),
        ("full log", LogScreen),
        ("history", HistoryScreen),
        ("recovery offer", RecoverScreen),
    )
    rows = []
    for where, cls in owners:
        for b in cls.BINDINGS:
            if isinstance(b, Binding):
                rows.append((where, key_label(b.key), b.description or b.action, b.id or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Back", id="help.back"),
        Binding("question_mark", "dismiss", "Back", show=False, id="help.close"),
        Binding("q", "dismiss", "Back", show=False, id="help.quit"),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, pad_edge=False)
        table.add_column("screen", style="dim")
        table.add_column("key", style="bold cyan")
        table.add_column("does")
        table.add_column("id", style="dim")
        last = ""
        for where, key, does, bid in keys_table():
            table.add_row(where if where != last else "", key, does, bid)
            last = where
        with VerticalScroll():
            yield Static(
                Text("Keys  (mouse works too: click rows, buttons, options)", style="bold")
            )
            yield Static(table)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).border_title = "help · esc closes"

    def on_screen_resume(self) -> None:
        self.query_one(VerticalScroll).scroll_home(animate=False)  # each time from the top
