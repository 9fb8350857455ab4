"""The live migration view: phases, pre-copy rounds, charts, freeze window, log, abort."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Sparkline, Static

from core.backend import MigrationRun
from core.engine.strategy import ITERATIVE
from core.events import BytesMoved, Event, LazyProgress, MigrationFailed
from core.journal import JournalEntry
from core.models import MigrationRequest
from tui import progress as P
from tui.errors import operation
from tui.format import (
    cause_text,
    doctor_name,
    duration,
    inert,
    inert_text,
    plural,
    rate,
    size,
    where_text,
)
from tui.progress import Progress
from tui.screens.base import ReportsWorkerErrors
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.footer import Footer
from tui.widgets.freeze_timer import FreezeTimer
from tui.widgets.log_pane import LogPane
from tui.widgets.rounds_table import RoundsTable
from tui.widgets.stepper import PhaseStepper

REDRAW_S = 0.1  # high-rate updates (bytes, log lines) reach the screen at most 10×/s
CHART_S = 0.5  # charts, pre-copy rounds and the plan at most every CHART_S (costly redraws)
URGENT = {P.HEADER, P.PHASE, P.FREEZE, P.RESULT}  # shown at once, with all that waits


class MigrationScreen(ReportsWorkerErrors, Screen):
    DEFAULT_CSS = """
    MigrationScreen #top { height: auto; }
    MigrationScreen #summary { height: auto; padding: 0 1; background: $boost; }
    MigrationScreen PhaseStepper { margin: 1 0 0 0; }
    MigrationScreen #middle { height: auto; }
    MigrationScreen #left { width: 2fr; height: auto; }
    MigrationScreen #right { width: 1fr; height: auto; margin-left: 1; }
    MigrationScreen #rounds-box { height: auto; border: round $panel; }
    MigrationScreen .chart-label { height: 1; padding: 0 1; color: $text-muted; }
    MigrationScreen Sparkline { height: 3; margin: 0 1; }
    MigrationScreen #budget { height: auto; border: round $panel; padding: 0 1; }
    MigrationScreen #lazy { height: auto; padding: 0 1; display: none; }
    MigrationScreen #lazy.-shown { display: block; border: round $error; }
    MigrationScreen #lazy.-done { border: round $success; }
    MigrationScreen #result { height: auto; padding: 0 1; }
    MigrationScreen #result.-ok { border: round $success; }
    MigrationScreen #result.-failed { border: round $error; }
    MigrationScreen LogPane { min-height: 6; }
    /* -big-log: only #middle may depend on it (action_toggle_log restyles #middle alone) */
    MigrationScreen.-big-log #middle { display: none; }
    /* stop-and-copy and post-copy have no rounds: no table, no dirty-set chart */
    MigrationScreen.-no-rounds #rounds-box { display: none; }
    MigrationScreen.-no-rounds #dirty-label { display: none; }
    MigrationScreen.-no-rounds #dirty-chart { display: none; }
    /* a short terminal (< 40 rows): smaller charts and table, the log keeps its rows */
    MigrationScreen.-short Sparkline { height: 2; }
    MigrationScreen.-short RoundsTable { max-height: 6; }
    MigrationScreen.-short PhaseStepper { margin: 0; }
    MigrationScreen.-short FreezeTimer.-done > Digits { display: none; }  /* the label has it */
    MigrationScreen.-short FreezeTimer.-back > Digits { display: none; }
    MigrationScreen #budget-note { height: auto; padding: 0 1; display: none; }
    MigrationScreen.-no-rounds #budget-note { display: block; }
    MigrationScreen.-no-rounds #budget { display: none; }
    MigrationScreen.-no-rounds #right { width: 1fr; }
    MigrationScreen.-no-rounds #left { width: 1fr; }
    """

    AUTO_FOCUS = "#log"  # keys scroll the log; `l` never hides what has the focus

    BINDINGS = [
        Binding(
            "a", "abort", "Abort", id="migration.abort",
            tooltip="Abort before the commit and roll back (asks first)",
        ),
        Binding(
            "escape", "back", "Back", id="migration.back",
            tooltip="Back to the screen before, once the migration has ended",
        ),
        Binding(
            "escape", "back_or_abort", "Abort", show=False, id="migration.esc-abort",
            tooltip="While it runs: abort (asks first), as a does",
        ),
        Binding(
            "d", "doctor", "Doctor", id="migration.doctor",
            tooltip="After a failure: the doctor of the failed phase, with its log",
        ),
        Binding("l", "toggle_log", "Log size", id="migration.log", tooltip="Enlarge the log"),
    ]

    def __init__(
        self,
        request: MigrationRequest | None = None,
        *,
        events: list[Event] | None = None,
        entry: JournalEntry | None = None,
    ) -> None:
        """Follow a new migration of `request`, or show a finished one from `events`."""
        super().__init__()
        self.request = request
        self.static_events = events
        self.entry = entry
        self.progress = Progress()
        self.run: MigrationRun | None = None
        self.events_seen = 0
        self._bytes_dirty = False  # the throughput figure (REDRAW_S)
        self._rate_dirty = False  # the throughput chart (CHART_S)
        self._rounds_shown = 0  # rounds in the table
        self._plan_dirty = False
        self._charts_at = -CHART_S  # when the charts, rounds and plan were last redrawn
        self._abort_asked = False
        self.abort_requested = False
        self.quit_when_done = False  # the user asked to quit: at the final event
        self._quit_asked = False
        self.recorded: list[Event] = []  # all but the in-flight byte counts, for the doctor

    def compose(self) -> ComposeResult:
        with Vertical(id="top"):
            yield Static("", id="summary")
            yield PhaseStepper(id="stepper")
        with Horizontal(id="middle"):
            with Vertical(id="left"):
                with Vertical(id="rounds-box"):
                    yield RoundsTable(id="rounds")
                yield Static("throughput", id="rate-label", classes="chart-label")
                yield Sparkline([], id="rate-chart", summary_function=max)
                yield Static("dirty set per round", id="dirty-label", classes="chart-label")
                yield Sparkline([], id="dirty-chart", summary_function=max)
                yield Static("", id="budget-note")  # the budget, when no rounds plan to it
            with Vertical(id="right"):
                yield FreezeTimer(self.app.clock, id="freeze")  # type: ignore[attr-defined]
                yield Static("", id="budget")
                yield Static("", id="lazy")
                yield Static("", id="result")
        yield LogPane(id="log")
        yield Footer()

    _log: LogPane | None = None

    def on_resize(self) -> None:
        self.set_class(self.size.height < 40, "-short")

    def on_mount(self) -> None:
        planned = self.request.strategy if self.request is not None else ""
        self.set_class(planned not in ITERATIVE, "-no-rounds")
        self._log = self.query_one("#log", LogPane)
        self.query_one("#rounds-box").border_title = "pre-copy rounds"
        self.query_one("#log", LogPane).border_title = "log · remote commands and planner"
        self.show_summary()
        self.show_plan()
        self.query_one(PhaseStepper).show(self.progress)
        self.set_interval(REDRAW_S, self.flush, name="migration-redraw")
        if self.static_events is not None:
            for ev in self.static_events:
                self.feed(ev)
            self.flush(charts=True)
        elif self.request is not None:
            self.follow(self.request)

    # --- the event stream ---------------------------------------------------------------

    @work(group="migration", exclusive=True, exit_on_error=False)
    async def follow(self, request: MigrationRequest) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        with operation("migrate", request.source):
            run: MigrationRun = backend.migrate(request)
            self.run = run
            async for ev in run:
                self.feed(ev)
        self.flush(charts=True)
        if not self.progress.finished:
            self.progress.stream_lost = "the event stream ended before a result"
            self.show_summary()
            self.show_result()
            self.refresh_bindings()
        self._quit_if_asked()

    def worker_failed(self, worker) -> None:
        self.progress.stream_lost = f"lost the migration: {worker.error}"
        self.show_summary()
        self.show_result()
        self.refresh_bindings()
        self._quit_if_asked()

    @property
    def in_flight(self) -> bool:
        """A migration this view follows, not ended yet."""
        return self.run is not None and not self.progress.finished

    def feed(self, ev: Event) -> None:
        """Fold one event in. The frequent kinds only note what they changed: `flush` draws
        bytes and log lines every REDRAW_S, rounds, charts and the plan at most every
        CHART_S; phases, the freeze and the result show at once, with all that waits."""
        self.events_seen += 1
        if not (isinstance(ev, BytesMoved) and not ev.done):
            self.recorded.append(ev)
            if len(self.recorded) > 20000:
                del self.recorded[:5000]
        changed = self.progress.apply(ev, self.app.clock())  # type: ignore[attr-defined]
        if P.LOG in changed:
            (self._log or self.query_one("#log", LogPane)).queue(ev)
        if isinstance(ev, BytesMoved) or (isinstance(ev, LazyProgress) and not ev.done):
            self._bytes_dirty = True
            self._rate_dirty = self._rate_dirty or isinstance(ev, BytesMoved)
            return
        if P.PLAN in changed:
            self._plan_dirty = True
        if not (changed & URGENT or P.LAZY in changed):
            if (P.ROUND in changed or P.PLAN in changed) and self._charts_due():
                self.flush(charts=True)  # at once, unless they come in a burst
            return  # log lines at the next redraw
        if P.HEADER in changed:
            self.query_one(RoundsTable).budget_s = self.progress.budget_s
            self.set_class(not self.progress.has_rounds, "-no-rounds")
        self.flush(charts=True)
        if P.HEADER in changed or (P.RESULT in changed and self.progress.started is None):
            self.show_summary()
        if P.PHASE in changed or P.LAZY in changed:
            self.query_one(PhaseStepper).show(self.progress)
        if P.FREEZE in changed:
            timer = self.query_one(FreezeTimer)
            if self.progress.freeze is not None:
                timer.stop(self.progress.freeze, *self.hosts_of())
                self.show_plan()
            elif self.progress.frozen_at is not None:
                timer.start(self.progress.frozen_at)
        if P.LAZY in changed:
            self.show_lazy()
        if P.RESULT in changed or P.PHASE in changed:
            self.show_result()
            self.refresh_bindings()
        if P.RESULT in changed:
            self._count_end()
            if self.quit_when_done and self.progress.finished:
                # The quit comes when the event stream has ended (the engine has saved its
                # journal and let go); this is only in case that end never comes.
                self.set_timer(5.0, self._quit_if_asked)

    def _charts_due(self) -> bool:
        return time.monotonic() - self._charts_at >= CHART_S

    def flush(self, charts: bool = False) -> None:
        """Redraw what frequent events changed: the log and the throughput figure (every
        REDRAW_S), the charts, rounds and plan when `charts` or CHART_S has passed."""
        if self.app.screen is not self and not self.progress.finished:
            return  # covered by another screen (help, a confirmation): catch up when back
        (self._log or self.query_one("#log", LogPane)).flush()
        p = self.progress
        waiting = self._rate_dirty or self._plan_dirty or self._rounds_shown < len(p.rounds)
        if waiting and (charts or self._charts_due()):
            self._charts_at = time.monotonic()
            if self._rate_dirty:
                self._rate_dirty = False
                self.query_one("#rate-chart", Sparkline).data = p.rates[-120:] or [0]
            if self._rounds_shown < len(p.rounds):
                if self.has_class("-no-rounds"):
                    self.remove_class("-no-rounds")
                table = self.query_one(RoundsTable)
                for r in p.rounds[self._rounds_shown :]:
                    table.add_round(r)
                self._rounds_shown = len(p.rounds)
                self.show_dirty()
            if self._plan_dirty:
                self._plan_dirty = False
                self.show_plan()
        if not self._bytes_dirty:
            return
        self._bytes_dirty = False
        label = Text("throughput ", style="dim")
        label.append(rate(p.bytes_rate), style="bold")
        if p.rates:  # the peak before the phase's total: a narrow column cuts the end
            label.append(f" · peak {rate(max(p.rates))}", style="dim")
        label.append(f" · {p.bytes_phase or '—'}: {size(p.bytes_total)} moved", style="dim")
        self.query_one("#rate-label", Static).update(label, layout=False)  # one line, fixed
        if p.lazy is not None:
            self.show_lazy()

    # --- parts ----------------------------------------------------------------------------

    def show_summary(self) -> None:
        s = self.progress.started
        t = Text()
        if s is None:
            r = self.request
            if r is None:
                t.append("waiting for the migration to start…", style="dim")
            else:
                t.append_text(inert_text(r.container, "bold cyan"))
                t.append(f"  {r.source} → {r.target}  ", style="bold")
                t.append(f"strategy {r.strategy} · ", style="dim")
                f = self.progress.failed
                if f is not None:
                    t.append(f"failed before it started (in {f.phase})", style="bold red")
                elif self.progress.stream_lost:
                    t.append("ended before it started", style="bold red")
                else:
                    t.append("starting…", style="dim")
            self.query_one("#summary", Static).update(t)
            return
        t.append_text(inert_text(s.container, "bold cyan"))
        t.append(f"  {s.source} → {s.target}", style="bold")
        t.append("   strategy ", style="dim")
        t.append(s.strategy, style="bold")
        t.append("   budget ", style="dim")
        t.append(duration(s.downtime_budget_s), style="bold")
        if s.data_path == "direct":
            t.append("   data ", style="dim")
            t.append("host to host", style="bold")
        t.append(f"   id {s.migration_id}", style="dim")
        if s.strategy_reason:
            t.append("\n")
            t.append_text(inert_text(s.strategy_reason, "italic dim"))
        self.query_one("#summary", Static).update(t)

    def show_dirty(self) -> None:
        rounds = self.progress.rounds
        self.query_one("#dirty-chart", Sparkline).data = [r.pages_written for r in rounds] or [0]
        if rounds:
            last = rounds[-1]
            label = Text("dirty set per round ", style="dim")
            label.append(
                " → ".join(f"{r.pages_written:,}" for r in rounds[-6:]) + " pages", style="bold"
            )
            label.append(f"  ·  dirty rate {rate(last.dirty_rate_bps)}", style="dim")
            self.query_one("#dirty-label", Static).update(label, layout=False)

    def hosts_of(self) -> tuple[str, str]:
        """(source, target) of this migration, as far as known."""
        s, r = self.progress.started, self.request
        if s is not None:
            return s.source, s.target
        if r is not None:
            return r.source, r.target
        return "", ""

    def show_plan(self) -> None:
        """The budget, and for pre-copy the planner's predicted freeze against it. Without
        rounds nothing predicts: the box says so, and, once measured, how the freeze did."""
        p = self.progress
        t = Text()
        t.append("downtime budget  ", style="dim")
        t.append(duration(p.budget_s), style="bold")
        if p.has_rounds or p.predicted_s is not None:
            t.append("\npredicted freeze ", style="dim")
            if p.predicted_s is None:
                t.append("— (after the first round)", style="dim")
            else:
                within = p.budget_s is None or p.predicted_s <= p.budget_s
                t.append(duration(p.predicted_s), style="bold green" if within else "bold yellow")
                t.append(
                    "  within budget" if within else "  over budget",
                    style="green" if within else "yellow",
                )
                if p.budget_s:
                    half = 12  # the bar spans twice the budget; ┃ marks the budget
                    fill = int(round(min(p.predicted_s / p.budget_s, 2.0) * half))
                    t.append("\n")
                    for i in range(2 * half):
                        if i == half:
                            t.append("┃", style="bold")
                        t.append(
                            "█" if i < fill else "░",
                            style=("green" if within else "yellow") if i < fill else "dim",
                        )
                    t.append("  ┃ budget", style="dim")
        elif p.strategy or (self.request and self.request.strategy != "auto"):
            strategy = p.strategy or (self.request.strategy if self.request else "")
            t.append(f" · {strategy} does not plan to it: the freeze lasts", style="dim")
            t.append(" as long as the dump, copy and restore take", style="dim")
        over = self.freeze_over_budget()
        if over is not None:
            t.append("\nmeasured freeze ", style="dim")
            t.append(duration(p.freeze.total_s if p.freeze else None), style="bold")
            if over > 0:
                t.append(f": {duration(over)} over the budget", style="bold yellow")
            else:
                t.append(": within the budget", style="green")
        if p.throttle:
            t.append(f"\nthrottle {p.throttle}%", style="yellow")
        if p.decisions:
            d = p.decisions[-1]
            t.append("\nplanner: ", style="dim")
            t.append(d.action, style="bold magenta")
        budget = self.query_one("#budget", Static)
        budget.update(t)
        budget.border_title = "budget vs predicted"
        self.query_one("#budget-note", Static).update(t)

    def freeze_over_budget(self) -> float | None:
        """How far the measured freeze on the target went past the budget (≤ 0: within);
        None before the freeze ended there, or without a budget."""
        p = self.progress
        f = p.freeze
        if f is None or not p.budget_s or not self.froze_on_target(f):
            return None
        return f.total_s - p.budget_s

    def froze_on_target(self, f) -> bool:
        _, target = self.hosts_of()
        return f.where in ("target", target)

    def show_lazy(self) -> None:
        lazy = self.progress.lazy
        box = self.query_one("#lazy", Static)
        if lazy is None:
            return
        box.add_class("-shown")
        t = Text()
        if lazy.done:
            box.add_class("-done")
            t.append("post-copy done", style="bold green")
            t.append(f" · all memory on the target ({size(lazy.total_bytes)})", style="dim")
        else:
            t.append("AT RISK", style="bold red reverse")
            t.append(
                " memory split between hosts: losing either loses the container\n", style="red"
            )
            t.append(
                f"{size(lazy.total_bytes)} pulled · {lazy.pages_on_fault:,} faults · "
                f"{lazy.pages_prefetched:,} prefetched · {rate(lazy.rate_bps)}",
                style="dim",
            )
        box.update(t)
        box.border_title = "lazy pages (post-copy)"

    def show_result(self) -> None:
        p = self.progress
        o = p.outcome
        box = self.query_one("#result", Static)
        t = Text()
        box.remove_class("-ok", "-failed")
        if p.succeeded is not None:
            s = p.succeeded
            box.add_class("-ok")
            t.append("✓ moved", style="bold green")
            t.append(f" to {s.target} in {duration(o.seconds)}", style="green")
            how = "sent host to host" if p.started and p.started.data_path == "direct" else "relayed"
            t.append(f"\n{size(o.bytes)} {how}", style="dim")
            if o.image_bytes:
                t.append(f" ({size(o.image_bytes)} of it the image)", style="dim")
            if s.rounds:
                t.append(f" · {plural(s.rounds, 'round')}", style="dim")
            if s.app_gap_s is not None:
                t.append(f" · app saw a {duration(s.app_gap_s)} gap", style="dim")
            if s.client_wait_s is not None:
                t.append("\nclient ", style="dim")
                t.append_text(inert_text(s.client, "dim"))
                t.append(f" waited {duration(s.client_wait_s)} at most for an answer", style="dim")
        elif p.failed is not None:
            f = p.failed
            box.add_class("-failed")
            t.append("✗ failed", style="bold red")
            t.append(f" at {f.phase}", style="red")
            if f.host:
                t.append(f" on {f.host}", style="red")
            t.append("\ncause: ", style="bold")
            t.append_text(cause_text(f.cause))
            if f.fix:
                t.append("\nfix: ", style="bold")
                t.append_text(inert_text(f.fix))
            t.append("\n")
            t.append_text(where_text(o.running_on, o.rolled_back))
            t.append(f"\npress d for the {doctor_name(f.phase)}", style="dim italic")
        elif p.rollback is not None:
            box.add_class("-failed")
            t.append("rolling back", style="bold red")
            t.append(" — ")
            t.append_text(cause_text(p.rollback.reason))
            if p.rolled_back is not None:
                t.append("\n")
                t.append_text(where_text(p.rolled_back.running_on, p.rolled_back))
        elif p.stream_lost:
            box.add_class("-failed")
            t.append_text(inert_text(p.stream_lost, "bold red"))
        elif p.committed:
            t.append("committed: the container lives on the target now", style="green")
        elif self.abort_requested:
            box.add_class("-failed")
            t.append("rolling back", style="bold red")
            t.append(f" — abort requested in {p.current or 'the start'}", style="red")
        elif p.current:
            t.append(f"in {p.current}", style="bold yellow")
            t.append(" · a / esc aborts and rolls back", style="dim")
        if p.warnings and (p.succeeded is not None or p.failed is not None):
            t.append(f"\n! {plural(len(p.warnings), 'warning')}: ", style="bold yellow")
            t.append_text(inert_text(p.warnings[-1], "yellow"))
            if len(p.warnings) > 1:
                t.append(" (the others in the log)", style="dim")
        if self.quit_when_done and not p.finished:
            what = "the rollback" if (self.abort_requested or p.rollback) else "the move"
            t.append(f"\nthe console quits when {what} has ended", style="bold yellow")
        box.update(t)

    # --- actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "abort":  # offered only while it can still be rolled back
            return self.in_flight and not self.progress.committed and not self.abort_requested
        if action == "back":
            return not self.in_flight
        if action == "back_or_abort":
            return self.in_flight
        if action == "doctor":
            return self.progress.failed is not None
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_abort(self) -> None:
        p = self.progress
        if self.run is None or p.finished:
            return
        if p.committed:
            self.notify("Past commit: the move is done, nothing to abort", severity="warning")
            return
        if self._abort_asked:
            return
        s = p.started
        what = s.container if s else (self.request.container if self.request else "the container")
        src = s.source if s else (self.request.source if self.request else "the source")
        msg = Text("Abort the migration of ")
        msg.append_text(inert_text(what, "bold cyan"))
        msg.append(f"?\nIt rolls back: the container keeps running on {src}.")

        def answered(yes: bool | None) -> None:
            self._abort_asked = False
            if yes and self.run is not None and not self.progress.finished:
                self.request_abort("abort requested — rolling back")
                self.notify("Abort requested: rolling back", severity="warning")

        self._abort_asked = True
        self.app.push_screen(ConfirmScreen("Abort migration?", msg, yes="Abort"), answered)

    def request_abort(self, why: str) -> None:
        if self.run is None or self.progress.finished:
            return
        self.abort_requested = True
        self.run.abort()
        (self._log or self.query_one("#log", LogPane)).write(Text(f"  {why}", style="bold red"))
        self.show_result()
        self.refresh_bindings()

    # --- quitting ---------------------------------------------------------------------------

    def ask_to_quit(self) -> None:
        """The app's quit while this migration runs: bring the view up and ask."""
        if not self.in_flight:
            self.app.exit()
            return
        if self.quit_when_done:
            what = "the rollback" if self.abort_requested else "the migration"
            self.notify(f"Quitting when {what} ends", severity="warning")
            return
        if self._quit_asked:
            return
        while self.app.screen is not self and len(self.app.screen_stack) > 1:
            self.app.pop_screen()  # what covers the view (history, help, a question)
        self._abort_asked = False
        p = self.progress
        s = p.started
        r = self.request
        what = s.container if s else (r.container if r else "the container")
        src = s.source if s else (r.source if r else "the source")
        dst = s.target if s else (r.target if r else "the target")
        msg = Text()
        msg.append_text(inert_text(what, "bold cyan"))
        msg.append(f" is moving {src} → {dst}")
        if p.current:
            msg.append(f" (now in {p.current})")
        if p.committed:
            msg.append(
                f".\nIt is past its commit point: it lives on {dst} now and cannot be rolled "
                "back. Quitting now would leave the rest undone.\nThe console quits when the "
                "move has ended."
            )
            title, yes = "Quit when the move ends?", "Quit when done"
        elif self.abort_requested:
            msg.append(
                f".\nIt is rolling back: it keeps running on {src}.\nThe console quits when "
                "the rollback has ended."
            )
            title, yes = "Quit after the rollback?", "Quit after rollback"
        else:
            msg.append(
                ".\nQuitting now would leave it half-moved. First roll it back: it keeps "
                f"running on {src}.\nThe console quits when the rollback has ended."
            )
            title, yes = "Quit during a migration?", "Roll back and quit"

        def answered(go: bool | None) -> None:
            self._quit_asked = False
            if not go:
                return
            if not self.in_flight:
                self.app.exit()
                return
            self.quit_when_done = True
            if not self.progress.committed and not self.abort_requested:
                self.request_abort("quit requested — rolling back; the console quits when it ends")
            else:
                (self._log or self.query_one("#log", LogPane)).write(
                    Text("  quit requested — the console quits when the move ends", style="bold")
                )
            self.show_result()

        self._quit_asked = True
        self.app.push_screen(ConfirmScreen(title, msg, yes=yes, no="Keep watching"), answered)

    _counted = False

    def _count_end(self) -> None:
        """Tell the app a migration ended (the hosts screen lists again when shown)."""
        if self.run is not None and self.progress.finished and not self._counted:
            self._counted = True
            app = self.app
            app.migrations_ended = getattr(app, "migrations_ended", 0) + 1  # type: ignore[attr-defined]

    def _quit_if_asked(self) -> None:
        self._count_end()
        if self.quit_when_done and self.progress.finished:
            self.quit_when_done = False
            self.app.exit(message=self.exit_message())

    def exit_message(self) -> Text:
        p = self.progress
        s = p.started
        what = s.container if s else (self.request.container if self.request else "")
        t = Text("ferryman: ")
        if p.succeeded is not None:
            t.append(f"{inert(what)} moved to {p.succeeded.target}")
        elif p.failed is not None:
            where = p.failed.running_on or (p.rolled_back.running_on if p.rolled_back else "")
            t.append(f"the migration of {inert(what)} ended: {inert(p.failed.cause)}")
            if where:
                t.append(f"; it runs on {where}")
        else:
            t.append(inert(p.stream_lost or "the migration ended"))
        return t

    def action_back_or_abort(self) -> None:
        p = self.progress
        if self.run is not None and not p.finished and not p.committed:
            self.action_abort()
        elif self.run is not None and not p.finished:
            self.notify("Past commit: finishing the cleanup, please wait", severity="warning")
        else:
            self.app.pop_screen()

    def action_doctor(self) -> None:
        failure = self.progress.failed
        if failure is None:
            return
        from tui.screens.doctor import DoctorScreen

        self.app.push_screen(
            DoctorScreen(
                failure,
                entry=self.entry,
                request=self.request or request_from(self.progress, failure),
                events=self.collected_events(),
            )
        )

    def collected_events(self) -> list[Event]:
        return list(self.recorded)

    def action_toggle_log(self) -> None:
        focused = self.focused
        if (
            focused is not None
            and not self.has_class("-big-log")
            and self.query_one("#middle") in focused.ancestors
        ):
            (self._log or self.query_one("#log", LogPane)).focus()  # it is about to be hidden
        # Only #middle's style depends on the class: restyle it alone, not every widget of
        # the screen as toggle_class would (that took most of the time of the key).
        self.set_class(not self.has_class("-big-log"), "-big-log", update=False)
        self.app.stylesheet.update_nodes([self.query_one("#middle")], animate=True)


def request_from(progress: Progress, failure: MigrationFailed) -> MigrationRequest | None:
    s = progress.started
    if s is None:
        return None
    return MigrationRequest(
        container=s.container,
        source=s.source,
        target=s.target,
        strategy=s.strategy,
        downtime_budget_s=s.downtime_budget_s,
    )
