"""Finishing or rolling back a migration whose console died (`ferryman recover`).

The journal holds what the machine had done (the `ctx` records: the container, the
twin, the image folders, whether the container was frozen and the dump complete).
Recovery looks at where the container actually runs now and restores the invariant,
exactly one copy running:

- the twin runs on the target and the source copy does not → finish: remove the
  source copy, clean up;
- the source runs → roll back: remove the twin, clean up;
- both run → the twin was never committed: stop and remove it;
- neither runs → the source is resumed from its own checkpoint (or restarted, losing
  its memory, when the checkpoint is gone) — or, when the source copy no longer exists,
  the twin is started.

A source on Docker >= 28 is frozen by `runc pause` rather than stopped (its engine cannot
restore a checkpoint): Docker still calls it running, so runc's own state says whether
it is frozen; frozen counts as not running, and "resumed" means thawed. A twin restored
through the restore runtime has a marker and a CRIU file on the target while its restore
runs: rolling back or finishing removes them too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core import events as ev
from core import journal
from core.config import ConfigError
from core.engine import finish, rollback
from core.engine.facts import Facts
from core.engine.host_ops import is_running
from core.engine.machine import Migration, process_start
from core.fleet import Fleet
from core.journal import JournalEntry
from core.models import MigrationRequest


@dataclass(frozen=True)
class Plan:
    action: (
        str  # finish | rollback | resume | start-twin | nothing | busy | other-hosts | unreachable
    )
    reason: str

    @property
    def to_do(self) -> bool:
        """Something to carry out (after the user's yes)."""
        return self.action in ("finish", "rollback", "resume", "start-twin", "rescue")

    # "lost": nothing can be done without the admin (said, never carried out)


@dataclass(frozen=True)
class Pending:
    entry: JournalEntry
    plan: Plan


async def pending(fleet: Fleet) -> list[Pending]:
    """Every unfinished migration of the journal, with what recovery would do about it."""
    out = []
    for entry in journal.unfinished():
        try:
            fleet[entry.source], fleet[entry.target]
        except ConfigError as e:
            out.append(Pending(entry, Plan("other-hosts", str(e))))
            continue
        try:
            p = await plan(fleet, entry)
        except Exception as e:  # noqa: BLE001 - one broken entry must not hide the others
            p = Plan("unreachable", f"cannot look at it now: {e}")
        if p.action == "nothing":
            entry.result = "recovered"
            entry.save()
        out.append(Pending(entry, p))
    return out


def last_ctx(entry: JournalEntry) -> dict[str, Any]:
    ctxs = [e for e in entry.events if e.get("kind") == "ctx"]
    return ctxs[-1] if ctxs else {}


def last_facts(entry: JournalEntry) -> Facts:
    """The migration's facts as last journaled (core/engine/facts.py)."""
    f = Facts.from_record(last_ctx(entry))
    f.name = f.name or entry.container
    f.container_id = f.container_id or entry.container
    f.twin_id = f.twin_id or entry.target_twin
    f.checkpoint_name = f.checkpoint_name or entry.checkpoint_name
    return f


def console_alive(facts: Facts) -> bool:
    """Whether the process that ran the migration still runs (same pid, same start time)."""
    pid = facts.console_pid
    if not pid or pid == os.getpid():
        return False
    started = process_start(int(pid))
    return bool(started) and started == (facts.console_started or started)


async def _migration(
    fleet: Fleet, entry: JournalEntry, log: Callable[[str], None] | None = None
) -> Migration:
    """The migration taken over from its journaled facts; events narrate through `log`."""
    req = MigrationRequest(
        container=entry.container, source=entry.source, target=entry.target, strategy=entry.strategy
    )

    def narrate(e: ev.Event) -> None:
        if log is not None and isinstance(e, ev.LogLine | ev.Warning):
            log(e.text)

    m = Migration(fleet, req, migration_id=entry.migration_id, on_event=narrate)
    m.journal = entry
    facts = last_facts(entry)
    if not facts.src_data_root:
        facts.src_data_root = (await m.src.engine.info())["DockerRootDir"]
    if not facts.dst_data_root:
        facts.dst_data_root = (await m.dst.engine.info())["DockerRootDir"]
    m.adopt(facts)
    return m


async def plan(fleet: Fleet, entry: JournalEntry) -> Plan:
    f = last_facts(entry)
    if entry.result == "running" and console_alive(f):
        return Plan("busy", f"still in progress in process {f.console_pid}")
    for name, was in ((entry.source, f.src_address), (entry.target, f.dst_address)):
        now = fleet[name].spec.address
        if was and was != now:
            return Plan(
                "other-hosts",
                f"recorded against other hosts ({name} was {was}, here it is {now}): "
                "run `ferryman recover` with that hosts file",
            )
    m = await _migration(fleet, entry)
    c = m.ctx
    if f.lazy_runc_pid and not f.lazy_done and not f.committed:
        # Cut in the lazy phase: the whole copy is the frozen source, held by its dump;
        # after a reboot of the source that pid means nothing, and the memory is gone.
        if f.lazy_boot_id and f.lazy_boot_id != await m.ops.boot_id(m.src):
            return Plan(
                "lost",
                f"{entry.source} restarted during the lazy phase: the frozen copy of "
                f"{entry.container}, and the memory it held, are gone. Start it again by hand "
                f"(`docker start {entry.container}` on {entry.source}), then run recover",
            )
        return Plan(
            "rescue",
            f"the lazy phase was cut: the copy on {entry.target} will be stopped and "
            f"{entry.container} thawed on {entry.source} from its frozen copy (memory intact)",
        )
    src_runs = await is_running(m.src, c.container_id)
    frozen = False
    if src_runs and c.src_paused:
        # Docker cannot tell a container frozen behind its back: runc's state can.
        state = await rollback.source_runc_state(m)
        frozen, src_runs = state == "paused", state == "running"
    dst_runs = bool(c.twin_id) and await is_running(m.dst, c.twin_id)
    src_exists = await m.src.engine.inspect(c.container_id) is not None
    if c.committed:
        # Past the commit point the move stands: the source's checkpoint is stale, and the
        # twin may be the only whole copy. Never resume or roll back.
        if dst_runs:
            return Plan(
                "finish", f"{entry.container} runs on {entry.target}: the move will be finished"
            )
        if c.twin_id and await m.dst.engine.inspect(c.twin_id) is not None:
            return Plan(
                "start-twin",
                f"the move was committed but {entry.container} runs nowhere: it will be "
                f"started on {entry.target}",
            )
        return Plan("nothing", "nothing of this migration is left to recover")
    if dst_runs and src_runs:
        return Plan(
            "rollback", f"two copies run: the uncommitted one on {entry.target} will be stopped"
        )
    if dst_runs:
        return Plan(
            "finish", f"{entry.container} runs on {entry.target}: the move will be finished"
        )
    if src_runs:
        return Plan(
            "rollback", f"{entry.container} runs on {entry.source}: the move will be undone"
        )
    if frozen:
        return Plan(
            "resume",
            f"{entry.container} runs nowhere: it is frozen on {entry.source} and will be "
            "thawed there (memory intact)",
        )
    if src_exists:
        return Plan(
            "resume",
            f"{entry.container} runs nowhere: it will be resumed on {entry.source} "
            "from its checkpoint",
        )
    if c.twin_id:
        return Plan(
            "start-twin",
            f"{entry.container} runs nowhere and the source copy is gone: "
            f"it will be started on {entry.target}",
        )
    return Plan("nothing", "nothing of this migration is left to recover")


class RecoveryBusy(RuntimeError):
    """Another `ferryman recover` (or console) of this machine is carrying out a plan."""


RECOVER_LOCK = "recover.lock"


@contextmanager
def one_recovery_at_a_time() -> Iterator[None]:
    """The journal folder's recovery lock, not waited for: two recoveries of the same
    entry at once (two `ferryman recover`, or one and a console) would both act on the
    plan each made before the other began: resume a source twice, or stop a twin the
    other one just finished with. The second is told, and nothing is done twice."""
    d = journal.journal_dir()
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / RECOVER_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecoveryBusy(
                "another `ferryman recover` (or a console's recovery) is carrying out a plan "
                "on this machine now: wait for it to end, then run `ferryman recover` again "
                "to see what is left"
            ) from None
        yield
    finally:
        os.close(fd)


def still_unfinished(entry: JournalEntry) -> JournalEntry | None:
    """The entry as the journal holds it now, if it still waits for recovery."""
    return next((e for e in journal.unfinished() if e.migration_id == entry.migration_id), None)


async def apply(fleet: Fleet, entry: JournalEntry, p: Plan, log: Callable[[str], None]) -> str:
    """Carry out `p` with the engine's own steps, under the recovery lock; returns where
    the container runs. An entry another recovery ended meanwhile is left as it is."""
    with one_recovery_at_a_time():
        now = still_unfinished(entry)
        if now is None:
            done = next(
                (e for e in journal.load_all() if e.migration_id == entry.migration_id), entry
            )
            log(f"already {done.result} (by another recovery): nothing done")
            return done.running_on
        return await _apply(fleet, entry, p, log)


async def _apply(fleet: Fleet, entry: JournalEntry, p: Plan, log: Callable[[str], None]) -> str:
    m = await _migration(fleet, entry, log)
    if p.action == "finish":
        await finish.give_twin_its_policy(m)
        await finish.remove_source_copy(m)
        where = entry.target
    elif p.action == "start-twin":
        await finish.start_twin(m)
        await finish.give_twin_its_policy(m)
        await finish.remove_source_copy(m)
        where = entry.target
    elif p.action in ("rollback", "resume", "rescue"):
        await rollback.stop_twin(m)  # first: never two copies
        if p.action == "resume":
            await rollback.resume_source(m)
        elif p.action == "rescue":
            status = await rollback.rescue_source(m)
            if status != "running":
                raise RuntimeError(
                    f"the frozen copy of {entry.container} on {entry.source} is {status}: "
                    "start it by hand (its memory is lost)"
                )
        await rollback.remove_twin(m)
        await rollback.remove_target_volumes(m)
        await rollback.put_back_policy(m)
        where = entry.source
    else:
        return entry.running_on
    await rollback.stop_page_server(m)
    await finish.tidy(m)
    entry.result = "recovered"
    entry.running_on = where
    entry.cause = (entry.cause + "; " if entry.cause else "") + f"recovered: {p.reason}"
    entry.save()
    return where
