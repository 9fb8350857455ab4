"""At start the console offers to recover unfinished migrations: it says what it would
do for each, does nothing without a yes, and lists the hosts again after."""

from __future__ import annotations

from textual.widgets import Button, RichLog

from core.engine.recovery import Pending, Plan
from core.journal import JournalEntry
from core.replay import Recording, ReplayBackend
from tests.functional.test_console import hosts_ready, make_app, wait_until
from tui.demo import FIXED_NOW, PRECOPY
from tui.screens.hosts import HostsScreen
from tui.screens.recover import RecoverScreen


def entry(mid: str, result: str, phase: str) -> JournalEntry:
    return JournalEntry(migration_id=mid, container="cache-1", source="host1", target="host2",
                        strategy="stop-and-copy", started=FIXED_NOW, result=result, phase=phase)


def backend(items: list[Pending]) -> ReplayBackend:
    return ReplayBackend(Recording.load(PRECOPY), speed=0, pending=items)


async def test_unfinished_migrations_are_offered_and_recovered_on_yes():
    items = [
        Pending(entry("m-1", "running", "transfer"),
                Plan("resume", "cache-1 runs nowhere: it will be resumed on host1 from its checkpoint")),
        Pending(entry("m-2", "in doubt", "restore"), Plan("unreachable", "cannot look at it now: host2: unreachable")),
    ]
    be = backend(items)
    app = make_app(be)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RecoverScreen), what="recovery offer")
        msg = str(app.screen.query_one("#recover-message").render())
        assert "2 unfinished migrations" in str(app.screen.query_one("#recover-title").render())
        assert "resumed on host1" in msg and "m-2" in msg and "in doubt" in msg
        assert be.recovered == []  # nothing without a yes
        await pilot.press("y")
        log = app.screen.query_one("#recover-log", RichLog)
        await wait_until(pilot, lambda: any("done: cache-1 runs on host1" in s.text for s in log.lines),
                         what="recovery done")
        assert be.recovered == ["m-1"]  # the unreachable one is left alone
        assert str(app.screen.query_one("#later", Button).label) == "Close (n)"
        await pilot.press("n")
        await hosts_ready(pilot)


async def test_later_leaves_them_and_no_offer_without_any():
    items = [Pending(entry("m-3", "incomplete", "cleanup"), Plan("finish", "cache-1 runs on host2: the move will be finished"))]
    be = backend(items)
    app = make_app(be)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RecoverScreen), what="recovery offer")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, HostsScreen), what="hosts screen")
        assert be.recovered == []
    app = make_app(backend([]))
    async with app.run_test(size=(140, 45)) as pilot:
        await hosts_ready(pilot)
        await pilot.pause(0.2)
        assert not isinstance(app.screen, RecoverScreen)
