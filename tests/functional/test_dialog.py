"""The migrate dialog at 32, 45 and 60 rows, its buttons and keys, and its strategy picker."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import Button, RadioButton, Static

from core.models import CheckResult, CheckStatus
from core.replay import Recording, ReplayBackend
from tests.functional.test_console import hosts_ready, make_app, text_of, wait_until
from tui.demo import PRECOPY, RECORDINGS, replay
from tui.screens.hosts import HostsScreen
from tui.screens.migrate_dialog import MigrateDialog
from tui.strategy import SPLIT_RISK
from tui.widgets.confirm import ConfirmScreen

LAB = RECORDINGS / "lab-stop-and-copy.json"


async def open_dialog(pilot, containers: int = 5) -> MigrateDialog:
    app = pilot.app
    await hosts_ready(pilot, containers=containers)
    await pilot.press("m")
    await wait_until(pilot, lambda: isinstance(app.screen, MigrateDialog), what="dialog")
    dialog = app.screen
    await wait_until(pilot, lambda: dialog.checks is not None, what="preflight")
    await pilot.pause(0.1)
    return dialog


def on_screen(screen, widget) -> bool:
    """The widget is what the screen shows at its centre (not hidden, not covered)."""
    r = widget.region
    if r.height == 0 or r.width == 0:
        return False
    try:
        found, _ = screen.get_widget_at(r.x + r.width // 2, r.y + r.height // 2)
    except Exception:  # noqa: BLE001 - off the screen
        return False
    return found is widget or widget in found.ancestors


@pytest.mark.parametrize("size", [(120, 32), (160, 45), (200, 60)])
async def test_buttons_always_visible_and_preflight_reachable_with_tab(size):
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=size) as pilot:
        dialog = await open_dialog(pilot)
        for bid in ("#cancel", "#go"):
            assert on_screen(dialog, dialog.query_one(bid, Button)), f"{bid} hidden at {size}"
        box = dialog.query_one("#preflight-box")
        buttons = dialog.query_one("#buttons")
        assert box.region.bottom <= buttons.region.y  # nothing of it behind the buttons
        assert box.region.bottom <= size[1]
        seen = []
        for _ in range(15):
            await pilot.press("tab")
            seen.append(app.focused)
        assert box in seen, f"tab never reaches the preflight box: {seen}"
        while app.focused is not box:
            await pilot.press("tab")
        for _ in range(30):
            await pilot.press("down")
        assert box.scroll_y == box.max_scroll_y  # every line can be read from the keyboard
        last = dialog.query_one("#preflight", Static)
        assert "host3" in text_of(last)


async def test_enter_on_each_button_does_what_it_says():
    app = make_app(replay(PRECOPY))
    async with app.run_test(size=(120, 32)) as pilot:
        dialog = await open_dialog(pilot)
        dialog.query_one("#go", Button).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("n")
        assert app.screen is dialog
        dialog.query_one("#cancel", Button).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HostsScreen), what="closed")
        assert any("Cancelled" in str(n.message) for n in app._notifications)


async def test_ctrl_p_works_in_the_dialog():
    from textual.command import CommandPalette

    app = make_app(replay(PRECOPY))
    async with app.run_test(size=(120, 32)) as pilot:
        await open_dialog(pilot)
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")


def radio(dialog, s: str) -> RadioButton:
    return dialog.query_one(f"#s-{s}", RadioButton)


async def test_strategies_preflight_rules_out_are_disabled_with_the_reason():
    app = make_app(replay(LAB))
    async with app.run_test(size=(120, 32)) as pilot:
        dialog = await open_dialog(pilot, containers=1)
        for s in ("pre-copy", "hybrid"):
            assert radio(dialog, s).disabled
            assert "no soft-dirty on host1" in str(radio(dialog, s).label)
        assert not radio(dialog, "stop-and-copy").disabled
        assert not radio(dialog, "post-copy").disabled
        assert "auto → stop-and-copy" in str(radio(dialog, "auto").label)
        why = text_of(dialog.query_one("#auto-why", Static))
        assert "auto → stop-and-copy" in why and "risk: the container is frozen" in why

        radio(dialog, "post-copy").value = True
        await pilot.pause(0.1)
        why = text_of(dialog.query_one("#auto-why", Static))
        assert "post-copy, as chosen" in why
        assert "auto would" not in why and "stop-and-copy" not in why
        assert SPLIT_RISK in why.replace("\n", " ")
        # the confirmation says it too
        await wait_until(pilot, lambda: dialog.checks is not None, what="preflight again")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        msg = text_of(app.screen.query_one("#confirm-message", Static)).replace("\n", " ")
        assert "strategy post-copy" in msg and SPLIT_RISK in msg


async def test_a_failed_lazy_trial_rules_out_post_copy_and_hybrid():
    rec = Recording.load(LAB)
    rec.checks = [
        *rec.checks,
        CheckResult(
            "host2",
            "post-copy",
            CheckStatus.FAIL,
            "a lazy transfer of a tiny process fails here (dump=0 restore=1): splice: Bad fd",
            "post-copy is ruled out on this host",
        ),
    ]
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=(120, 32)) as pilot:
        dialog = await open_dialog(pilot, containers=1)
        for s in ("post-copy", "hybrid"):
            assert radio(dialog, s).disabled
        assert "lazy pages fail on host2" in str(radio(dialog, "post-copy").label)
        assert "splice" in (radio(dialog, "post-copy").tooltip or "")
        assert not dialog.query_one("#go", Button).disabled  # the move itself can go


async def test_a_ruled_out_choice_falls_back_to_auto_when_the_target_changes():
    rec = Recording.load(PRECOPY)
    hosts = {h.name: h for h in rec.hosts}
    h2 = hosts["host2"]
    rec.hosts = [
        *rec.hosts,
        dataclasses.replace(
            h2, name="host4", facts=dataclasses.replace(h2.facts, lazy_pages=False)
        ),
    ]
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=(160, 45)) as pilot:
        dialog = await open_dialog(pilot)
        radio(dialog, "post-copy").value = True
        await pilot.pause(0.05)
        assert dialog.strategy == "post-copy"
        dialog.target = "host4"
        dialog.explain()
        await pilot.pause(0.05)
        assert radio(dialog, "post-copy").disabled and dialog.strategy == "auto"


async def test_the_confirmation_asks_about_what_preflight_warns_of():
    rec = Recording.load(LAB)
    rec.checks = [
        *rec.checks,
        CheckResult(
            "host1",
            "processes",
            CheckStatus.WARN,
            "1 process started by docker exec -d is not in the container's tree: it will be lost",
        ),
    ]
    app = make_app(ReplayBackend(rec, speed=0))
    async with app.run_test(size=(120, 32)) as pilot:
        await open_dialog(pilot, containers=1)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        msg = text_of(app.screen.query_one("#confirm-message", Static)).replace("\n", " ")
        assert "! host1 processes: 1 process started by docker exec -d" in msg
        assert "! host2 image:" in msg
        assert "soft-dirty" not in msg  # what rules out strategies is said in the picker
        assert on_screen(app.screen, app.screen.query_one("#yes", Button))


async def test_a_watched_client_is_asked_for_in_the_dialog_and_its_wait_shown_in_the_result():
    """The dialog's "Watch client" goes into the request; the result says what the
    client saw (the longest wait between its answers, from the engine's event)."""
    from core.events import MigrationSucceeded
    from core.replay import ReplayRun
    from tui.screens.migration import MigrationScreen

    rec = Recording.load(LAB)
    asked = []

    class Watching(ReplayBackend):
        def migrate(self, request):
            asked.append(request)
            evs = [
                dataclasses.replace(e, client="writer@host1", client_wait_s=2.2)
                if isinstance(e, MigrationSucceeded) else e
                for e in self.recording.events
            ]  # fmt: skip
            return ReplayRun(evs, 0, request.source)

    app = make_app(Watching(rec, speed=0))
    async with app.run_test(size=(120, 32)) as pilot:
        dialog = await open_dialog(pilot, containers=1)
        dialog.query_one("#watch").value = "writer@host1"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MigrationScreen), what="live view")
        view = app.screen
        await wait_until(pilot, lambda: view.progress.finished, what="the end")
        await pilot.pause(0.2)
        assert asked and asked[0].watch == "writer@host1"
        result = text_of(view.query_one("#result", Static))
        assert "client writer@host1 waited 2.20 s at most for an answer" in result, result
