"""CPU time spent on the source and the target during one move, and by the console.

The lab's hosts share this machine's CPUs, so "a host's CPU time" needs a definition:

- namespace lab: the CPU time of every process in the host's network namespace (its
  sshd and every command run through it, its dockerd, containerd, shims, runc and CRIU,
  the page server), read from /proc/PID/stat (utime + stime + cutime + cstime) every
  0.2 s. The containers' own processes live in their own network namespaces and are not
  counted. A process that exits is counted through its parent's cutime/cstime, or, when
  it was orphaned (a daemonised page server, a shim), by its last sample.
- VM lab: the guest's busy time from its own /proc/stat (everything but idle and iowait),
  read over SSH before and after: the whole guest, the workload included.
- console: this process (the relay of every byte, the bench's own bookkeeping).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.fleet import Host

TICK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.2


def netns_inode(netns: str) -> int:
    return os.stat(f"/var/run/netns/{netns}").st_ino


@dataclass
class _Proc:
    start: int  # field 22: tells a reused pid apart
    ppid: int
    ticks: int


def _scan(ns_ino: int) -> dict[int, _Proc]:
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.stat(d / "ns" / "net").st_ino != ns_ino:
                continue
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after "pid (comm)": state ppid ... utime(11) stime(12) cutime(13) cstime(14) ... start(19)
        out[int(d.name)] = _Proc(int(f[19]), int(f[1]), sum(int(x) for x in f[11:15]))
    return out


@dataclass
class NetnsCpu:
    """CPU seconds of one namespace host's processes over a window (see the module's notes)."""

    ns_ino: int
    base: dict[int, _Proc] = field(default_factory=dict)
    last: dict[int, _Proc] = field(default_factory=dict)
    gone_orphans: int = 0  # ticks of orphans that exited, minus their baselines
    gone_reaped: int = 0  # baselines of children reaped by a counted parent

    def start(self) -> None:
        self.base = self.last = _scan(self.ns_ino)

    def poll(self) -> None:
        now = _scan(self.ns_ino)
        for pid, p in self.last.items():
            q = now.get(pid)
            if q is not None and q.start == p.start:
                continue
            b = self.base.get(pid)
            b_ticks = b.ticks if b is not None and b.start == p.start else 0
            if p.ppid in now:
                self.gone_reaped += b_ticks
            else:
                self.gone_orphans += p.ticks - b_ticks
        self.last = now

    def seconds(self) -> float:
        t = self.gone_orphans - self.gone_reaped
        for pid, p in self.last.items():
            b = self.base.get(pid)
            t += p.ticks - (b.ticks if b is not None and b.start == p.start else 0)
        return t / TICK


async def guest_busy_s(h: Host) -> float:
    """The guest's busy CPU seconds since boot (all CPUs)."""
    r = await h.ssh.run("head -1 /proc/stat", timeout=30)
    v = [int(x) for x in r.stdout.split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK  # minus idle and iowait


class CpuMeter:
    """`async with CpuMeter(src, dst, netns) as m:` … then m.result: seconds per side."""

    def __init__(self, src: Host, dst: Host, netns: dict[str, str] | None) -> None:
        self.src, self.dst, self.netns = src, dst, netns
        self.result: dict[str, float] = {}
        self._ns: list[NetnsCpu] = []
        self._task: asyncio.Task[None] | None = None
        self._guest0: list[float] = []

    async def __aenter__(self) -> CpuMeter:
        self._cpu0, self._t0 = time.process_time(), time.monotonic()
        if self.netns:
            self._ns = [NetnsCpu(netns_inode(self.netns[h.name])) for h in (self.src, self.dst)]
            for m in self._ns:
                m.start()
            self._task = asyncio.create_task(self._poll())
        else:
            self._guest0 = [await guest_busy_s(h) for h in (self.src, self.dst)]
        return self

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            for m in self._ns:
                m.poll()

    async def __aexit__(self, *exc: object) -> None:
        console = time.process_time() - self._cpu0
        if self._task is not None:
            self._task.cancel()
            for m in self._ns:
                m.poll()
            src, dst = (m.seconds() for m in self._ns)
        else:
            src, dst = [await guest_busy_s(h) - g0 for h, g0 in zip((self.src, self.dst), self._guest0, strict=True)]
        self.result = {"cpu_source_s": src, "cpu_target_s": dst, "cpu_console_s": console,
                       "wall_s": time.monotonic() - self._t0}
