"""The restore doctor: the CRIU log that matters, its error lines, the cause and the fix."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import RichLog, Static

from core.events import Event, LogLine, MigrationFailed
from core.journal import JournalEntry
from core.models import MigrationRequest
from core.outcome import outcome_of
from tui.format import cause_text, doctor_name, inert, inert_text, where_text
from tui.screens.base import ReportsWorkerErrors
from tui.strategy import STRATEGIES
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.footer import Footer

MAX_LOG_BYTES = 8 * 1024 * 1024
CONTEXT = 8  # lines shown around each error line in the main view
RESTORE_PHASES = ("restore", "lazy", "verify")  # the images were complete: a hand restore


@dataclasses.dataclass(frozen=True)
class LogSource:
    text: str
    where: str  # a path, or "excerpt in the failure event"


def find_log(failure: MigrationFailed | None, entry: JournalEntry | None) -> LogSource:
    """The file at log_path, else the restore/dump logs in logs_dir, else the excerpt."""
    candidates: list[Path] = []
    if failure is not None and failure.log_path:
        candidates.append(Path(failure.log_path))
    if entry is not None and entry.logs_dir:
        d = Path(entry.logs_dir)
        if d.is_dir():
            logs = sorted(d.glob("*.log"), key=lambda p: ("restore" not in p.name, p.name))
            candidates.extend(logs)
    for p in candidates:
        try:
            if p.is_file():
                data = p.read_bytes()[-MAX_LOG_BYTES:]
                return LogSource(data.decode("utf-8", "replace"), str(p))
        except OSError:
            continue
    if failure is not None and failure.log_excerpt:
        return LogSource("\n".join(failure.log_excerpt), "excerpt carried by the failure")
    return LogSource("", "no log")


def failure_of(entry: JournalEntry) -> MigrationFailed | None:
    for ev in reversed(entry.typed_events()):
        if isinstance(ev, MigrationFailed):
            return ev
    return None


def restore_command(
    failure: MigrationFailed | None, entry: JournalEntry | None, events: list[Event]
) -> str:
    """The command that restores the checkpoint by hand on the target."""
    target = (failure.host if failure and failure.host else "") or (entry.target if entry else "")
    for ev in reversed(events):
        if isinstance(ev, LogLine) and ev.stream == "cmd" and "--checkpoint" in ev.text:
            cmd = inert(ev.text).removeprefix("$ ").strip()
            if cmd.startswith("docker start"):
                return f"ssh {ev.host} {cmd}"
    if entry is not None:
        name = entry.checkpoint_name or "final"
        twin = entry.target_twin or entry.container
        return f"ssh {target or entry.target} docker start --checkpoint {name} {twin}"
    return ""


def apply_option(request: MigrationRequest, option: str) -> tuple[MigrationRequest, str]:
    """The retry request with the doctor's option applied, and what that means."""
    if not option:
        return request, "the same settings"
    opt = option.strip()
    if opt in STRATEGIES:
        return dataclasses.replace(request, strategy=opt), f"strategy {opt}"
    from core.engine import criu_options

    try:
        criu_options.parse(opt)
    except criu_options.OptionError:
        pass
    else:
        if opt in request.criu_options:
            return request, f"the same settings ({opt} was already given)"
        return dataclasses.replace(request, criu_options=(*request.criu_options, opt)), f"CRIU option {opt}"
    name = opt.lstrip("-").replace("-", "_")
    fields = {f.name: f for f in dataclasses.fields(MigrationRequest)}
    if name in fields and isinstance(getattr(request, name), bool):
        flag: dict[str, Any] = {name: True}
        return dataclasses.replace(request, **flag), opt
    return request, f"the same settings ({opt} cannot be passed through a migration request)"


class _Fallback:
    """When core.doctor is not importable: error lines by pattern, the failure's own words."""

    ERROR = re.compile(r"\bError\b|\berror\b|FAILED|\bfailed\b")

    @dataclasses.dataclass(frozen=True)
    class Evidence:
        line_no: int
        text: str

    def error_lines(self, text: str) -> list[Any]:
        return [
            self.Evidence(i, line)
            for i, line in enumerate(text.splitlines(), 1)
            if self.ERROR.search(line)
        ]

    def diagnose(self, text: str) -> list[Any]:
        return []

    def detect_kind(self, text: str) -> str:
        return "restore" if "restore" in text.lower() else "unknown"


def load_doctor() -> Any:
    try:
        from core import doctor
    except ImportError:
        return _Fallback()
    return doctor


