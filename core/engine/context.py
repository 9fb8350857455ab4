"""What the phases and the rollback steps work on: a migration's facts and live handles
(`Ctx`), and the face of a running migration they see (`Run`, which
core/engine/machine.py's `Migration` is).

The phases (preflight_phase.py, prepare_phase.py, precopy_loop.py, arming.py, freeze.py,
lazy_phase.py, finish.py) and the rollback (rollback.py) are functions of a `Run`: the
machine holds the order, they hold the work.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from core import events as ev
from core.engine import postcopy, restore, restore_runtime
from core.engine.armed import Armed
from core.engine.direct_path import DirectPath
from core.engine.facts import Facts
from core.engine.host_ops import HostOps, MigrationLock
from core.engine.page_stream import PageStream
from core.engine.precopy import Rounds
from core.engine.states import State
from core.engine.strategy import Strategy
from core.engine.transfer import Meter
from core.engine.undo import UndoStack
from core.events import Phase
from core.fleet import Fleet, Host
from core.journal import JournalEntry
from core.models import MigrationRequest


@dataclass
class Ctx(Facts):
    """The facts (core/engine/facts.py, journaled) and the live handles of a migration."""

    inspect: dict[str, Any] = field(default_factory=dict)
    src_cgroup: restore.CgroupLayout | None = None
    dst_cgroup: restore.CgroupLayout | None = None
    twin_upper: str = ""
    dump_s: float = 0.0
    transfer_s: float = 0.0
    restore_s: float = 0.0
    frozen_at: float | None = None  # monotonic
    t_fire: float = 0.0  # the dump command fired
    t_dump_end: float = 0.0
    source_log_tail: str = ""
    bytes_moved: int = 0
    pages: PageStream | None = None  # memory streamed during the dump, when set up
    meter: Meter | None = None
    armed_dump: Armed | None = None
    armed_streams: list[tuple[Armed, Armed | None]] = field(default_factory=list)  # None: direct
    armed_restore: Armed | None = None
    rounds: Rounds | None = None
    throttled: bool = False
    lazy_link: postcopy.LazyLink | None = None  # post-copy: the page link, source ↔ target
    lazy_dump: postcopy.LazyDump | None = None  # post-copy: the serving dump process
    direct: DirectPath | None = None  # --direct: the host-to-host path (core/engine/direct_path.py)


def source_own_conf(c: Ctx) -> str:
    """The source's own CRIU file when runc reads that instead of runc.conf (a
    container ferryman restored onto Docker >= 28 names one); "" otherwise."""
    conf = c.src_criu_conf
    return conf if conf and conf != restore.CONF and restore_runtime.is_ours(conf) else ""


class Run(Protocol):
    """A migration as its phases and rollback steps see it."""

    fleet: Fleet
    req: MigrationRequest
    id: str
    src: Host
    dst: Host
    ctx: Ctx
    strategy: Strategy
    journal: JournalEntry | None
    undo: UndoStack
    ops: HostOps
    lock: MigrationLock
    left: list[str]  # steps after the commit (or of the rollback) left for recovery
    in_doubt: str  # why a rollback stopped in doubt, once it did
    current_phase: Phase  # the phase a failure is reported in
    throttle: int  # the CPU throttle now on the source, in percent
    target_log_tail: str

    @property
    def aborted(self) -> bool: ...

    def emit(self, e: ev.Event) -> None: ...

    def log(self, host: str, text: str, stream: str = "ferryman") -> None: ...

    def check_abort(self) -> None: ...

    def set_state(self, new: State) -> None: ...

    def phase(self, p: Phase) -> AbstractAsyncContextManager[None]: ...

    def save_ctx(self) -> None: ...

    def save_journal(self) -> None: ...

    def keep_log(self, name: str, text: str) -> str: ...

    async def unlock(self) -> None: ...
