"""Streams between hosts: encrypted by SSH, metered, never staged on the console's disk.

The default relays through the console's two SSH connections (works when the hosts
cannot reach each other): `tar -c` on the source, its stdout read in chunks and written
to `tar -x`'s stdin on the target, both over the existing connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import asyncssh

from core.models import HostState
from core.ssh import CommandError, HostConnection, HostError, as_text

CHUNK = 1 << 20
REPORT_EVERY_S = 0.1


class Meter:
    """Bytes and rate over windows of ≥ 100 ms (as QEMU measures bandwidth)."""

    def __init__(self, report: Callable[[int, float, bool], None]) -> None:
        self.total = 0
        self.started = time.monotonic()
        self._report = report
        self._win_t = self.started
        self._win_bytes = 0
        self.rate = 0.0

    def add(self, n: int) -> None:
        self.total += n
        self._win_bytes += n
        now = time.monotonic()
        if now - self._win_t >= REPORT_EVERY_S:
            self.rate = self._win_bytes / (now - self._win_t)
            self._win_t, self._win_bytes = now, 0
            self._report(self.total, self.rate, False)

    def finish(self) -> float:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.rate = self.total / elapsed
        self._report(self.total, self.rate, True)
        return elapsed


class StreamCancelled(Exception):
    """The stream was stopped on request (a user's abort)."""


async def relay(
    src: HostConnection,
    src_cmd: str,
    dst: HostConnection,
    dst_cmd: str,
    meter: Meter,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Start both commands now and pipe one into the other (see `pipe`)."""
    p_out = await src.process(src_cmd)
    p_in = await dst.process(dst_cmd)
    return await pipe(src.name, src_cmd, p_out, dst.name, dst_cmd, p_in, meter, cancelled)


async def pipe(
    src_name: str,
    src_cmd: str,
    p_out: asyncssh.SSHClientProcess,
    dst_name: str,
    dst_cmd: str,
    p_in: asyncssh.SSHClientProcess,
    meter: Meter,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Pipe `p_out`'s stdout into `p_in`'s stdin; raise CommandError if either fails.

    Returns the bytes this stream moved; the caller calls `meter.finish()` after its last stream.
    """
    moved = 0
    side = src_name  # the end being read from or written to: the one whose loss is reported
    try:
        while True:
            if cancelled():
                raise StreamCancelled("aborted by the user")
            side = src_name
            data = await p_out.stdout.read(CHUNK)
            if not data:
                break
            side = dst_name
            p_in.stdin.write(data)
            await p_in.stdin.drain()
            meter.add(len(data))
            moved += len(data)
        p_in.stdin.write_eof()
        r_out, r_in = await asyncio.gather(p_out.wait(), p_in.wait())
    except (asyncssh.Error, OSError) as e:
        if side == dst_name:
            # The receiving command may have ended (a full disk): its own words, then.
            with contextlib.suppress(asyncio.TimeoutError, asyncssh.Error, OSError):
                r = await asyncio.wait_for(p_in.wait(), 2)
                if r.exit_status not in (None, 0):
                    _kill(p_out, p_in)
                    raise CommandError(dst_name, dst_cmd, r.exit_status, as_text(r.stderr)) from e
        _kill(p_out, p_in)
        raise HostError(
            side, HostState.UNREACHABLE, f"the connection was lost during a stream ({e!r})"
        ) from e
    except BaseException:
        _kill(p_out, p_in)
        raise
    for host, cmd, r in ((src_name, src_cmd, r_out), (dst_name, dst_cmd, r_in)):
        if r.exit_status is None:
            raise HostError(
                host, HostState.UNREACHABLE, f"the connection was lost while `{cmd[:60]}` ran"
            )
        if r.exit_status != 0:
            raise CommandError(host, cmd, r.exit_status, as_text(r.stderr))
    return moved


def _kill(*procs: asyncssh.SSHClientProcess) -> None:
    for p in procs:
        try:
            p.kill()
        except (asyncssh.Error, OSError):
            pass  # its channel is gone already
