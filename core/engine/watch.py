"""A client container watched through the move (`--watch NAME[@HOST]`): checked in
preflight, and read after the move for what it saw (core/client_view.py)."""

from __future__ import annotations

import time
from typing import Any

from core import client_view
from core.client_view import ClientView
from core.config import ConfigError
from core.engine.context import Run
from core.engine.errors import MigrationError


async def check(m: Run) -> None:
    """The watched client runs where it is said to; a move is not begun without it."""
    if not m.req.watch:
        return
    name, host = client_view.parse_target(m.req.watch, m.req.source)
    try:
        h = m.fleet[host]
    except ConfigError as e:  # a host the hosts file does not name
        raise MigrationError(
            f"--watch {m.req.watch}: {e}", "name a host of the hosts file"
        ) from None
    ins = await h.engine.inspect(name)
    if not ins or not (ins.get("State") or {}).get("Running"):
        raise MigrationError(
            f"--watch {m.req.watch}: no running container {name} on {host} to watch",
            "name a client container that runs: --watch NAME[@HOST] (the host defaults to "
            "the source)",
            host=host,
        )
    if name in (m.req.container, m.ctx.container_id) and host == m.req.source:
        raise MigrationError(
            f"--watch {m.req.watch}: that is the container being moved",
            "watch a client of it, in another container",
        )


async def observe(m: Run, start: float) -> ClientView | None:
    """What the watched client saw from `start` (epoch seconds) until now; None when it
    cannot be read (the move's result does not depend on it)."""
    if not m.req.watch:
        return None
    name, host = client_view.parse_target(m.req.watch, m.req.source)
    end = time.time()

    def logs(cl: Any) -> str:
        raw = cl.api.logs(name, stdout=True, stderr=False, timestamps=True, since=int(start) - 5)
        return raw.decode(errors="replace")

    try:
        text = await m.fleet[host].engine.call(logs)
    except Exception as e:  # noqa: BLE001 - engine, SSH or docker-py: a courtesy, never fatal
        m.log("ferryman", f"the client {name} on {host} could not be read: {e}")
        return None
    seen = client_view.view(name, host, text, start, end)
    if seen is None:
        m.log(host, f"the client {name} printed nothing during the move")
    else:
        m.log(host, seen.text())
    return seen
