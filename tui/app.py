"""The ferryman console: hosts and containers, migrate, watch it live, diagnose, history."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker

from core.backend import Backend
from core.models import MigrationRequest
from tui.commands import FerrymanCommands, PaletteApp
from tui.errors import describe, operation


class FerrymanApp(App[None]):
    """`FerrymanApp(backend).run()`; `clock` feeds every time shown (fix it for screenshots)."""

    CSS = """
    Screen { background: $background; }
    """

    COMMANDS = App.COMMANDS | {FerrymanCommands}

    BINDINGS = [
        Binding(
            "q", "quit", "Quit", id="app.quit",
            tooltip="Quit; during a migration it asks first, and rolls back or waits",
        ),
        Binding("ctrl+q", "quit", "Quit", show=False, id="app.quit-ctrl-q", tooltip="Quit, as q"),
        Binding("ctrl+c", "quit", "Quit", show=False, id="app.quit-ctrl-c", tooltip="Quit, as q"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="This help"),
        Binding("h", "history", "History", id="app.history", tooltip="Past migrations"),
        Binding(
            "ctrl+p", "command_palette", "Commands", show=False, priority=True,
            id="app.commands",
            tooltip="Command palette: migrate X → host, check host, doctor, history, …",
        ),  # priority: modal screens (the migrate dialog) stop the other app keys
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.time,
        title: str = "ferryman",
        refresh_s: float = 15.0,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.refresh_s = refresh_s
        self.title = title
        self.errors: list[str] = []  # every worker failure, as reported
        self.migrations_ended = 0  # live views count their ends: the hosts list again

    def on_mount(self) -> None:
        from tui.screens.hosts import HostsScreen

        self.push_screen(HostsScreen())
        self.look_for_unfinished()
        self.call_after_refresh(self._freeze_startup_objects)

    def _freeze_startup_objects(self) -> None:
        """What exists once the console is up (modules, Textual, the stylesheet, the first
        screen) lives as long as the console: keep it out of the garbage collector's full
        passes, which otherwise stall every key for tens of ms while a migration floods
        the console with events. Undone when the console closes."""
        gc.collect()
        gc.freeze()

    @work(group="recover", exit_on_error=False)
    async def look_for_unfinished(self) -> None:
        """Migrations left unfinished (a console died, a host did not answer) are offered
        for recovery at start, with what would be done; nothing is done without a yes."""
        from tui.screens.recover import RecoverScreen

        with operation("look for unfinished migrations"):
            items = await self.backend.pending_recoveries()
        if items:

            def after(ran: bool | None) -> None:
                if ran:
                    self.action_refresh_hosts()

            self.push_screen(RecoverScreen(items), after)

    async def on_unmount(self) -> None:
        gc.unfreeze()
        try:
            await self.backend.close()
        except Exception:  # noqa: BLE001 - closing is best effort on the way out
            pass

    # --- one place for worker errors -----------------------------------------------------

    def report_worker_error(self, worker: Worker) -> None:
        op, host, msg = describe(worker)
        where = f" on {host}" if host else ""
        line = f"{op}{where}: {msg}"
        self.errors.append(line)
        self.notify(line, title=f"{op} failed", severity="error", timeout=8, markup=False)

    # --- quitting --------------------------------------------------------------------------

    def migration_in_flight(self) -> Screen | None:
        """The live view of a migration that has not ended, if any (the newest)."""
        from tui.screens.migration import MigrationScreen

        for s in reversed(self.screen_stack):
            if isinstance(s, MigrationScreen) and s.in_flight:
                return s
        return None

    async def action_quit(self) -> None:
        """q, ctrl+q, ctrl+c and the palette's Quit: at once, unless a migration runs. Then
        ask first: before the commit, roll it back and quit when the rollback has ended;
        after it, quit when the move has ended. Quitting at once would leave a half-done
        move (a twin, images, the lock) behind."""
        view = self.migration_in_flight()
        if view is None:
            self.exit()
            return
        view.ask_to_quit()  # type: ignore[attr-defined]

    # --- navigation ----------------------------------------------------------------------

    def hosts_screen(self) -> Screen | None:
        from tui.screens.hosts import HostsScreen

        for s in self.screen_stack:
            if isinstance(s, HostsScreen):
                return s
        return None

    def start_migration(self, request: MigrationRequest) -> None:
        """Follow a new migration in the live view, on top of the hosts screen."""
        from tui.screens.migration import MigrationScreen

        if not self.back_to_hosts():
            return
        self.push_screen(MigrationScreen(request))

    def back_to_hosts(self) -> Screen | None:
        """Close the screens above the hosts screen, and return it; None (and nothing
        closed) when that would close the live view of a migration still running: closing
        it would stop following the migration."""
        s = self.hosts_screen()
        if s is None:
            return None
        running = self.migration_in_flight()
        if running is not None:
            self.notify(
                "A migration is running: wait for its end (or abort it) first",
                severity="warning",
            )
            return None
        while self.screen is not s and len(self.screen_stack) > 2:
            self.pop_screen()
        return s

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            if not self.is_screen_installed("help"):
                self.install_screen(HelpScreen(), "help")  # built once, kept when closed
            if self.get_screen("help") in self.screen_stack:  # open below another screen
                self.push_screen(HelpScreen())
            else:
                self.push_screen("help")

    def action_history(self) -> None:
        from tui.screens.history import HistoryScreen

        if isinstance(self.screen, HistoryScreen):
            return
        # One history: from a screen opened from it (a past migration, its doctor), h goes
        # back to it, and esc from it then returns where it was first opened from.
        open_ = [s for s in self.screen_stack if isinstance(s, HistoryScreen)]
        if open_:
            from tui.screens.migration import MigrationScreen

            above = self.screen_stack[self.screen_stack.index(open_[-1]) + 1 :]
            if not any(isinstance(s, MigrationScreen) and s.in_flight for s in above):
                while self.screen is not open_[-1]:
                    self.pop_screen()
                return
        try:
            entries = self.backend.history()
        except Exception as e:  # noqa: BLE001 - a broken journal must not close the console
            self.notify(f"read history: {e}", severity="error", markup=False)
            entries = []
        self.push_screen(HistoryScreen(entries))

    def action_refresh_hosts(self) -> None:
        s = self.hosts_screen()
        if s is not None:
            s.action_refresh()  # type: ignore[attr-defined]

    def action_migrate_selected(self) -> None:
        s = self.back_to_hosts()
        if s is None:
            return
        s.action_migrate()  # type: ignore[attr-defined]

    def action_filter_containers(self) -> None:
        s = self.back_to_hosts()
        if s is None:
            return
        s.action_filter()  # type: ignore[attr-defined]

    def migrate_to(self, host: str, container_id: str, target: str) -> None:
        """The palette's "migrate X → H": the migrate dialog for it, on the hosts screen."""
        s = self.back_to_hosts()
        if s is None:
            return
        s.migrate_container(host, container_id, target)  # type: ignore[attr-defined]

    def check_host(self, host: str) -> None:
        from tui.screens.check import HostCheckScreen

        self.push_screen(HostCheckScreen(host))

    def action_show_hosts(self) -> None:
        self.back_to_hosts()

    def action_last_doctor(self) -> None:
        """The doctor of the newest migration in the journal that did not succeed."""
        from tui.screens.doctor import DoctorScreen

        try:
            entries = self.backend.history()
        except Exception as e:  # noqa: BLE001 - a broken journal must not close the console
            self.notify(f"read history: {e}", severity="error", markup=False)
            return
        failed = [e for e in entries if e.result not in ("succeeded", "running")]
        if not failed:
            self.notify("No failed migration in the journal")
            return
        self.push_screen(DoctorScreen(None, entry=max(failed, key=lambda e: e.started)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Migrate", "Migrate the selected container", self.action_migrate_selected
        )
        yield SystemCommand("Refresh", "Refresh hosts and containers", self.action_refresh_hosts)
        yield SystemCommand("Filter", "Filter the containers", self.action_filter_containers)
        yield SystemCommand("History", "Past migrations", self.action_history)
        yield SystemCommand("Keys", "Every key of every screen", self.action_help)
        for name in ("abort", "doctor"):
            if screen.check_action(name, ()) and hasattr(screen, f"action_{name}"):
                label = {"abort": "Abort migration", "doctor": "Doctor of this failure"}[name]
                yield SystemCommand(
                    label, f"{label} (this screen)", getattr(screen, f"action_{name}")
                )
        for cmd in super().get_system_commands(screen):
            if cmd.title != "Keys":  # Textual's own keys panel: ours is the help above
                yield cmd

    def status_line(self) -> Text:
        return Text(self.title)


def _is_a_palette_app(app: FerrymanApp) -> PaletteApp:
    """mypy checks here that the app gives the palette what it needs (tui/commands.py)."""
    return app
