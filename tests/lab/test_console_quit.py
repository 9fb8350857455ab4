"""The case that was found by trying: `q` pressed in the real console's live view while
a move runs (once the freeze has begun), answered yes. Before, the console quit at once and the
container ran nowhere. Now the move rolls back, the console quits after the rollback,
and the fault matrix's judge finds one copy, its state intact, nothing left."""

from __future__ import annotations

import asyncio

from core import journal
from core.config import load
from core.live import LiveBackend
from lab.layout import WORKLOAD
from tests.lab.conftest import heartbeats
from tests.lab.test_console_live import confirm, open_dialog, until
from tests.lab.test_fault_matrix import fresh_images_folders, judge  # noqa: F401
from tui.app import FerrymanApp
from tui.widgets.confirm import ConfirmScreen


async def test_q_once_frozen_rolls_back_then_quits(lab_hosts, hosts_file, workload_on_host1):
    h1, _ = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    known = {e.migration_id for e in journal.load_all()}
    app = FerrymanApp(LiveBackend(load(hosts_file)), refresh_s=0)
    async with app.run_test(size=(140, 45)) as pilot:
        await open_dialog(pilot)
        view = await confirm(pilot)
        await until(pilot, lambda: view.progress.frozen, 60, "the freeze")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the question")
        await pilot.press("y")
        await until(pilot, lambda: bool(app._exit), 120, "the quit after the rollback")
        assert view.progress.rolled_back is not None, "quit without a rollback"
        assert view.progress.rolled_back.running_on == "host1"
    await asyncio.sleep(0)
    (mid,) = {e.migration_id for e in journal.load_all()} - known
    judge(lab_hosts, "console q, answered yes", "checkpoint", mid, before)
