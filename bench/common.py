"""Helpers shared by the benchmarks: lab hosts, the workload, heartbeats, statistics."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from core import remote
from core.config import load
from core.engine import heartbeat
from core.fleet import Fleet, Host

LAB_HOSTS = Path("/var/lib/ferryman-lab/hosts.yaml")
IMAGE = "ferryman-lab/workload:1"
RESULTS = Path(__file__).parent / "results"


def fleet(hosts_file: Path = LAB_HOSTS) -> Fleet:
    if not hosts_file.exists():
        raise SystemExit(f"no lab hosts file at {hosts_file}: run `sudo .venv/bin/ferryman lab up` first")
    return Fleet(load(hosts_file))


async def docker(h: Host, *args: str, check: bool = True) -> str:
    r = await h.ssh.run(remote.quote(remote.docker(*args, socket=h.spec.docker_socket)), check=check,
                        timeout=600)
    return r.stdout.strip()


async def ensure_image(src: Host, dst: Host) -> None:
    if not await dst.engine.has_image(IMAGE):
        from core.engine.transfer import Meter, relay

        await relay(src.ssh, remote.quote(remote.docker("save", IMAGE, socket=src.spec.docker_socket)),
                    dst.ssh, remote.quote(remote.docker("load", "-q", socket=dst.spec.docker_socket)),
                    Meter(lambda *a: None))


async def start_workload(h: Host, name: str, mib: int, dirty: float, others: list[Host]) -> None:
    """A fresh workload container `name` on `h` (removed everywhere else), warmed up."""
    for o in [h, *others]:
        await docker(o, "rm", "-f", name, check=False)
    await docker(h, "run", "-d", "--name", name, IMAGE, "/workload", str(mib), str(dirty), "10")
    # It fills its memory with random bytes first; wait for steady heartbeats.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(heartbeat.beats(await docker(h, "logs", name))) >= 50:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} on {h.name} does not beat")


async def app_gap(src: Host, dst: Host, name: str, src_log: str | None = None) -> heartbeat.Gap | None:
    await asyncio.sleep(0.3)
    return heartbeat.gap(src_log if src_log is not None else await docker(src, "logs", name, check=False),
                         await docker(dst, "logs", name))


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt_s(v: float) -> str:
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"


def save(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return p
