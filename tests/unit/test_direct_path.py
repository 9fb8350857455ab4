"""The direct path's commands and key lines, run here on local files (no lab needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from core import remote
from core.engine import direct_path
from core.engine.direct_path import DirectPath
from core.engine.transfer import Meter
from core.ssh import CommandError


def _path(**kw) -> DirectPath:
    d = DirectPath(
        migration_id="m-1",
        address="10.0.0.2",
        port=22,
        user="root",
        from_address="10.0.0.1",
        host_key="ssh-ed25519 AAAAC3Nz host",
        keys_file="/root/.ssh/authorized_keys",
    )
    d.src_dir, d.dst_dir = "/var/lib/ferryman/m-1", "/var/lib/ferryman/m-1"
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def test_key_line_allows_the_source_and_the_receiver_only():
    line = direct_path.keys_line(_path(), "ssh-ed25519 AAAAKEY ignored-comment\n")
    assert line == (
        'restrict,from="10.0.0.1",command="/bin/sh /var/lib/ferryman/m-1/direct/receiver" '
        "ssh-ed25519 AAAAKEY ignored-comment ferryman-transfer-m-1"
    )
    with pytest.raises(ValueError):
        direct_path.keys_line(_path(from_address='10.0.0.1",command="sh'), "ssh-ed25519 K")


def test_known_hosts_line_brackets_a_port_other_than_22():
    assert direct_path.known_hosts_line("h", 22, "ssh-ed25519 AAA c") == "h ssh-ed25519 AAA"
    assert direct_path.known_hosts_line("h", 2222, "ssh-ed25519 AAA") == "[h]:2222 ssh-ed25519 AAA"


def test_authorize_then_revoke_leaves_the_admin_lines_as_they_were(tmp_path):
    f = tmp_path / "ssh" / "authorized_keys"
    f.parent.mkdir()
    f.write_text("ssh-ed25519 ADMIN admin@desk")  # no newline at the end
    f.chmod(0o640)
    subprocess.run(remote.authorize_key(str(f), "restrict ssh-ed25519 K ferryman-transfer-m-1"), check=True)
    subprocess.run(remote.authorize_key(str(f), "restrict ssh-ed25519 L ferryman-transfer-m-2"), check=True)
    assert f.read_text().splitlines() == [
        "ssh-ed25519 ADMIN admin@desk",
        "restrict ssh-ed25519 K ferryman-transfer-m-1",
        "restrict ssh-ed25519 L ferryman-transfer-m-2",
    ]
    subprocess.run(remote.revoke_key(str(f), "ferryman-transfer-m-1"), check=True)
    assert f.read_text().splitlines() == [
        "ssh-ed25519 ADMIN admin@desk",
        "restrict ssh-ed25519 L ferryman-transfer-m-2",
    ]
    assert oct(f.stat().st_mode & 0o777) == "0o640"  # same file, same mode
    subprocess.run(remote.revoke_key(str(f), "ferryman-transfer-m-1"), check=True)  # again: nothing
    subprocess.run(remote.revoke_key(str(tmp_path / "none"), "x"), check=True)  # no file: nothing


def test_authorize_makes_a_missing_file_private(tmp_path):
    f = tmp_path / "new" / "authorized_keys"
    subprocess.run(remote.authorize_key(str(f), "k ferryman-transfer-m"), check=True)
    assert f.read_text() == "k ferryman-transfer-m\n"
    assert f.stat().st_mode & 0o077 == 0


def _receive(tmp_path, number: str, stream: bytes) -> subprocess.CompletedProcess:
    rec = tmp_path / "receiver"
    rec.write_text(remote.DIRECT_RECEIVER)
    (tmp_path / "receiver.streams").write_text(f"{tmp_path}/a b\n{tmp_path}/second\n")
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": number}
    return subprocess.run(["/bin/sh", str(rec)], input=stream, env=env, capture_output=True)


def test_receiver_unpacks_only_into_a_listed_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pages-1.img").write_bytes(b"x" * 5000)
    tar = subprocess.run(remote.tar_create(str(src)), capture_output=True, check=True).stdout
    r = _receive(tmp_path, "1", tar)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a b" / "pages-1.img").read_bytes() == b"x" * 5000
    for bad in ("3", "1; touch /tmp/owned", "", "../1", "sh"):
        r = _receive(tmp_path, bad, tar)
        assert r.returncode == 2 and b"ferryman:" in r.stderr, bad
    assert not (tmp_path / "second").exists()


def test_send_command_reports_bytes_and_keeps_its_own_errors(tmp_path):
    """The send pipeline as the source runs it, with `cat > file` in place of ssh: dd's
    count reaches the meter, and a failing end is reported without dd's lines."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(3 << 20))
    out = tmp_path / "out.tar"
    ok = remote.direct_send(str(src), ["sh", "-c", f"cat > {out}"])
    bad = remote.direct_send(str(src), ["sh", "-c", "cat >/dev/null; echo 'Permission denied (publickey)' >&2; exit 255"])

    async def go(cmd: str) -> tuple[int, int]:
        p = await asyncio.create_subprocess_exec(
            "bash", "-c", cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        meter = Meter(lambda *a: None)
        n = await direct_path.send("host1", cmd, _Proc(p), meter)
        return n, meter.total

    n, total = asyncio.run(go(ok))
    assert n == total == out.stat().st_size > 3 << 20
    with pytest.raises(CommandError) as e:
        asyncio.run(go(bad))
    assert "Permission denied (publickey)" in str(e.value)
    assert "copied" not in str(e.value)


class _Proc:
    """An asyncio subprocess with the face of asyncssh's process (stderr, wait, kill)."""

    def __init__(self, p: asyncio.subprocess.Process) -> None:
        self._p = p
        self.stderr = p.stderr

    async def wait(self):
        await self._p.stdout.read()
        rc = await self._p.wait()
        return type("R", (), {"exit_status": rc, "exit_signal": None})()

    def kill(self) -> None:
        self._p.kill()
