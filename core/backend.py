"""What a face (the console, the CLI) asks of ferryman, as one protocol.

`LiveBackend` (core/live.py) talks to real hosts; `ReplayBackend` (core/replay.py)
replays a recorded migration, for demos, screenshots and tests of the faces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol

from core.events import Event
from core.journal import JournalEntry
from core.models import CheckResult, ContainerInfo, HostStatus, MigrationRequest

if TYPE_CHECKING:
    from core.engine.recovery import Pending


class MigrationRun(Protocol):
    """One migration in flight: iterate it for events; `abort()` asks for a rollback."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def abort(self) -> None: ...


class Backend(Protocol):
    async def hosts(self) -> list[HostStatus]: ...

    async def containers(self, host: str) -> list[ContainerInfo]: ...

    async def preflight(self, request: MigrationRequest) -> list[CheckResult]: ...

    def migrate(self, request: MigrationRequest) -> MigrationRun: ...

    def history(self) -> list[JournalEntry]: ...

    async def pending_recoveries(self) -> list[Pending]: ...

    async def recover(self, item: Pending, log: Callable[[str], None]) -> str: ...

    async def close(self) -> None: ...
