"""Pre-copy on soft-dirty hosts (the QEMU guest lab): rounds shrink, the planner switches
over with a reason, the heartbeat goes on, and the freeze is shorter than stop-and-copy's
on the same workload in the same run."""

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

NAME = "pcwl"


def migrate(*args: str) -> list[dict]:
    p = subprocess.run([sys.executable, "-m", "ferryman.cli", "--hosts", str(vm.HOSTS_FILE), "migrate", NAME,
                        *args, "--json"], capture_output=True, text=True, timeout=1200)
    evs = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert p.returncode == 0, p.stderr + "\n".join(json.dumps(e) for e in evs[-15:])
    return evs


def test_precopy_rounds_shrink_switch_over_and_beat_stop_and_copy(vm_hosts):
    h1, h2 = vm_hosts
    for h in vm_hosts:
        gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
    # 64 MiB, a quarter MiB/s dirtied: a fraction of its memory changes between rounds.
    gssh(h1, f"docker run -d --name {NAME} ferryman-lab/workload:1 /workload 64 0.25 10")
    deadline = time.time() + 180
    while len(heartbeat.beats(gssh(h1, f"docker logs {NAME}"))) < 20:
        assert time.time() < deadline, "the workload does not beat"
        time.sleep(1)
    try:
        pre = migrate("--to", "host2", "--strategy", "pre-copy", "--downtime-budget", "300ms")
        rounds = [e for e in pre if e["kind"] == "round"]
        assert len(rounds) >= 2
        assert rounds[1]["pages_written"] < rounds[0]["pages_written"]  # the dirty set shrank
        assert rounds[-1]["pages_written"] < rounds[0]["pages_written"] / 4
        decisions = [e for e in pre if e["kind"] == "decision"]
        assert len(decisions) == len(rounds)
        assert decisions[-1]["action"] == "switch" and decisions[-1]["reason"]
        done = pre[-1]
        assert done["kind"] == "succeeded" and done["rounds"] == len(rounds)
        counters = [b.counter for b in heartbeat.beats(gssh(h2, f"docker logs {NAME}"))]
        assert counters[0] > 20 and counters == list(range(counters[0], counters[0] + len(counters)))

        back = migrate("--to", "host1", "--strategy", "stop-and-copy")
        sc = back[-1]
        assert sc["kind"] == "succeeded"
        assert done["freeze_s"] < sc["freeze_s"], (done["freeze_s"], sc["freeze_s"])
        print(f"\npre-copy: {len(rounds)} rounds, freeze {done['freeze_s']:.2f} s, gap {done['app_gap_s']:.2f} s; "
              f"stop-and-copy: freeze {sc['freeze_s']:.2f} s, gap {sc['app_gap_s']:.2f} s")
    finally:
        for h in vm_hosts:
            gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
