"""The palette as a command line, help in words, plurals, the cursor on its container, busy
containers marked."""

from __future__ import annotations

import dataclasses

from textual.command import CommandPalette
from textual.widgets import DataTable, Static

from core.models import ContainerInfo
from core.replay import Recording, ReplayBackend
from tests.functional.test_console import hosts_ready, make_app, text_of, wait_until
from tui.demo import PRECOPY, RECORDINGS, replay
from tui.screens.check import HostCheckScreen
from tui.screens.doctor import DoctorScreen
from tui.screens.help import HelpScreen
from tui.screens.hosts import HostsScreen
from tui.screens.migrate_dialog import MigrateDialog

SIZE = (120, 32)


async def palette_prompts(pilot, query: str = "") -> list[str]:
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
    if query:
        await pilot.press(*query)
    await pilot.pause(0.5)
    results = app.screen.query_one("CommandList")
    return [str(results.get_option_at_index(i).prompt) for i in range(results.option_count)]


async def test_palette_lists_keys_once_and_commands_over_containers_and_hosts():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        prompts = await palette_prompts(pilot)
        assert sum(1 for p in prompts if p.splitlines()[0].strip() == "Keys") == 1, prompts
        for want in ("migrate cache-1 → host2", "check host1", "doctor of the last failure"):
            assert any(want in p for p in prompts), (want, prompts)
        assert not any("migrate pg-main" in p for p in prompts)  # it cannot move


async def test_palette_migrate_x_to_host_opens_its_dialog():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await palette_prompts(pilot, "migrate web-1")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrateDialog), what="dialog")
        assert app.screen.container.name == "web-1" and app.screen.target == "host2"


async def test_palette_check_host_and_doctor_of_the_last_failure():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await palette_prompts(pilot, "check host1")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HostCheckScreen), what="check")
        check = app.screen
        await wait_until(pilot, lambda: check.checks is not None, what="the checks")
        shown = text_of(check.query_one("#check-result", Static))
        assert "soft-dirty" in shown and "host2" not in shown
        await pilot.press("escape")
        await palette_prompts(pilot, "doctor of the last")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DoctorScreen), what="doctor")
        assert app.screen.entry is not None and app.screen.entry.container == "web-1"


async def test_help_says_what_keys_do_not_their_ids():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        from tui.screens.help import keys_table

        rows = keys_table(type(app))
        text = " ".join(" ".join(r) for r in rows)
        for bid in ("app.quit", "hosts.migrate", "migration.abort", "dialog.cancel"):
            assert bid not in text
        assert any("Abort before the commit and roll back" in r[2] for r in rows)


async def test_one_container_is_one_container():
    app = make_app(replay(RECORDINGS / "lab-stop-and-copy.json"))
    async with app.run_test(size=SIZE) as pilot:
        screen = await hosts_ready(pilot, containers=1)
        await wait_until(pilot, lambda: "refreshed" in text_of(screen.query_one("#status")))
        status = text_of(screen.query_one("#status", Static))
        assert "1 container " in status and "1 containers" not in status


class Changing(ReplayBackend):
    """Lists a new container before the others from the second listing on."""

    calls = 0

    async def containers(self, host: str):
        cs = await super().containers(host)
        if host == "host1":
            self.calls += 1
            if self.calls > 1:
                new = dataclasses.replace(cs[0], id="f" * 64, name="aaa-new")
                cs = [new, *cs]
        return cs


async def test_refresh_keeps_the_cursor_on_the_container_not_the_row():
    backend = Changing(Recording.load(PRECOPY), speed=0)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await hosts_ready(pilot)
        await pilot.press("j")
        chosen = screen.selected_container()
        row = screen.query_one("#containers", DataTable).cursor_row
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.query_one("#containers").row_count == 6, what="new")
        await pilot.pause(0.05)
        assert screen.selected_container().id == chosen.id
        assert screen.query_one("#containers", DataTable).cursor_row == row + 1


@dataclasses.dataclass(frozen=True)
class LockedInfo(ContainerInfo):
    locked_by: str = ""


async def test_a_locked_container_is_marked_and_not_offered():
    rec = Recording.load(PRECOPY)
    c = next(c for c in rec.containers if c.name == "cache-1")
    locked = LockedInfo(**dataclasses.asdict(c), locked_by="console 4121 on ops-laptop")
    rec.containers = [locked if x is c else x for x in rec.containers]
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=SIZE) as pilot:
        screen = await hosts_ready(pilot)
        assert screen.selected_container().name == "cache-1"
        table = screen.query_one("#containers", DataTable)
        assert "locked: console 4121" in str(table.get_row_at(0)[-1])
        await pilot.press("m")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HostsScreen)
        prompts = await palette_prompts(pilot, "migrate")
        assert not any("migrate cache-1" in p for p in prompts)


async def test_palette_commands_never_close_a_running_live_view():
    from core.events import RoundFinished
    from core.models import MigrationRequest
    from tests.functional.fakes import GatedBackend
    from tui.screens.migration import MigrationScreen

    backend = GatedBackend(replay(PRECOPY), hold=lambda ev: isinstance(ev, RoundFinished))
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        await hosts_ready(pilot)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        await wait_until(pilot, lambda: backend.runs and backend.runs[0].held, what="the hold")
        view = app.screen
        for action in (app.action_show_hosts, app.action_migrate_selected, app.action_filter_containers):
            action()
            await pilot.pause(0.05)
            assert app.screen is view and isinstance(view, MigrationScreen)
        app.start_migration(MigrationRequest("web-1", "host1", "host2"))  # a second one
        await pilot.pause(0.05)
        assert app.screen is view and len(backend.runs) == 1 and not backend.runs[0].aborted


class Moving(ReplayBackend):
    """From the second listing on, cache-1 runs on host2 under a new id (it was migrated)."""

    calls = 0

    async def containers(self, host: str):
        cs = await super().containers(host)
        if host == "host1":
            self.calls += 1
        if self.calls > 1:
            moved = next(c for c in self.recording.containers if c.name == "cache-1")
            cs = [c for c in cs if c.name != "cache-1"]
            if host == "host2":
                cs = [*cs, dataclasses.replace(moved, host="host2", id="e" * 64)]
        return cs


async def test_refresh_follows_a_container_that_moved_to_another_host():
    backend = Moving(Recording.load(PRECOPY), speed=0)
    app = make_app(backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await hosts_ready(pilot)
        assert screen.selected_container().name == "cache-1"
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: any(c.host == "host2" and c.name == "cache-1" for c in screen.visible_containers()),
            what="the move listed",
        )
        await pilot.pause(0.05)
        c = screen.selected_container()
        assert c.name == "cache-1" and c.host == "host2"
