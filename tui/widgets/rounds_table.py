"""The pre-copy rounds, one row each, from CRIU's dump statistics."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from core.events import RoundFinished
from tui.format import duration, pages, rate, size

COLUMNS = (
    "round",
    "written",
    "skipped",
    "dirty rate",
    "bytes",
    "duration",
    "throughput",
    "predicted freeze",
)


class RoundsTable(DataTable):
    DEFAULT_CSS = """
    RoundsTable { height: auto; max-height: 9; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kwargs)
        self.budget_s: float | None = None

    def on_mount(self) -> None:
        for c in COLUMNS:
            self.add_column(c, key=c)

    def add_round(self, r: RoundFinished) -> None:
        within = self.budget_s is not None and r.predicted_freeze_s <= self.budget_s
        pred = Text(duration(r.predicted_freeze_s), style="green" if within else "yellow")
        self.add_row(
            str(r.round),
            pages(r.pages_written),
            pages(r.pages_skipped),
            rate(r.dirty_rate_bps),
            size(r.bytes_sent),
            duration(r.duration_s),
            rate(r.throughput_bps),
            pred,
            key=f"round-{r.round}",
        )
        self.scroll_end(animate=False)
