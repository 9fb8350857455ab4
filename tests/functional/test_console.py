"""The console driven like a user would, on replayed recordings."""

from __future__ import annotations

import asyncio
import dataclasses

from textual.command import CommandPalette
from textual.widgets import Checkbox, DataTable, Input, Static

from core.events import MigrationFailed, RoundFinished
from core.models import MigrationRequest
from tui.app import FerrymanApp
from tui.demo import FAILED_RESTORE, FIXED_NOW, PRECOPY, RECORDINGS, HoldBackend, replay
from tui.screens.doctor import DoctorScreen, LogScreen, find_log, load_doctor
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.screens.hosts import HostsScreen
from tui.screens.migrate_dialog import MigrateDialog
from tui.screens.migration import MigrationScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.freeze_timer import FreezeTimer
from tui.widgets.log_pane import LogPane
from tui.widgets.rounds_table import RoundsTable
from tui.widgets.stepper import PhaseStepper

SIZE = (140, 45)


def make_app(backend) -> FerrymanApp:
    return FerrymanApp(backend, clock=lambda: FIXED_NOW, refresh_s=0)


async def wait_until(pilot, cond, timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def text_of(widget: Static) -> str:
    return str(widget.render())


def log_text(log) -> str:
    if isinstance(log, LogPane):
        return "\n".join(log.plain_lines)
    return "\n".join(strip.text for strip in log.lines)


async def hosts_ready(pilot, containers: int = 5) -> HostsScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, HostsScreen), what="hosts screen")
    screen = app.screen
    table = screen.query_one("#containers", DataTable)
    await wait_until(pilot, lambda: table.row_count == containers, what="containers")
    return screen


async def test_navigate_filter_refresh_keeps_cursor():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        screen = await hosts_ready(pilot)
        table = screen.query_one("#containers", DataTable)
        hosts_text = text_of(screen.query_one("#hosts", Static))
        assert "soft-dirty → pre-copy ✓" in hosts_text
        assert "host3" in hosts_text and "No route to host" in hosts_text
        assert screen.selected_container().name == "cache-1"
        await pilot.press("j")
        assert screen.selected_container().name == "web-1"
        await pilot.press("j", "j", "k")
        assert screen.selected_container().name == "pg-main"

        await pilot.press("/")
        assert isinstance(app.focused, Input)
        await pilot.press(*"nginx")
        assert table.row_count == 1
        await pilot.press("enter")
        assert app.focused is table
        assert screen.selected_container().name == "web-1"
        await pilot.press("escape")  # clears the filter, keeps the cursor on web-1
        assert table.row_count == 5
        assert screen.selected_container().name == "web-1"

        await pilot.press("r")
        await wait_until(pilot, lambda: "refreshed" in text_of(screen.query_one("#status")))
        await pilot.pause(0.05)
        assert screen.selected_container().name == "web-1"

        await pilot.press("j")  # pg-main cannot move: the dialog does not open
        await pilot.press("m")
        await pilot.pause(0.05)
        assert isinstance(app.screen, HostsScreen)


async def test_migrate_precopy_from_dialog_to_success():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("enter")  # cache-1
        await wait_until(pilot, lambda: isinstance(app.screen, MigrateDialog), what="dialog")
        dialog = app.screen
        await wait_until(pilot, lambda: dialog.checks is not None, what="preflight")
        pre = text_of(dialog.query_one("#preflight", Static))
        assert "✓ pass" in pre and "! warn" in pre and "✗ fail" in pre
        assert "kernels differ" in pre
        assert dialog.target == "host2"
        assert "auto → pre-copy" in text_of(dialog.query_one("#auto-why", Static))
        assert not dialog.query_one("#go").disabled  # host3's failure does not involve host2

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        msg = text_of(app.screen.query_one("#confirm-message", Static))
        assert "cache-1" in msg and "host1" in msg and "host2" in msg
        await pilot.press("y")

        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="live view")
        view = app.screen
        assert view.request == MigrationRequest("cache-1", "host1", "host2", downtime_budget_s=0.3)
        await wait_until(pilot, lambda: view.progress.finished, what="the end of the migration")
        await pilot.pause(0.15)
        assert view.query_one(RoundsTable).row_count == 4
        timer = view.query_one(FreezeTimer)
        assert timer.figure == "0.212"
        split = text_of(timer.query_one("#freeze-split", Static))
        assert "dump 71 ms" in split and "transfer 64 ms" in split and "restore 77 ms" in split
        assert "✓ moved" in text_of(view.query_one("#result", Static))
        steps = text_of(view.query_one(PhaseStepper))
        assert "✓ cleanup" in steps and "lazy" not in steps and "rollback" not in steps
        log = log_text(view.query_one(LogPane))
        assert "plan switch" in log and "predicted freeze 190 ms" in log
        await pilot.press("escape")
        assert isinstance(app.screen, HostsScreen)


