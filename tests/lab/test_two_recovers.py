"""Two `ferryman recover --yes` at once, after a console killed in the middle of the
restore: one carries out the plan, the other is told (busy, already recovered, or nothing
left); exactly one copy runs, its state intact, nothing left behind."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from core import journal
from lab.layout import HOSTS_FILE, WORKLOAD
from tests.lab import faults
from tests.lab.conftest import counters_continue, exists, heartbeats, running

pytestmark = pytest.mark.lab


def test_two_recovers_at_once_act_once(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    mid = faults.move_and_signal_console("restore", signal.SIGKILL)
    assert mid in {e.migration_id for e in journal.unfinished()}

    argv = [sys.executable, "-m", "ferryman.cli", "--hosts", str(HOSTS_FILE), "recover", "--yes"]
    ps = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in ps]
    print("\n---\n".join(outs))
    acted = [o for o in outs if "  done: " in o and "nothing done" not in o]
    told = [
        o
        for o in outs
        if "another `ferryman recover`" in o
        or "nothing done" in o
        or "nothing to recover" in o
    ]
    assert len(acted) == 1 and len(told) == 1, outs

    here = [h for h in lab_hosts if running(h, WORKLOAD)]
    assert len(here) == 1, [h.name for h in here]
    (home,) = here
    other = h2 if home is h1 else h1
    assert not exists(other, WORKLOAD)
    assert counters_continue(home, before)
    e = next(x for x in journal.load_all() if x.migration_id == mid)
    assert e.result == "recovered" and e.running_on == home.name
    assert "nothing to recover" in subprocess.run(argv, capture_output=True, text=True).stdout
    for h in lab_hosts:
        images = h.state / "images"
        assert not list(images.glob(f"{mid}*")), f"checkpoint images left on {h.name}"
        assert not [p for p in (images / "locks").glob("*/owner") if mid in p.read_text()]
