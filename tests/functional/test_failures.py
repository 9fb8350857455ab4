"""Failure screens: titled by the failed phase, runc's text cleaned, no made-up figures,
where the container runs as the events say, the doctor's keys fit the failure."""

from __future__ import annotations

from textual.widgets import RichLog, Static

from core.events import (
    FreezeEnded,
    FreezeStarted,
    LogLine,
    MigrationFailed,
    MigrationStarted,
    PhaseFinished,
    PhaseStarted,
    RollbackFinished,
    RollbackStarted,
)
from core.journal import JournalEntry
from core.models import MigrationRequest
from core.replay import Recording, ReplayBackend
from tests.functional.test_console import hosts_ready, make_app, text_of, wait_until
from tui.demo import FIXED_NOW, PRECOPY
from tui.screens.doctor import DoctorScreen
from tui.screens.history import HistoryScreen
from tui.screens.migration import MigrationScreen
from tui.widgets.stepper import PhaseStepper

SIZE = (120, 32)
RUNC = (
    'checkpoint failed on host1: time="2026-11-25T17:56:14Z" level=error '
    'msg="criu failed: type NOTIFY errno 0\\nlog file: /var/lib/fm/img/work/dump.log"'
)


def dump_failure_events(t: float = FIXED_NOW) -> list:
    return [
        MigrationStarted(
            migration_id="m-dump",
            container="cache-1",
            source="host1",
            target="host2",
            strategy="stop-and-copy",
            downtime_budget_s=0.3,
            t=t,
        ),
        PhaseStarted(phase="preflight", t=t),
        PhaseFinished(phase="preflight", seconds=0.1, t=t + 0.1),
        PhaseStarted(phase="prepare", t=t + 0.1),
        PhaseFinished(phase="prepare", seconds=0.5, t=t + 0.6),
        PhaseStarted(phase="checkpoint", t=t + 0.6),
        FreezeStarted(t=t + 0.6),
        LogLine(host="host1", text="$ runc checkpoint …", stream="cmd", t=t + 0.6),
        RollbackStarted(reason=RUNC, t=t + 1.4),
        PhaseStarted(phase="rollback", t=t + 1.4),
        FreezeEnded(total_s=0.83, dump_s=0, transfer_s=0, restore_s=0, where="host1", t=t + 1.43),
        PhaseFinished(phase="rollback", seconds=0.1, t=t + 1.5),
        RollbackFinished(running_on="host1", t=t + 1.5),
        MigrationFailed(phase="checkpoint", cause=RUNC, host="host1", running_on="host1", t=t + 1.5),
    ]


def backend_with(events: list) -> ReplayBackend:
    rec = Recording.load(PRECOPY)
    rec.events = events
    return ReplayBackend(rec, speed=0)


async def finished_view(pilot, request: MigrationRequest) -> MigrationScreen:
    app = pilot.app
    await hosts_ready(pilot)
    app.start_migration(request)
    await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="live view")
    view = app.screen
    await wait_until(pilot, lambda: view.progress.finished, what="the end")
    await pilot.pause(0.2)
    return view


async def test_a_dump_failure_reads_right_and_opens_the_checkpoint_doctor():
    app = make_app(backend_with(dump_failure_events()))
    async with app.run_test(size=SIZE) as pilot:
        view = await finished_view(pilot, MigrationRequest("cache-1", "host1", "host2"))
        result = text_of(view.query_one("#result", Static))
        assert "criu failed: type NOTIFY errno 0" in result
        assert "log file: /var/lib/fm/img/work/dump.log" in result
        assert 'time="' not in result and "\\n" not in result and "level=error" not in result
        assert "press d for the checkpoint doctor" in result and "restore doctor" not in result
        assert "the container runs on host1" in result
        split = text_of(view.query_one("#freeze-split", Static))
        assert "0 ms" not in split
        assert "where it was" in text_of(view.query_one("#freeze-label", Static))

        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen), what="doctor")
        doc = app.screen
        summary = text_of(doc.query_one("#doctor-summary", Static))
        assert summary.startswith("Checkpoint doctor") and "Restore doctor" not in summary
        keys = {k for k, b in doc.active_bindings.items() if b.enabled}
        assert "c" not in keys  # no hand restore after a dump failure
        log = doc.query_one("#doctor-log", RichLog)
        assert log.border_title == "no CRIU log"
        assert "none" not in str(log.border_title)
        assert any("left no CRIU log" in s.text for s in log.lines)
        assert "criu failed: type NOTIFY errno 0" in text_of(doc.query_one("#diagnosis", Static))


