"""The freeze window: a big timer while the container is frozen, then the final split."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Digits, Static

from core.events import FreezeEnded
from tui.format import duration


class FreezeTimer(Vertical):
    DEFAULT_CSS = """
    FreezeTimer { height: auto; border: round $primary; padding: 0 1; }
    FreezeTimer > #freeze-label { color: $text-muted; }
    FreezeTimer > Digits { width: auto; }
    FreezeTimer.-frozen { border: round $error; }
    FreezeTimer.-frozen > Digits { color: $error; }
    FreezeTimer.-done > Digits { color: $success; }
    FreezeTimer.-back > Digits { color: $warning; }
    """

    def __init__(self, clock: Callable[[], float], **kwargs) -> None:
        super().__init__(**kwargs)
        self._clock = clock
        self._since: float | None = None
        self._ticker: Timer | None = None
        self.final: FreezeEnded | None = None

    def compose(self) -> ComposeResult:
        yield Static("freeze window: not frozen yet", id="freeze-label")
        yield Digits("-.---", id="freeze-digits")
        yield Static("", id="freeze-split")

    def start(self, since: float) -> None:
        self._since = since
        self.final = None
        self.add_class("-frozen")
        self.remove_class("-done")
        self.query_one("#freeze-label", Static).update("FROZEN — container paused")
        self._tick()
        if self._ticker is None:
            self._ticker = self.set_interval(1 / 20, self._tick)
        else:
            self._ticker.resume()

    def _tick(self) -> None:
        if self._since is None or self.final is not None:
            return
        elapsed = max(0.0, self._clock() - self._since)
        self.query_one("#freeze-digits", Digits).update(f"{elapsed:.3f}")

    def stop(self, ended: FreezeEnded, source: str = "", target: str = "") -> None:
        """The freeze ended: on the target (moved), or on the source (rolled back). The
        split is shown for a move; after a rollback only the parts that were measured."""
        self.final = ended
        if self._ticker is not None:
            self._ticker.pause()
        self.remove_class("-frozen")
        moved = ended.where in ("target", target) and ended.where != source
        self.set_class(moved, "-done")
        self.set_class(not moved, "-back")
        host = target if ended.where == "target" else source if ended.where == "source" else ""
        host = host or ended.where
        where = f"on {host}" if moved else f"on {host}, where it was (rolled back)"
        self.query_one("#freeze-label", Static).update(
            Text.assemble(
                ("freeze ", "bold"), (duration(ended.total_s), "bold"), f" — running again {where}"
            )
        )
        self.query_one("#freeze-digits", Digits).update(f"{ended.total_s:.3f}")
        parts = (
            ("dump", ended.dump_s),
            ("transfer", ended.transfer_s),
            ("restore" if moved else "resume", ended.restore_s),
        )
        split = Text()
        for name, s in parts:
            if not moved and not s:
                continue  # not measured in a rollback: no "0 ms"
            if split:
                split.append(" · ", style="dim")
            split.append(f"{name} ", style="dim")
            split.append(duration(s), style="bold")
        if not moved and not split:
            split.append("not moved: no split", style="dim")
        self.query_one("#freeze-split", Static).update(split)

    @property
    def figure(self) -> str:
        """The text the digits show (for tests and screenshots)."""
        return str(self.query_one("#freeze-digits", Digits).value)
