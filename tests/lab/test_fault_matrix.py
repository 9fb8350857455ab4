"""The fault matrix: every fault at the start of every phase of a stop-and-copy move.

For each row the workload (64 MiB, dirtying 4 MiB/s, a heartbeat counter every 10 ms)
starts on host1 and is moved to host2; the fault is injected by real means the moment
the phase starts (the engine runs in this process, so it waits while the fault goes in).
Afterwards, once the fault is healed and, when the engine had to leave it in doubt,
`ferryman recover --yes` has run, the invariant must hold:

- exactly one copy of the workload runs, on host1 or host2, and the other host has none;
- its state is intact: the heartbeat counter goes on from where it was;
- no checkpoint image and no migration lock is left on either host;
- the journal says how it ended, and why when it did not simply succeed.

The table of rows is printed at the end of the session (tests/lab/conftest.py).
The rows that need soft-dirty (a pre-copy round) or lazy pages run on the VM lab
(tests/lab_vm_faults/test_fault_rows.py).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from core import journal
from core.engine import criu_conf
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

PHASES = ["prepare", "checkpoint", "transfer", "restore", "verify", "commit"]
FAULTS = [
    "source SSH drops",
    "target SSH drops",
    "target sshd down",
    "target disk full",
    "source criu fails",
    "target criu fails",
    "source runc fails",
    "target runc fails",
    "target dockerd restarts",
    "console disk full",
    "user aborts",
    "console killed",
    "console SIGTERM",
    "task cancelled",
    "task cancelled twice",
]
IN_PROCESS = ("user aborts", "task cancelled", "task cancelled twice")
SIGNALLED = {"console killed": signal.SIGKILL, "console SIGTERM": signal.SIGTERM}
ROWS: list[dict] = []


def criu_conf_left() -> list[str]:
    """ferryman's runc.conf or a saved admin file left in /etc/criu (shared by the
    namespace lab's hosts)."""
    left = []
    conf = Path(criu_conf.CONF)
    if conf.exists() and conf.read_text().startswith(criu_conf.MARKER):
        left.append(conf.name)
    if Path(criu_conf.SAVED).exists():
        left.append(Path(criu_conf.SAVED).name)
    return left


def _entry(mid: str) -> journal.JournalEntry:
    return next(e for e in journal.load_all() if e.migration_id == mid)


@pytest.fixture(autouse=True)
def fresh_images_folders(lab_hosts):
    """Each row starts with empty image folders (a failed row must not fail the next)."""
    for h in lab_hosts:
        for p in (h.state / "images").glob("*"):
            subprocess.run(["rm", "-rf", str(p)], check=True)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("fault", FAULTS)
def test_fault(lab_hosts, workload_on_host1, fault, phase, monkeypatch, tmp_path, request):
    h1, h2 = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    f = None if fault in (*IN_PROCESS, *SIGNALLED) else faults.make(fault, h1, h2)
    if isinstance(f, faults.DiskFull):
        f.prepare()
    if isinstance(f, faults.ConsoleDiskFull):
        monkeypatch.setenv("FERRYMAN_STATE_DIR", str(f.prepare(tmp_path)))
        request.addfinalizer(f.release)
    leftovers: list[str] = []
    try:
        if fault in SIGNALLED:
            mid = faults.move_and_signal_console(phase, SIGNALLED[fault])
        else:
            def inject(m, at):
                if fault == "user aborts":
                    m.abort()
                elif fault.startswith("task cancelled"):
                    m.task.cancel()  # as the console's quit or a loop shutting down does
                else:
                    f.inject()

            hook_at = {phase, "rollback"} if fault == "task cancelled twice" else {phase}
            mid, hooked = asyncio.run(move_in_process(hook_at, inject))
            assert hooked, f"the migration ended before {phase}: {_entry(mid).cause}"
        if isinstance(f, faults.DiskFull):
            leftovers = f.leftovers()
    finally:
        if f is not None:
            f.heal()
    judge(lab_hosts, fault, phase, mid, before, leftovers)


def judge(lab_hosts, fault: str, phase: str, mid: str, before: int, leftovers=()) -> None:
    """Run `ferryman recover --yes` when the engine left the move in doubt, add the row to
    the table, and check the invariant: one copy, its state intact, nothing left."""
    h1, h2 = lab_hosts
    recovered_by = ""
    e = _entry(mid)
    if mid in {u.migration_id for u in journal.unfinished()}:
        r = ferryman("recover", "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert mid in r.stdout
        recovered_by = "recover"
        e = _entry(mid)
        assert "nothing to recover" in ferryman("recover", "--yes").stdout
    here = [h for h in lab_hosts if running(h, WORKLOAD)]
    row = {
        "fault": fault,
        "phase": phase,
        "outcome": e.result + (" (by `ferryman recover`)" if recovered_by else ""),
        "runs on": ",".join(h.name for h in here) or "nowhere",
        "cause": e.cause.splitlines()[0][:70] if e.cause else "",
        "held": False,
    }
    ROWS.append(row)
    assert len(here) == 1, f"{fault} at {phase}: the workload runs on {row['runs on']}"
    (home,) = here
    bug = [x.get("text", "") for x in e.events if "Traceback" in str(x.get("text", ""))]
    assert not bug, "an internal error (a bug, even if the invariant held):\n" + "\n".join(bug)
    other = h2 if home is h1 else h1
    assert not exists(other, WORKLOAD), f"a copy is left on {other.name}"
    assert counters_continue(home, before), "the workload's state did not continue"
    assert e.result in ("succeeded", "rolled back", "recovered"), e.result
    assert e.running_on == home.name
    if e.result != "succeeded":
        assert e.cause, "the journal does not say why"
    assert not leftovers, f"left in the full images folder: {leftovers}"
    conf = criu_conf_left()
    assert not conf, f"left in /etc/criu: {conf}"
    for h in lab_hosts:
        images = h.state / "images"
        assert not list(images.glob(f"{mid}*")), f"checkpoint images left on {h.name}"
        held = [p for p in (images / "locks").glob("*/owner") if mid in p.read_text()]
        assert not held, f"migration lock left on {h.name}"
    row["held"] = True
