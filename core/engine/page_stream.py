"""Memory pages streamed to the target while CRIU dumps them (non-lazy page server).

The source's CRIU (through `runc checkpoint --page-server`) connects to a loopback port
on the source that sshd forwards to the console; the console joins that channel to the
target's `criu page-server`, which runs on a socket pair whose other end is an SSH
channel to the console (core/engine/socket_bridge.py): nothing listens on the target.
(Without python3 there, the page server listens on the target's loopback instead.) The
dump thus writes its pages straight into the target's image folder: the freeze does not
wait for a separate copy. The bytes are encrypted by the two SSH connections, and no
port is open to the network.

Any local process can reach the source's loopback listener, though. It turns away every
connection made before the dump is fired, and after it relays only one that a checker on
the source says is CRIU's: the socket held by CRIU's service (runc's child) of the
host's root, in the host's PID namespace (core/remote.py, `peer_checker`). The checker
is started with the listener and asked over its open channel, so a check costs one line
each way, not a new command inside the freeze. Without those checks, a local process
that connected first made the dump fail (CRIU then had no page server) and the move
roll back.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field

import asyncssh

from core import remote
from core.engine import socket_bridge
from core.engine.transfer import Meter
from core.ssh import CommandError, HostConnection, HostError

CHUNK = 1 << 20
CHECK_TIMEOUT_S = 10.0


def _page_server(images_dir: str, work_dir: str, *how: str) -> list[str]:
    return [
        "criu",
        "page-server",
        "--images-dir",
        images_dir,
        "--work-dir",
        work_dir,
        *how,
        "-o",
        "page-server.log",
        "-v4",
    ]


def bridged_page_server_cmd(images_dir: str, work_dir: str) -> list[str]:
    """The page server on a socket it is handed (core/engine/socket_bridge.py)."""
    return socket_bridge.bridge_command(
        f"{work_dir}/page-server.pid",
        _page_server(images_dir, work_dir, "--ps-socket", socket_bridge.FD_WORD),
    )


def page_server_cmd(images_dir: str, work_dir: str, port: int) -> list[str]:
    """The page server listening on the target's loopback (no python3 there)."""
    return [
        *_page_server(images_dir, work_dir, "--address", "127.0.0.1", "--port", str(port)),
        "--daemon",
        "--pidfile",
        f"{work_dir}/page-server.pid",
    ]


