"""Remote commands' output and the planner's decisions, shown inert."""

from __future__ import annotations

from collections import deque

from rich.segment import Segment
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.events import Decision, Event, LogLine, RollbackFinished, RollbackStarted, Warning
from tui.format import inert_text

MAX_LINES = 1000  # the pane keeps this many lines; the journal keeps everything
PER_FLUSH = 200  # at a redraw, at most this many new lines: a flood is summarised


def line_for(ev: Event) -> Text | None:
    if isinstance(ev, LogLine):
        t = Text()
        t.append(f"{ev.host:>6} ", style="cyan")
        style = {"cmd": "bold", "stderr": "red"}.get(ev.stream, "")
        t.append_text(inert_text(ev.text, style))
        return t
    if isinstance(ev, Decision):
        t = Text()
        t.append("  plan ", style="bold magenta")
        t.append(f"{ev.action}", style="bold magenta")
        if ev.throttle_percent:
            t.append(f" (throttle {ev.throttle_percent}%)", style="magenta")
        t.append(" — ")
        t.append_text(inert_text(ev.reason, "magenta"))
        return t
    if isinstance(ev, Warning):
        t = Text("  warn ", style="bold yellow")
        t.append_text(inert_text(ev.text, "yellow"))
        return t
    if isinstance(ev, RollbackStarted):
        t = Text("  ROLLBACK ", style="bold red")
        t.append_text(inert_text(ev.reason, "red"))
        return t
    if isinstance(ev, RollbackFinished):
        t = Text("  rollback done ", style="bold magenta")
        t.append_text(inert_text(f"running on {ev.running_on}. {ev.detail}".strip()))
        return t
    return None


def shows(ev: Event) -> bool:
    """Whether `line_for(ev)` gives a line (without building it)."""
    return isinstance(ev, LogLine | Decision | Warning | RollbackStarted | RollbackFinished)


class LogPane(ScrollView, can_focus=True):
    """A scrolling log that is cheap to append to.

    Events are queued as they come (no text is built for them yet); `flush` turns at most
    PER_FLUSH of the newest into lines, and a line is rendered only when it is on screen.
    """

    DEFAULT_CSS = """
    LogPane {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        border: round $panel;
        height: 1fr;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    def __init__(self, *, max_lines: int = MAX_LINES, per_flush: int = PER_FLUSH, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.per_flush = per_flush
        self.pending: deque[Event] = deque(maxlen=per_flush)
        self.dropped = 0  # queued events pushed out of `pending` before a flush
        self.texts: list[Text] = []  # the lines kept, oldest first
        self._first = 0  # number of lines ever trimmed from the front
        self._widest = 0
        self._strips: LRUCache[int, Strip] = LRUCache(256)  # by absolute line number

    # --- appending ------------------------------------------------------------------------

    def queue(self, ev: Event) -> bool:
        if not shows(ev):
            return False
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(ev)
        return True

    def flush(self) -> None:
        if not self.pending:
            return
        lines: list[Text] = []
        if self.dropped:
            lines.append(
                Text(
                    f"  … {self.dropped} lines not shown (the full log is in the journal)",
                    style="dim",
                )
            )
        for ev in self.pending:
            line = line_for(ev)
            if line is not None:
                lines.append(line)
        self.pending.clear()
        self.dropped = 0
        self._append(lines)
        self.scroll_end(animate=False)

    def write(self, text: Text) -> None:
        """Append one line after what is queued, and follow the end."""
        self.flush()
        self._append([text])
        self.scroll_end(animate=False, x_axis=False)

    def clear(self) -> None:
        self.pending.clear()
        self.dropped = 0
        self._first += len(self.texts)
        self.texts.clear()
        self._strips.clear()
        self._widest = 0
        self.virtual_size = Size(0, 0)
        self.refresh()

    def _append(self, lines: list[Text]) -> None:
        for text in lines:
            for line in text.split("\n", allow_blank=True) if "\n" in text.plain else (text,):
                line.expand_tabs()
                self._widest = max(self._widest, line.cell_len)
                self.texts.append(line)
        excess = len(self.texts) - self.max_lines
        if excess > 0:
            del self.texts[:excess]
            self._first += excess
        self.virtual_size = Size(self._widest, len(self.texts))
        self.refresh()

    @property
    def plain_lines(self) -> list[str]:
        """The lines kept, as plain text (queued ones count once flushed)."""
        return [t.plain for t in self.texts]

    # --- rendering ------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def _strip(self, index: int) -> Strip:
        key = self._first + index
        strip = self._strips.get(key)
        if strip is None:
            segments = list(self.texts[index].render(self.app.console))
            strip = Strip(segments, Segment.get_line_length(segments))
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        style = self.rich_style
        if index >= len(self.texts):
            return Strip.blank(width, style)
        return self._strip(index).crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
