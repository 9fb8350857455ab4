"""The source's check of who connects to the dump's page-server port, run on this
machine: real sockets held by real processes, reading as CRIU's service or not, of root
or not, in this PID namespace or another."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from core import remote

# The system's Python, run as itself (a version manager's shim would re-exec it and lose
# the command line the test gives it); readable by any user.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
# Holds a connection to the port in argv[1]; prints its own end's port.
HOLD = """import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1], flush=True)
time.sleep(30)
"""


@pytest.fixture()
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s
    s.close()


@pytest.fixture()
def checker():
    p = subprocess.Popen(remote.peer_checker(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    yield p
    p.kill()
    p.wait()


@pytest.fixture()
def place():
    """A folder any user may read (another user's process runs the holder from it)."""
    d = tempfile.mkdtemp(prefix="fm-peer-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def _connect(
    listener, place: Path, *, criu: bool, prefix: tuple[str, ...] = (), title: str = "",
    under_runc: bool = False,
):  # fmt: skip
    """A process that connects to the listener and holds the socket, and its local port.
    With `criu`, its command line reads as runc's CRIU service does: `.../criu swrk ...`;
    `under_runc`: a plain command line, but started by a process named runc (CRIU 4.1 run
    through a loader shows only the loader's name)."""
    (place / "swrk").write_text(HOLD)
    port = str(listener.getsockname()[1])
    name = shlex.quote(title or f"{place}/criu") if criu else "python3"
    script = f"cd {place} && exec -a {name} {PYTHON} swrk {port}"
    shell = "bash"
    if under_runc:
        shutil.copy(shutil.which("bash") or "/bin/bash", place / "runc")
        shell, script = str(place / "runc"), f"cd {place} && {PYTHON} swrk {port}; true"
    p = subprocess.Popen([*prefix, shell, "-c", script], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)  # fmt: skip
    assert p.stdout is not None
    got = int(p.stdout.readline())
    p.accepted = listener.accept()[0]  # type: ignore[attr-defined]  # kept open: established
    return p, got


def _end(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGKILL)  # the process and, under unshare, its child
    p.wait()
    p.accepted.close()  # type: ignore[attr-defined]


def _answer(listener, checker, peer: int) -> str:
    checker.stdin.write(f"{peer} {listener.getsockname()[1]}\n")
    checker.stdin.flush()
    return checker.stdout.readline().strip()


@pytest.mark.parametrize("title", ["", "criu: dump"])
def test_criu_of_root_here_is_taken(listener, checker, place, title):
    """As runc starts it (`.../criu swrk 3`), and once CRIU has set its title."""
    if os.geteuid() != 0:
        pytest.skip("the check passes root's CRIU only: run as root (CI does)")
    p, port = _connect(listener, place, criu=True, title=title)
    try:
        assert _answer(listener, checker, port) == f"ok {p.pid}"
    finally:
        _end(p)


def test_a_child_of_runc_is_taken(listener, checker, place):
    if os.geteuid() != 0:
        pytest.skip("the check passes root's CRIU only: run as root (CI does)")
    p, port = _connect(listener, place, criu=False, under_runc=True)
    try:
        assert _answer(listener, checker, port).startswith("ok ")
    finally:
        _end(p)


def test_another_process_is_turned_away(listener, checker, place):
    p, port = _connect(listener, place, criu=False)
    try:
        assert _answer(listener, checker, port) == f"no: process {p.pid} is not CRIU's service"
    finally:
        _end(p)


def test_a_port_nobody_connected_from(listener, checker):
    assert _answer(listener, checker, 1) == "no connection from port 1"


def test_criu_of_another_user_is_turned_away(listener, checker, place):
    if os.geteuid() != 0:
        pytest.skip("running a process as another user needs root")
    as_nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    p, port = _connect(listener, place, criu=True, prefix=as_nobody)
    try:
        assert _answer(listener, checker, port) == "no: CRIU of uid 65534"
    finally:
        _end(p)


def test_criu_in_another_pid_namespace_is_turned_away(listener, checker, place):
    """As a `--network host` container's root would be."""
    if os.geteuid() != 0:
        pytest.skip("a new PID namespace needs root")
    in_own_ns = ("unshare", "--pid", "--fork", "--mount-proc")
    p, port = _connect(listener, place, criu=True, prefix=in_own_ns)
    try:
        said = _answer(listener, checker, port)
        assert said == "no: a CRIU in another PID namespace (a container's)"
    finally:
        _end(p)
