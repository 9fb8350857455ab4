"""runc's log lines (logrus: `time="…" level=error msg="…"`) as the words they carry.

A failed `runc checkpoint` ends with a line like

    time="2026-11-25T17:56:14Z" level=error msg="criu failed: type NOTIFY errno 0\\nlog file: /…/dump.log"

whose `msg` is Go-quoted: `\\n` is a newline, `\\"` a quote. `clean` puts the message in
place of each such line, unquoted, so a cause reads "criu failed: type NOTIFY errno 0"
with the log file on the next line.
"""

from __future__ import annotations

import re

_LOGRUS = re.compile(
    r'time="[^"]*"\s+level=(?P<level>\w+)\s+msg="(?P<msg>(?:[^"\\]|\\.)*)"(?P<rest>[^\n]*)'
)
_ESCAPES = {"n": "\n", "t": "    ", '"': '"', "\\": "\\", "r": ""}


def unquote(s: str) -> str:
    """A Go-quoted string's contents as text (\\n, \\t, \\", \\\\)."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), s)


def clean(text: str) -> str:
    """Each logrus line in `text` replaced by its message, unquoted; other text kept."""

    def one(m: re.Match[str]) -> str:
        msg = unquote(m.group("msg")).strip()
        return msg + m.group("rest")

    out = _LOGRUS.sub(one, text)
    if "\\n" in out and "\n" not in out:  # a literal \n left by another quoting
        out = out.replace("\\n", "\n")
    return out


def lines(text: str) -> list[str]:
    """`clean(text)` as its non-empty lines."""
    return [ln.rstrip() for ln in clean(text).splitlines() if ln.strip()]