async def test_abort_mid_precopy_rolls_back():
    backend = HoldBackend(
        replay(PRECOPY), hold=lambda ev: isinstance(ev, RoundFinished) and ev.round == 2
    )
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await wait_until(pilot, lambda: backend.runs and backend.runs[0].held, what="round 2")
        view = app.screen
        assert isinstance(view, MigrationScreen)
        table = view.query_one(RoundsTable)
        # Rounds that come in a burst are drawn together, at most CHART_S after the last.
        await wait_until(pilot, lambda: table.row_count == 2, what="both rounds shown")
        assert not view.progress.finished

        await pilot.press("a")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        assert "cache-1" in text_of(app.screen.query_one("#confirm-message", Static))
        await pilot.press("y")
        await wait_until(pilot, lambda: view.progress.finished, what="rollback")
        assert backend.runs[0].aborted
        assert view.progress.rolled_back is not None
        assert view.progress.rolled_back.running_on == "host1"
        assert "✓ rollback" in text_of(view.query_one(PhaseStepper))
        result = text_of(view.query_one("#result", Static))
        assert "aborted by the user" in result and "runs on host1" in result
        assert "ROLLBACK aborted by the user" in log_text(view.query_one(LogPane))
        assert view.query_one(RoundsTable).row_count == 2


async def test_escape_asks_before_aborting_and_no_keeps_going():
    backend = HoldBackend(replay(PRECOPY), hold=lambda ev: isinstance(ev, RoundFinished))
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await wait_until(pilot, lambda: backend.runs and backend.runs[0].held, what="round 1")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        assert isinstance(app.screen, MigrationScreen)
        assert not backend.runs[0].aborted


async def test_failed_restore_opens_the_doctor():
    app = make_app(replay(FAILED_RESTORE))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("web-1", "host1", "host2"))
        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen))
        view = app.screen
        await wait_until(pilot, lambda: view.progress.finished, what="failure")
        await pilot.pause(0.15)
        result = text_of(view.query_one("#result", Static))
        assert "✗ failed at restore on host2" in result
        assert "fix:" in result and "tcp-close" in result
        steps = text_of(view.query_one(PhaseStepper))
        assert "✗ restore" in steps and "rollback" in steps
        log = log_text(view.query_one(LogPane))
        assert "[not markup]" in log and "\x1b" not in log  # remote text stays inert

        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen), what="doctor")
        doc = app.screen
        shown = text_of(doc.query_one("#diagnosis", Static))
        diagnoses = load_doctor().diagnose(doc.source.text)
        if diagnoses:
            assert diagnoses[0].title in shown
        else:
            assert "refused to restore an established TCP connection" in shown
        assert "Error (criu/sk-tcp.c:470)" in log_text(doc.query_one("#doctor-log"))

        await pilot.press("c")
        assert doc.command.startswith("ssh host2 docker start --checkpoint-dir")
        assert app.clipboard == doc.command
        assert doc.command in text_of(doc.query_one("#restore-cmd", Static))

        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen), what="full log")
        await pilot.press("escape")
        assert app.screen is doc

        await pilot.press("k")
        assert doc.keep_images
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, MigrationScreen) and app.screen is not view,
            what="the retry",
        )
        assert app.screen.request.keep_images
        assert [type(s).__name__ for s in app.screen_stack[1:]] == [
            "HostsScreen",
            "MigrationScreen",
        ]


async def test_doctor_reads_the_log_file():
    log = RECORDINGS / "restore-failed.log"
    failure = MigrationFailed(
        phase="restore", cause="restore failed", host="host2", log_path=str(log), t=FIXED_NOW
    )
    app = make_app(replay(FAILED_RESTORE))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        request = MigrationRequest("web-1", "host1", "host2")
        await app.push_screen(DoctorScreen(failure, request=request))
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen))
        doc = app.screen
        assert doc.source.where == str(log)
        error_lines = {e.line_no for e in doc.evidence}
        text = log.read_text().splitlines()
        sk_inet = next(i for i, line in enumerate(text, 1) if "sk-tcp.c" in line)
        assert sk_inet in error_lines
        diagnoses = load_doctor().diagnose(doc.source.text)
        shown = text_of(doc.query_one("#diagnosis", Static))
        for d in diagnoses[:1]:
            assert d.title in shown
        # Without a file, the excerpt in the event is what the doctor shows.
        nofile = dataclasses.replace(
            failure, log_path="/nonexistent/restore.log", log_excerpt=("Error: x",)
        )
        assert find_log(nofile, None).text == "Error: x"


