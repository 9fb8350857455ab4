"""The console against the real lab, driven through Pilot as a new user would."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Static

from core.config import load
from core.live import LiveBackend
from lab.layout import WORKLOAD
from tests.lab.conftest import exists, running
from tui.app import FerrymanApp
from tui.screens.hosts import HostsScreen
from tui.screens.migrate_dialog import MigrateDialog
from tui.screens.migration import MigrationScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.freeze_timer import FreezeTimer


async def until(pilot, cond, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def text(w: Static) -> str:
    return str(w.render())


async def open_dialog(pilot) -> MigrateDialog:
    """The hosts screen with the workload listed, `m`, and the dialog's preflight done."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, HostsScreen), 10, "hosts screen")
    table = app.screen.query_one("#containers", DataTable)
    await until(pilot, lambda: table.row_count >= 1, 20, "the workload listed")
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MigrateDialog), 10, "migrate dialog")
    dialog = app.screen
    await until(pilot, lambda: dialog.checks is not None, 30, "preflight")
    return dialog


async def confirm(pilot) -> MigrationScreen:
    """ctrl+s, y: the live view of the move."""
    app = pilot.app
    await pilot.press("ctrl+s")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "confirmation")
    await pilot.press("y")
    await until(pilot, lambda: isinstance(app.screen, MigrationScreen), 10, "live view")
    return app.screen


async def test_pick_the_workload_migrate_to_host2_and_see_it_arrive(lab_hosts, hosts_file, workload_on_host1):
    h1, h2 = lab_hosts
    app = FerrymanApp(LiveBackend(load(hosts_file)), refresh_s=0)
    async with app.run_test(size=(140, 45)) as pilot:
        dialog = await open_dialog(pilot)
        table = app.screen_stack[-2].query_one("#containers", DataTable)
        row = [str(c) for c in table.get_row_at(table.cursor_row)]
        assert WORKLOAD in row and "host1" in row
        assert dialog.target == "host2"
        assert "auto → stop-and-copy" in text(dialog.query_one("#auto-why", Static))
        view = await confirm(pilot)
        await until(pilot, lambda: view.progress.finished, 120, "the end of the migration")
        await pilot.pause(0.2)
        assert "✓ moved" in text(view.query_one("#result", Static))
        assert float(view.query_one(FreezeTimer).figure) > 0
    assert running(h2, WORKLOAD)
    assert not exists(h1, WORKLOAD)
