"""Remote commands' output and the planner's decisions, shown inert."""

from __future__ import annotations

from collections import deque

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region, Size
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

    Events are queued as they come; `flush` keeps at most PER_FLUSH of the newest as lines.
    A line is kept as its event (which the live view holds anyway) and its text is built
    and rendered only when it is on screen.
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
        self.lines: list[Event | Text] = []  # the lines kept, oldest first
        self._first = 0  # number of lines ever trimmed from the front
        self._widest = 0
        self._strips: LRUCache[int, Strip] = LRUCache(128)  # by absolute line number

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
        lines: list[Event | Text] = []
        if self.dropped:
            lines.append(
                Text(
                    f"  … {self.dropped} lines not shown (the full log is in the journal)",
                    style="dim",
                )
            )
        lines.extend(self.pending)
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
        self._first += len(self.lines)
        self.lines.clear()
        self._strips.clear()
        self._widest = 0
        self.virtual_size = Size(0, 0)
        self.refresh()

    def _append(self, lines: list[Event | Text]) -> None:
        for line in lines:
            text = line if isinstance(line, Text) else line_for(line)
            if text is None:
                continue
            if "\n" in text.plain or "\t" in text.plain:  # one line each, as shown
                for part in text.split("\n", allow_blank=True):
                    part.expand_tabs()
                    self._widest = max(self._widest, part.cell_len)
                    self.lines.append(part)
                continue
            self._widest = max(self._widest, text.cell_len)
            self.lines.append(line)
        excess = len(self.lines) - self.max_lines
        if excess > 0:
            del self.lines[:excess]
            self._first += excess
        self.virtual_size = Size(self._widest, len(self.lines))
        self.refresh()

    def text(self, index: int) -> Text:
        line = self.lines[index]
        return line if isinstance(line, Text) else (line_for(line) or Text())

    @property
    def plain_lines(self) -> list[str]:
        """The lines kept, as plain text (queued ones count once flushed)."""
        return [self.text(i).plain for i in range(len(self.lines))]

    # --- rendering ------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def _strip(self, index: int) -> Strip:
        key = self._first + index
        strip = self._strips.get(key)
        if strip is None:
            segments = list(self.text(index).render(self.app.console))
            strip = Strip(segments, Segment.get_line_length(segments))
            self._strips[key] = strip
        return strip

    def render_lines(self, crop: Region) -> list[Strip]:
        self._line_style = self.rich_style  # once for all the lines of this redraw
        try:
            return super().render_lines(crop)
        finally:
            self._line_style = None

    _line_style: Style | None = None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        style = self.rich_style if self._line_style is None else self._line_style
        if index >= len(self.lines):
            return Strip.blank(width, style)
        return self._strip(index).crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
