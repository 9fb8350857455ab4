"""One asyncssh connection per host, shared by everything that talks to that host.

Connect timeouts, keepalives, reconnect on loss, and a clear state per host. Host keys
are checked against known_hosts; an unknown or changed key is refused with the
fingerprint and the way to trust it. No agent forwarding, ever.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from core import remote
from core.config import HostSpec
from core.models import HostState
from core.remote import path_export

# The connection (TCP, the SSH handshake, the login) by default: a host's
# `connect_timeout:` in the hosts file says otherwise (a slow or loaded host).
CONNECT_TIMEOUT_S = 5.0
KEEPALIVE_S = 5.0
# AES-GCM first: OpenSSL does it in hardware, which is what a 256 MiB freeze needs.
CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
]
WINDOW = 8 * 1024 * 1024
PACKET = 256 * 1024


class HostError(RuntimeError):
    """A host could not be used; the message names the host, what failed and the fix."""

    def __init__(self, host: str, state: HostState, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.state = state


class CommandError(RuntimeError):
    def __init__(self, host: str, command: str, status: int | None, stderr: str) -> None:
        last = stderr.strip().splitlines()[-1:] or [f"exit status {status}"]
        super().__init__(f"{host}: `{_short(command)}` failed: {last[0]}")
        self.host = host
        self.command = command
        self.status = status
        self.stderr = stderr


def as_text(b: object) -> str:
    """A process's output as text (asyncssh gives bytes or str, or None)."""
    return b.decode(errors="replace") if isinstance(b, bytes) else str(b or "")


def killed_by(exit_signal: tuple | None, host: str) -> str:
    """sshd's word that the command was killed by a signal (the OOM killer, an admin), in
    words; "" when it exited."""
    return f"killed by SIG{exit_signal[0]} on {host}" if exit_signal else ""


def _short(cmd: str, n: int = 120) -> str:
    cmd = cmd.removeprefix(path_export())
    return cmd if len(cmd) <= n else cmd[: n - 1] + "…"


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    status: int | None

    @property
    def ok(self) -> bool:
        return self.status == 0


def _known_hosts_has(path: str, address: str, port: int) -> bool:
    """Whether known_hosts has any key for this host: plain names or hashed ones
    (`|1|salt|hmac`, Debian's default with HashKnownHosts), so that a changed key is
    told apart from an unknown one."""
    try:
        text = Path(path).read_text()
    except OSError:
        return False
    names = {address, f"[{address}]:{port}"}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        field = parts[1] if parts[0].startswith("@") and len(parts) > 1 else parts[0]
        for entry in field.split(","):
            if entry.startswith("|1|"):
                if any(_hashed_match(entry, n) for n in names):
                    return True
            elif entry in names:
                return True
    return False


def _hashed_match(entry: str, name: str) -> bool:
    try:
        _, _, salt, digest = entry.split("|", 3)
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(base64.b64encode(mac).decode(), digest)