async def test_history_opens_a_past_migration_and_its_doctor():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        hist = app.screen
        table = hist.query_one("#history", DataTable)
        assert table.row_count == 2
        assert "cause: CRIU on host2 refused" in text_of(hist.query_one("#history-detail", Static))
        await pilot.press("j", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen))
        view = app.screen
        await pilot.pause(0.15)
        assert view.query_one(RoundsTable).row_count == 4
        assert view.query_one(FreezeTimer).figure == "0.212"
        assert "✓ commit" in text_of(view.query_one(PhaseStepper))
        assert "criu pre-dump" in log_text(view.query_one(LogPane))
        await pilot.press("escape")
        assert app.screen is hist
        await pilot.press("k", "d")
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen))
        assert app.screen.failure is not None and app.screen.failure.phase == "restore"
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, HostsScreen)


async def test_help_and_command_palette():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        assert isinstance(app.screen, HostsScreen)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await pilot.press(*"history", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")


async def test_worker_errors_name_the_host_and_operation():
    class Flaky:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        async def containers(self, host):
            if host == "host2":
                raise ConnectionResetError("ssh channel closed")
            return await self.inner.containers(host)

        async def preflight(self, request):
            raise TimeoutError("criu check timed out")

    app = make_app(Flaky(replay(PRECOPY)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, HostsScreen))
        screen = app.screen
        table = screen.query_one("#containers", DataTable)
        await wait_until(pilot, lambda: table.row_count == 3, what="host1's containers")
        assert "ssh channel closed" in text_of(screen.query_one("#hosts", Static))
        await pilot.press("m")
        await wait_until(pilot, lambda: app.errors, what="the preflight error")
        assert app.errors == ["preflight on host1→host2: criu check timed out"]
        assert "could not run" in text_of(app.screen.query_one("#preflight", Static))


async def test_replay_of_a_real_lab_migration_shows_its_freeze_window():
    """Events recorded from a real stop-and-copy on the lab (scripts/record_migration.py)."""
    import json

    path = RECORDINGS / "lab-stop-and-copy.json"
    recorded = json.loads(path.read_text())
    done = next(e for e in recorded["events"] if e["kind"] == "succeeded")
    app = make_app(replay(path))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot, containers=len(recorded["containers"]))
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrateDialog), what="dialog")
        dialog = app.screen
        await wait_until(pilot, lambda: dialog.checks is not None, what="preflight")
        assert "auto → stop-and-copy" in text_of(dialog.query_one("#auto-why", Static))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="live view")
        view = app.screen
        await wait_until(pilot, lambda: view.progress.finished, what="the end of the migration")
        await pilot.pause(0.15)
        assert view.query_one(RoundsTable).row_count == 0  # stop-and-copy: no rounds
        timer = view.query_one(FreezeTimer)
        assert timer.figure == f"{done['freeze_s']:.3f}"
        split = text_of(timer.query_one("#freeze-split", Static))
        assert f"dump {done['dump_s'] * 1000:.0f} ms" in split
        assert f"restore {done['restore_s'] * 1000:.0f} ms" in split
        steps = text_of(view.query_one(PhaseStepper))
        assert "✓ checkpoint" in steps and "✓ restore" in steps and "precopy" not in steps
        log = log_text(view.query_one(LogPane))
        assert "runc --root" in log and "docker" in log


def flood_recording(chunks: int):
    """The synthetic recording, with a pre-copy phase that floods bytes and log lines."""
    from core.events import (
        BytesMoved,
        LogLine,
        MigrationStarted,
        MigrationSucceeded,
        PhaseFinished,
        PhaseStarted,
    )
    from core.replay import Recording

    rec = Recording.load(PRECOPY)
    t = FIXED_NOW
    evs = [
        MigrationStarted(
            migration_id="flood",
            container="cache-1",
            source="host1",
            target="host2",
            strategy="pre-copy",
            downtime_budget_s=0.3,
            t=t,
        ),
        PhaseStarted(phase="precopy", t=t),
    ]
    for i in range(1, chunks + 1):
        evs.append(BytesMoved(phase="precopy", total_bytes=i * 65536, rate_bps=1e6 * i, t=t))
        evs.append(LogLine(host="host1", text=f"line {i}", t=t))
    evs += [
        PhaseFinished(phase="precopy", seconds=1.0, t=t),
        MigrationSucceeded(
            container="cache-1",
            target="host2",
            total_s=2.0,
            freeze_s=0.2,
            dump_s=0.1,
            transfer_s=0.05,
            restore_s=0.05,
            bytes_moved=chunks * 65536,
            t=t,
        ),
    ]
    rec.events = evs
    return rec


