"""Host operations, as the phases, the rollback and `ferryman recover` all use them:
run a command (logged), fire an armed command, fetch a log, remove a folder, read a
container's logs, say where a container runs, meter a stream, hold the migration lock.

Every command is logged as an event (`emit`), so the console and the journal see it.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from typing import Any

from core import events as ev
from core import remote, runc_text
from core.dockerapi import EngineError
from core.engine.armed import Armed
from core.engine.errors import MigrationError
from core.engine.transfer import Meter
from core.events import Phase
from core.fleet import Fleet, Host
from core.ssh import CommandError, HostError


class HostOps:
    def __init__(self, fleet: Fleet, emit: Callable[[ev.Event], None]) -> None:
        self.fleet = fleet
        self.emit = emit

    def log(self, host: str, text: str, stream: str = "ferryman") -> None:
        self.emit(ev.LogLine(host=host, text=text, stream=stream))

    async def sh(
        self,
        host: Host,
        command: str,
        *,
        timeout: float = 300,
        what: str = "",
        input: str | None = None,
    ) -> str:
        """Run a command, logging it; CommandError becomes a MigrationError naming the host.
        `input` (its stdin) is not logged."""
        self.log(host.name, "$ " + command, "cmd")
        try:
            r = await host.ssh.run(command, timeout=timeout, input=input)
        except CommandError as e:
            last = last_words(e.stderr) or f"exit status {e.status}"
            raise MigrationError(
                f"{what or 'a command'} failed on {host.name}: {last}", host=host.name
            ) from e
        for line in (r.stdout + r.stderr).splitlines()[-20:]:
            self.log(host.name, line, "output")
        return r.stdout

    async def fire(self, armed: Armed | None, what: str, log_path: str, log_name: str) -> None:
        assert armed is not None
        self.log(armed.host.name, "$ " + armed.command, "cmd")
        try:
            out = await armed.run()
        except CommandError as e:
            raise MigrationError(
                f"{what} failed on {armed.host.name}: "
                f"{last_words(e.stderr) or f'exit status {e.status}'}",
                host=armed.host.name,
                log=await self.fetch(self.fleet[armed.host.name], log_path),
                log_name=log_name,
            ) from e
        for line in out.splitlines()[-20:]:
            self.log(armed.host.name, line, "output")

    def meter(self) -> Meter:
        return Meter(
            lambda total, rate, done: self.emit(
                ev.BytesMoved(
                    phase=Phase.TRANSFER.value, total_bytes=total, rate_bps=rate, done=done
                )
            )
        )

    async def run_quiet(self, host: Host, argv: list[str]) -> None:
        await host.ssh.run(remote.quote(argv), check=False)

    async def rm(self, host: Host, path: str) -> None:
        await host.ssh.run(remote.quote(remote.remove_tree(path)), check=False)

    async def fetch(self, host: Host, path: str) -> str:
        try:
            r = await host.ssh.run(
                remote.quote(["tail", "-c", "200000", path]), check=False, timeout=30
            )
        except HostError:
            return ""
        return r.stdout if r.ok else ""

    async def logs(self, host: Host, cid: str, head: bool = False) -> str:
        def get(cl: Any) -> str:
            try:
                # head: the first lines (a lazy phase may have run long since the restore)
                raw = cl.api.logs(cid, stdout=True, stderr=False, tail="all" if head else 200)
            except Exception:  # noqa: BLE001 - logs are a courtesy for the gap measurement
                return ""
            text = raw.decode(errors="replace")
            return "".join(text.splitlines(keepends=True)[:200]) if head else text

        return await host.engine.call(get)

    async def boot_id(self, host: Host) -> str:
        r = await host.ssh.run(
            remote.quote(["cat", "/proc/sys/kernel/random/boot_id"]), check=False
        )
        return r.stdout.strip()

    async def where_running(self, src: Host, dst: Host, container_id: str, twin_id: str) -> str:
        """`src`'s name, `dst`'s, "BOTH", "nowhere", or "unknown" (a host does not answer)."""
        try:
            on_src = await running_strict(src, container_id)
            on_dst = await running_strict(dst, twin_id) if twin_id else False
        except (HostError, EngineError, OSError):
            return "unknown"
        if on_src and on_dst:
            return "BOTH"
        return src.name if on_src else dst.name if on_dst else "nowhere"


class MigrationLock:
    """The lock a migration holds on its container, a folder on the source: taken
    atomically in prepare, released when nothing is left for `ferryman recover`."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.held = False

    def path(self, container_id: str) -> str:
        return f"{self.host.spec.images_dir}/locks/{container_id}"

    async def refuse_if_locked(self, container_id: str, container: str) -> None:
        """Say early, and by name, that another migration holds this container
        (the lock itself is taken atomically in prepare)."""
        path = self.path(container_id)
        r = await self.host.ssh.run(remote.quote(["cat", f"{path}/owner"]), check=False)
        if r.ok:
            raise MigrationError(
                f"{container} on {self.host.name} is already being migrated ({r.stdout.strip()})",
                "wait for it to finish, or run `ferryman recover` if that migration died",
                host=self.host.name,
            )

    async def take(self, container_id: str, migration_id: str, name: str) -> None:
        path = self.path(container_id)
        owner = f"{migration_id} by {getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        r = await self.host.ssh.run(remote.quote(remote.take_lock(path, owner)), check=False)
        if not r.ok:
            holder = (
                await self.host.ssh.run(remote.quote(["cat", f"{path}/owner"]), check=False)
            ).stdout.strip()
            raise MigrationError(
                f"{name} on {self.host.name} is already being migrated ({holder or 'lock ' + path})",
                "wait for it to finish, or run `ferryman recover` if that migration died",
                host=self.host.name,
            )
        self.held = True

    async def release(self, container_id: str) -> None:
        if self.held:
            await self.host.ssh.run(
                remote.quote(remote.remove_tree(self.path(container_id))), check=False
            )
            self.held = False


def last_words(stderr: str) -> str:
    """What a failed command said last (or the daemon's answer), runc's logrus lines cleaned (core/runc_text.py),
    a trailing "log file: …" line skipped (the log is fetched and shown on its own)."""
    said = [ln.strip() for ln in runc_text.clean(stderr).splitlines() if ln.strip()]
    words = [ln for ln in said if not ln.startswith("log file:")] or said
    # The daemon's own answer when the docker CLI gave one: Docker 28's CLI ends with
    # `Error: failed to start containers: <id>`, which says nothing.
    daemon = [ln for ln in words if "Error response from daemon" in ln]
    return (daemon or words or [""])[-1]


async def running_strict(host: Host, cid: str) -> bool:
    """Whether `cid` runs on `host`; a host or engine that does not answer raises."""
    ins = await host.engine.inspect(cid)
    return bool(ins and ins["State"].get("Running"))


async def is_running(host: Host, cid: str) -> bool:
    try:
        ins = await host.engine.inspect(cid)
    except (HostError, EngineError, OSError):
        return False
    return bool(ins and ins["State"].get("Running"))
