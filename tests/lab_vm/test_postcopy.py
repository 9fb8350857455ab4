"""Post-copy on the VM lab (Debian's kernel, where lazy pages work): the container moves
through `docker start --checkpoint` with a lazy restore and its memory follows; nothing
listens on the network meanwhile; and killing the source's page server mid-lazy-phase
leaves the container running on exactly one host (the source, from its frozen copy)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.engine import heartbeat
from lab import vm
from tests.lab_vm.conftest import gssh

pytestmark = pytest.mark.vmlab

NAME = "pc-wl"


def migrate(
    to: str, state_dir: Path, on_lazy: Callable[[], object] | None = None
) -> tuple[int, list[dict], object]:
    """`ferryman migrate NAME --to TO --strategy post-copy --json`; `on_lazy` runs as the
    lazy phase starts, and what it returns is handed back."""
    env = {**os.environ, "FERRYMAN_STATE_DIR": str(state_dir)}
    argv = [sys.executable, "-m", "ferryman.cli", "--hosts", str(vm.HOSTS_FILE), "migrate", NAME]
    argv += ["--to", to, "--strategy", "post-copy", "--json"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None
    evs, seen = [], None
    deadline = time.time() + 240
    for line in p.stdout:
        if not line.startswith("{"):
            continue
        e = json.loads(line)
        evs.append(e)
        if e["kind"] == "phase_started" and e["phase"] == "lazy" and on_lazy is not None:
            seen = on_lazy()
        assert time.time() < deadline, "the migration takes too long"
    rc = p.wait(timeout=60)
    if rc not in (0, 1):
        raise AssertionError(p.stderr.read() if p.stderr else rc)
    return rc, evs, seen


def listeners(h: vm.VmHost) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket in the guest."""
    out = gssh(h, "ss -Htln")
    found = []
    for line in out.splitlines():
        local = line.split()[3]
        addr, _, port = local.rpartition(":")
        found.append((addr.strip("[]"), int(port)))
    return found


def reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def beats(h: vm.VmHost) -> list[int]:
    return [b.counter for b in heartbeat.beats(gssh(h, f"docker logs {NAME}"))]


def consecutive(c: list[int]) -> bool:
    return bool(c) and c == list(range(c[0], c[0] + len(c)))


@pytest.fixture()
def small_workload(vm_hosts):
    h1, h2 = vm_hosts
    for h in vm_hosts:
        gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
    # 32 MiB, a quarter MiB/s dirtied, a heartbeat every 10 ms.
    gssh(h1, f"docker run -d --name {NAME} ferryman-lab/workload:1 /workload 32 0.25 10")
    deadline = time.time() + 120
    while len(heartbeat.beats(gssh(h1, f"docker logs {NAME}"))) < 20:
        assert time.time() < deadline, "the workload does not beat"
        time.sleep(1)
    yield h1, h2
    for h in vm_hosts:
        gssh(h, f"docker rm -f {NAME} >/dev/null 2>&1; true")


def test_post_copy_moves_then_a_killed_page_server_brings_it_back(small_workload, tmp_path):
    h1, h2 = small_workload

    def probe() -> dict:
        seen = {h.name: listeners(h) for h in (h1, h2)}
        open_to_lab = [
            (h.name, port)
            for h in (h1, h2)
            for addr, port in seen[h.name]
            if port != 22 and reachable(h.address, port)
        ]
        return {"listeners": seen, "open": open_to_lab}

    # 1. host1 → host2, post-copy.
    rc, evs, seen = migrate("host2", tmp_path, probe)
    kinds = [e["kind"] for e in evs]
    assert rc == 0, json.dumps(evs[-12:], indent=1)
    phases = [e["phase"] for e in evs if e["kind"] == "phase_started"]
    assert phases.index("restore") < phases.index("lazy") < phases.index("verify")
    assert evs[0]["strategy"] == "post-copy"
    freeze = next(e for e in evs if e["kind"] == "freeze_ended")
    assert freeze["where"] == "host2" and 0 < freeze["total_s"] < 60
    assert freeze["dump_s"] < freeze["total_s"]
    lazy = [e for e in evs if e["kind"] == "lazy"]
    assert lazy and lazy[-1]["done"] and not any(e["done"] for e in lazy[:-1])
    assert lazy[-1]["pages_on_fault"] + lazy[-1]["pages_prefetched"] >= 32 * 256
    assert lazy[-1]["total_bytes"] >= 32 << 20
    # The lazy phase ends before the commit; the result follows.
    assert kinds.index("succeeded") > max(i for i, k in enumerate(kinds) if k == "lazy")
    done = evs[-1]
    assert done["kind"] == "succeeded" and done["app_gap_s"] is not None
    # Nothing but sshd was reachable from this machine (another host on the lab bridge)
    # while the memory moved; the page link's own listener is on loopback.
    assert seen is not None and seen["open"] == [], seen
    others = [(a, p) for ls in seen["listeners"].values() for a, p in ls if p != 22]
    assert others and all(a in ("127.0.0.1", "::1") for a, _ in others), seen
    after = beats(h2)
    assert consecutive(after) and after[0] > 20, after[:5]
    assert gssh(h1, f"docker ps -aq -f name=^{NAME}$") == ""
    print(
        f"\npost-copy: freeze {freeze['total_s']:.2f} s (dump {freeze['dump_s']:.2f}, transfer "
        f"{freeze['transfer_s']:.2f}, restore {freeze['restore_s']:.2f}), app gap "
        f"{done['app_gap_s']:.2f} s, lazy {lazy[-1]['total_bytes'] / 2**20:.1f} MiB "
        f"({lazy[-1]['pages_on_fault']} pages on fault, {lazy[-1]['pages_prefetched']} prefetched)"
    )

    # 2. host2 → host1, and the source's page server (the serving dump) dies mid-way.
    before = beats(h2)[-1]

    def kill_page_server() -> str:
        time.sleep(1)
        return gssh(
            h2,
            'rp=$(pgrep -x runc | head -1); [ -n "$rp" ] && pkill -KILL -P "$rp" && echo killed',
            check=False,
        )

    rc, evs, killed = migrate("host1", tmp_path, kill_page_server)
    assert killed == "killed"
    assert rc == 1, json.dumps(evs[-12:], indent=1)
    failed = evs[-1]
    assert failed["kind"] == "failed" and failed["phase"] == "lazy", failed
    assert failed["running_on"] == "host2"
    back = next(e for e in evs if e["kind"] == "rollback_finished")
    assert back["ok"] and back["running_on"] == "host2"
    # Exactly one copy: on the source, with its memory (the counter goes on, no restart).
    assert gssh(h2, f"docker inspect -f '{{{{.State.Running}}}}' {NAME}") == "true"
    assert gssh(h1, f"docker ps -aq -f name=^{NAME}$") == ""
    time.sleep(1)
    c = beats(h2)
    assert consecutive(c) and c[-1] > before, (before, c[-3:])
    # The journal says what happened.
    mid = evs[0]["migration_id"]
    entry = json.loads((tmp_path / "migrations" / f"{mid}.json").read_text())
    assert entry["result"] == "rolled back"
    texts = " ".join(e.get("text", "") for e in entry["events"])
    assert re.search(r"runs on host2 again, from its frozen copy", texts)
    assert any(
        e.get("kind") == "rollback_finished" and e.get("running_on") == "host2"
        for e in entry["events"]
    )
