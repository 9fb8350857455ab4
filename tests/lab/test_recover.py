"""The console dies (SIGKILL) mid-migration; `ferryman recover --yes` restores the invariant:
exactly one copy runs, its state intact, no images left, the journal says what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from lab.layout import HOSTS_FILE, WORKLOAD
from tests.lab.conftest import counters_continue, exists, ferryman, heartbeats, running


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
