"""Every screen pinned as an SVG, on the synthetic recordings with a fixed clock.

Update the baselines with `pytest tests/snapshot --snapshot-update` after a deliberate change.
"""

from __future__ import annotations

import asyncio

from core.events import RoundFinished
from core.models import MigrationRequest
from tui.app import FerrymanApp
from tui.demo import FAILED_RESTORE, FIXED_NOW, PRECOPY, RECORDINGS, HoldBackend, replay
from tui.screens.doctor import DoctorScreen
from tui.screens.history import HistoryScreen
from tui.screens.hosts import HostsScreen
from tui.screens.migrate_dialog import MigrateDialog
from tui.screens.migration import MigrationScreen

SIZE = (140, 45)
SMALL = (120, 32)
LAB = RECORDINGS / "lab-stop-and-copy.json"


def make_app(backend) -> FerrymanApp:
    return FerrymanApp(backend, clock=lambda: FIXED_NOW, refresh_s=0)


async def until(pilot, cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.02)


async def hosts_ready(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, HostsScreen))
    await until(pilot, lambda: app.screen.query_one("#containers").row_count == 5)


async def finished(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MigrationScreen))
    await until(pilot, lambda: app.screen.progress.finished)
    await pilot.pause(0.25)


def test_hosts(snap_compare):
    assert snap_compare(make_app(replay(PRECOPY)), terminal_size=SIZE, run_before=hosts_ready)


def test_migrate_dialog_with_preflight(snap_compare):
    async def run_before(pilot):
        await hosts_ready(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(pilot.app.screen, MigrateDialog))
        await until(pilot, lambda: pilot.app.screen.checks is not None)

    assert snap_compare(make_app(replay(PRECOPY)), terminal_size=SIZE, run_before=run_before)


def test_migrate_dialog_at_120x32(snap_compare):
    """The lab's hosts (no soft-dirty): pre-copy and hybrid ruled out, buttons on screen."""

    async def run_before(pilot):
        app = pilot.app
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await until(pilot, lambda: app.screen.query_one("#containers").row_count == 1)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MigrateDialog))
        await until(pilot, lambda: app.screen.checks is not None)
        await pilot.pause(0.2)

    assert snap_compare(make_app(replay(LAB)), terminal_size=SMALL, run_before=run_before)


def test_live_view_mid_precopy(snap_compare):
    backend = HoldBackend(
        replay(PRECOPY), hold=lambda ev: isinstance(ev, RoundFinished) and ev.round == 2
    )

    async def run_before(pilot):
        await hosts_ready(pilot)
        pilot.app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await until(pilot, lambda: backend.runs and backend.runs[0].held)
        # Rounds that come in a burst are drawn together, at most CHART_S after the last.
        await until(pilot, lambda: pilot.app.screen.query_one("#rounds").row_count == 2)
        await pilot.pause(0.25)

    assert snap_compare(make_app(backend), terminal_size=SIZE, run_before=run_before)


def test_live_view_finished(snap_compare):
    async def run_before(pilot):
        await hosts_ready(pilot)
        pilot.app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await finished(pilot)

    assert snap_compare(make_app(replay(PRECOPY)), terminal_size=SIZE, run_before=run_before)


def test_live_view_stop_and_copy_at_120x32(snap_compare):
    """A recorded lab move, stop-and-copy: no rounds, the freeze over the budget, wrapped log."""

    async def run_before(pilot):
        app = pilot.app
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await until(pilot, lambda: app.screen.query_one("#containers").row_count == 1)
        app.start_migration(MigrationRequest("workload", "host1", "host2", "stop-and-copy"))
        await finished(pilot)

    assert snap_compare(make_app(replay(LAB)), terminal_size=SMALL, run_before=run_before)


def test_live_view_failed_and_rolled_back(snap_compare):
    async def run_before(pilot):
        await hosts_ready(pilot)
        pilot.app.start_migration(MigrationRequest("web-1", "host1", "host2"))
        await finished(pilot)

    assert snap_compare(make_app(replay(FAILED_RESTORE)), terminal_size=SIZE, run_before=run_before)


def test_doctor(snap_compare):
    async def run_before(pilot):
        await hosts_ready(pilot)
        pilot.app.start_migration(MigrationRequest("web-1", "host1", "host2"))
        await finished(pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, DoctorScreen))

    assert snap_compare(make_app(replay(FAILED_RESTORE)), terminal_size=SIZE, run_before=run_before)


def test_history(snap_compare):
    async def run_before(pilot):
        await hosts_ready(pilot)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen))

    assert snap_compare(make_app(replay(PRECOPY)), terminal_size=SIZE, run_before=run_before)


def test_help(snap_compare):
    async def run_before(pilot):
        await hosts_ready(pilot)
        await pilot.press("question_mark")

    assert snap_compare(make_app(replay(PRECOPY)), terminal_size=SIZE, run_before=run_before)


def test_recovery_offer(snap_compare):
    from core.engine.recovery import Pending, Plan
    from core.journal import JournalEntry
    from core.replay import Recording, ReplayBackend
    from tui.screens.recover import RecoverScreen

    def entry(mid: str, result: str, phase: str) -> JournalEntry:
        return JournalEntry(migration_id=mid, container="cache-1", source="host1", target="host2",
                            strategy="stop-and-copy", started=FIXED_NOW, result=result, phase=phase)

    items = [
        Pending(entry("20251124-120000-a1b2c3", "running", "transfer"),
                Plan("resume", "cache-1 runs nowhere: it will be resumed on host1 from its checkpoint")),
        Pending(entry("20251124-113000-d4e5f6", "in doubt", "restore"),
                Plan("unreachable", "cannot look at it now: host2: cannot reach 10.0.0.12:22")),
    ]
    backend = ReplayBackend(Recording.load(PRECOPY), speed=0, pending=items)

    async def run_before(pilot):
        await until(pilot, lambda: isinstance(pilot.app.screen, RecoverScreen))

    assert snap_compare(make_app(backend), terminal_size=SIZE, run_before=run_before)
