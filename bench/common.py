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


async def import_lab_image(h: Host) -> None:
    """Import the lab's image (made from its folder here) into `h`'s engine."""
    from lab.image import IMPORT_ARGS, rootfs_tar

    p = await h.ssh.process(remote.quote(remote.docker(*IMPORT_ARGS, IMAGE, socket=h.spec.docker_socket)))
    p.stdin.write(rootfs_tar())
    p.stdin.write_eof()
    r = await p.wait()
    if r.exit_status != 0:
        raise RuntimeError(f"importing {IMAGE} on {h.name} failed: {r.stderr!r}")


async def ensure_image(src: Host, dst: Host) -> None:
    """The lab image on both hosts (`lab up` imports it on the first host only)."""
    for h in (src, dst):
        if not await h.engine.has_image(IMAGE):
            await import_lab_image(h)


# Several processes and open files: three helpers write their heartbeats to files in the
# writable layer, `sleep` holds one of them open for reading, and the main process (which
# prints the heartbeats the gap is read from) holds two more files open.
MULTI_MIB = 64 + 3 * 16
MULTI_CMD = ["sh", "-c",
             "for i in 1 2 3; do : >/data/w$i.log; /workload 16 1 100 >>/data/w$i.log 2>&1 & done; "
             "sleep 1000000 </data/w1.log & exec 3</data/w2.log 4>>/data/held.txt; "
             "exec /workload 64 4 10"]


def workload_cmd(mib: int, dirty: float) -> list[str]:
    return ["/workload", str(mib), f"{dirty:g}", "10"]


async def start_workload(h: Host, name: str, mib: int, dirty: float, others: list[Host],
                         cmd: list[str] | None = None) -> None:
    """A fresh container `name` on `h` (removed everywhere else), warmed up.

    It runs the lab workload (`mib` MiB, `dirty` MiB/s), or `cmd` when given."""
    for o in [h, *others]:
        await docker(o, "rm", "-f", name, check=False)
    await docker(h, "run", "-d", "--name", name, IMAGE, *(cmd or workload_cmd(mib, dirty)))
    # It fills its memory with random bytes first; wait for steady heartbeats.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(heartbeat.beats(await docker(h, "logs", name))) >= 50:
            return
        await asyncio.sleep(0.3)
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
