"""The pre-copy rounds: pre-dump while the container runs, ship the round, ask the planner.

Each round is `runc checkpoint --pre-dump` on the engine's runc state (soft-dirty
tracking; the first round copies everything, later ones only what changed since the
previous, through `--parent-path`). The round's folder is streamed to the target beside
the previous ones, so the final dump (with the last round as parent) moves only the last
delta, and CRIU on the target follows the `parent` links when it restores. The decision
to go on, throttle or switch is the pure planner's (core/engine/planner.py); this module
only does the I/O and turns CRIU's statistics into RoundStats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from core import criu_stats, remote
from core.engine import checkpoint, direct_path, restore
from core.engine.planner import Decision, PrecopyPlanner, RoundStats
from core.engine.transfer import Meter, relay
from core.fleet import Host
from core.ssh import read_remote_file

# Until a restore on this target has been measured, the planner assumes this much.
RESTORE_ESTIMATE_S = 0.4


class RoundError(Exception):
    """A round that cannot be used; `log_path` is its CRIU log on the source."""

    def __init__(self, message: str, log_path: str) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass(frozen=True)
class RoundResult:
    stats: RoundStats
    decision: Decision
    dump_s: float
    dirty_rate_bps: float | None


def round_dir(base: str, n: int) -> str:
    return f"{base}/pre{n}"


class Rounds:
    def __init__(
        self,
        src: Host,
        dst: Host,
        *,
        runc_root: str,
        container_id: str,
        src_dir: str,
        dst_dir: str,
        systemd_cgroup: bool,
        planner: PrecopyPlanner,
        run: Callable,
        meter: Callable[[], Meter],
        direct: direct_path.DirectPath | None = None,
    ) -> None:
        self.src, self.dst = src, dst
        self.runc_root, self.container_id = runc_root, container_id
        self.src_dir, self.dst_dir = src_dir, dst_dir
        self.systemd = systemd_cgroup
        self.planner = planner
        self._run = run  # (host, command, what) -> awaitable output; raises MigrationError
        self._meter = meter
        self.direct = direct  # None: relayed through the console
        self.n = 0
        self._last_end: float | None = None

    @property
    def last_parent(self) -> str | None:
        """The parent path the final dump names (relative, as CRIU wants it)."""
        return f"../pre{self.n}" if self.n else None

    async def round(self) -> RoundResult:
        self.n += 1
        n = self.n
        started = time.monotonic()
        since_prev = started - self._last_end if self._last_end is not None else 0.0
        img, work = round_dir(self.src_dir, n), f"{self.src_dir}/prework{n}"
        await self._run(
            self.src, remote.quote(remote.mkdir_private(img, work)), "making the round's folder"
        )
        cmd = checkpoint.checkpoint_cmd(
            runc_root=self.runc_root,
            container_id=self.container_id,
            image_path=img,
            work_path=work,
            systemd_cgroup=self.systemd,
            pre_dump=True,
            parent_path=f"../pre{n - 1}" if n > 1 else None,
        )
        await self._run(
            self.src,
            checkpoint.under_conf_lock(cmd, work, restore.LOCK),
            f"pre-dump round {n}",
        )
        dump_s = time.monotonic() - started
        stats = None
        for pause in (0.0, 1.0):  # a busy host may lag in showing the file
            await asyncio.sleep(pause)
            data = await read_remote_file(self.src.ssh, f"{work}/stats-dump")
            stats = criu_stats.parse_dump_stats(data) if data else None
            if stats is not None:
                break
        if stats is None:
            raise RoundError(
                f"pre-dump round {n} left no statistics in {self.src.name}:{work}",
                f"{work}/dump.log",
            )
        meter = self._meter()
        t0 = time.monotonic()
        into = self._dst_round(n)
        if self.direct is not None:
            moved = await direct_path.run_stream(self.direct, self.src, self.dst, img, into, meter)
        else:
            moved = await relay(
                self.src.ssh,
                remote.quote(remote.tar_create(img)),
                self.dst.ssh,
                remote.all_of(remote.mkdir_private(into), remote.tar_extract(into)),
                meter,
            )
        transfer_s = time.monotonic() - t0
        meter.finish()
        self._last_end = time.monotonic()
        rs = RoundStats(
            index=n,
            pages_scanned=stats.pages_scanned,
            pages_skipped_parent=stats.pages_skipped_parent,
            pages_written=stats.pages_written,
            duration_s=self._last_end - started,
            transfer_s=transfer_s,
            transfer_bytes=moved,
            frozen_time_s=stats.frozen_time_s,
            since_previous_s=since_prev,
        )
        decision = self.planner.observe(rs)
        observed = self.planner.history[-1] if self.planner.history else rs
        return RoundResult(
            stats=observed, decision=decision, dump_s=dump_s, dirty_rate_bps=observed.dirty_rate_bps
        )

    def _dst_round(self, n: int) -> str:
        return round_dir(self.dst_dir, n)
