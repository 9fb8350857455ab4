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
    """Bytes per second in the same binary units as sizes: MiB/s next to MiB."""
    if not bps:
        return "—"
    return humanize.naturalsize(bps, binary=True, format="%.1f") + "/s"


def plural(n: int, word: str, many: str = "") -> str:
    """`1 container`, `2 containers`."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def cause_text(cause: str, style: str = "") -> Text:
    """A failure's cause as text: runc's log lines replaced by their message (literal
    `\\n` made line breaks), each line inert."""
    from core.runc_text import lines

    t = Text(style=style)
    for i, line in enumerate(lines(cause) or [cause]):
        if i:
            t.append("\n  ")
        t.append(inert(line))
    return t


DOCTOR_NAMES = {
    "precopy": "pre-copy doctor",
    "checkpoint": "checkpoint doctor",
    "restore": "restore doctor",
    "lazy": "post-copy doctor",
}


def doctor_name(phase: str) -> str:
    """The doctor is named after the phase that failed (a dump failure is no restore's)."""
    return DOCTOR_NAMES.get(phase, f"{phase} doctor" if phase else "doctor")


def where_text(running_on: str, rolled_back: object = None) -> Text:
    """Where the container runs after a failure, as the events say; never a guess."""
    if running_on == "nowhere":
        return Text("the container runs nowhere: it is stopped on both hosts", style="bold red")
    if running_on == "BOTH":
        return Text("the container runs on BOTH hosts: stop one", style="bold red reverse")
    if not running_on:
        return Text(
            "where the container runs is not known: the rollback did not finish "
            "(`ferryman recover` finishes it)",
            style="bold red",
        )
    return Text(f"the container runs on {running_on}", style="bold")


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
