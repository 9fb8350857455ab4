"""The migrate dialog: target, strategy, downtime budget, options, and the preflight."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Static,
)
from textual.widgets.option_list import Option

from core.models import (
    CheckResult,
    CheckStatus,
    ContainerInfo,
    HostState,
    HostStatus,
    MigrationRequest,
)
from tui.errors import operation
from tui.format import inert_text, size
from tui.screens.base import ReportsWorkerErrors
from tui.strategy import STRATEGIES, auto_strategy
from tui.widgets.confirm import ConfirmScreen

CHECK_STYLE = {
    CheckStatus.PASS: ("✓ pass", "green"),
    CheckStatus.WARN: ("! warn", "yellow"),
    CheckStatus.FAIL: ("✗ fail", "bold red"),
}


def why_not_target(container: ContainerInfo, host: HostStatus) -> str:
    """Empty when `host` can take the container, else the reason in words."""
    if host.name == container.host:
        return "is the source"
    if host.state != HostState.UP:
        return f"{host.state.value}: {host.reason}" if host.reason else host.state.value
    if not host.facts.criu_version:
        return "no CRIU"
    if not host.facts.experimental:
        return "Docker experimental mode off (no checkpoint API)"
    return ""


def involves(check: CheckResult, source: str, target: str) -> bool:
    if "→" in check.host:
        return set(check.host.split("→")) <= {source, target}
    return check.host in (source, target)


class MigrateDialog(ReportsWorkerErrors, ModalScreen[MigrationRequest | None]):
    DEFAULT_CSS = """
    MigrateDialog { align: center middle; }
    MigrateDialog > #dialog {
        width: 120; height: auto; max-height: 42; padding: 0 2;
        border: thick $primary; background: $surface;
    }
    MigrateDialog #dialog-title { text-style: bold; margin: 1 0; }
    MigrateDialog .label { color: $text-muted; margin-top: 1; }
    MigrateDialog #columns { height: auto; }
    MigrateDialog #left { width: 3fr; height: auto; margin-right: 2; }
    MigrateDialog #right { width: 2fr; height: auto; }
    MigrateDialog #targets { height: auto; max-height: 6; }
    MigrateDialog #strategy { height: auto; width: 100%; }
    MigrateDialog #auto-why { height: auto; margin-top: 1; }
    MigrateDialog #budget { width: 16; }
    MigrateDialog #preflight-box { height: auto; max-height: 14; border: round $panel; }
    MigrateDialog #buttons { height: auto; align-horizontal: right; margin: 1 0; }
    MigrateDialog #buttons Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "go", "Migrate", id="dialog.migrate"),
        Binding("ctrl+r", "preflight", "Re-run preflight", id="dialog.preflight"),
    ]

    def __init__(self, container: ContainerInfo, hosts: list[HostStatus]) -> None:
        super().__init__()
        self.container = container
        self.hosts = {h.name: h for h in hosts}
        ok = [h for h in hosts if not why_not_target(container, h)]
        no = [h for h in hosts if why_not_target(container, h)]
        self.ordered = ok + no
        self.target: str = ok[0].name if ok else ""
        self.checks: list[CheckResult] | None = None
        self.checked_target = ""

    def compose(self) -> ComposeResult:
        c = self.container
        with Vertical(id="dialog"):
            title = Text("Migrate ", style="bold")
            title.append_text(inert_text(c.name, "bold cyan"))
            title.append("  ")
            title.append_text(inert_text(c.image, "dim"))
            title.append(f"  {size(c.memory_bytes)}  from ", style="dim")
            title.append(c.host, style="bold")
            yield Static(title, id="dialog-title")
            with Horizontal(id="columns"):
                with Vertical(id="left"):
                    yield Label("Target host", classes="label")
                    options = []
                    for h in self.ordered:
                        reason = why_not_target(c, h)
                        label = Text(f"{h.name:<8} {h.address:<15} ")
                        if reason:
                            label.append_text(inert_text(reason, "dim red"))
                        else:
                            f = h.facts
                            label.append(
                                f"criu {f.criu_version} · {f.kernel}",
                                style="green",
                            )
                        options.append(Option(label, id=h.name, disabled=bool(reason)))
                    yield OptionList(*options, id="targets")
                    yield Label("Strategy", classes="label")
                    with RadioSet(id="strategy"):
                        for i, s in enumerate(STRATEGIES):
                            yield RadioButton(s, value=(i == 0), id=f"s-{s}")
                    yield Static("", id="auto-why")
                with Vertical(id="right"):
                    yield Label("Downtime budget (ms)", classes="label")
                    yield Input("300", id="budget", type="integer")
                    yield Label("Options", classes="label")
                    yield Checkbox("Keep checkpoint images", id="keep")
                    direct = Checkbox("Direct transfer (host to host)", id="direct", disabled=True)
                    direct.tooltip = "not available yet: data is relayed, encrypted, through this console"
                    yield direct
            yield Label("Preflight", classes="label")
            with VerticalScroll(id="preflight-box"):
                yield Static(Text("waiting for a target…", style="dim"), id="preflight")
            with Horizontal(id="buttons"):
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Migrate (ctrl+s)", id="go", variant="primary", disabled=True)

    def on_mount(self) -> None:
        targets = self.query_one("#targets", OptionList)
        if self.target:
            targets.highlighted = targets.get_option_index(self.target)
        targets.focus()
        self.explain()
        self.action_preflight()

    # --- form ---------------------------------------------------------------------------

    @property
    def strategy(self) -> str:
        pressed = self.query_one("#strategy", RadioSet).pressed_button
        return pressed.id.removeprefix("s-") if pressed and pressed.id else "auto"

    @property
    def budget_s(self) -> float:
        try:
            ms = int(self.query_one("#budget", Input).value)
        except ValueError:
            ms = 300
        return max(1, ms) / 1000

    def request(self) -> MigrationRequest:
        return MigrationRequest(
            container=self.container.name,
            source=self.container.host,
            target=self.target,
            strategy=self.strategy,
            downtime_budget_s=self.budget_s,
            keep_images=self.query_one("#keep", Checkbox).value,
            direct=self.query_one("#direct", Checkbox).value,
        )

    def explain(self) -> None:
        why = self.query_one("#auto-why", Static)
        src = self.hosts.get(self.container.host)
        dst = self.hosts.get(self.target)
        if src is None or dst is None:
            why.update(Text("no target can take this container", style="red"))
            return
        picked, reason = auto_strategy(self.container, src.facts, dst.facts, self.budget_s)
        t = Text()
        if self.strategy == "auto":
            t.append("auto → ", style="bold")
            t.append(picked, style="bold cyan")
        else:
            t.append(f"{self.strategy}", style="bold cyan")
            t.append(f" (auto would pick {picked})", style="dim")
        t.append("\n")
        t.append(reason, style="dim")
        why.update(t)

    @on(OptionList.OptionHighlighted, "#targets")
    def _target(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.target and not event.option.disabled:
            self.target = event.option.id
            self.explain()
            self.action_preflight()

    @on(OptionList.OptionSelected, "#targets")
    def _target_chosen(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#strategy", RadioSet).focus()

    @on(RadioSet.Changed, "#strategy")
    @on(Input.Changed, "#budget")
    def _changed(self) -> None:
        self.explain()

    # --- preflight ----------------------------------------------------------------------

    def action_preflight(self) -> None:
        if not self.target:
            return
        self.checks = None
        self.query_one("#go", Button).disabled = True
        self.query_one("#preflight", Static).update(
            Text(f"checking {self.container.host} → {self.target}…", style="dim")
        )
        self.run_preflight(self.request())

    @work(group="preflight", exclusive=True, exit_on_error=False)
    async def run_preflight(self, request: MigrationRequest) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        with operation("preflight", f"{request.source}→{request.target}"):
            checks = await backend.preflight(request)
        self.checks = checks
        self.checked_target = request.target
        self.show_checks(request.source, request.target)

    def worker_failed(self, worker) -> None:
        self.query_one("#preflight", Static).update(
            Text(f"preflight could not run: {worker.error}", style="red")
        )

    def blocking(self) -> list[CheckResult]:
        return [
            c
            for c in self.checks or []
            if c.status == CheckStatus.FAIL and involves(c, self.container.host, self.target)
        ]

    def show_checks(self, source: str, target: str) -> None:
        out = Text()
        for i, c in enumerate(self.checks or []):
            if i:
                out.append("\n")
            label, style = CHECK_STYLE[c.status]
            involved = involves(c, source, target)
            out.append(f"{label} ", style=style if involved else "dim")
            out.append(f"{c.host:<12} {c.name:<12} ", style="" if involved else "dim")
            out.append_text(inert_text(c.reason, "" if involved else "dim"))
            if c.fix and c.status != CheckStatus.PASS:
                out.append("  fix: ", style="dim")
                out.append_text(inert_text(c.fix, "italic"))
            if not involved:
                out.append("  (not involved)", style="dim")
        counts = {s: 0 for s in CheckStatus}
        for c in self.checks or []:
            if involves(c, source, target):
                counts[c.status] += 1
        box = self.query_one("#preflight-box")
        box.border_title = (
            f"{counts[CheckStatus.PASS]} pass · {counts[CheckStatus.WARN]} warn · "
            f"{counts[CheckStatus.FAIL]} fail"
        )
        self.query_one("#preflight", Static).update(out)
        blocked = bool(self.blocking())
        self.query_one("#go", Button).disabled = blocked
        if blocked:
            box.border_subtitle = "a failed check blocks this migration"

    # --- actions ------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "go":
            self.action_go()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "preflight")
        self.dismiss(None)

    def action_go(self) -> None:
        if not self.target:
            self.notify("No host can take this container", severity="error")
            return
        if self.checks is None or self.checked_target != self.target:
            self.notify("Preflight is still running", severity="warning")
            return
        if self.blocking():
            self.notify("Preflight failed for these hosts: fix it first", severity="error")
            return
        request = self.request()
        msg = Text()
        msg.append("Move ")
        msg.append_text(inert_text(request.container, "bold cyan"))
        msg.append(" from ")
        msg.append(request.source, style="bold")
        msg.append(" to ")
        msg.append(request.target, style="bold")
        msg.append(
            f"?\nstrategy {request.strategy}, downtime budget {request.downtime_budget_s * 1000:.0f} ms"
        )
        if request.keep_images:
            msg.append(", keep images")
        if request.direct:
            msg.append(", direct transfer")

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(request)

        self.app.push_screen(ConfirmScreen("Migrate?", msg, yes="Migrate"), answered)