async def test_a_failure_in_preflight_marks_the_step_and_the_header():
    t = FIXED_NOW
    events = [
        RollbackStarted(reason="strategy hybrid: hybrid is not possible", t=t),
        PhaseStarted(phase="rollback", t=t),
        LogLine(host="ferryman", text="rollback: nothing had changed yet", stream="ferryman", t=t),
        PhaseFinished(phase="rollback", seconds=0.0, t=t),
        RollbackFinished(running_on="host1", t=t),
        MigrationFailed(
            phase="preflight", cause="strategy hybrid: hybrid is not possible", running_on="host1", t=t
        ),
    ]
    app = make_app(backend_with(events))
    async with app.run_test(size=SIZE) as pilot:
        view = await finished_view(
            pilot, MigrationRequest("cache-1", "host1", "host2", strategy="hybrid")
        )
        steps = text_of(view.query_one(PhaseStepper))
        assert "✗ preflight" in steps
        summary = text_of(view.query_one("#summary", Static))
        assert "starting…" not in summary and "failed before it started" in summary


def entry(mid: str, events: list, result: str, running_on: str) -> JournalEntry:
    e = JournalEntry(
        migration_id=mid,
        container="cache-1",
        source="host1",
        target="host2",
        strategy="stop-and-copy",
        started=events[0].t,
        result=result,
        phase="cleanup",
        finished=events[-1].t,
        running_on=running_on,
        cause=events[-1].cause if isinstance(events[-1], MigrationFailed) else "",
    )
    e.events = [ev.to_dict() for ev in events]
    return e


async def test_history_says_where_the_events_say_it_runs_and_the_doctor_retries_from_there():
    t = FIXED_NOW - 3600
    moved = [
        MigrationStarted(
            migration_id="m-moved", container="cache-1", source="host1", target="host2",
            strategy="stop-and-copy", downtime_budget_s=0.3, t=t,
        ),
        PhaseStarted(phase="cleanup", t=t + 4),
        MigrationFailed(
            phase="cleanup", cause="removing the images failed on host1", host="host1",
            running_on="host2", t=t + 5,
        ),
    ]
    doubt = [
        MigrationStarted(
            migration_id="m-doubt", container="cache-1", source="host1", target="host2",
            strategy="stop-and-copy", downtime_budget_s=0.3, t=t - 100,
        ),
        RollbackStarted(reason="host2: cannot reach", t=t - 99),
        RollbackFinished(running_on="", ok=False, detail="in doubt", t=t - 98),
        MigrationFailed(phase="restore", cause="host2: cannot reach", running_on="", t=t - 98),
    ]
    rec = Recording.load(PRECOPY)
    # the journal's own running_on says host1 (its default): the events know better
    rec.history = [entry("m-moved", moved, "failed", "host1"), entry("m-doubt", doubt, "in doubt", "host1")]
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        hist = app.screen
        detail = text_of(hist.query_one("#history-detail", Static))
        assert "runs on host2" in detail and "runs on host1" not in detail
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen), what="doctor")
        doc = app.screen
        assert doc.retry_request() is None
        assert "runs on host2 already" in text_of(doc.query_one("#restore-cmd", Static))
        await pilot.press("escape")
        await pilot.press("j")
        await pilot.pause(0.05)
        detail = text_of(hist.query_one("#history-detail", Static))
        assert "not known" in detail and "runs on host1" not in detail
        await pilot.press("escape")  # back where it came from
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen), what="back")
        from tui.screens.hosts import HostsScreen

        assert isinstance(app.screen, HostsScreen)


async def test_h_from_a_past_migration_goes_back_to_the_one_history_and_esc_leaves_it():
    app = make_app(ReplayBackend(Recording.load(PRECOPY), speed=0))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        hist = app.screen
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="past move")
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen), what="its doctor")
        await pilot.press("h")
        await wait_until(pilot, lambda: app.screen is hist, what="the same history")
        assert sum(isinstance(s, HistoryScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        from tui.screens.hosts import HostsScreen

        await wait_until(pilot, lambda: isinstance(app.screen, HostsScreen), what="hosts")
