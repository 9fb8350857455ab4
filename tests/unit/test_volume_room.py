"""The volume-space line of preflight, from measured bytes, and the remote commands
that measure them run on this machine's own files."""

from __future__ import annotations

import os
import subprocess

from core import remote, volume_room
from core.models import CheckStatus


def test_refused_when_the_volume_does_not_fit_with_its_margin():
    r = volume_room.verdict(64 << 20, 100 << 20, ["data"], "host2", "/var/lib/docker/volumes")
    assert r.status is CheckStatus.FAIL
    assert "data" in r.reason and "host2" in r.reason and "64 MiB" in r.reason
    assert "free space in /var/lib/docker/volumes on host2" in r.fix


def test_passes_with_room_and_warns_when_unmeasured():
    ok = volume_room.verdict(10 << 20, 1 << 30, ["a", "b"], "host2", "/d/volumes")
    assert ok.status is CheckStatus.PASS and "a, b" in ok.reason
    unknown = volume_room.verdict(None, 1 << 30, ["a"], "host2", "/d/volumes")
    assert unknown.status is CheckStatus.WARN and "df -h /d/volumes" in unknown.fix


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def test_the_commands_measure_real_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_bytes(os.urandom(3 << 20))
    (b / "g").write_bytes(os.urandom(1 << 20))
    used = int(_run(remote.bytes_used([str(a), str(b)])))
    assert (4 << 20) <= used < (5 << 20)
    st = os.statvfs(tmp_path)
    free = int(_run(remote.bytes_free(str(tmp_path / "not" / "made" / "yet"))))
    assert abs(free - st.f_bavail * st.f_frsize) < (64 << 20)
