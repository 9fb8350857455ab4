"""`ferryman history`: a header, aligned columns, filters, the console's figures, and a
reader that goes away (`| head`) without a traceback."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.replay import Recording
from ferryman.cli import main
from tui.demo import PRECOPY, RECORDINGS

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def journal(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    d = tmp_path / "migrations"
    d.mkdir()
    entries = Recording.load(PRECOPY).history + Recording.load(RECORDINGS / "lab-stop-and-copy.json").history
    for e in entries:
        (d / f"{e.migration_id}.json").write_text(json.dumps(e.to_dict()))
    return d


def run(capsys, *argv: str) -> list[str]:
    main(["history", *argv])
    return capsys.readouterr().out.rstrip("\n").splitlines()


def test_header_aligned_columns_and_the_consoles_figures(journal, capsys):
    out = run(capsys)
    assert out[0].split()[:3] == ["STARTED", "(UTC)", "ID"]
    assert len(out) == 4
    col = out[0].index("STRATEGY")
    for line in out[1:]:  # the columns do not shift
        assert line[col:].split()[0] in ("stop-and-copy", "pre-copy"), out
        assert line[col - 2 : col] == "  "
    lab = next(line for line in out if "workload" in line)
    assert "4.86 s" in lab and "66.8 MiB" in lab and "1276 ms" in lab
    assert " host2 " in lab  # where it runs
    failed = next(line for line in out if "web-1" in line)
    assert "rolled back" in failed or "failed" in failed
    assert "host1" in failed.split("failed", 1)[1]


def test_filters(journal, capsys):
    assert len(run(capsys, "-n", "1")) == 2
    only = run(capsys, "--container", "web-1")
    assert len(only) == 2 and "web-1" in only[1]
    assert len(run(capsys, "--result", "succeeded")) == 3
    assert len(run(capsys, "--host", "host3")) == 1  # no match: one line that says so
    assert "no migration matches" in run(capsys, "--host", "host3")[0]
    main(["history", "--json", "--container", "workload"])
    assert [e["container"] for e in json.loads(capsys.readouterr().out)] == ["workload"]


def test_a_reader_that_goes_away_ends_it_quietly(tmp_path):
    d = tmp_path / "migrations"
    d.mkdir()
    base = Recording.load(PRECOPY).history[0]
    for i in range(1500):
        e = dataclasses.replace(base, migration_id=f"m-{i:05d}", started=base.started + i, events=[])
        (d / f"{e.migration_id}.json").write_text(json.dumps(e.to_dict()))
    env = {**os.environ, "FERRYMAN_STATE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        ["bash", "-c", f"'{sys.executable}' -m ferryman.cli history | head -n 3"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert len(r.stdout.splitlines()) == 3
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
