"""Hybrid on the VM lab: pre-copy rounds while it runs, then a lazy final switch that
moves only the last delta on demand; the heartbeat goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from core.engine import heartbeat
from lab import vm
from tests.lab_vm.conftest import gssh

pytestmark = pytest.mark.vmlab

NAME = "hybwl"


def test_hybrid_precopies_then_switches_lazily(vm_hosts):
    h1, h2 = vm_hosts
    for h in vm_hosts:
        gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
    gssh(h1, f"docker run -d --name {NAME} ferryman-lab/workload:1 /workload 32 0.25 10")
    deadline = time.time() + 180
    while len(heartbeat.beats(gssh(h1, f"docker logs {NAME}"))) < 20:
        assert time.time() < deadline, "the workload does not beat"
        time.sleep(1)
    try:
        p = subprocess.run([sys.executable, "-m", "ferryman.cli", "--hosts", str(vm.HOSTS_FILE), "migrate", NAME,
                            "--to", "host2", "--strategy", "hybrid", "--json"],
                           capture_output=True, text=True, timeout=1200)
        evs = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        assert p.returncode == 0, p.stderr + "\n".join(json.dumps(e) for e in evs[-15:])
        kinds = [e["kind"] for e in evs]
        rounds = [e for e in evs if e["kind"] == "round"]
        assert len(rounds) >= 2 and rounds[-1]["pages_written"] < rounds[0]["pages_written"] / 4
        assert [e for e in evs if e["kind"] == "decision"][-1]["action"] in ("switch", "postcopy")
        lazy = [e for e in evs if e["kind"] == "lazy"]
        assert lazy and lazy[-1]["done"]
        # Only the last delta was left to fetch lazily, far less than the whole memory.
        assert 0 < lazy[-1]["total_bytes"] < rounds[0]["bytes_sent"] / 4
        assert kinds.index("freeze_ended") < len(kinds) - 1 - kinds[::-1].index("lazy")
        done = evs[-1]
        assert done["kind"] == "succeeded" and done["rounds"] == len(rounds)
        counters = [b.counter for b in heartbeat.beats(gssh(h2, f"docker logs {NAME}"))]
        assert counters[0] > 20 and counters == list(range(counters[0], counters[0] + len(counters)))
        assert gssh(h1, f"docker ps -aq --filter name=^{NAME}$") == ""
    finally:
        for h in vm_hosts:
            gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
