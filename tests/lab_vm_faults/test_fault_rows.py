"""The fault matrix's rows that need soft-dirty or lazy pages: the VM lab's guests.

A pre-copy round (the fault goes in when the first round has been shipped) and the lazy
phase of post-copy (when it starts: the container runs on host2, its memory still on
host1), each with the faults that matter there. The invariant is the one of
tests/lab/test_fault_matrix.py: exactly one copy runs, its counter goes on, no images are
left, the journal says how it ended. The rows join the table printed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from core import events as ev
from core import journal
from core.config import load
from core.engine import heartbeat
from core.live import LiveBackend
from core.models import MigrationRequest
from lab import vm
from tests.lab.test_fault_matrix import ROWS
from tests.lab_vm.conftest import gssh

pytestmark = pytest.mark.vmlab

NAME = "fwl"
FAILING_CRIU = 'printf "#!/bin/sh\\necho lab fault: criu fails on purpose >&2\\nexit 1\\n" > {bin}/criu && chmod 755 {bin}/criu'

CASES = [
    ("pre-copy", "precopy round", "source SSH drops"),
    ("pre-copy", "precopy round", "target SSH drops"),
    ("pre-copy", "precopy round", "source criu fails"),
    ("pre-copy", "precopy round", "user aborts"),
    ("pre-copy", "precopy round", "console killed"),
    ("post-copy", "lazy", "source SSH drops"),
    ("post-copy", "lazy", "target SSH drops"),
    ("post-copy", "lazy", "user aborts"),
    ("post-copy", "lazy", "console killed"),
]


def at_the_point(e: ev.Event | dict, where: str) -> bool:
    kind = e["kind"] if isinstance(e, dict) else e.kind
    phase = e.get("phase") if isinstance(e, dict) else getattr(e, "phase", "")
    if where == "precopy round":
        return kind == "round"
    return kind == "phase_started" and phase == "lazy"


def drop_sessions(h: vm.VmHost) -> None:
    # Run detached: the session that carries this command is cut with the others.
    gssh(h, "setsid sh -c 'sleep 0.2; pkill -KILL -P $(cat /run/sshd.pid)' >/dev/null 2>&1 &", check=False)
    time.sleep(0.6)


def inject(fault: str, h1: vm.VmHost, h2: vm.VmHost, m) -> None:
    if fault == "user aborts":
        m.abort()
    elif fault == "source SSH drops":
        drop_sessions(h1)
    elif fault == "target SSH drops":
        drop_sessions(h2)
    elif fault == "source criu fails":
        gssh(h1, FAILING_CRIU.format(bin=vm.GUEST_BIN_DIR))


async def move(strategy: str, where: str, fault: str, h1, h2) -> tuple[str, bool]:
    be = LiveBackend(load(vm.HOSTS_FILE))
    m = be.migrate(MigrationRequest(container=NAME, source="host1", target="host2", strategy=strategy,
                                    max_rounds=6))
    injected = False
    try:
        async with asyncio.timeout(900):
            async for e in m:
                if not injected and at_the_point(e, where):
                    inject(fault, h1, h2, m)
                    injected = True
    finally:
        await be.close()
    return m.id, injected


def move_and_kill_console(strategy: str, where: str) -> str:
    p = subprocess.Popen([sys.executable, "-m", "ferryman.cli", "--hosts", str(vm.HOSTS_FILE), "migrate", NAME,
                          "--to", "host2", "--strategy", strategy, "--json"], stdout=subprocess.PIPE, text=True)
    mid = ""
    assert p.stdout is not None
    for line in p.stdout:
        e = json.loads(line)
        mid = e.get("migration_id", mid)
        if at_the_point(e, where):
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, f"the migration ended before {where}"
    return mid


def runs(h: vm.VmHost) -> bool:
    return gssh(h, f"docker inspect -f '{{{{.State.Running}}}}' {NAME}", check=False) == "true"


def exists(h: vm.VmHost) -> bool:
    return gssh(h, f"docker inspect {NAME} >/dev/null 2>&1 && echo yes", check=False) == "yes"


@pytest.mark.parametrize(("strategy", "where", "fault"), CASES)
def test_fault_row(vm_hosts, strategy, where, fault):
    h1, h2 = vm_hosts
    for h in vm_hosts:
        gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; rm -f {vm.GUEST_BIN_DIR}/criu; true")
    # 32 MiB, a quarter MiB/s dirtied: several rounds, and a lazy phase of seconds.
    gssh(h1, f"docker run -d --name {NAME} ferryman-lab/workload:1 /workload 32 0.25 10")
    deadline = time.time() + 180
    while len(heartbeat.beats(gssh(h1, f"docker logs {NAME}"))) < 20:
        assert time.time() < deadline, "the workload does not beat"
        time.sleep(1)
    before = heartbeat.beats(gssh(h1, f"docker logs --tail 1 {NAME}"))[-1].counter
    try:
        if fault == "console killed":
            mid = move_and_kill_console(strategy, where)
        else:
            mid, injected = asyncio.run(move(strategy, where, fault, h1, h2))
            assert injected, f"the migration ended before {where}"
    finally:
        for h in vm_hosts:
            gssh(h, f"rm -f {vm.GUEST_BIN_DIR}/criu", check=False)
    e = next(x for x in journal.load_all() if x.migration_id == mid)
    recovered = False
    if mid in {u.migration_id for u in journal.unfinished()}:
        r = subprocess.run([sys.executable, "-m", "ferryman.cli", "--hosts", str(vm.HOSTS_FILE), "recover", "--yes"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        recovered = True
        e = next(x for x in journal.load_all() if x.migration_id == mid)
    here = [h for h in vm_hosts if runs(h)]
    row = {"fault": fault, "phase": f"{where} ({strategy}, VM lab)",
           "outcome": e.result + (" (by `ferryman recover`)" if recovered else ""),
           "runs on": ",".join(h.name for h in here) or "nowhere",
           "cause": e.cause.splitlines()[0][:70] if e.cause else "", "held": False}
    ROWS.append(row)
    try:
        assert len(here) == 1, f"the container runs on {row['runs on']}"
        (home,) = here
        other = h2 if home is h1 else h1
        assert not exists(other), f"a copy is left on {other.name}"
        time.sleep(1)
        counters = [b.counter for b in heartbeat.beats(gssh(home, f"docker logs {NAME}"))]
        after = counters[counters.index(before):] if before in counters else counters
        assert after and after[-1] > before and after[0] >= before, "the counter did not go on"
        assert after == list(range(after[0], after[0] + len(after))), "the counter restarted"
        assert e.result in ("succeeded", "rolled back", "recovered"), e.result
        left = gssh(h1, f"ls -d {vm.GUEST_IMAGES_DIR}/{mid}* 2>/dev/null", check=False) + gssh(
            h2, f"ls -d {vm.GUEST_IMAGES_DIR}/{mid}* 2>/dev/null", check=False)
        assert not left.strip(), f"images left: {left}"
        row["held"] = True
    finally:
        for h in vm_hosts:
            gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
