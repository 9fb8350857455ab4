"""The versions of a host's engine, containerd and runc, from what the engine says.

`docker info` names containerd's and runc's commit (`ContainerdCommit.ID`,
`RuncCommit.ID`): a version on distribution builds (`1.3.6+ds1-1`), a git hash on
docker-ce (`05044ec0a9…`), or nothing (Debian sid's containerd). Where it is not a
version, the host's own `containerd --version` / `runc --version` line says it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_VERSION = re.compile(r"(?<![0-9A-Za-z])v?(\d+\.\d+(?:\.\d+)?[0-9A-Za-z.+~-]*)")


def numbers(v: str) -> tuple[int, ...]:
    """The leading numbers of a version (`3.17.1` -> (3, 17, 1); `4.2+ds1` -> (4, 2);
    anything else -> ())."""
    out = []
    for part in v.split("+")[0].split("-")[0].split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def version_word(text: str) -> str:
    """The first version-looking word of `text` (`v1.2.5-0-g59923ef` → `1.2.5-0-g59923ef`,
    `containerd github.com/containerd/containerd/v2 2.1.9+unknown` → `2.1.9+unknown`);
    "" when there is none (a bare git hash)."""
    for word in (text or "").split():
        m = _VERSION.fullmatch(word)
        if m:
            return m.group(1)
    return ""


def short(version: str) -> str:
    """`28.5.2+dfsg4` → `28.5.2`; `1.3.6+ds1-1` → `1.3.6` (what a user compares)."""
    m = re.match(r"\d+(?:\.\d+)*", version or "")
    return m.group(0) if m else version


@dataclass(frozen=True)
class EngineVersions:
    engine: str = ""  # ServerVersion, e.g. 28.5.2+dfsg4
    api: str = ""  # ApiVersion, e.g. 1.51
    containerd: str = ""
    runc: str = ""

    def line(self) -> str:
        """`Docker 28.5.2 (API 1.51), containerd 2.1.9, runc 1.3.6`."""
        if not self.engine:
            return ""
        parts = [f"Docker {short(self.engine)}" + (f" (API {self.api})" if self.api else "")]
        if self.containerd:
            parts.append(f"containerd {short(self.containerd)}")
        if self.runc:
            parts.append(f"runc {short(self.runc)}")
        return ", ".join(parts)


def from_engine(
    info: dict[str, Any],
    version: dict[str, Any] | None = None,
    *,
    containerd_line: str = "",
    runc_line: str = "",
) -> EngineVersions:
    """From `docker info` and `docker version` (the API's own answers); the host's
    `containerd --version` / `runc --version` lines where the engine names a commit only."""
    info = info or {}
    ctr = version_word(str((info.get("ContainerdCommit") or {}).get("ID") or ""))
    rc = version_word(str((info.get("RuncCommit") or {}).get("ID") or ""))
    return EngineVersions(
        engine=str(info.get("ServerVersion") or ""),
        api=str((version or {}).get("ApiVersion") or ""),
        containerd=ctr or version_word(containerd_line),
        runc=rc or version_word(runc_line),
    )
