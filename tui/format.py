"""Formatting helpers, and making remote text inert before it reaches the screen."""

from __future__ import annotations

import re

import humanize
from rich.text import Text

# CSI / OSC / other ESC sequences, then the remaining C0/C1 control characters.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(s: str) -> str:
    """Remote text as plain characters: no escape sequences, no control characters."""
    s = _ESCAPES.sub("", s).replace("\t", "    ").replace("\n", " ")
    return _CONTROLS.sub("", s)


def inert_text(s: str, style: str = "") -> Text:
    """A Text that shows `s` literally (markup is never interpreted in a Text)."""
    return Text(inert(s), style=style)


def size(n: float | None) -> str:
    if n is None:
        return "—"
    return humanize.naturalsize(n, binary=True, format="%.1f")


def rate(bps: float | None) -> str:
    if not bps:
        return "—"
    return humanize.naturalsize(bps, binary=False, format="%.1f") + "/s"


def duration(s: float | None) -> str:
    """Short durations for migration figures: 212 ms, 1.91 s, 2 m 05 s."""
    if s is None:
        return "—"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.2f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} m {sec:02d} s"


def uptime(started: float | None, now: float) -> str:
    if started is None:
        return "—"
    return humanize.naturaldelta(max(0.0, now - started))


def pages(n: int) -> str:
    return f"{n:,}"
