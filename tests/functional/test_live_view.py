"""The live view as an admin reads it: the log follows and wraps, parts fit the strategy,
the words and units are right, the footer matches the state, the totals agree with history."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from core.events import LogLine, MigrationStarted, PhaseStarted
from core.models import MigrationRequest
from core.replay import Recording, ReplayBackend
from tests.functional.fakes import GatedBackend
from tests.functional.test_console import hosts_ready, make_app, text_of, wait_until
from tui.demo import FIXED_NOW, PRECOPY, RECORDINGS, replay
from tui.screens.history import HistoryScreen
from tui.screens.hosts import HostsScreen
from tui.screens.migration import MigrationScreen
from tui.widgets.log_pane import LogPane

SIZE = (120, 32)


def long_lines_recording(n: int = 60) -> Recording:
    rec = Recording.load(PRECOPY)
    t = FIXED_NOW
    evs = [
        MigrationStarted(
            migration_id="long",
            container="cache-1",
            source="host1",
            target="host2",
            strategy="stop-and-copy",
            downtime_budget_s=0.3,
            t=t,
        ),
        PhaseStarted(phase="prepare", t=t),
    ]
    for i in range(n):
        evs.append(LogLine(host="host1", text=f"line {i} " + "x" * 150 + f" end-of-{i}", t=t))
    evs.append(PhaseStarted(phase="checkpoint", t=t))
    for i in range(n, n + 20):
        evs.append(LogLine(host="host1", text=f"line {i} short", t=t))
    evs.append(PhaseStarted(phase="transfer", t=t))
    rec.events = evs
    return rec


async def test_the_log_wraps_long_lines_and_follows_new_ones_unless_scrolled_up():
    backend = GatedBackend(
        ReplayBackend(long_lines_recording(), speed=0),
        hold=lambda ev: isinstance(ev, PhaseStarted) and ev.phase in ("checkpoint", "transfer"),
    )
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await wait_until(pilot, lambda: backend.runs and backend.runs[0].held, what="the hold")
        view = app.screen
        assert isinstance(view, MigrationScreen)
        log = view.query_one(LogPane)
        await wait_until(pilot, lambda: len(log.lines) >= 60, what="the lines")
        await pilot.pause(0.2)
        rows = log.shown_rows()
        assert log.at_end
        assert any("end-of-59" in r for r in rows), rows  # the end of a long line is shown
        assert all(len(r) <= log.scrollable_content_region.width for r in rows)
        # scrolled up to read, new lines do not pull the view down
        log.focus()
        await pilot.press("home")
        await pilot.pause(0.05)
        assert not log.at_end
        backend.runs[0].release()
        await wait_until(pilot, lambda: len(log.lines) >= 80, what="more lines")
        await pilot.pause(0.2)
        assert log.scroll_y == 0
        await pilot.press("end")
        await pilot.pause(0.05)
        assert log.at_end and any("line 79 short" in r for r in log.shown_rows())


LAB = RECORDINGS / "lab-stop-and-copy.json"


async def run_to_end(pilot, container: str, containers: int) -> MigrationScreen:
    app = pilot.app
    await hosts_ready(pilot, containers=containers)
    app.start_migration(MigrationRequest(container, "host1", "host2"))
    await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="live view")
    view = app.screen
    await wait_until(pilot, lambda: view.progress.finished, what="the end")
    await pilot.pause(0.2)
    return view


def bindings(screen) -> dict[str, str]:
    """key -> action of what the footer offers now"""
    return {k: b.binding.action for k, b in screen.active_bindings.items() if b.enabled}


async def test_stop_and_copy_has_no_rounds_says_over_budget_and_wording_units_footer():
    app = make_app(replay(LAB))
    async with app.run_test(size=SIZE) as pilot:
        view = await run_to_end(pilot, "workload", 1)
        for part in ("#rounds-box", "#dirty-chart", "#dirty-label", "#budget"):
            assert not view.query_one(part).display, part
        note = text_of(view.query_one("#budget-note", Static))
        assert "stop-and-copy does not plan to it" in note
        assert "measured freeze 1.28 s: 976 ms over the budget" in note
        label = text_of(view.query_one("#freeze-label", Static))
        assert "running again on host2" in label and "the host2" not in label
        rate_label = text_of(view.query_one("#rate-label", Static))
        assert "MiB/s" in rate_label and "MB/s" not in rate_label
        keys = bindings(view)
        assert "abort" not in keys.values() and "back_or_abort" not in keys.values()
        assert keys.get("escape") == "back"
        await pilot.press("escape")
        assert isinstance(app.screen, HostsScreen)


async def test_live_and_history_totals_of_one_move_agree():
    rec = Recording.load(LAB)
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=SIZE) as pilot:
        view = await run_to_end(pilot, "workload", 1)
        result = text_of(view.query_one("#result", Static))
        assert "✓ moved to host2 in 4.86 s" in result
        assert "66.8 MiB relayed (2.7 MiB of it the image)" in result
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        table = app.screen.query_one("#history", DataTable)
        row = [str(c) for c in table.get_row_at(0)]
        assert "4.86 s" in row and "66.8 MiB" in row, row
        await pilot.press("escape")  # back where it came from: the live view
        assert app.screen is view


async def test_after_a_success_the_footer_offers_no_abort_while_running_it_does():
    backend = GatedBackend(
        replay(PRECOPY), hold=lambda ev: isinstance(ev, PhaseStarted) and ev.phase == "checkpoint"
    )
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await wait_until(pilot, lambda: backend.runs and backend.runs[0].held, what="the hold")
        view = app.screen
        keys = bindings(view)
        assert keys.get("a") == "abort" and keys.get("escape") == "back_or_abort"
        assert view.query_one("#rounds-box").display  # pre-copy: rounds shown
        backend.runs[0].release()
        await wait_until(pilot, lambda: view.progress.finished, what="the end")
        await pilot.pause(0.1)
        keys = bindings(view)
        assert "a" not in keys and keys.get("escape") == "back"


async def test_a_warning_of_the_engine_is_in_the_result():
    from core.events import Warning as EngineWarning

    rec = Recording.load(LAB)
    done = rec.events[-1]
    rec.events = [
        *rec.events[:-1],
        EngineWarning(text="heartbeat counter went from 41 to 3: the application state did not continue", t=done.t),
        done,
    ]
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=SIZE) as pilot:
        view = await run_to_end(pilot, "workload", 1)
        result = text_of(view.query_one("#result", Static)).replace("\n", " ")
        assert "! 1 warning: heartbeat counter went from 41 to 3" in result
        assert result.startswith("✓ moved") and "committed:" not in result