@dataclass
class PageStream:
    src: HostConnection
    dst: HostConnection
    meter: Meter
    source_port: int = 0
    target_port: int = 0
    _listener: asyncssh.SSHListener | None = None
    _pumps: list[asyncio.Task[None]] | None = None
    work_dir: str = ""
    refused: list[str] = field(default_factory=list)  # connections turned away
    last_refusal: str = ""  # the checker's reason, for the log
    unchecked: bool = False  # no `ss` on the source: who connects is not checked
    _server: asyncssh.SSHClientProcess[bytes] | None = None  # the bridged page server
    _taken: bool = False  # the dump's connection is relayed: no other
    _checker: asyncssh.SSHClientProcess[bytes] | None = None  # who connects (remote.peer_checker)
    _checks: asyncio.Lock = field(default_factory=asyncio.Lock)
    _dump_fired: bool = False

    async def open(self, images_dir: str, work_dir: str) -> None:
        """Start the target's page server and the source's loopback listener."""
        self.work_dir = work_dir
        if (await self.dst.run("command -v python3", check=False, timeout=15)).ok:
            # On a socket pair joined to an SSH channel: nothing listens on the target.
            self._server = await self.dst.process(
                remote.quote(bridged_page_server_cmd(images_dir, work_dir))
            )
            started = await self.dst.run(
                remote.quote(remote.wait_for_file(f"{work_dir}/page-server.pid", 10)),
                check=False,
                timeout=20,
            )
            if not started.ok:
                raise RuntimeError(f"the page server did not start on {self.dst.name}")
        else:
            await self._listening_page_server(images_dir, work_dir)
        self._checker = await self.src.process(remote.quote(remote.peer_checker()))
        try:
            ready = await asyncio.wait_for(self._checker.stdout.readline(), CHECK_TIMEOUT_S)
        except (TimeoutError, asyncssh.Error, OSError):
            ready = b""
        if ready.strip() == b"unchecked":  # no ss there: the first one after the fire
            self._checker.close()
            self._checker, self.unchecked = None, True
        elif ready.strip() != b"ready":
            raise RuntimeError(f"the check of who connects did not start on {self.src.name}")
        conn = await self.src.connect()
        self._pumps = []
        self._listener = await conn.start_server(self._handler_factory, "127.0.0.1", 0)
        self.source_port = self._listener.get_port()

    def dump_fired(self) -> None:
        """From now on CRIU's dump may connect (before, nothing of ours would)."""
        self._dump_fired = True

    async def _from_criu(self, peer_port: int) -> tuple[bool, str]:
        """Ask the source's checker who holds the connection from `peer_port`."""
        if self._checker is None:
            return False, "no checker"
        async with self._checks:
            try:
                self._checker.stdin.write(f"{peer_port} {self.source_port}\n".encode())
                line = await asyncio.wait_for(self._checker.stdout.readline(), CHECK_TIMEOUT_S)
            except (TimeoutError, asyncssh.Error, OSError) as e:
                return False, f"the check failed: {e!r}"
        answer = line.decode(errors="replace").strip()
        return answer.startswith("ok "), answer or "the checker ended"

    async def _listening_page_server(self, images_dir: str, work_dir: str) -> None:
        """Without python3 on the target: the page server listens on its loopback."""
        last: Exception | None = None
        for _ in range(5):  # a random port may be taken: try a few
            port = 20000 + secrets.randbelow(40000)
            try:
                await self.dst.run(
                    remote.quote(page_server_cmd(images_dir, work_dir, port)), timeout=30
                )
            except CommandError as e:
                last = e
                continue
            self.target_port = port
            break
        else:
            raise last or RuntimeError("page server did not start")

    def _handler_factory(self, _host: str, peer_port: int):  # noqa: ANN202 - asyncssh's callback shape
        async def handle(reader: asyncssh.SSHReader, writer: asyncssh.SSHWriter) -> None:
            ok = False
            if not self._taken and self._dump_fired:
                ok = self.unchecked
                if not ok:
                    ok, self.last_refusal = await self._from_criu(peer_port)
            if not ok or self._taken:
                self.refused.append(f"127.0.0.1:{peer_port}")
                writer.close()
                return
            self._taken = True
            r2: asyncssh.SSHReader[bytes]
            w2: asyncssh.SSHWriter[bytes]
            if self._server is not None:
                r2, w2 = self._server.stdout, self._server.stdin
            else:
                try:
                    dst = await self.dst.connect()
                    r2, w2 = await dst.open_connection("127.0.0.1", self.target_port)
                except (asyncssh.Error, OSError, HostError):
                    writer.close()  # the dump fails on its own and says so
                    return

            async def pump(r: asyncssh.SSHReader, w: asyncssh.SSHWriter, metered: bool) -> None:
                try:
                    while data := await r.read(CHUNK):
                        w.write(data)
                        await w.drain()
                        if metered:
                            self.meter.add(len(data))
                finally:
                    with contextlib.suppress(Exception):
                        w.write_eof()

            t1 = asyncio.ensure_future(pump(reader, w2, True))
            t2 = asyncio.ensure_future(pump(r2, writer, False))
            assert self._pumps is not None
            self._pumps += [t1, t2]
            await asyncio.gather(t1, t2, return_exceptions=True)
            w2.close()
            writer.close()

        return handle

    async def wait_done(self, timeout: float = 30) -> None:
        """Wait until every forwarded byte has reached the page server."""
        if self._pumps:
            await asyncio.wait_for(asyncio.gather(*self._pumps, return_exceptions=True), timeout)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._checker is not None:
            self._checker.close()
            self._checker = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in self._pumps or []:
            t.cancel()
        if self.work_dir:
            # The page server exits once the dump disconnects; make sure of it.
            await self.dst.run(
                remote.quote(remote.kill_pidfile(f"{self.work_dir}/page-server.pid")),
                check=False,
                timeout=10,
            )
