"""Fixtures for tests against the local lab: real sshd, dockerd, runc and CRIU.

The lab is brought up by `make test` / `.ci/run` before pytest (`ferryman lab up`); these
fixtures bring it up themselves when it is not (it is idempotent), and put the workload
back on host1 before each test that moves it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import control, engine
from lab.layout import HOSTS_FILE, IMAGE, WORKLOAD, LabHost

FERRYMAN = [sys.executable, "-m", "ferryman.cli"]

if os.geteuid() != 0:
    pytest.skip(
        "lab tests need root: the lab runs sshd and dockerd in network namespaces "
        "(run them through `make test`, which runs as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="session")
def lab_hosts() -> list[LabHost]:
    st = control.status()
    if not st["up"] or len(st["hosts"]) < 2:
        control.up(2, log=lambda _m: None)
    return [LabHost(1), LabHost(2)]


@pytest.fixture(scope="session")
def hosts_file(lab_hosts) -> Path:
    return HOSTS_FILE


def docker(h: LabHost, *args: str, check: bool = True) -> str:
    p = subprocess.run(engine.docker(h, *args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} on {h.name}: {p.stderr.strip()}")
    return p.stdout.strip()


def running(h: LabHost, name: str) -> bool:
    out = docker(h, "inspect", "-f", "{{.State.Running}}", name, check=False)
    return out == "true"


def exists(h: LabHost, name: str) -> bool:
    return subprocess.run(engine.docker(h, "inspect", name), capture_output=True).returncode == 0


def heartbeats(h: LabHost, name: str) -> list[tuple[int, int]]:
    out = docker(h, "logs", name)
    beats = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "hb":
            beats.append((int(parts[1]), int(parts[2])))
    return beats


@pytest.fixture()
def workload_on_host1(lab_hosts) -> LabHost:
    """`workload` runs on host1 (64 MiB, 4 MiB/s) and exists nowhere else."""
    h1, h2 = lab_hosts
    for h in lab_hosts:
        for f in h.bin_dir.glob("*"):
            f.unlink()
    if exists(h2, WORKLOAD):
        docker(h2, "rm", "-f", WORKLOAD)
    if not running(h1, WORKLOAD):
        docker(h1, "rm", "-f", WORKLOAD, check=False)
        control.start_workload(h1, control.WorkloadSpec())
    deadline = time.time() + 10
    while len(heartbeats(h1, WORKLOAD)) < 5 and time.time() < deadline:
        time.sleep(0.1)
    return h1


def ferryman(
    *args: str, hosts_file: Path | None = HOSTS_FILE, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    argv = [*FERRYMAN, *(["--hosts", str(hosts_file)] if hosts_file else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


async def move_in_process(phases, hook) -> tuple[str, set[str]]:
    """Move the workload host1 → host2 (stop-and-copy) with the engine in this process;
    `hook(migration, phase)` runs at the start of each of `phases`, synchronously, so the
    engine waits while it runs. Returns the migration id and the phases hooked."""
    from core import events as ev
    from core.config import load
    from core.live import LiveBackend
    from core.models import MigrationRequest

    be = LiveBackend(load(HOSTS_FILE))
    m = be.migrate(MigrationRequest(container=WORKLOAD, source="host1", target="host2",
                                    strategy="stop-and-copy"))
    hooked: set[str] = set()
    try:
        async with asyncio.timeout(240):
            async for e in m:
                if isinstance(e, ev.PhaseStarted) and e.phase in phases and e.phase not in hooked:
                    hook(m, e.phase)
                    hooked.add(e.phase)
    finally:
        await be.close()
    return m.id, hooked


def counters_continue(h, since: int) -> bool:
    """From `since` on (or from its first line, for a twin's fresh log) the counter goes up by
    one: the same process state, never restarted from 0. From the first `since` in the log:
    a container started cold in its place counts again from 0 in the same log, and its
    counter passing `since` again must not look like the state going on."""
    deadline = time.time() + 10
    while time.time() < deadline:
        beats = [c for c, _ in heartbeats(h, WORKLOAD)]
        tail = beats[beats.index(since):] if since in beats else beats
        if len(tail) >= 5 and tail[-1] > since:
            return tail[0] >= since and tail == list(range(tail[0], tail[0] + len(tail)))
        time.sleep(0.2)
    return False


__all__ = ["IMAGE", "WORKLOAD"]

