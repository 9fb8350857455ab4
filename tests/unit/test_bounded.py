"""`remote.bounded`: the host itself stops a command at its limit (run here with bash,
as sshd would run it with the login shell)."""

from __future__ import annotations

import os
import subprocess
import time

from core import remote


def _sh(command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHELL": "/bin/bash"}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=30)


def test_a_command_inside_its_limit_keeps_its_output_quoting_and_status():
    p = _sh(remote.bounded("printf '%s|' \"a b\" 'c'; echo err >&2; exit 3", 20))
    assert (p.stdout, p.stderr, p.returncode) == ("a b|c|", "err\n", 3)


def test_a_command_past_its_limit_is_stopped_with_timed_out():
    t0 = time.monotonic()
    p = _sh(remote.bounded("sleep 20; echo late", 1))
    assert p.returncode == remote.TIMED_OUT and "late" not in p.stdout
    assert time.monotonic() - t0 < 10


def test_children_in_its_group_are_stopped_too():
    t0 = time.monotonic()
    p = _sh(remote.bounded("sleep 20 & sleep 20 & wait", 1))
    # Had a background sleep survived, it would hold the output open for 20 s.
    assert p.returncode == remote.TIMED_OUT and time.monotonic() - t0 < 10


def test_an_armed_bounded_script_leaves_the_rest_of_the_input_to_the_command():
    p = subprocess.run(["bash", "-c", remote.armed("cat", limit_s=20)], input="go\npayload",
                       capture_output=True, text=True, env={**os.environ, "SHELL": "/bin/bash"})
    assert (p.stdout, p.returncode) == ("payload", 0)
    unfired = subprocess.run(["bash", "-c", remote.armed("echo ran", limit_s=20)], input="",
                             capture_output=True, text=True)
    assert (unfired.stdout, unfired.returncode) == ("", 125)


def test_the_console_waits_a_little_longer_than_the_host_limit():
    for limit in (1, 10, 30, 300, 3600):
        k = remote.kill_after_s(limit)
        assert 1 <= k <= 10
        assert remote.limit_grace_s(limit) > k


def test_the_engines_docker_init_is_found_and_digested_by_the_real_shell(tmp_path):
    """engine_init_digest as a host runs it: an absolute init-path is digested as is; a
    missing one, or an engine no process listens for, exits with its own status."""
    import hashlib
    import pathlib
    import subprocess

    from core import remote

    init = tmp_path / "docker-init"
    init.write_bytes(b"#!/bin/sh\nexit 0\n")
    init.chmod(0o755)
    run = lambda *a: subprocess.run(["sh", "-c", remote.quote(remote.engine_init_digest(*a))],  # noqa: E731
                                    capture_output=True, text=True)  # fmt: skip
    got = run("/nonexistent.sock", str(init))
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == [hashlib.sha256(init.read_bytes()).hexdigest(), str(init)]
    assert run("/nonexistent.sock", str(tmp_path / "none")).returncode == 4
    assert run(str(tmp_path / "no-engine.sock"), "docker-init").returncode == 3
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        exe = pathlib.Path(f"/proc/{sleeper.pid}/exe").resolve()
        me = subprocess.run(["sh", "-c", remote.quote(remote.exe_digest(sleeper.pid))],
                            capture_output=True, text=True)  # fmt: skip
        assert me.stdout.strip() == hashlib.sha256(exe.read_bytes()).hexdigest()
    finally:
        sleeper.kill()
