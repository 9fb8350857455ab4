"""Debian 12's own CRIU (3.17.1) on both guests: moves take the copy route (Docker copies
the whole image, pre-copy rounds included, since CRIU < 4.2 cannot read it in place), and
the workload goes on beating, one copy, nothing left behind."""

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

NAME = "dcwl"


def ferryman(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferryman.cli", "--hosts", str(vm.HOSTS_FILE), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def migrate(*args: str) -> list[dict]:
    p = ferryman("migrate", NAME, *args, "--json")
    evs = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert p.returncode == 0, p.stderr + "\n".join(json.dumps(e) for e in evs[-15:])
    return evs


@pytest.fixture()
def debian_criu(vm_hosts):
    vm.use_criu(vm_hosts, "3.17", log=lambda _m: None)
    try:
        yield vm_hosts
    finally:
        vm.use_criu(vm_hosts, "4.2", log=lambda _m: None)
        for h in vm_hosts:
            gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")


def running_on(hosts) -> list[str]:
    return [
        h.name
        for h in hosts
        if gssh(h, f"docker inspect -f '{{{{.State.Running}}}}' {NAME}", check=False) == "true"
    ]


def left_behind(h: vm.VmHost) -> str:
    """Checkpoint folders, runc.conf: what a finished move must not leave on a guest."""
    return gssh(
        h,
        f"ls -d {vm.GUEST_DATA_ROOT}/containers/*/checkpoints/* /etc/criu/runc.conf "
        "2>/dev/null; true",
    )


def test_debian_12_criu_moves_by_copy_both_ways(debian_criu):
    h1, h2 = debian_criu
    assert gssh(h1, f"PATH={vm.GUEST_BIN_DIR}:$PATH criu --version | head -1") == "Version: 3.17.1"
    chk = ferryman("check", "host1", "host2", timeout=300)
    assert "CRIU 3.17.1" in chk.stdout and "copy the whole image" in chk.stdout, chk.stdout
    assert "post-copy is ruled out with CRIU 3.17.1" in chk.stdout

    for h in debian_criu:
        gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
    # 16 MiB, a quarter MiB/s dirtied: small enough for TCG, slow enough to converge.
    gssh(h1, f"docker run -d --name {NAME} ferryman-lab/workload:1 /workload 16 0.25 10")
    deadline = time.time() + 180
    while len(heartbeat.beats(gssh(h1, f"docker logs {NAME}"))) < 10:
        assert time.time() < deadline, "the workload does not beat"
        time.sleep(1)

    there = migrate("--to", "host2", "--strategy", "stop-and-copy")
    assert there[-1]["kind"] == "succeeded", there[-1]
    warned = [e["text"] for e in there if e["kind"] == "warning"]
    assert any("Docker copies the whole image" in w for w in warned), warned
    assert running_on(debian_criu) == ["host2"]
    counters = [b.counter for b in heartbeat.beats(gssh(h2, f"docker logs {NAME}"))]
    assert counters[0] >= 10 and counters == list(range(counters[0], counters[0] + len(counters)))
    assert left_behind(h1) == "" and left_behind(h2) == ""

    back = migrate("--to", "host1", "--strategy", "pre-copy", "--downtime-budget", "300ms")
    rounds = [e for e in back if e["kind"] == "round"]
    assert back[-1]["kind"] == "succeeded", back[-1]
    assert len(rounds) >= 2, rounds
    # The final dump wrote less than the whole memory: the restore needed the rounds,
    # which reached CRIU inside Docker's copy through the rewritten parent links.
    assert back[-1]["rounds"] == len(rounds)
    assert rounds[-1]["pages_written"] < rounds[0]["pages_written"]
    assert running_on(debian_criu) == ["host1"]
    after = [b.counter for b in heartbeat.beats(gssh(h1, f"docker logs {NAME}"))]
    assert after[0] >= counters[0] and after == list(range(after[0], after[0] + len(after)))
    assert left_behind(h1) == "" and left_behind(h2) == ""
    print(
        f"\nCRIU 3.17.1, copy route: stop-and-copy freeze {there[-1]['freeze_s']:.1f} s; "
        f"pre-copy {len(rounds)} rounds, freeze {back[-1]['freeze_s']:.1f} s"
    )
