"""The console dies (SIGKILL) mid-migration; `ferryman recover --yes` restores the invariant:
exactly one copy runs, its state intact, no images left, the journal says what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lab.layout import HOSTS_FILE, WORKLOAD
from tests.lab.conftest import exists, ferryman, heartbeats, running


def kill_console_at(phase: str) -> str:
    """Start a migration, SIGKILL the console when `phase` starts; return the migration id."""
    p = subprocess.Popen([sys.executable, "-m", "ferryman.cli", "--hosts", str(HOSTS_FILE), "migrate",
                          WORKLOAD, "--to", "host2", "--strategy", "stop-and-copy", "--json"],
                         stdout=subprocess.PIPE, text=True)
    mid = ""
    assert p.stdout is not None
    for line in p.stdout:
        e = json.loads(line)
        if e["kind"] == "migration_started":
            mid = e["migration_id"]
        if e["kind"] == "phase_started" and e["phase"] == phase:
            os.kill(p.pid, signal.SIGKILL)
            break
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, f"the migration ended before {phase}"
    return mid


def entry(mid: str) -> dict:
    hist = json.loads(ferryman("history", "--json", hosts_file=None).stdout)
    return next(h for h in hist if h["migration_id"] == mid)


def counters_continue(h, since: int) -> bool:
    """From `since` on (or from its first line, for a twin's fresh log) the counter goes up by
    one: the same process state, never restarted from 0."""
    deadline = time.time() + 10
    while time.time() < deadline:
        beats = [c for c, _ in heartbeats(h, WORKLOAD)]
        tail = beats[len(beats) - 1 - beats[::-1].index(since):] if since in beats else beats
        if len(tail) >= 5 and tail[-1] > since:
            return tail[0] >= since and tail == list(range(tail[0], tail[0] + len(tail)))
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(("phase", "ends_on"), [("prepare", "host1"), ("transfer", "host1"), ("verify", "host2")])
def test_recover_after_the_console_was_killed(lab_hosts, workload_on_host1, phase, ends_on):
    h1, h2 = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    mid = kill_console_at(phase)
    assert entry(mid)["result"] == "running"  # the journal knows it was cut short
    r = ferryman("recover", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert mid in r.stdout and f"runs on {ends_on}" in r.stdout
    here, there = (h1, h2) if ends_on == "host1" else (h2, h1)
    assert running(here, WORKLOAD)
    assert not running(there, WORKLOAD) and not exists(there, WORKLOAD)
    # Its state is intact: the counter goes on from where it was, not from 0.
    assert counters_continue(here, before)
    e = entry(mid)
    assert e["result"] == "recovered" and e["running_on"] == ends_on and "recovered:" in e["cause"]
    for h in lab_hosts:
        assert not list((h.state / "images").glob(f"{mid}*")), "checkpoint images left behind"
        assert not list((h.state / "images" / "locks").glob("*")), "migration lock left behind"
    again = ferryman("recover", "--yes")
    assert "nothing to recover" in again.stdout
