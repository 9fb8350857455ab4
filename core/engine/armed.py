"""Commands started before the freeze and fired inside it.

Starting a remote command costs a round trip, sshd's fork and the login shell's start-up
(100–200 ms on a busy host). Inside the freeze window every one of those counts, so the
commands the freeze needs (the dump, the tar streams, the restore) are started while the
container still runs, each waiting on its first input line; firing one is a single
newline down an open channel. A command that is never fired sees its input close and
exits without running.
"""

from __future__ import annotations

import asyncssh

from core.models import HostState
from core.remote import TIMED_OUT, limit_grace_s
from core.remote import armed as armed_script
from core.ssh import CommandError, HostConnection, HostError, as_text, killed_by


class Armed:
    """With `limit_s`, the fired command is stopped on its host at that limit
    (core/remote.py, `bounded`), and `run` waits that long for it."""

    def __init__(
        self,
        host: HostConnection,
        command: str,
        limit_s: float | None = None,
        *,
        waits_itself: bool = False,
    ) -> None:
        """`waits_itself`: the command reads the first line on its own (a direct stream
        whose ssh connects when armed: core/remote.py `direct_send`)."""
        self.host = host
        self.command = command
        self.limit_s = limit_s
        self.waits_itself = waits_itself
        self.proc: asyncssh.SSHClientProcess | None = None

    async def start(self) -> Armed:
        script = self.command if self.waits_itself else armed_script(self.command, self.limit_s)
        self.proc = await self.host.process(script)
        return self

    def fire(self, *, last: bool = False) -> asyncssh.SSHClientProcess:
        """Send the newline (and with `last`, close its input: nothing else follows).
        HostError when its channel is gone: the connection was cut while it waited."""
        assert self.proc is not None, "start() first"
        try:
            self.proc.stdin.write(b"\n")
            if last:
                self.proc.stdin.write_eof()
        except (asyncssh.Error, OSError) as e:
            raise HostError(
                self.host.name,
                HostState.UNREACHABLE,
                f"the connection was lost before `{self.command[:60]}` could start: {e}",
            ) from e
        return self.proc

    async def run(self, timeout: float = 300) -> str:
        """Fire, wait, and return its output; CommandError when it fails."""
        limit = self.limit_s if self.limit_s is not None else timeout
        wait = limit + limit_grace_s(limit) if self.limit_s is not None else timeout
        try:
            r = await self.fire(last=True).wait(timeout=wait)
        except asyncssh.TimeoutError as e:
            raise CommandError(
                self.host.name, self.command, None, f"timed out after {limit:g} s"
            ) from e
        except (asyncssh.Error, OSError) as e:
            raise HostError(self.host.name, HostState.UNREACHABLE, f"connection lost: {e}") from e
        out = as_text(r.stdout) + as_text(r.stderr)
        if r.exit_status is None:
            # No exit status: the channel closed under it (the connection was cut).
            raise HostError(
                self.host.name,
                HostState.UNREACHABLE,
                f"the connection was lost while `{self.command[:60]}` ran",
            )
        if said := killed_by(r.exit_signal, self.host.name):
            out += "\n" + said
        if r.exit_status == TIMED_OUT and self.limit_s is not None:
            out += f"\ntimed out after {self.limit_s:g} s: stopped on {self.host.name}"
        if r.exit_status != 0:
            raise CommandError(self.host.name, self.command, r.exit_status, out)
        return out

    def disarm(self) -> None:
        """Close its input unfired: it exits without running the command."""
        if self.proc is not None and not self.proc.is_closing():
            self.proc.stdin.write_eof()
            self.proc.close()
