"""One recovery at a time on a console machine (core/engine/recovery.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from core import journal
from core.engine import recovery


def test_a_second_recovery_is_told_and_waits_for_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    with recovery.one_recovery_at_a_time():
        with (
            pytest.raises(recovery.RecoveryBusy, match="another `ferryman recover`"),
            recovery.one_recovery_at_a_time(),
        ):
            pass
        # another process too (flock is per open file, across processes)
        probe = (
            "from core.engine import recovery\n"
            "try:\n"
            "    with recovery.one_recovery_at_a_time(): print('got it')\n"
            "except recovery.RecoveryBusy: print('busy')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "busy"
    with recovery.one_recovery_at_a_time():  # released
        pass


def test_an_entry_another_recovery_ended_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    e = journal.JournalEntry(
        migration_id="m1", container="web", source="a", target="b", strategy="stop-and-copy",
        started=1.0, result="recovered", running_on="a",
    )
    e.save()
    said: list[str] = []
    # No fleet at all: nothing may be looked at or done on a host.
    where = asyncio.run(recovery.apply(None, e, recovery.Plan("resume", "x"), said.append))  # type: ignore[arg-type]
    assert where == "a"
    assert said == ["already recovered (by another recovery): nothing done"]
