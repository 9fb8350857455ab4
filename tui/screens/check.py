"""`check HOST` from the palette: that host's preflight checks, as `ferryman check HOST`."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker

from core.models import CheckResult, CheckStatus, MigrationRequest
from tui.errors import operation
from tui.format import inert_text
from tui.screens.base import ReportsWorkerErrors

STYLE = {
    CheckStatus.PASS: ("✓ pass", "green"),
    CheckStatus.WARN: ("! warn", "yellow"),
    CheckStatus.FAIL: ("✗ fail", "bold red"),
}


async def check_host(backend: object, host: str) -> list[CheckResult]:
    """The checks of one host. A backend may answer it itself (`check_host`); a live one is
    asked through its fleet, with the lazy-pages trial as `ferryman check` does; a replay
    answers from its recorded checks."""
    own = getattr(backend, "check_host", None)
    if own is not None:
        return list(await own(host))
    fleet = getattr(backend, "fleet", None)
    if fleet is not None:
        from core.preflight import host_report

        rep = await host_report(fleet[host], lazy_trial_run=True)
        return list(rep.checks)
    checks = await backend.preflight(MigrationRequest("", host, host))  # type: ignore[attr-defined]
    return [c for c in checks if c.host == host]


class HostCheckScreen(ReportsWorkerErrors, ModalScreen[None]):
    DEFAULT_CSS = """
    HostCheckScreen { align: center middle; }
    HostCheckScreen > VerticalScroll {
        width: 110; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape", "dismiss", "Back", id="check.back", tooltip="Close")]

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host
        self.checks: list[CheckResult] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(f"checking {self.host}…", style="dim"), id="check-result")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).border_title = f"check {self.host} · esc closes"
        self.run_checks()

    @work(group="check", exclusive=True, exit_on_error=False)
    async def run_checks(self) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        with operation("check", self.host):
            self.checks = await check_host(backend, self.host)
        out = Text()
        for i, c in enumerate(self.checks):
            if i:
                out.append("\n")
            label, style = STYLE[c.status]
            out.append(f"{label} ", style=style)
            out.append(f"{c.name:<12} ")
            out.append_text(inert_text(c.reason))
            if c.fix and c.status != CheckStatus.PASS:
                out.append("  fix: ", style="dim")
                out.append_text(inert_text(c.fix, "italic"))
        if not self.checks:
            out.append("no checks recorded for this host", style="dim")
        self.query_one("#check-result", Static).update(out)

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#check-result", Static).update(
            Text(f"the checks could not run: {worker.error}", style="red")
        )