async def test_a_flood_of_events_keeps_keys_and_final_figures():
    from core.replay import ReplayBackend

    chunks = 6000
    app = make_app(ReplayBackend(flood_recording(chunks), speed=0))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="live view")
        view = app.screen
        await wait_until(pilot, lambda: view.events_seen > 100, what="the flood")
        log = view.query_one(LogPane)
        assert app.focused is log
        await pilot.press("l")
        assert view.has_class("-big-log") and not view.query_one("#middle").display
        assert app.focused is log
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape")
        assert app.screen is view
        await pilot.press("l")
        assert not view.has_class("-big-log") and view.query_one("#middle").display

        await wait_until(pilot, lambda: view.progress.finished, what="the end of the flood")
        await pilot.pause(0.15)
        p = view.progress
        assert p.bytes_total == chunks * 65536
        assert p.succeeded is not None and p.succeeded.bytes_moved == chunks * 65536
        assert "✓ moved" in text_of(view.query_one("#result", Static))
        label = text_of(view.query_one("#rate-label", Static))
        # one unit system: binary, as sizes are (6e9 B/s is 5.6 GiB/s)
        assert "375.0 MiB moved" in label and f"peak {chunks * 1e6 / 2**30:.1f} GiB/s" in label
        lines = log.plain_lines
        assert len(lines) <= 1000
        assert lines[-1].endswith(f"line {chunks}")  # the last line is shown
        assert any("lines not shown (the full log is in the journal)" in x for x in lines)
        shown = [int(x.rsplit(" ", 1)[1]) for x in lines if x.strip().startswith("host1 line")]
        assert shown == sorted(shown)  # in order, none twice
        assert len(view.collected_events()) >= chunks  # every log line kept for the doctor


async def test_help_opens_again_from_the_top():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        for _ in range(2):
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
            help_screen = app.screen
            await pilot.pause(0.05)
            scroll = help_screen.query_one("VerticalScroll")
            assert scroll.scroll_y == 0
            scroll.scroll_end(animate=False)
            await pilot.pause(0.05)
            await pilot.press("escape")
            assert isinstance(app.screen, HostsScreen)


async def test_help_over_a_screen_over_help():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.action_help()  # as the command palette's Keys does
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        app.action_history()
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        app.action_help()
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help again")
        helps = [s for s in app.screen_stack if isinstance(s, HelpScreen)]
        assert len(helps) == 2 and helps[0] is not helps[1]
        await pilot.press("escape")
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, HostsScreen)


async def test_a_compose_projects_containers_are_listed_together_under_its_name():
    """Containers of a Compose project (their com.docker.compose.project label) come
    together on their host, with a "project" column, and the filter finds them by it."""
    from core.models import ContainerInfo

    class WithCompose:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        async def containers(self, host):
            plain = await self.inner.containers(host)
            if host != "host1":
                return plain
            shop = [
                ContainerInfo(host, f"shop{i}" + "0" * 59, f"shop-{s}-1", "nginx", "running",
                              project="shop")
                for i, s in enumerate(("db", "web"))
            ]  # fmt: skip
            return [*plain, *shop]  # as the inventory sorts them: project after none

    app = make_app(WithCompose(replay(PRECOPY)))
    async with app.run_test(size=SIZE) as pilot:
        screen = await hosts_ready(pilot, containers=7)
        table = screen.query_one("#containers", DataTable)
        labels = [str(c.label) for c in table.ordered_columns]
        assert labels[:3] == ["host", "project", "name"], labels
        rows = [[str(x) for x in table.get_row_at(i)] for i in range(table.row_count)]
        shop = [i for i, r in enumerate(rows) if r[1] == "shop"]
        assert [rows[i][2] for i in shop] == ["shop-db-1", "shop-web-1"]
        assert shop == list(range(shop[0], shop[0] + 2)) and rows[shop[0]][0] == "host1"
        assert {r[1] for i, r in enumerate(rows) if i not in shop} == {"—"}
        await pilot.press("/", *"shop")
        await wait_until(pilot, lambda: table.row_count == 2, what="the filter on the project")


async def test_ticking_direct_transfer_runs_preflight_again_with_the_direct_check():
    """The dialog's preflight box shows whether the source reaches the target's sshd."""
    from core.models import CheckResult, CheckStatus

    asked = []

    class Recording:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        async def preflight(self, request):
            asked.append(request.direct)
            out = await self.inner.preflight(request)
            if request.direct:
                out.append(CheckResult("host1→host2", "direct-path", CheckStatus.FAIL,
                                       "no direct path from host1 to host2: no route"))  # fmt: skip
            return out

    app = make_app(Recording(replay(PRECOPY)))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrateDialog), what="dialog")
        dialog = app.screen
        await wait_until(pilot, lambda: dialog.checks is not None, what="preflight")
        assert asked == [False]
        dialog.query_one("#direct", Checkbox).value = True
        await wait_until(pilot, lambda: len(asked) == 2 and dialog.checks is not None,
                         what="the second preflight")  # fmt: skip
        assert asked == [False, True]
        await wait_until(pilot, lambda: "no direct path" in text_of(dialog.query_one("#preflight", Static)),
                         what="the direct line")  # fmt: skip