class HostConnection:
    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.state = HostState.CONNECTING
        self.reason = ""
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._docker_dir: tempfile.TemporaryDirectory[str] | None = None
        self._docker_listener: asyncssh.SSHListener | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def _known_hosts_path(self) -> str:
        return self.spec.known_hosts or str(Path.home() / ".ssh" / "known_hosts")

    async def connect(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            self._close_docker()
            self.state = HostState.CONNECTING
            try:
                self._conn = await self._open()
            except HostError as e:
                self.state, self.reason = e.state, str(e).split(": ", 1)[1]
                raise
            self.state, self.reason = HostState.UP, ""
            return self._conn

    async def _open(self) -> asyncssh.SSHClientConnection:
        s = self.spec
        port = s.port or 22
        kw: dict = dict(
            known_hosts=self._known_hosts_path(),
            connect_timeout=s.connect_timeout,
            keepalive_interval=KEEPALIVE_S,
            keepalive_count_max=3,
            agent_forwarding=False,
            encryption_algs=CIPHERS,
            window=WINDOW,
            max_pktsize=PACKET,
        )
        if s.port:
            kw["port"] = s.port
        if s.user:
            kw["username"] = s.user
        if s.key:
            kw["client_keys"] = [s.key]
            kw["agent_path"] = None
        try:
            return await asyncssh.connect(s.address, **kw)
        except asyncssh.HostKeyNotVerifiable:
            fp = await self._fingerprint(port)
            if _known_hosts_has(self._known_hosts_path(), s.address, port):
                raise HostError(
                    s.name,
                    HostState.HOST_KEY_MISMATCH,
                    f"host key CHANGED for {s.address} (now {fp}); refusing to connect. "
                    f"If the host was reinstalled, remove its old line from "
                    f"{self._known_hosts_path()}; otherwise someone may be in the middle",
                ) from None
            raise HostError(
                s.name,
                HostState.HOST_KEY_UNKNOWN,
                f"unknown host key {fp} for {s.address}; check the fingerprint, then trust it with "
                f"`ssh-keyscan -p {port} {s.address} >> {self._known_hosts_path()}` "
                "(never for a host whose key you already had: that one's key CHANGED)",
            ) from None
        except asyncssh.PermissionDenied:
            who = f"{s.user or os.environ.get('USER', '')}@{s.address}"
            raise HostError(
                s.name,
                HostState.AUTH_FAILED,
                f"authentication failed for {who} with key {s.key or '(default keys)'}; "
                "add the public key to the host's authorized_keys or fix `key:` in the hosts file",
            ) from None
        except TimeoutError:
            raise HostError(
                s.name,
                HostState.UNREACHABLE,
                f"no answer from {s.address}:{port} within {s.connect_timeout:g} s; "
                "check the address and that sshd runs (a host too loaded to log in within "
                "that time: raise `connect_timeout:` in the hosts file)",
            ) from None
        except (OSError, asyncssh.Error) as e:
            msg = getattr(e, "strerror", None) or getattr(e, "reason", None) or str(e)
            raise HostError(
                s.name,
                HostState.UNREACHABLE,
                f"cannot reach {s.address}:{port}: {msg}; check the address and that sshd runs",
            ) from None

    async def _fingerprint(self, port: int) -> str:
        try:
            key = await asyncio.wait_for(asyncssh.get_server_host_key(self.spec.address, port), 5)
            return key.get_fingerprint("sha256") if key else "(none)"
        except Exception:  # noqa: BLE001 - a fingerprint is a courtesy in an error message
            return "(fingerprint unavailable)"

    async def run(
        self,
        command: str,
        *,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = 300,
    ) -> Result:
        """Run one shell command (built by core.remote) and wait for it."""
        conn = await self.connect()
        full = path_export() + (command if timeout is None else remote.bounded(command, timeout))
        wait = None if timeout is None else timeout + remote.limit_grace_s(timeout)
        try:
            p = await conn.run(
                full, input=input, check=False, timeout=wait, encoding="utf-8", errors="replace"
            )
        except asyncssh.TimeoutError as e:
            raise CommandError(
                self.name, command, None, f"timed out after {timeout} s (no answer from the host)"
            ) from e
        except (asyncssh.Error, OSError) as e:
            self._mark_lost(e)
            raise HostError(self.name, HostState.UNREACHABLE, f"connection lost: {e}") from e
        if p.exit_status is None and p.exit_signal is None and conn.is_closed():
            # No exit status because the channel went down with the connection.
            self._mark_lost(ConnectionError("closed"))
            raise HostError(
                self.name, HostState.UNREACHABLE, f"connection lost while `{_short(command, 60)}` ran"
            )
        res = Result(str(p.stdout or ""), str(p.stderr or ""), p.exit_status)
        if said := killed_by(p.exit_signal, self.name):
            res = Result(res.stdout, (res.stderr + "\n" + said).lstrip(), res.status)
        if timeout is not None and res.status == remote.TIMED_OUT:
            res = Result(
                res.stdout,
                (res.stderr + f"\ntimed out after {timeout:g} s: stopped on {self.name}").lstrip(),
                res.status,
            )
        if check and not res.ok:
            raise CommandError(self.name, command, res.status, res.stderr or res.stdout)
        return res

    async def process(self, command: str) -> asyncssh.SSHClientProcess:
        """Start a command whose stdin/stdout the caller streams (bytes)."""
        conn = await self.connect()
        try:
            return await conn.create_process(path_export() + command, encoding=None)
        except (asyncssh.Error, OSError) as e:
            self._mark_lost(e)
            raise HostError(self.name, HostState.UNREACHABLE, f"connection lost: {e}") from e

    async def check_alive(self) -> None:
        """Forget the connection if it no longer answers (the next use opens a new one)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.run("true", check=False), timeout=CONNECT_TIMEOUT_S)
        except (TimeoutError, asyncssh.Error, OSError) as e:
            self._mark_lost(e)

    def _mark_lost(self, e: BaseException) -> None:
        self.state, self.reason = HostState.UNREACHABLE, f"connection lost: {e}"
        if self._conn is not None:
            self._conn.abort()
        self._conn = None

    async def docker_socket(self) -> str:
        """A local UNIX socket forwarded to the host's engine socket (for the Docker SDK)."""
        conn = await self.connect()
        if self._docker_listener is None or self._docker_dir is None:
            self._docker_dir = tempfile.TemporaryDirectory(prefix="ferryman-")
            os.chmod(self._docker_dir.name, 0o700)
            local = os.path.join(self._docker_dir.name, "docker.sock")
            self._docker_listener = await conn.forward_local_path(local, self.spec.docker_socket)
        return os.path.join(self._docker_dir.name, "docker.sock")

    def _close_docker(self) -> None:
        if self._docker_listener is not None:
            self._docker_listener.close()
        if self._docker_dir is not None:
            self._docker_dir.cleanup()
        self._docker_listener = None
        self._docker_dir = None

    async def close(self) -> None:
        self._close_docker()
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
        self._conn = None


async def read_remote_file(host: HostConnection, path: str, limit: int = 1 << 20) -> bytes | None:
    """A small remote file's bytes (base64 over the channel), or None if it cannot be read."""
    import base64

    from core.remote import quote

    r = await host.run(
        quote(["bash", "-c", 'head -c "$2" "$1" | base64 -w0', "read_file", path, str(limit)]),
        check=False,
        timeout=30,
    )
    if not r.ok or not r.stdout:
        return None
    try:
        return base64.b64decode(r.stdout.strip())
    except ValueError:
        return None
