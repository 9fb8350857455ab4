"""The ways a container is moved in the benchmarks: ferryman's strategies and the naive path.

Each returns one run's figures (seconds, bytes) in the same shape:
freeze_s split into dump_s / transfer_s / restore_s, gap_s (heartbeats), total_s,
wire_bytes (every byte relayed: pre-copy rounds, the frozen copy, lazy pages) and
stream_bytes / stream_s (the largest single stream, for its rate).
"""

from __future__ import annotations

import re
import time

from bench.common import app_gap, docker
from core import remote
from core.engine import criu_conf
from core.engine.criu_conf import LOCK
from core.engine.machine import Migration
from core.engine.transfer import Meter, relay
from core.events import (
    BytesMoved,
    FreezeStarted,
    LazyProgress,
    MigrationFailed,
    MigrationSucceeded,
    PhaseFinished,
    PhaseStarted,
    RoundFinished,
)
from core.fleet import Fleet, Host
from core.models import MigrationRequest
from core.ssh import CommandError

NAIVE = "naive"


DIRECT = "+direct"  # a path's suffix: ferryman's strategy over the direct host-to-host path


async def ferryman(fl: Fleet, src: Host, dst: Host, name: str, strategy: str, budget_s: float = 0.3) -> dict:
    direct = strategy.endswith(DIRECT)
    strategy = strategy.removesuffix(DIRECT)
    req = MigrationRequest(container=name, source=src.name, target=dst.name, strategy=strategy,
                           downtime_budget_s=budget_s, direct=direct)
    rounds: list[RoundFinished] = []
    done, t_freeze, t_copied, lazy_t0, lazy, lazy_bytes = None, 0.0, 0.0, 0.0, None, 0
    async for e in Migration(fl, req):
        if isinstance(e, RoundFinished):
            rounds.append(e)
        elif isinstance(e, FreezeStarted):
            t_freeze = e.t
        elif isinstance(e, BytesMoved) and e.done and e.phase == "transfer":
            t_copied = e.t
        elif isinstance(e, PhaseStarted) and e.phase == "lazy":
            lazy_t0 = e.t
        elif isinstance(e, PhaseFinished) and e.phase == "lazy":
            lazy = e
        elif isinstance(e, LazyProgress) and e.done:
            lazy_bytes = e.total_bytes
        elif isinstance(e, MigrationFailed):
            raise RuntimeError(f"{strategy} failed in {e.phase}: {e.cause}")
        elif isinstance(e, MigrationSucceeded):
            done = e
    assert done is not None
    # The streams that moved bytes, each (bytes, seconds): rounds, the frozen copy, lazy pages.
    streams = [(r.bytes_sent, r.duration_s) for r in rounds]
    frozen_bytes = done.bytes_moved
    if lazy is not None:
        frozen_bytes -= lazy_bytes
        streams.append((lazy_bytes, lazy.t - lazy_t0))
    streams.append((frozen_bytes, max(t_copied - t_freeze, 1e-6)))
    big = max(streams)
    return {"freeze_s": done.freeze_s, "dump_s": done.dump_s, "transfer_s": done.transfer_s,
            "restore_s": done.restore_s, "gap_s": done.app_gap_s, "total_s": done.total_s,
            "rounds": len(rounds), "wire_bytes": sum(r.bytes_sent for r in rounds) + done.bytes_moved,
            "stream_bytes": big[0], "stream_s": big[1]}


async def _timed_docker(h: Host, *args: str) -> float:
    """Run a docker command holding ferryman's CRIU config lock; its duration, timed on `h`.

    The lab's namespace hosts share one /etc/criu/runc.conf, which a restore of ferryman's
    holds for its length: a docker checkpoint/restore run meanwhile would read it."""
    inner = (f"s=$(date +%s%N); {remote.quote(remote.docker(*args, socket=h.spec.docker_socket))} >&2 "
             "|| exit $?; echo $s $(date +%s%N)")
    script = f"{criu_conf.take_lock(LOCK, 300)}; {inner}"
    r = await h.ssh.run(remote.quote(remote.bash(script)), timeout=900)
    s, e = r.stdout.split()
    return (int(e) - int(s)) / 1e9


async def naive(src: Host, dst: Host, name: str) -> dict:
    """`docker checkpoint create` → the folder relayed over SSH → `docker start --checkpoint`.

    The twin is created beforehand; the freeze is checkpoint (docker's own checkpoint
    stops the container) + copy + start, each timed where it runs.
    """
    t_start = time.monotonic()
    ins = await src.engine.inspect(name)
    assert ins is not None
    twin = await docker(dst, "create", "--name", name, ins["Config"]["Image"], *ins["Config"]["Cmd"])
    src_root = (await src.engine.info())["DockerRootDir"]
    dst_root = (await dst.engine.info())["DockerRootDir"]
    ck_src = f"{src_root}/containers/{ins['Id']}/checkpoints/{NAIVE}"
    ck_dst = f"{dst_root}/containers/{twin}/checkpoints/{NAIVE}"
    await dst.ssh.run(remote.quote(remote.mkdir_private(ck_dst)))
    dump_s = await _timed_docker(src, "checkpoint", "create", name, NAIVE)
    t1 = time.monotonic()
    moved = await relay(src.ssh, remote.quote(remote.tar_create(ck_src)), dst.ssh,
                        remote.quote(remote.tar_extract(ck_dst)), Meter(lambda *a: None))
    transfer_s = time.monotonic() - t1
    try:
        restore_s = await _timed_docker(dst, "start", "--checkpoint", NAIVE, name)
    except CommandError as e:  # say why, from CRIU's log if Docker has not removed it yet
        m = re.search(r"log file: (\S+restore\.log)", e.stderr)
        why = (await dst.ssh.run(f"grep Error {m.group(1)} | tail -3", check=False)).stdout if m else ""
        said = (e.stderr.strip().splitlines() or [f"exit status {e.status}"])[-1]
        raise RuntimeError(f"docker start --checkpoint failed on {dst.name}: {why.strip() or said}") from e
    src_log = await docker(src, "logs", name)
    gap = await app_gap(src, dst, name, src_log)
    await docker(src, "rm", "-f", name)
    return {"freeze_s": dump_s + transfer_s + restore_s, "dump_s": dump_s, "transfer_s": transfer_s,
            "restore_s": restore_s, "gap_s": gap.seconds if gap else None,
            "total_s": time.monotonic() - t_start, "rounds": 0, "wire_bytes": moved,
            "stream_bytes": moved, "stream_s": transfer_s}


async def move(fl: Fleet, src: Host, dst: Host, name: str, path: str, budget_s: float = 0.3) -> dict:
    if path == NAIVE:
        return await naive(src, dst, name)
    return await ferryman(fl, src, dst, name, path, budget_s)
