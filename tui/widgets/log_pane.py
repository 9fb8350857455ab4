"""Remote commands' output and the planner's decisions, shown inert."""

from __future__ import annotations

from bisect import bisect_right
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
    """A scrolling log that is cheap to append to, wraps long lines and follows the end.

    Events are queued as they come; `flush` keeps at most PER_FLUSH of the newest as lines.
    A line is kept as its event (which the live view holds anyway) and its text is built
    and rendered only when it is on screen. A line wider than the pane goes on in the rows
    below it, indented. The pane follows new lines while it is scrolled to its end; scrolled
    up (to read), it stays where it is until scrolled to the end again.
    """

    DEFAULT_CSS = """
    LogPane {
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        overflow-x: hidden;
        border: round $panel;
        height: 1fr;
        &:focus { background-tint: $foreground 5%; }
    }
    """

    INDENT = 7  # continuation rows start under the text, past the host column

    def __init__(self, *, max_lines: int = MAX_LINES, per_flush: int = PER_FLUSH, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.per_flush = per_flush
        self.pending: deque[Event] = deque(maxlen=per_flush)
        self.dropped = 0  # queued events pushed out of `pending` before a flush
        self.lines: list[Event | Text] = []  # the lines kept, oldest first
        self._lens: list[int] = []  # their widths in cells
        self._starts: list[int] = []  # the row each line starts at, at `_wrap_width`
        self._rows = 0
        self._wrap_width = 0
        self._first = 0  # number of lines ever trimmed from the front
        self._strips: LRUCache[int, Strip] = LRUCache(256)  # by absolute line number
        self.following = True

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

    def write(self, text: Text) -> None:
        """Append one line after what is queued."""
        self.flush()
        self._append([text])

    def clear(self) -> None:
        self.pending.clear()
        self.dropped = 0
        self._first += len(self.lines)
        self.lines.clear()
        self._lens.clear()
        self._strips.clear()
        self._relayout()

    def _append(self, lines: list[Event | Text]) -> None:
        follow = self.following
        for line in lines:
            text = line if isinstance(line, Text) else line_for(line)
            if text is None:
                continue
            if "\n" in text.plain or "\t" in text.plain:  # one line each, as shown
                for part in text.split("\n", allow_blank=True):
                    part.expand_tabs()
                    self.lines.append(part)
                    self._lens.append(part.cell_len)
                continue
            self.lines.append(line)
            self._lens.append(text.cell_len)
        excess = len(self.lines) - self.max_lines
        if excess > 0:
            del self.lines[:excess]
            del self._lens[:excess]
            self._first += excess
            self._relayout(follow)
            return
        width = self._width()
        if width != self._wrap_width:
            self._relayout(follow)
            return
        done = len(self._starts)
        for n in self._lens[done:]:
            self._starts.append(self._rows)
            self._rows += self._rows_of(n, width)
        self._update_size(follow)

    # --- wrapping ---------------------------------------------------------------------------

    def _width(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _indent(self, width: int) -> int:
        return self.INDENT if width > 4 * self.INDENT else 0

    def _rows_of(self, n: int, width: int) -> int:
        if n <= width:
            return 1
        rest = width - self._indent(width)
        return 1 + -(-(n - width) // rest)

    def _relayout(self, follow: bool | None = None) -> None:
        width = self._width()
        self._wrap_width = width
        self._starts = []
        rows = 0
        for n in self._lens:
            self._starts.append(rows)
            rows += self._rows_of(n, width)
        self._rows = rows
        self._update_size(self.following if follow is None else follow)

    def _update_size(self, follow: bool) -> None:
        self.virtual_size = Size(self._wrap_width, self._rows)
        if follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
            self.following = True
        self.refresh()

    def on_resize(self) -> None:
        if self._width() != self._wrap_width:
            self._relayout()
        elif self.following:
            self._update_size(True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y

    # --- reading ----------------------------------------------------------------------------

    def text(self, index: int) -> Text:
        line = self.lines[index]
        return line if isinstance(line, Text) else (line_for(line) or Text())

    @property
    def plain_lines(self) -> list[str]:
        """The lines kept, as plain text (queued ones count once flushed)."""
        return [self.text(i).plain for i in range(len(self.lines))]

    @property
    def at_end(self) -> bool:
        return self.scroll_y >= self.max_scroll_y

    def shown_rows(self) -> list[str]:
        """The rows on screen now, as plain text (for tests)."""
        return [
            "".join(seg.text for seg in self.render_line(y)).rstrip()
            for y in range(self.scrollable_content_region.height)
        ]

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
        _, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        row = scroll_y + y
        style = self.rich_style if self._line_style is None else self._line_style
        if row >= self._rows or not self._starts:
            return Strip.blank(width, style)
        index = bisect_right(self._starts, row) - 1
        sub = row - self._starts[index]
        strip = self._strip(index)
        w = self._wrap_width
        if sub == 0:
            piece = strip.crop(0, w)
        else:
            indent = self._indent(w)
            start = w + (sub - 1) * (w - indent)
            piece = Strip.join([Strip.blank(indent, style), strip.crop(start, start + w - indent)])
        return piece.crop_extend(0, width, style).apply_style(style)
