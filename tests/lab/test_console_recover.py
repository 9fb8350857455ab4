"""The console finds a migration whose console was killed and, on the user's yes,
recovers it: exactly one copy runs afterwards, its state intact, nothing left."""

from __future__ import annotations

from textual.widgets import RichLog

from core.config import load
from core.live import LiveBackend
from lab.layout import HOSTS_FILE, WORKLOAD
from tests.functional.test_console import hosts_ready, wait_until
from tests.lab.conftest import counters_continue, exists, ferryman, heartbeats, running
from tests.lab.faults import move_and_signal_console
from tui.app import FerrymanApp
from tui.screens.recover import RecoverScreen


async def test_the_console_offers_recovery_and_carries_it_out(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    mid = move_and_signal_console("transfer")  # frozen, its memory streamed to host2
    assert not running(h1, WORKLOAD) and not running(h2, WORKLOAD)
    app = FerrymanApp(LiveBackend(load(HOSTS_FILE)), refresh_s=0)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RecoverScreen)
                         and bool(app.screen.query("#recover-message")), timeout=60,
                         what="the recovery offer")
        msg = str(app.screen.query_one("#recover-message").render())
        assert mid in msg and "resumed on host1" in msg
        await pilot.press("y")
        log = app.screen.query_one("#recover-log", RichLog)
        await wait_until(pilot, lambda: any("done:" in s.text or "failed:" in s.text for s in log.lines),
                         timeout=120, what="recovery to end")
        assert any("done: workload runs on host1" in s.text for s in log.lines), [s.text for s in log.lines]
        await pilot.press("n")
        await hosts_ready(pilot, containers=1)
    assert running(h1, WORKLOAD) and not exists(h2, WORKLOAD)
    assert counters_continue(h1, before)
    assert "nothing to recover" in ferryman("recover", "--yes").stdout
