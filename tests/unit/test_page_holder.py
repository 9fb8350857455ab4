"""The source's page holder (core/engine/page_holder.py), run here on loopback sockets:
a console side that ends before the target's close must not end CRIU's connection;
after the close, the end is passed on."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time

from core.engine.page_holder import HOLDER
from core.engine.postcopy import PS_IOV_CLOSE, PSI_SIZE


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(tmp_path):
    criu = socket.socket()
    criu.bind(("127.0.0.1", 0))
    criu.listen(1)
    hold = free_port()
    pidfile = tmp_path / "holder.pid"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(hold), str(criu.getsockname()[1]), str(pidfile)])
    for _ in range(100):
        if pidfile.exists():
            break
        time.sleep(0.05)
    console = socket.create_connection(("127.0.0.1", hold))
    server, _ = criu.accept()
    server.settimeout(1.0)
    return p, console, server


def request(cmd: int) -> bytes:
    return struct.pack("<I", cmd).ljust(PSI_SIZE, b"\0")


def test_a_cut_console_side_keeps_criu_connection_open(tmp_path):
    p, console, server = start(tmp_path)
    try:
        console.sendall(request(0x1) + b"x" * 0)
        assert server.recv(64) == request(0x1)
        server.sendall(b"page")
        assert console.recv(16) == b"page"
        console.close()  # the SSH connection to the source was cut
        try:
            got = server.recv(64)
        except TimeoutError:
            got = None
        assert got is None, "CRIU's connection saw an end: it would kill the frozen tasks"
        assert p.poll() is None
        server.close()  # the rollback stops the dump: the holder goes too
        assert p.wait(timeout=5) == 0
    finally:
        p.kill()


def test_after_the_targets_close_the_end_is_passed_on(tmp_path):
    p, console, server = start(tmp_path)
    try:
        console.sendall(request(PS_IOV_CLOSE))
        assert server.recv(64) == request(PS_IOV_CLOSE)
        console.shutdown(socket.SHUT_WR)
        assert server.recv(64) == b""  # CRIU sees the end: the normal finish
        server.close()
        assert p.wait(timeout=5) == 0
    finally:
        p.kill()
