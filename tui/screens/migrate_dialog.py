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
from textual.worker import Worker

from core.models import (
    CheckResult,
    CheckStatus,
    ContainerInfo,
    HostState,
    HostStatus,
    MigrationRequest,
)
from tui.errors import operation
from tui.format import inert, inert_text, size
from tui.screens.base import ReportsWorkerErrors
from tui.strategy import (
    LAZY,
    STRATEGIES,
    STRATEGY_CHECKS,
    StrategyChoices,
    risk_of,
    strategy_choices,
)
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
    """Cancel and Migrate are docked at the bottom: always on screen. The preflight box
    takes the height that is left (it scrolls, and Tab reaches it); when even the form does
    not fit, the form scrolls above the buttons."""

    DEFAULT_CSS = """
    MigrateDialog { align: center middle; }
    MigrateDialog > #dialog {
        width: 120; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $primary; background: $surface;
    }
    MigrateDialog #dialog-title { text-style: bold; height: 1; }
    MigrateDialog #body { height: auto; max-height: 100%; }
    MigrateDialog .label { color: $text-muted; height: 1; }
    MigrateDialog #columns { height: auto; }
    MigrateDialog #left { width: 3fr; height: auto; margin-right: 1; }
    MigrateDialog #right { width: 2fr; height: auto; }
    MigrateDialog #targets { height: auto; max-height: 6; }
    MigrateDialog #strategy { height: auto; width: 100%; }
    MigrateDialog #strategy RadioButton:disabled { color: $text-disabled; }
    MigrateDialog #options { height: auto; }
    MigrateDialog #options .label { width: auto; height: 3; padding: 1 1 0 0; }
    MigrateDialog #budget { width: 10; }
    MigrateDialog #watch { width: 1fr; }
    MigrateDialog #options Checkbox { width: auto; }
    MigrateDialog #auto-why { height: auto; }
    MigrateDialog #preflight-box { height: auto; border: round $panel; }
    MigrateDialog #preflight-box:focus { border: round $accent; }
    MigrateDialog #buttons { dock: bottom; height: auto; align-horizontal: right; }
    MigrateDialog #buttons Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel", tooltip="Close the dialog: nothing moves"),
        Binding("ctrl+s", "go", "Migrate", id="dialog.migrate", tooltip="Migrate with these settings (asks first)"),
        Binding("ctrl+r", "preflight", "Re-run preflight", id="dialog.preflight", tooltip="Run the preflight checks again"),
    ]

    def __init__(
        self, container: ContainerInfo, hosts: list[HostStatus], target: str | None = None
    ) -> None:
        super().__init__()
        self.container = container
        self.hosts = {h.name: h for h in hosts}
        ok = [h for h in hosts if not why_not_target(container, h)]
        no = [h for h in hosts if why_not_target(container, h)]
        self.ordered = ok + no
        names = [h.name for h in ok]
        self.target: str = target if target in names else (ok[0].name if ok else "")
        self.checks: list[CheckResult] | None = None
        self.checked_target = ""
        self.checked_strategy = ""
        self.ruled_out: dict[str, str] = {}  # strategy -> why, for the current target

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
            with VerticalScroll(id="body", can_focus=False):
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
                                label.append(f"criu {f.criu_version} · {f.kernel}", style="green")
                            options.append(Option(label, id=h.name, disabled=bool(reason)))
                        yield OptionList(*options, id="targets")
                    with Vertical(id="right"):
                        yield Label("Strategy", classes="label")
                        with RadioSet(id="strategy"):
                            for i, s in enumerate(STRATEGIES):
                                yield RadioButton(s, value=(i == 0), id=f"s-{s}")
                with Horizontal(id="options"):
                    yield Label("Downtime budget (ms)", classes="label")
                    yield Input("300", id="budget", type="integer")
                    yield Checkbox("Keep checkpoint images", id="keep")
                    direct = Checkbox("Direct transfer", id="direct")
                    direct.tooltip = (
                        "stream host to host: the source's ssh to the target's sshd with a "
                        "one-time key (removed afterwards); otherwise the data is relayed, "
                        "encrypted, through this console"
                    )
                    yield direct
                    yield Label("Watch client", classes="label")
                    watch = Input("", placeholder="name[@host]", id="watch")
                    watch.tooltip = (
                        "a client container of this one (a line on stdout per answer): the "
                        "result says the longest it waited for an answer during the move"
                    )
                    yield watch
                yield Static("", id="auto-why")
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
        self.query_one("#preflight-box").border_title = "preflight"
        self.explain()
        self.action_preflight()

    def on_resize(self) -> None:
        self.call_after_refresh(self.fit)

    def fit(self) -> None:
        """Give the preflight box the rows the rest of the dialog leaves on the screen."""
        dialog = self.query_one("#dialog")
        box = self.query_one("#preflight-box")
        body = self.query_one("#body", VerticalScroll)
        above = box.region.y + body.scroll_y - dialog.region.y  # title, form, top border
        buttons = self.query_one("#buttons")
        below = buttons.outer_size.height + 1  # the buttons and the bottom border
        room = self.size.height - above - below
        want = max(4, room)
        if box.styles.max_height != want:
            box.styles.max_height = want

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
            watch=self.query_one("#watch", Input).value.strip(),
        )

    def choices(self) -> StrategyChoices | None:
        src = self.hosts.get(self.container.host)
        dst = self.hosts.get(self.target)
        if src is None or dst is None:
            return None
        checks = self.checks if self.checked_target == self.target else None
        return strategy_choices(self.container, src, dst, checks)

    def explain(self) -> None:
        """Each strategy's button says whether it can be used here (and why not); the text
        below says what the chosen one does here, and what it risks."""
        why = self.query_one("#auto-why", Static)
        choices = self.choices()
        radios = self.query_one("#strategy", RadioSet)
        if choices is None:
            why.update(Text("no target can take this container", style="red"))
            return
        self.ruled_out = dict(choices.ruled_out)
        for s in STRATEGIES:
            button = self.query_one(f"#s-{s}", RadioButton)
            label = Text(s)
            if s == "auto":
                label.append(f" → {choices.auto}", style="bold")
            elif s in choices.ruled_out:
                label.append(f"  ✗ {choices.short[s]}", style="dim")
            button.label = label
            button.tooltip = choices.ruled_out.get(s) or None
            button.disabled = s in choices.ruled_out
        if self.strategy in choices.ruled_out:
            self.query_one("#s-auto", RadioButton).value = True  # a ruled-out one is not kept
        chosen = self.strategy
        effective = choices.auto if chosen == "auto" else chosen
        t = Text()
        if chosen == "auto":
            t.append("auto → ", style="bold")
            t.append(effective, style="bold cyan")
            t.append(": ", style="bold")
            t.append(choices.auto_reason.removeprefix(f"{effective}: "), style="dim")
        else:
            t.append(effective, style="bold cyan")
            t.append(", as chosen", style="bold")
            extra = choices.reasons.get(chosen, "").removeprefix(f"{chosen}, as requested")
            if extra:
                t.append(extra, style="dim")
        t.append("\nrisk: ", style="bold yellow" if effective in LAZY else "bold")
        t.append(risk_of(effective, self.container), style="yellow" if effective in LAZY else "")
        why.update(t)
        radios.refresh()
        self.call_after_refresh(self.fit)

    @on(OptionList.OptionHighlighted, "#targets")
    def _target(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id and event.option.id != self.target and not event.option.disabled:
            self.target = event.option.id
            self.explain()
            self.action_preflight()

    @on(OptionList.OptionSelected, "#targets")
    def _target_chosen(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#strategy", RadioSet).focus()

    @on(Checkbox.Changed, "#direct")
    def _direct_changed(self) -> None:
        # the direct path is tried in preflight (can the source reach the target's sshd?)
        if self.checks is not None:
            self.action_preflight()

    @on(RadioSet.Changed, "#strategy")
    def _strategy_changed(self) -> None:
        self.explain()
        # post-copy is tried, not trusted: its preflight differs, run it again for it
        if self.checks is not None and (self.strategy in LAZY) != (self.checked_strategy in LAZY):
            self.action_preflight()

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
        box = self.query_one("#preflight-box")
        box.border_title = "preflight · running"
        box.border_subtitle = ""
        self.run_preflight(self.request())

    @work(group="preflight", exclusive=True, exit_on_error=False)
    async def run_preflight(self, request: MigrationRequest) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        with operation("preflight", f"{request.source}→{request.target}"):
            checks = await backend.preflight(request)
        self.checks = checks
        self.checked_target = request.target
        self.checked_strategy = request.strategy
        self.show_checks(request.source, request.target)
        self.explain()  # preflight may rule out more strategies than the host facts did

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#preflight", Static).update(
            Text(f"preflight could not run: {worker.error}", style="red")
        )
        self.query_one("#preflight-box").border_title = "preflight · could not run"

    def blocking(self) -> list[CheckResult]:
        return [
            c
            for c in self.checks or []
            if c.status == CheckStatus.FAIL
            and involves(c, self.container.host, self.target)
            and c.name not in STRATEGY_CHECKS  # those rule out strategies, not the move
        ]

    def show_checks(self, source: str, target: str) -> None:
        out = Text()
        order = {CheckStatus.FAIL: 0, CheckStatus.WARN: 1, CheckStatus.PASS: 2}
        shown = sorted(  # what matters first: a small box shows it without scrolling
            self.checks or [],
            key=lambda c: (not involves(c, source, target), order[c.status]),
        )
        for i, c in enumerate(shown):
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
            f"preflight · {counts[CheckStatus.PASS]} pass · {counts[CheckStatus.WARN]} warn · "
            f"{counts[CheckStatus.FAIL]} fail"
        )
        self.query_one("#preflight", Static).update(out)
        blocked = bool(self.blocking())
        self.query_one("#go", Button).disabled = blocked
        box.border_subtitle = "a failed check blocks this migration" if blocked else "tab: scroll"
        self.call_after_refresh(self.fit)

    # --- actions ------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "go":
            self.action_go()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "preflight")
        self.notify(
            inert(f"Cancelled: {self.container.name} stays on {self.container.host}"),
            markup=False,
        )
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
        if self.strategy in self.ruled_out:
            self.notify(
                inert(f"{self.strategy} is ruled out: {self.ruled_out[self.strategy]}"),
                severity="error",
                markup=False,
            )
            return
        request = self.request()
        choices = self.choices()
        effective = choices.auto if choices and request.strategy == "auto" else request.strategy
        msg = Text()
        msg.append("Move ")
        msg.append_text(inert_text(request.container, "bold cyan"))
        msg.append(" from ")
        msg.append(request.source, style="bold")
        msg.append(" to ")
        msg.append(request.target, style="bold")
        shown = f"auto → {effective}" if request.strategy == "auto" else request.strategy
        msg.append(f"?\nstrategy {shown}, downtime budget {request.downtime_budget_s * 1000:.0f} ms")
        if request.keep_images:
            msg.append(", keep images")
        if request.direct:
            msg.append(", direct transfer")
        msg.append("\nrisk: ", style="bold yellow" if effective in LAZY else "bold")
        msg.append(risk_of(effective, self.container))
        warns = [
            c
            for c in self.checks or []
            if c.status == CheckStatus.WARN
            and involves(c, request.source, request.target)
            and c.name not in STRATEGY_CHECKS
        ]
        for c in warns:  # what preflight warns of is asked about, not only listed
            msg.append(f"\n! {c.host} {c.name}: ", style="bold yellow")
            msg.append_text(inert_text(c.reason, "yellow"))

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(request)

        self.app.push_screen(ConfirmScreen("Migrate?", msg, yes="Migrate"), answered)
