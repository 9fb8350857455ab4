"""The source's page holder (core/engine/page_holder.py), run here on loopback sockets:
a console side that ends before the target's close must not end CRIU's connection;
after the close, the end is passed on; it connects to CRIU first, as soon as CRIU
listens; it takes only the channel that presents the token."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

from core.engine.page_holder import CRIU_MARK, HOLDER, TOKEN_ENV
from core.engine.postcopy import PS_IOV_CLOSE, PSI_SIZE


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


TOKEN = b"0123456789abcdef0123456789abcdef"


def launch(tmp_path, criu_port: int, hold: int) -> subprocess.Popen:
    pidfile = tmp_path / "holder.pid"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(hold), str(criu_port), str(pidfile)],
                         env={**os.environ, TOKEN_ENV: TOKEN.decode()})
    for _ in range(100):
        if pidfile.exists():
            break
        time.sleep(0.05)
    return p


def start(tmp_path):
    criu = socket.socket()
    criu.bind(("127.0.0.1", 0))
    criu.listen(1)
    hold = free_port()
    p = launch(tmp_path, criu.getsockname()[1], hold)
    server, _ = criu.accept()  # the holder connects to CRIU first, console or not
    server.settimeout(1.0)
    console = socket.create_connection(("127.0.0.1", hold))
    console.sendall(TOKEN)
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


def test_it_connects_to_criu_as_soon_as_criu_listens_and_marks_it(tmp_path):
    port, hold = free_port(), free_port()
    p = launch(tmp_path, port, hold)
    try:
        time.sleep(0.3)  # CRIU's server is not up yet: the holder keeps trying
        assert not (tmp_path / f"holder.pid{CRIU_MARK}").exists()
        criu = socket.create_server(("127.0.0.1", port))
        criu.settimeout(5)
        server, _ = criu.accept()
        for _ in range(100):
            if (tmp_path / f"holder.pid{CRIU_MARK}").exists():
                break
            time.sleep(0.02)
        assert (tmp_path / f"holder.pid{CRIU_MARK}").exists()
        server.close()
        assert p.wait(timeout=5) == 0
    finally:
        p.kill()


def test_a_channel_without_the_token_gets_nothing_and_the_real_one_still_works(tmp_path):
    criu = socket.create_server(("127.0.0.1", 0))
    hold = free_port()
    p = launch(tmp_path, criu.getsockname()[1], hold)
    try:
        server, _ = criu.accept()
        server.settimeout(1.0)
        intruder = socket.create_connection(("127.0.0.1", hold))
        intruder.sendall(b"x" * len(TOKEN) + request(0x8))
        intruder.settimeout(3)
        try:
            said = intruder.recv(64)
        except ConnectionResetError:
            said = b""  # closed with its bytes unread
        assert said == b"", "the holder kept a channel that had no token"
        try:
            got = server.recv(64)
        except TimeoutError:
            got = None
        assert got is None, "bytes of a channel without the token reached CRIU"
        console = socket.create_connection(("127.0.0.1", hold))
        console.sendall(TOKEN + request(0x1))
        assert server.recv(64) == request(0x1)
        server.sendall(b"page")
        console.settimeout(2)
        assert console.recv(16) == b"page"
        server.close()
        assert p.wait(timeout=5) == 0
    finally:
        p.kill()
