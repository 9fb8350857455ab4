"""Quitting while a migration runs asks first, rolls back (or waits past the commit), then quits."""

from __future__ import annotations

from textual.widgets import Static

from core.events import PhaseStarted, RoundFinished
from core.models import MigrationRequest
from tests.functional.fakes import GatedBackend
from tests.functional.test_console import hosts_ready, log_text, make_app, text_of, wait_until
from tui.demo import PRECOPY, replay
from tui.screens.history import HistoryScreen
from tui.screens.migration import MigrationScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.log_pane import LogPane

SIZE = (140, 45)


def round_two(ev) -> bool:
    return isinstance(ev, RoundFinished) and ev.round == 2


async def start(pilot, backend) -> MigrationScreen:
    app = pilot.app
    await hosts_ready(pilot)
    app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
    await wait_until(pilot, lambda: backend.runs and backend.runs[0].held, what="the hold")
    assert isinstance(app.screen, MigrationScreen)
    return app.screen


async def test_q_mid_move_asks_and_no_keeps_watching():
    backend = GatedBackend(replay(PRECOPY), hold=round_two)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        view = await start(pilot, backend)
        for key in ("q", "ctrl+q", "ctrl+c"):
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
            msg = text_of(app.screen.query_one("#confirm-message", Static))
            assert "cache-1" in msg and "roll" in msg and "host1" in msg
            await pilot.press("n")
            await wait_until(pilot, lambda: app.screen is view, what="back to the view")
            assert app.is_running and not app._exit
            assert not backend.runs[0].aborted


async def test_q_before_commit_rolls_back_then_quits():
    backend = GatedBackend(replay(PRECOPY), hold=round_two)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        view = await start(pilot, backend)
        await pilot.press("h")  # quitting from another screen brings the live view back
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
        assert "Roll back and quit" in str(app.screen.query_one("#yes").label)
        await pilot.press("y")
        run = backend.runs[0]
        await wait_until(pilot, lambda: run.rolling_back, what="the rollback")
        await pilot.pause(0.2)
        # The rollback is under way: the console stays, on the live view, and says why.
        assert not app._exit and app.screen is view
        assert run.aborted
        result = text_of(view.query_one("#result", Static))
        assert "rolling back" in result and "quits when" in result
        assert "quit requested" in log_text(view.query_one(LogPane))
        await pilot.press("q")  # again: no second question, it is already on its way out
        await pilot.pause(0.05)
        assert not isinstance(app.screen, ConfirmScreen) and not app._exit
        run.finish_rollback()
        await wait_until(pilot, lambda: app._exit, what="the quit after the rollback")
        assert view.progress.rolled_back is not None
        assert view.progress.rolled_back.running_on == "host1"


async def test_q_after_commit_waits_for_the_end():
    backend = GatedBackend(
        replay(PRECOPY), hold=lambda ev: isinstance(ev, PhaseStarted) and ev.phase == "commit"
    )
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        view = await start(pilot, backend)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="ask")
        msg = text_of(app.screen.query_one("#confirm-message", Static))
        assert "commit" in msg and "host2" in msg
        assert "Quit when done" in str(app.screen.query_one("#yes").label)
        await pilot.press("y")
        await pilot.pause(0.1)
        assert not app._exit and not backend.runs[0].aborted
        assert "quits when" in text_of(view.query_one("#result", Static))
        backend.runs[0].release()
        await wait_until(pilot, lambda: app._exit, what="the quit at the end")
        assert view.progress.succeeded is not None


async def test_q_without_a_migration_quits_at_once():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: app._exit, what="quit")
