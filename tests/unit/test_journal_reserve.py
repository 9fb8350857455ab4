"""The journal keeps room for itself while a migration is unfinished (core/journal.py)."""

from __future__ import annotations

import errno

import pytest

from core import journal


def _entry(result: str = "running") -> journal.JournalEntry:
    return journal.JournalEntry(
        migration_id="m1", container="web", source="a", target="b",
        strategy="stop-and-copy", started=1.0, result=result,
    )


def test_an_unfinished_entry_keeps_a_reserve_and_a_final_one_lets_it_go(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    e = _entry()
    e.save()
    assert e.reserve_path.stat().st_size == journal.RESERVE_BYTES
    assert [x.migration_id for x in journal.load_all()] == ["m1"]  # not read as an entry
    e.result = "succeeded"
    e.save()
    assert not e.reserve_path.exists()


def test_a_full_disk_gives_the_reserve_up_and_the_entry_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    e = _entry()
    e.save()
    real = journal.JournalEntry._write
    calls = []

    def full_once(self):
        calls.append(self.reserve_path.exists())
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self)

    monkeypatch.setattr(journal.JournalEntry, "_write", full_once)
    e.result = "succeeded"
    e.save()
    assert calls == [True, False]  # the second try came after the reserve was given up
    assert journal.load_all()[0].result == "succeeded"


def test_a_full_disk_without_a_reserve_is_the_callers_to_say(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal.JournalEntry, "_write", full)
    with pytest.raises(OSError):
        _entry().save()
