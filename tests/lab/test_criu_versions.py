"""Debian 13's own CRIU (4.1.1) on both namespace hosts: restores take the copy route
(Docker copies the whole image: CRIU < 4.2 cannot read it in place, core/engine/restore.py).
A move goes through, and a move whose restore fails on the target rolls back by
restoring the source from its own checkpoint the same way: one copy, state intact."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core import journal
from lab.layout import WORKLOAD
from tests.lab import faults
from tests.lab.conftest import (
    counters_continue,
    exists,
    ferryman,
    heartbeats,
    move_in_process,
    running,
)

pytestmark = pytest.mark.lab

CRIU_41 = Path("/opt/ferryman/criu-4.1/criu")


@pytest.fixture()
def debian13_criu(lab_hosts, workload_on_host1):
    assert CRIU_41.exists(), "Debian 13's CRIU is missing: lab/setup/install-deps.sh installs it"
    for h in lab_hosts:
        (h.bin_dir / "criu").symlink_to(CRIU_41)
    try:
        yield lab_hosts
    finally:
        for h in lab_hosts:
            (h.bin_dir / "criu").unlink(missing_ok=True)


def checkpoints_left(h) -> list[str]:
    return sorted(str(p) for p in h.data_root.glob("containers/*/checkpoints/*"))


def test_debian_13_criu_moves_by_copy_and_rolls_back_by_copy(debian13_criu):
    h1, h2 = debian13_criu
    chk = ferryman("check", "host1", "host2")
    assert "CRIU 4.1.1" in chk.stdout and "copy the whole image" in chk.stdout, chk.stdout

    # A restore that fails on the target: the source comes back from its checkpoint,
    # which CRIU 4.1.1 on host1 also reads from Docker's copy.
    before = heartbeats(h1, WORKLOAD)[-1][0]

    def runc_fails(_m, _phase):
        faults.FailingTool("target runc fails", h2, "runc").inject()

    try:
        mid, hooked = asyncio.run(move_in_process({"restore"}, runc_fails))
    finally:
        (h2.bin_dir / "runc").unlink(missing_ok=True)
    assert hooked == {"restore"}
    e = next(x for x in journal.load_all() if x.migration_id == mid)
    assert e.result == "rolled back" and e.running_on == "host1", (e.result, e.cause)
    assert running(h1, WORKLOAD) and not exists(h2, WORKLOAD)
    assert counters_continue(h1, before), "the source did not come back from its checkpoint"
    assert "restarting it instead" not in json.dumps(e.events)  # no cold start

    # And the move itself.
    before = heartbeats(h1, WORKLOAD)[-1][0]
    p = ferryman("migrate", WORKLOAD, "--to", "host2", "--strategy", "stop-and-copy", "--json")
    evs = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert p.returncode == 0, p.stderr + "\n".join(json.dumps(x) for x in evs[-10:])
    assert any("Docker copies the whole image" in x.get("text", "") for x in evs)
    assert running(h2, WORKLOAD) and not exists(h1, WORKLOAD)
    assert counters_continue(h2, before)
    for h in debian13_criu:
        assert checkpoints_left(h) == [], h.name
    done = evs[-1]
    print(f"\nCRIU 4.1.1, copy route, 64 MiB: freeze {done['freeze_s'] * 1000:.0f} ms "
          f"(restore {done['restore_s'] * 1000:.0f} ms)")
