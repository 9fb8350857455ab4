"""`?`: every key of every screen, from their bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {"escape": "esc", "enter": "enter", "slash": "/", "question_mark": "?"}

if TYPE_CHECKING:
    from textual.dom import DOMNode


def key_label(key: str) -> str:
    return ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in key.split(","))


def keys_table(app_class: type[DOMNode]) -> list[tuple[str, str, str]]:
    """(screen, key, what it does) for every binding of the console: the binding's tooltip
    (what it does, in words), else its footer label. The app's class is given (this module
    does not import the app, which imports it)."""
    from tui.screens.check import HostCheckScreen
    from tui.screens.doctor import DoctorScreen, LogScreen
    from tui.screens.history import HistoryScreen
    from tui.screens.hosts import HostsScreen
    from tui.screens.migrate_dialog import MigrateDialog
    from tui.screens.migration import MigrationScreen
    from tui.screens.recover import RecoverScreen
    from tui.widgets.confirm import ConfirmScreen

    owners: tuple[tuple[str, type[DOMNode]], ...] = (
        ("everywhere", app_class),
        ("hosts", HostsScreen),
        ("migrate dialog", MigrateDialog),
        ("confirmation", ConfirmScreen),
        ("live migration", MigrationScreen),
        ("doctor", DoctorScreen),
        ("full log", LogScreen),
        ("history", HistoryScreen),
        ("recovery offer", RecoverScreen),
        ("host check", HostCheckScreen),
    )
    rows: list[tuple[str, str, str]] = []
    for where, cls in owners:
        seen: dict[str, int] = {}  # what it does -> its row: keys that do one thing share it
        for b in cls.BINDINGS:
            if not isinstance(b, Binding):
                continue
            does = b.tooltip or b.description or b.action.replace("_", " ")
            if does in seen:
                i = seen[does]
                w, k, d = rows[i]
                rows[i] = (w, f"{k}, {key_label(b.key)}", d)
                continue
            seen[does] = len(rows)
            rows.append((where, key_label(b.key), does))
    return rows


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 110; max-width: 100%; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape", "dismiss", "Back", id="help.back", tooltip="Close the help"),
        Binding("question_mark", "dismiss", "Back", show=False, id="help.close", tooltip="Close the help"),
        Binding("q", "dismiss", "Back", show=False, id="help.quit", tooltip="Close the help"),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, pad_edge=False)
        table.add_column("screen", style="dim")
        table.add_column("key", style="bold cyan")
        table.add_column("does")
        last = ""
        for where, key, does in keys_table(type(self.app)):
            table.add_row(where if where != last else "", key, does)
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
