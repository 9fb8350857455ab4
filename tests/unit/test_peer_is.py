"""`remote.peer_is`: a loopback connection is relayed only when the process we started
holds it (checked here on real sockets of this machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from core import remote


def _check(pidfile: str, peer_port: int, local_port: int) -> int:
    return subprocess.run(remote.peer_is(pidfile, peer_port, local_port)).returncode


def test_the_connecting_process_is_told_apart_from_another(tmp_path):
    ls = socket.create_server(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    mine = socket.create_connection(("127.0.0.1", port))  # held by this process
    other = subprocess.Popen(  # another local process connected to the same listener
        [sys.executable, "-c", "import socket,sys,time; s=socket.create_connection(('127.0.0.1',"
         f"{port})); print(s.getsockname()[1], flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert other.stdout is not None
        other_port = int(other.stdout.readline())
        me = tmp_path / "me.pid"
        me.write_text(str(os.getpid()))
        assert _check(str(me), mine.getsockname()[1], port) == 0
        assert _check(str(me), other_port, port) != 0
        them = tmp_path / "them.pid"
        them.write_text(str(other.pid))
        assert _check(str(them), other_port, port) == 0
        assert _check(str(them), mine.getsockname()[1], port) != 0
        assert _check(str(tmp_path / "missing.pid"), other_port, port) != 0
        assert _check(str(me), mine.getsockname()[1], port + 1 if port < 65535 else 1) != 0
    finally:
        other.kill()
        mine.close()
        ls.close()