class LogScreen(Screen):
    """A whole log, inert, scrollable."""

    DEFAULT_CSS = """
    LogScreen RichLog { border: round $panel; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="log.back", tooltip="Back to the doctor"),
        Binding("j", "down", "Down", show=False, id="log.down", tooltip="Scroll down"),
        Binding("k", "up", "Up", show=False, id="log.up", tooltip="Scroll up"),
    ]

    def __init__(self, source: LogSource, errors: set[int]) -> None:
        super().__init__()
        self.source = source
        self.errors = errors

    def compose(self) -> ComposeResult:
        yield RichLog(markup=False, highlight=False, wrap=False, id="full-log")
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        log.border_title = self.source.where
        for i, line in enumerate(self.source.text.splitlines(), 1):
            log.write(numbered(i, line, i in self.errors))
        log.scroll_home(animate=False)
        log.focus()

    def action_down(self) -> None:
        self.query_one(RichLog).scroll_down(animate=False)

    def action_up(self) -> None:
        self.query_one(RichLog).scroll_up(animate=False)


def numbered(i: int, line: str, error: bool) -> Text:
    t = Text(f"{i:>5} ", style="dim")
    t.append_text(inert_text(line, "bold white on dark_red" if error else ""))
    return t


class DoctorScreen(ReportsWorkerErrors, Screen):
    DEFAULT_CSS = """
    DoctorScreen #doctor-summary { height: auto; padding: 0 1; background: $boost; }
    DoctorScreen #doctor-body { height: 1fr; }
    DoctorScreen #doctor-log { width: 3fr; border: round $panel; }
    DoctorScreen #doctor-side { width: 2fr; border: round $warning; padding: 0 1; }
    DoctorScreen #restore-cmd { margin-top: 1; }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="doctor.back", tooltip="Back"),
        Binding(
            "r", "retry", "Retry with fix", id="doctor.retry",
            tooltip="Migrate again, from where the container runs now, with the suggested fix",
        ),
        Binding(
            "k", "keep_images", "Keep images", id="doctor.keep",
            tooltip="Keep the checkpoint images of the retry (to look at them)",
        ),
        Binding("o", "open_log", "Full log", id="doctor.log", tooltip="The whole CRIU log"),
        Binding(
            "c", "copy_command", "Copy restore cmd", id="doctor.copy",
            tooltip="After a failed restore: copy the command that restores it by hand",
        ),
    ]

    def __init__(
        self,
        failure: MigrationFailed | None,
        *,
        entry: JournalEntry | None = None,
        request: MigrationRequest | None = None,
        events: list[Event] | None = None,
    ) -> None:
        super().__init__()
        if failure is None and entry is not None:
            failure = failure_of(entry)
        self.failure = failure
        self.entry = entry
        self.events = events if events is not None else (entry.typed_events() if entry else [])
        if request is None and entry is not None:
            request = MigrationRequest(
                container=entry.container,
                source=entry.source,
                target=entry.target,
                strategy=entry.strategy,
            )
        self.request = request
        self.keep_images = bool(request and request.keep_images)
        self.source = find_log(failure, entry)
        doctor = load_doctor()
        self.kind = doctor.detect_kind(self.source.text) if self.source.text else "none"
        self.evidence = doctor.error_lines(self.source.text) if self.source.text else []
        self.diagnoses = doctor.diagnose(self.source.text) if self.source.text else []
        self.phase = failure.phase if failure is not None else (entry.phase if entry else "")
        self.outcome = outcome_of(self.events)
        # a hand restore makes sense only where a restore failed: the images are complete
        self.command = (
            restore_command(failure, entry, self.events) if self.phase in RESTORE_PHASES else ""
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy_command":
            return bool(self.command)
        if action == "open_log":
            return bool(self.source.text)
        return True

    @property
    def retry_option(self) -> str:
        for d in self.diagnoses:
            if getattr(d, "retry_option", None):
                return str(d.retry_option)
        return ""

    def compose(self) -> ComposeResult:
        yield Static(self.summary(), id="doctor-summary")
        with Horizontal(id="doctor-body"):
            yield RichLog(markup=False, highlight=False, wrap=False, id="doctor-log")
            with VerticalScroll(id="doctor-side"):
                yield Static(self.diagnosis_text(), id="diagnosis")
                yield Static(self.actions_text(), id="restore-cmd")
        yield Footer()

    def on_mount(self) -> None:
        log = self.query_one("#doctor-log", RichLog)
        if self.source.text:
            log.border_title = f"{self.kind} log · {self.source.where}"
        else:
            log.border_title = "no CRIU log"
        self.query_one("#doctor-side").border_title = "diagnosis"
        errors = {e.line_no for e in self.evidence}
        lines = self.source.text.splitlines()
        shown = set(range(1, len(lines) + 1))
        if len(lines) > 200 and errors:
            shown = {n for e in errors for n in range(e - CONTEXT, e + CONTEXT + 1)}
        prev = 0
        for i, line in enumerate(lines, 1):
            if i not in shown:
                continue
            if prev and i != prev + 1:
                log.write(Text(f"      … {i - prev - 1} lines (o: full log)", style="dim italic"))
            log.write(numbered(i, line, i in errors))
            prev = i
        if not lines:
            what = f"at {self.phase}" if self.phase else "here"
            log.write(Text(f"This failure ({what}) left no CRIU log.", style="bold"))
            log.write(Text("Its cause, from the migration, is on the right.", style="dim"))
            return
        log.border_subtitle = f"{len(errors)} error lines"

    def summary(self) -> Text:
        name = doctor_name(self.phase)
        t = Text(name[:1].upper() + name[1:], style="bold")
        f, e = self.failure, self.entry
        who = e.container if e else (self.request.container if self.request else "")
        src = e.source if e else (self.request.source if self.request else "")
        dst = e.target if e else (self.request.target if self.request else "")
        if who:
            t.append("  ·  ")
            t.append_text(inert_text(who, "bold cyan"))
            t.append(f"  {src} → {dst}", style="bold")
        if f is not None:
            t.append(f"  ·  failed at {f.phase}", style="red")
            if f.host:
                t.append(f" on {f.host}", style="red")
            t.append("  ·  ")
            t.append_text(where_text(self.outcome.running_on or f.running_on))
        return t

    def diagnosis_text(self) -> Text:
        t = Text()
        if not self.diagnoses:
            t.append("No known pattern matched this log.\n", style="yellow")
            if self.failure is not None:
                t.append("\ncause  ", style="bold")
                t.append_text(cause_text(self.failure.cause))
                if self.failure.fix:
                    t.append("\nfix    ", style="bold")
                    t.append_text(inert_text(self.failure.fix))
            return t
        for i, d in enumerate(self.diagnoses):
            if i:
                t.append("\n\n")
            t.append_text(inert_text(str(d.title), "bold red" if i == 0 else "bold"))
            t.append("\n\ncause  ", style="bold")
            t.append_text(inert_text(str(d.cause)))
            t.append("\nfix    ", style="bold")
            t.append_text(inert_text(str(d.fix)))
            if d.evidence:
                t.append("\nlines  ", style="bold")
                t.append(", ".join(str(ev.line_no) for ev in d.evidence), style="dim")
            if getattr(d, "retry_option", None):
                t.append("\nretry  ", style="bold")
                t.append_text(inert_text(str(d.retry_option), "cyan"))
        return t

    def actions_text(self) -> Text:
        t = Text()
        req = self.retry_request()
        if req is None and self.request is not None:
            t.append("no retry: ", style="bold")
            t.append_text(inert_text(self.no_retry_reason(), "dim"))
            t.append("\n")
        if req is not None:
            t.append("r ", style="bold")
            _, meaning = apply_option(req, self.retry_option)
            t.append(f"retry with {meaning}")
            t.append(f" · keep images {'on' if self.keep_images else 'off'} (k)\n", style="dim")
        if self.command:
            t.append("restore by hand (c copies):\n", style="bold")
            t.append_text(inert_text(self.command, "cyan"))
        return t

    def where_now(self) -> str:
        """Where the container runs now, as the migration's last events say."""
        f = self.failure
        return self.outcome.running_on or (f.running_on if f is not None else "")

    def no_retry_reason(self) -> str:
        r, where = self.request, self.where_now()
        if r is None:
            return "the original request is unknown"
        if self.failure is not None and not where:
            return "where the container runs is not known: `ferryman recover` first"
        if where in ("nowhere", "BOTH"):
            return f"the container runs {'nowhere' if where == 'nowhere' else 'on both hosts'}"
        if where == r.target:
            return f"it runs on {r.target} already"
        return ""

    def retry_request(self) -> MigrationRequest | None:
        """The same move again, from where the container runs now (never from a host it
        has left), with the images kept or not."""
        if self.request is None or self.no_retry_reason():
            return None
        where = self.where_now()
        base = self.request
        if where and where != base.source:
            base = dataclasses.replace(base, source=where)
        return dataclasses.replace(base, keep_images=self.keep_images)

    # --- actions --------------------------------------------------------------------------

    def action_retry(self) -> None:
        base = self.retry_request()
        if base is None:
            self.notify(
                inert(f"Nothing to retry: {self.no_retry_reason()}"),
                severity="warning",
                markup=False,
            )
            return
        request, meaning = apply_option(base, self.retry_option)
        msg = Text("Retry ")
        msg.append_text(inert_text(request.container, "bold cyan"))
        msg.append(f" from {request.source} to {request.target} with {meaning}?")

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.start_migration(request)  # type: ignore[attr-defined]

        self.app.push_screen(ConfirmScreen("Retry migration?", msg, yes="Retry"), answered)

    def action_keep_images(self) -> None:
        self.keep_images = not self.keep_images
        self.query_one("#restore-cmd", Static).update(self.actions_text())
        state = "kept on the target" if self.keep_images else "removed after the retry"
        self.notify(f"Checkpoint images will be {state}")

    def action_open_log(self) -> None:
        self.app.push_screen(LogScreen(self.source, {e.line_no for e in self.evidence}))

    def action_copy_command(self) -> None:
        if not self.command:
            self.notify(
                "A restore command is offered after a failed restore only", severity="warning"
            )
            return
        self.app.copy_to_clipboard(self.command)
        self.notify(self.command, title="Copied restore command", markup=False)
