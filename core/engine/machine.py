"""The migration state machine.

    preflight → prepare → checkpoint (freeze) → transfer → restore → verify → commit → cleanup

Each state that changes something registers how to undo it on a stack (one rollback path
per state, as QEMU's migration states have). A failure or an abort before commit unwinds
the stack in reverse: the twin is stopped before the source is resumed from its own
checkpoint, so two copies never run; the source is brought back before anything else is
removed, so the container never stops existing. After commit there is nothing to undo.

The machine emits typed events (core/events.py) into a queue; iterating the Migration
yields them. Every event is also folded into the journal, saved as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import getpass
import os
import secrets
import socket
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core import criu_stats, remote, runc_text
from core import events as ev
from core.dockerapi import EngineError
from core.engine import (
    checkpoint,
    criu_options,
    heartbeat,
    page_holder,
    postcopy,
    restore,
    restore_runtime,
    twin,
)
from core.engine.armed import Armed
from core.engine.facts import Facts
from core.engine.page_stream import PageStream
from core.engine.precopy import RESTORE_ESTIMATE_S, RoundError, Rounds
from core.engine.states import FINAL, State, transition
from core.engine.transfer import Meter, StreamCancelled, pipe, relay
from core.engine.undo import Step, UndoStack
from core.events import Phase
from core.fleet import Fleet, Host
from core.journal import (
    JournalEntry,
    journal_dir,
    new_entry,
    restore_estimate,
    throughput_estimate,
)
from core.models import MigrationRequest
from core.precopy_planner import PlannerSettings, PrecopyPlanner, choose_strategy
from core.preflight import container_checks, host_report, pair_checks
from core.ssh import CommandError, HostError, read_remote_file

IMPLEMENTED = ("stop-and-copy", "pre-copy", "post-copy", "hybrid")
LAZY = ("post-copy", "hybrid")  # the strategies that end with a lazy restore
# The dump and the restore are stopped on their host when they run longer than this
# (a lazy dump serves pages until the lazy phase ends: it is not bounded).
FIRE_LIMIT_S = 300.0


# Undo steps whose failure could leave two copies running or none: when their host does
# not answer, the rollback stops there (in doubt) instead of going on.
RESUME_SOURCE = "resume the container on the source"
STOP_TWIN = "stop the twin on the target"
RESCUE_SOURCE = "bring the container back from its frozen copy"


class MigrationError(Exception):
    """A step failed; `cause` and `fix` are words for the user."""

    def __init__(
        self, cause: str, fix: str = "", host: str = "", log: str = "", log_name: str = ""
    ) -> None:
        super().__init__(cause)
        self.cause, self.fix, self.host, self.log, self.log_name = cause, fix, host, log, log_name


class Aborted(Exception):
    pass


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
    armed_streams: list[tuple[Armed, Armed]] = field(default_factory=list)
    armed_restore: Armed | None = None
    rounds: Rounds | None = None
    throttled: bool = False
    lazy_link: postcopy.LazyLink | None = None  # post-copy: the page link, source ↔ target
    lazy_dump: postcopy.LazyDump | None = None  # post-copy: the serving dump process


def process_start(pid: int) -> str:
    """When a process started (clock ticks since boot): with the pid, it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class Migration:
    def __init__(
        self,
        fleet: Fleet,
        request: MigrationRequest,
        *,
        migration_id: str | None = None,
        on_event: Callable[[ev.Event], None] | None = None,
    ) -> None:
        """`on_event`: where events go instead of the iterator (recovery's narration)."""
        self._on_event = on_event
        self.fleet = fleet
        self.req = request
        self.id = migration_id or new_id()
        self.src: Host = fleet[request.source]
        self.dst: Host = fleet[request.target]
        self.ctx = Ctx()
        self.strategy = request.strategy
        self.journal: JournalEntry | None = None
        self._q: asyncio.Queue[ev.Event | None] = asyncio.Queue()
        self._undo = UndoStack()
        self._aborted = False
        self.state = State.NEW
        self._phase = Phase.PREFLIGHT  # the phase a failure is reported in
        self._left: list[str] = []  # steps after the commit that could not be done
        self._journal_error = ""  # why the journal could not be written, once said
        self.task: asyncio.Task[None] | None = None  # the machine, once iterated

    @property
    def _committed(self) -> bool:
        return self.ctx.committed

    def _to(self, new: State) -> None:
        """The one place the migration's state changes (core/engine/states.py)."""
        self.state = transition(self.state, new)

    # --- the face's side -----------------------------------------------------------------

    def abort(self) -> None:
        """Ask for a rollback; honoured at the next safe point before commit."""
        if not self._committed:
            self._aborted = True

    async def __aiter__(self) -> AsyncIterator[ev.Event]:
        task = self.task = asyncio.create_task(self._run(), name=f"migration {self.id}")
        try:
            while True:
                item = await self._q.get()
                if item is None:
                    break
                yield item
        finally:
            if not task.done():
                # The face went away: let the machine finish (or roll back) on its own.
                self.abort()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
            elif not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]

    # --- plumbing ------------------------------------------------------------------------

    def emit(self, e: ev.Event) -> None:
        if self.journal is not None:
            self.journal.record(e)
            if not isinstance(e, ev.BytesMoved | ev.LogLine) or getattr(e, "done", False):
                self._save_journal()
        if self._on_event is not None:
            self._on_event(e)
        else:
            self._q.put_nowait(e)

    def adopt(self, facts: Facts) -> None:
        """Take over a migration from its journaled facts (`ferryman recover`): its lock
        is held, and the rollback and cleanup steps work from these facts."""
        self.ctx = Ctx(**dataclasses.asdict(facts))
        self._locked = True

    def _save_journal(self) -> None:
        """Write the journal entry; a journal that cannot be written (the console's disk
        full) is said once and never stops the migration or its rollback."""
        if self.journal is None:
            return
        try:
            self.journal.save()
        except OSError as e:
            if not self._journal_error:
                self._journal_error = str(e)
                self._q.put_nowait(
                    ev.Warning(
                        text=f"the journal cannot be written ({e}): the move goes on, but a "
                        f"console killed now leaves nothing for `ferryman recover`"
                    )
                )
        else:
            self._journal_error = ""

    def log(self, host: str, text: str, stream: str = "ferryman") -> None:
        self.emit(ev.LogLine(host=host, text=text, stream=stream))

    def _check_abort(self) -> None:
        if self._aborted and not self._committed:
            raise Aborted("aborted by the user")

    @contextlib.asynccontextmanager
    async def phase(self, p: Phase) -> AsyncIterator[None]:
        self._check_abort()
        self._to(State(p.value))
        self._phase = p
        t0 = time.monotonic()
        self.emit(ev.PhaseStarted(phase=p.value))
        yield
        self.emit(ev.PhaseFinished(phase=p.value, seconds=time.monotonic() - t0))

    async def sh(
        self, host: Host, command: str, *, timeout: float = 300, what: str = "",
        input: str | None = None,
    ) -> str:
        """Run a command, logging it; CommandError becomes a MigrationError naming the host.
        `input` (its stdin) is not logged."""
        self.log(host.name, "$ " + command, "cmd")
        try:
            r = await host.ssh.run(command, timeout=timeout, input=input)
        except CommandError as e:
            last = _last_words(e.stderr) or f"exit status {e.status}"
            raise MigrationError(
                f"{what or 'a command'} failed on {host.name}: {last}", host=host.name
            ) from e
        for line in (r.stdout + r.stderr).splitlines()[-20:]:
            self.log(host.name, line, "output")
        return r.stdout

    def _save_ctx(self) -> None:
        """Journal the facts recovery needs (core/engine/facts.py)."""
        if self.journal is None:
            return
        c = self.ctx
        c.frozen = c.frozen_at is not None
        c.dump_done = bool(c.t_dump_end)
        c.lazy_runc_pid = c.lazy_dump.runc_pid if c.lazy_dump else 0
        c.console_pid, c.console_started = os.getpid(), process_start(os.getpid())
        c.src_address, c.dst_address = self.src.spec.address, self.dst.spec.address
        self.journal.checkpoint_name = c.checkpoint_name
        self.journal.target_twin = c.twin_id
        self.journal.events.append(c.to_record())
        self._save_journal()

    # --- the machine ---------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._machine()
        except asyncio.CancelledError:
            # Cancelled (Ctrl-C, SIGTERM, the console quit): never a final "failed". Roll
            # back now if nothing was committed; a second cancel leaves it for recovery.
            await self._interrupted("the migration was interrupted (cancelled)")
            raise
        except BaseException as e:  # never leave the face waiting
            if self.state not in FINAL:
                self._to(State.INTERRUPTED)
            self._mark_interrupted(f"internal error: {e!r}")
            raise
        finally:
            self._q.put_nowait(None)

    def _mark_interrupted(self, why: str, result: str = "running") -> None:
        """The journal says the migration is unfinished (and the lock stays): whatever
        happens next, `ferryman recover` sees it. "running" while this process still
        works on it; "in doubt" once it has given up (recovery must not wait for it)."""
        if self.journal is not None and self.journal.result not in (
            "succeeded",
            "rolled back",
        ):
            self.journal.result = result
            self.journal.cause = f"{why}: `ferryman recover` finishes or rolls it back"
            self._save_ctx()

    async def _interrupted(self, why: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        self._mark_interrupted(why)
        if self.journal is None or self.state in (
            State.SUCCEEDED,
            State.ROLLED_BACK,
            State.INCOMPLETE,
            State.IN_DOUBT,
        ):
            return
        if self.state is State.ROLLING_BACK:
            # Cancelled again during the rollback: stop, hold the lock, leave it to recovery.
            self._to(State.INTERRUPTED)
            self._mark_interrupted(why + " during the rollback", "in doubt")
            self.emit(ev.Warning(text=f"{why} during the rollback: run `ferryman recover`"))
            return
        try:
            if self._committed:
                self._left.append("the cleanup after the commit")
                self._to(State.INTERRUPTED)
                self.journal.result = "incomplete"
                self.journal.cause = f"{why} after the commit: left for `ferryman recover`"
                self._save_journal()
            else:
                await self._fail(Aborted(why))
        except asyncio.CancelledError:
            if self.state is not State.INTERRUPTED:
                self._to(State.INTERRUPTED)
            self._mark_interrupted(why + " twice", "in doubt")

    async def _machine(self) -> None:
        started = time.monotonic()
        try:
            await self._preflight()
            await self._prepare()
            if self.strategy in ("pre-copy", "hybrid"):
                await self._precopy()
            await self._checkpoint()
            await self._transfer()
            await self._restore()
            if self.strategy in LAZY:
                await self._lazy()
            await self._verify()
        except (MigrationError, Aborted, HostError, EngineError, CommandError) as e:
            await self._fail(e)
            return
        except StreamCancelled as e:
            await self._fail(Aborted(str(e)))
            return
        except Exception as e:  # a bug of ours: still roll back, and say what it was
            self.log("ferryman", traceback.format_exc(), "error")
            await self._fail(
                MigrationError(
                    f"internal error in {self._phase.value}: {e!r}",
                    "please report it with the journal entry",
                )
            )
            return
        try:
            await self._commit()
        except (MigrationError, Aborted, HostError, EngineError, CommandError) as e:
            await self._fail(e)
            return
        await self._cleanup()
        c = self.ctx
        gap = heartbeat.gap(c.source_log_tail, self._target_log_tail)
        self._to(State.INCOMPLETE if self._left else State.SUCCEEDED)
        self.emit(
            ev.MigrationSucceeded(
                container=c.name,
                target=self.dst.name,
                total_s=time.monotonic() - started,
                freeze_s=c.dump_s + c.transfer_s + c.restore_s,
                dump_s=c.dump_s,
                transfer_s=c.transfer_s,
                restore_s=c.restore_s,
                bytes_moved=c.bytes_moved,
                app_gap_s=gap.seconds if gap else None,
                rounds=c.rounds.n if c.rounds else 0,
            )
        )
        if self._left and self.journal is not None:
            self.journal.result = "incomplete"
            self.journal.cause = "left for `ferryman recover`: " + "; ".join(self._left)
            self._save_journal()

    _target_log_tail = ""

    async def _preflight(self) -> None:
        req = self.req
        if req.direct:
            raise MigrationError(
                "a direct host-to-host transfer is not available in this version",
                "run without --direct: the data is relayed, encrypted by SSH, through this console",
            )
        try:
            criu_options.validate(req.criu_options)
        except criu_options.OptionError as e:
            raise MigrationError(str(e), "drop the option, or pass one the list names") from None
        if req.source == req.target:
            raise MigrationError(f"{req.container} is already on {req.source}: pick another target")
        # Lazy pages are tried, not trusted: when post-copy is asked for, or may be picked.
        trial = req.strategy in ("post-copy", "hybrid") or (
            req.strategy == "auto" and req.accept_risk
        )
        reps = await asyncio.gather(
            host_report(self.src, lazy_trial_run=trial),
            host_report(self.dst, lazy_trial_run=trial),
        )
        try:
            strategy, why = choose_strategy(
                req.strategy,
                reps[0].facts.dirty_tracking,
                reps[1].facts.dirty_tracking,
                reps[0].facts.lazy_pages,
                reps[1].facts.lazy_pages,
                predicted_stop_copy_s=await self._predicted_stop_copy_s(),
                budget_s=req.downtime_budget_s,
                accept_risk=req.accept_risk,
            )
        except ValueError as e:
            raise MigrationError(
                f"strategy {req.strategy}: {e}",
                "choose another strategy (`ferryman check` shows what each host can do)",
            ) from None
        self.strategy = strategy
        ins = await self.src.engine.inspect(req.container)
        cid = ins["Id"] if ins else req.container
        start = ev.MigrationStarted(
            migration_id=self.id,
            container=req.container,
            source=req.source,
            target=req.target,
            strategy=strategy,
            downtime_budget_s=req.downtime_budget_s,
            strategy_reason=why,
        )
        self.journal = new_entry(start)
        self.journal.logs_dir = str(journal_dir() / self.id)
        self.emit(start)
        self.ctx.container_id = cid
        self._save_ctx()
        async with self.phase(Phase.PREFLIGHT):
            if ins is not None and reps[0].reachable:
                await self._refuse_if_locked(ins["Id"])
            checks = [c for r in reps for c in r.checks] + pair_checks(*reps)
            if all(r.reachable for r in reps):
                checks += await container_checks(self.fleet, req.container, req.source, req.target)
            for c in checks:
                self.log(c.host, f"{c.status.value:4} {c.name}: {c.reason}", "check")
            failed = [
                c
                for c in checks
                if c.status.value == "fail" and c.name not in ("soft-dirty", "userfaultfd")
            ]
            if failed:
                f = failed[0]
                raise MigrationError(f"preflight: {f.host}: {f.reason}", f.fix, host=f.host)
            if strategy not in IMPLEMENTED:
                raise MigrationError(
                    f"strategy {strategy} is not available in this version of the engine",
                    "run with --strategy stop-and-copy",
                )
            assert ins is not None
            self.ctx.inspect = ins
            self.ctx.container_id = cid
            self.ctx.name = twin.container_name(ins)
            self.ctx.restore_lines = [
                *twin.restore_conf_lines(ins),
                *criu_options.connection_defaults(req.criu_options)[2],
            ]
            si, di = await asyncio.gather(self.src.engine.info(), self.dst.engine.info())
            self.ctx.src_data_root = si["DockerRootDir"]
            self.ctx.dst_data_root = di["DockerRootDir"]
            self.ctx.src_systemd = si.get("CgroupDriver") == "systemd"
            self.ctx.src_cgroup = restore.CgroupLayout.from_info(si)
            self.ctx.dst_cgroup = restore.CgroupLayout.from_info(di)
            self._engines(si, di, reps[1].facts.api_version)

    def _engines(self, si: dict[str, Any], di: dict[str, Any], dst_api: str) -> None:
        """What the engines' versions decide: how the source is frozen, how the twin is
        restored, which CRIU file runc reads for the source (core/engine/restore_runtime.py)."""
        c = self.ctx
        c.src_engine = str(si.get("ServerVersion") or "")
        c.dst_engine = str(di.get("ServerVersion") or "")
        try:
            src_new = restore_runtime.needs_restore_runtime(c.src_engine)
            c.twin_route = restore_runtime.route(c.dst_engine, dst_api)
        except restore_runtime.RouteError as e:
            raise MigrationError(f"engine version not understood: {e}") from None
        # A Docker >= 28 source could not be restored from its checkpoint on rollback: it is
        # frozen (runc pause) and dumped leaving it frozen. Post-copy's dump keeps the
        # source frozen by itself (CRIU holds it until the last page has left).
        c.src_paused = src_new and self.strategy not in LAZY
        c.src_criu_conf = restore_runtime.container_criu_conf(c.inspect)
        if (
            self.strategy in LAZY
            and c.src_criu_conf != restore.CONF
            and not restore_runtime.is_ours(c.src_criu_conf)
        ):
            raise MigrationError(
                f"{c.name} names its own CRIU file ({restore_runtime.CRIU_CONFIG_ANNOTATION}="
                f"{c.src_criu_conf}): runc reads only that one, so ferryman cannot keep the "
                "lazy page server on the loopback",
                "use stop-and-copy, or recreate the container without that annotation",
                host=self.src.name,
            )
        if c.twin_route == restore_runtime.ROUTE_RUNTIME and any(
            o.lstrip("-").startswith("tcp-established") for o in self.req.criu_options
        ):
            self.emit(
                ev.Warning(
                    text=f"--tcp-established onto Docker {c.dst_engine}: the restore runtime "
                    "restores into a network namespace dockerd configures only afterwards, so "
                    "established connections (and sockets bound to the container's address) "
                    "are not expected to restore; if the restore fails, the move rolls back"
                )
            )
        self.log(
            "ferryman",
            f"engines: {self.src.name} Docker {c.src_engine or '?'}, {self.dst.name} Docker "
            f"{c.dst_engine or '?'}; the source is "
            + (
                "frozen with runc pause and dumped leaving it frozen (a rollback thaws it)"
                if c.src_paused
                else "dumped as usual"
            )
            + f"; the twin is restored through {c.twin_route}",
        )

    async def _predicted_stop_copy_s(self) -> float | None:
        """A stop-and-copy freeze of this container: its memory over the throughput past
        moves to the target streamed (100 MiB/s without any), plus the restore."""
        if self.req.strategy != "auto":
            return None

        def usage(cl: Any) -> int:
            try:
                st = cl.api.stats(self.req.container, stream=False)
            except Exception:  # noqa: BLE001 - a prediction only
                return 0
            return int((st.get("memory_stats") or {}).get("usage") or 0)

        try:
            mem = await self.src.engine.call(usage)
        except (HostError, EngineError):
            return None
        if not mem:
            return None
        rate = throughput_estimate(self.dst.name, 100 * 2**20)
        return mem / rate + restore_estimate(self.dst.name, RESTORE_ESTIMATE_S)

    async def _prepare(self) -> None:
        c, req = self.ctx, self.req
        async with self.phase(Phase.PREPARE):
            await self._lock()
            c.src_dir = f"{self.src.spec.images_dir}/{self.id}"
            c.dst_dir = f"{self.dst.spec.images_dir}/{self.id}"
            await self.sh(
                self.src,
                remote.quote(remote.mkdir_private(c.src_dir)),
                what="making the image folder",
            )
            self._undo.push(
                "remove the source's image folder", lambda: self._rm(self.src, c.src_dir)
            )
            await self.sh(
                self.dst,
                remote.quote(remote.mkdir_private(f"{c.dst_dir}/img", f"{c.dst_dir}/work")),
                what="making the image folder",
            )
            self._undo.push(
                "remove the target's image folder", lambda: self._rm(self.dst, c.dst_dir)
            )
            await self._ensure_image()
            self._check_abort()
            for v in twin.named_volumes(c.inspect):
                await self._create_volume(v["Name"], v.get("Driver") or "local")
            body, c.twin_criu_conf = restore_runtime.twin_for_route(
                twin.create_body(c.inspect), c.twin_route, self.id
            )
            # The twin never restarts on its own during the move: it gets the container's
            # restart policy at the commit point.
            body["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
            c.twin_id = await self.dst.engine.create_raw(c.name, body)
            self._undo.push("remove the twin on the target", self.remove_twin)
            self._save_ctx()
            if c.twin_route == restore_runtime.ROUTE_RUNTIME:
                self.log(
                    self.dst.name,
                    f"the twin runs under the restore runtime {restore_runtime.RUNTIME} "
                    f"(Docker {c.dst_engine} cannot restore by itself); CRIU's options in "
                    f"its own file {c.twin_criu_conf}, only for the restore",
                )
            tw = await self.dst.engine.inspect(c.twin_id) or {}
            c.twin_upper = ((tw.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir", "")
            src_upper = ((c.inspect.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
            if src_upper and not c.twin_upper:
                driver = (tw.get("GraphDriver") or {}).get("Name")
                raise MigrationError(
                    f"{self.dst.name}'s storage driver ({driver}) gives the twin no upper "
                    f"directory: {c.name}'s writable layer (files it wrote) could not be moved",
                    f"use the overlay2 storage driver on {self.dst.name}",
                    host=self.dst.name,
                )
            await self._empty_volumes()
            self.log(self.dst.name, f"twin {c.name} created ({c.twin_id[:12]}), not started")
            await self._suspend_restart_policy()
            if self.strategy == "stop-and-copy":
                await self._open_page_stream()
            del req

    def _meter(self) -> Meter:
        return Meter(
            lambda total, rate, done: self.emit(
                ev.BytesMoved(
                    phase=Phase.TRANSFER.value, total_bytes=total, rate_bps=rate, done=done
                )
            )
        )

    async def _open_page_stream(self) -> None:
        c = self.ctx
        c.meter = self._meter()
        stream = PageStream(self.src.ssh, self.dst.ssh, c.meter)
        self._undo.push("stop the page server", stream.close)
        try:
            await stream.open(f"{c.dst_dir}/img", f"{c.dst_dir}/work")
        except Exception as e:  # noqa: BLE001 - streaming is an optimisation; tar still works
            await stream.close()
            self.emit(
                ev.Warning(
                    text=f"memory will be copied after the dump, not streamed during it "
                    f"({e}); the freeze will be longer"
                )
            )
            return
        c.pages = stream
        c.pages_streamed = True
        where = (
            f"127.0.0.1:{stream.target_port}"
            if stream.target_port
            else "a socket pair (nothing listens there)"
        )
        self.log(
            "ferryman",
            f"page server on {self.dst.name} {where}, "
            f"reached from {self.src.name} 127.0.0.1:{stream.source_port} through this console",
        )

    async def _create_volume(self, name: str, driver: str) -> None:
        if await self.dst.engine.volume(name) is not None:
            raise MigrationError(
                f"a volume named {name} already exists on {self.dst.name}",
                f"remove it there, or rename it, before moving {self.ctx.name}",
            )
        src = await self.src.engine.volume(name) or {}
        await self.dst.engine.create_volume(
            name, driver, options=src.get("Options"), labels=src.get("Labels")
        )
        self.ctx.moved_volumes.append(name)

        async def undo() -> None:
            await self.dst.engine.remove_volume(name)
            self.ctx.moved_volumes.remove(name)

        self._undo.push(f"remove volume {name} on {self.dst.name}", undo)

    async def _empty_volumes(self) -> None:
        """Docker copies the image's files into a new volume when the twin is created; the
        volume must hold what the source's holds, no more (files deleted there stay so)."""
        paths = []
        for name in self.ctx.moved_volumes:
            dv = await self.dst.engine.volume(name)
            if dv is not None:
                paths.append(dv["Mountpoint"])
        if paths:
            await self.sh(
                self.dst,
                remote.quote(remote.empty_dirs(paths)),
                what="emptying the new volumes",
            )

    async def _suspend_restart_policy(self) -> None:
        """A restart policy would make dockerd start the container again the moment the
        dump stops it: two copies. Suspend it for the move; put back on rollback."""
        c = self.ctx
        pol = (c.inspect.get("HostConfig") or {}).get("RestartPolicy") or {}
        if (pol.get("Name") or "no") == "no":
            return
        c.restart_policy = {
            "Name": pol["Name"],
            "MaximumRetryCount": int(pol.get("MaximumRetryCount") or 0),
        }
        await self.src.engine.set_restart_policy(c.container_id, {"Name": "no"})
        self._undo.push("put back the restart policy on the source", self.put_back_policy)
        self._save_ctx()
        self.log(
            self.src.name,
            f"restart policy {pol['Name']} suspended on {self.src.name} for the move "
            "(the twin gets it at the commit)",
        )

    async def put_back_policy(self) -> None:
        if self.ctx.restart_policy:
            await self.src.engine.set_restart_policy(self.ctx.container_id, self.ctx.restart_policy)

    async def _ensure_image(self) -> None:
        c = self.ctx
        image_id, ref = c.inspect["Image"], c.inspect["Config"]["Image"]
        if await self.dst.engine.has_image(image_id):
            self.log(self.dst.name, f"image {ref} already there")
            return
        self.log(self.dst.name, f"image {ref} missing: streaming docker save | docker load")
        meter = Meter(
            lambda total, rate, done: self.emit(
                ev.BytesMoved(
                    phase=Phase.PREPARE.value, total_bytes=total, rate_bps=rate, done=done
                )
            )
        )
        await relay(
            self.src.ssh,
            remote.quote(remote.docker("save", ref, socket=self.src.spec.docker_socket)),
            self.dst.ssh,
            remote.quote(remote.docker("load", "-q", socket=self.dst.spec.docker_socket)),
            meter,
            lambda: self._aborted,
        )
        meter.finish()
        if not await self.dst.engine.has_image(image_id):
            raise MigrationError(
                f"image {ref} did not arrive on {self.dst.name} intact (different id)",
                host=self.dst.name,
            )

    async def _precopy(self) -> None:
        c, req = self.ctx, self.req
        async with self.phase(Phase.PRECOPY):
            planner = PrecopyPlanner(
                PlannerSettings(
                    downtime_budget_s=req.downtime_budget_s,
                    max_rounds=req.max_rounds,
                    max_total_s=req.max_precopy_s,
                    converge_policy="postcopy"
                    if self.strategy == "hybrid"
                    else req.converge_policy,
                    postcopy_allowed=self.strategy == "hybrid",
                    restore_s=restore_estimate(self.dst.name, RESTORE_ESTIMATE_S),
                )
            )

            async def run(host: Host, command: str, what: str) -> str:
                return await self.sh(host, command, what=what)

            c.rounds = Rounds(
                self.src,
                self.dst,
                runc_root=self.src.spec.runc_root,
                container_id=c.container_id,
                src_dir=c.src_dir,
                dst_dir=c.dst_dir,
                systemd_cgroup=c.src_systemd,
                planner=planner,
                run=run,
                meter=self._meter,
            )
            while True:
                self._check_abort()
                try:
                    r = await c.rounds.round()
                except MigrationError as e:
                    e.log = await self._fetch(self.src, f"{c.src_dir}/prework{c.rounds.n}/dump.log")
                    e.log_name = f"pre-dump-{c.rounds.n}.log"
                    raise
                except RoundError as e:
                    raise MigrationError(
                        str(e),
                        host=self.src.name,
                        log=await self._fetch(self.src, e.log_path),
                        log_name=f"pre-dump-{c.rounds.n}.log",
                    ) from e
                st, d = r.stats, r.decision
                self.emit(
                    ev.RoundFinished(
                        round=st.index,
                        pages_scanned=st.pages_scanned,
                        pages_skipped=st.pages_skipped_parent,
                        pages_written=st.pages_written,
                        bytes_sent=st.transfer_bytes,
                        duration_s=st.duration_s,
                        frozen_s=st.frozen_time_s,
                        throughput_bps=st.throughput_bps or 0.0,
                        dirty_rate_bps=r.dirty_rate_bps or 0.0,
                        predicted_freeze_s=d.predicted_freeze_s or 0.0,
                    )
                )
                self.emit(
                    ev.Decision(
                        action=d.action,
                        reason=d.reason,
                        predicted_freeze_s=d.predicted_freeze_s or 0.0,
                        budget_s=req.downtime_budget_s,
                        throttle_percent=d.throttle_percent,
                    )
                )
                if d.throttle_percent and d.throttle_percent != self._throttle:
                    await self._set_throttle(d.throttle_percent)
                if d.action == "abort":
                    raise MigrationError(
                        f"pre-copy gave up: {d.reason}",
                        "raise the downtime budget, or move it when it is quieter",
                    )
                if d.action == "postcopy" and self.strategy != "hybrid":
                    self.emit(
                        ev.Warning(
                            text="post-copy is not available in this version: switching over now"
                        )
                    )
                if d.final:
                    break
            await self._set_throttle(0)

    _throttle = 0

    async def _set_throttle(self, percent: int) -> None:
        """Throttle the source container's CPU (QEMU's auto-converge, through Docker's CPU limit)."""
        c = self.ctx
        hc = c.inspect.get("HostConfig") or {}
        base = hc.get("NanoCpus") or 0
        if not base:
            info = await self.src.engine.info()
            base = int(info.get("NCPU") or 1) * 10**9
        nano = (
            (hc.get("NanoCpus") or 0)
            if percent == 0
            else max(10**7, int(base * (100 - percent) / 100))
        )
        await self.src.engine.call(
            lambda cl: cl.api._result(
                cl.api._post_json(
                    cl.api._url("/containers/{0}/update", c.container_id), data={"NanoCpus": nano}
                ),
                True,
            )
        )
        if percent and not c.throttled:
            c.throttled = True
            self._undo.push("remove the CPU throttle", lambda: self._set_throttle(0))
        self._throttle = percent
        self.emit(ev.ThrottleChanged(percent=percent))

    async def _arm(self) -> None:
        """Start, before the freeze, every command the freeze will need (core/engine/armed.py)."""
        c = self.ctx
        c.checkpoint_name = f"fm-{self.id}"
        conn_flags, conn_dump_lines, _ = criu_options.connection_defaults(self.req.criu_options)
        dump = checkpoint.checkpoint_cmd(
            runc_root=self.src.spec.runc_root,
            container_id=c.container_id,
            image_path=f"{c.src_dir}/img",
            work_path=f"{c.src_dir}/work",
            systemd_cgroup=c.src_systemd,
            leave_running=c.src_paused,  # frozen by the pause, and left so
            page_server=f"127.0.0.1:{c.pages.source_port}" if c.pages else None,
            parent_path=c.rounds.last_parent if c.rounds else None,
            extra_flags=tuple(criu_options.dump_flags(self.req.criu_options) + conn_flags),
        )
        pause = (
            checkpoint.pause_cmd(self.src.spec.runc_root, c.container_id, c.src_systemd)
            if c.src_paused
            else None
        )
        dump_cmd = checkpoint.under_conf_lock(
            dump,
            f"{c.src_dir}/work",
            restore.LOCK,
            conn_dump_lines,
            first=pause,
            own_conf=self._source_own_conf(),
        )
        if self.strategy in LAZY:
            dump_cmd = await self._arm_lazy()
        c.armed_dump = await Armed(
            self.src.ssh, dump_cmd, limit_s=None if self.strategy in LAZY else FIRE_LIMIT_S
        ).start()
        self._undo.push("disarm the prepared commands", self._disarm)
        streams: list[tuple[str, str]] = [(f"{c.src_dir}/img", f"{c.dst_dir}/img")]
        graph = c.inspect.get("GraphDriver") or {}
        upper = (graph.get("Data") or {}).get("UpperDir", "")
        if upper and c.twin_upper:
            streams.append((upper, c.twin_upper))
        else:
            self.emit(
                ev.Warning(
                    text=f"the writable layer is not moved (storage driver {graph.get('Name')})"
                )
            )
        for v in twin.named_volumes(c.inspect):
            dv = await self.dst.engine.volume(v["Name"])
            if dv is None:
                raise MigrationError(
                    f"volume {v['Name']} vanished from {self.dst.name}", host=self.dst.name
                )
            streams.append((v["Source"], dv["Mountpoint"]))
        for s, d in streams:
            c.armed_streams.append(
                (
                    await Armed(self.src.ssh, remote.quote(remote.tar_create(s))).start(),
                    await Armed(self.dst.ssh, remote.quote(remote.tar_extract(d))).start(),
                )
            )
        script = self._restore_script()
        if c.lazy_link is not None:  # post-copy: the lazy-pages daemon first, a lazy restore
            daemon = postcopy.lazy_daemon_cmd(
                f"{c.dst_dir}/img", f"{c.dst_dir}/work", c.lazy_link.target_port
            )
            script = f"{remote.quote(daemon)} && {script}"
        c.armed_restore = await Armed(self.dst.ssh, script, limit_s=FIRE_LIMIT_S).start()

    def _source_own_conf(self) -> str:
        """The source's own CRIU file when runc reads that instead of runc.conf (a
        container ferryman restored onto Docker >= 28 names one); "" otherwise."""
        conf = self.ctx.src_criu_conf
        return conf if conf and conf != restore.CONF and restore_runtime.is_ours(conf) else ""

    def _restore_script(self) -> str:
        """The target's restore, by the twin's route (core/engine/restore_runtime.py)."""
        c = self.ctx
        extra = (
            (c.dst_cgroup.criu_options(c.twin_id) if c.dst_cgroup else ())
            + tuple(criu_options.config_lines(self.req.criu_options))
            + tuple(c.restore_lines)
        )
        lazy = c.lazy_link is not None
        if c.twin_route == restore_runtime.ROUTE_RUNTIME:
            try:
                return remote.quote(
                    remote.bash(
                        restore_runtime.restore_script(
                            docker_socket=self.dst.spec.docker_socket,
                            container_id=c.twin_id,
                            images_dir=f"{c.dst_dir}/img",
                            work_dir=f"{c.dst_dir}/work",
                            criu_conf_file=c.twin_criu_conf,
                            flags=("--lazy-pages",) if lazy else (),
                            extra=extra,
                        )
                    )
                )
            except restore_runtime.RouteError as e:
                raise MigrationError(f"the restore on {self.dst.name}: {e}") from None
        return restore.restore_script(
            docker_socket=self.dst.spec.docker_socket,
            data_root=c.dst_data_root,
            container_id=c.twin_id,
            name=c.checkpoint_name,
            images_dir=f"{c.dst_dir}/img",
            work_dir=f"{c.dst_dir}/work",
            extra=extra + (("lazy-pages",) if lazy else ()),
            criu_conf_file=c.twin_criu_conf,
        )

    async def _disarm(self) -> None:
        c = self.ctx
        for a in [c.armed_dump, c.armed_restore, *(x for pair in c.armed_streams for x in pair)]:
            if a is not None:
                a.disarm()

    async def _fire(self, armed: Armed | None, what: str, log_path: str, log_name: str) -> None:
        assert armed is not None
        self.log(armed.host.name, "$ " + armed.command, "cmd")
        try:
            out = await armed.run()
        except CommandError as e:
            raise MigrationError(
                f"{what} failed on {armed.host.name}: "
                f"{_last_words(e.stderr) or f'exit status {e.status}'}",
                host=armed.host.name,
                log=await self._fetch(self.fleet[armed.host.name], log_path),
                log_name=log_name,
            ) from e
        for line in out.splitlines()[-20:]:
            self.log(armed.host.name, line, "output")

    async def _checkpoint(self) -> None:
        c = self.ctx
        async with self.phase(Phase.CHECKPOINT):
            c.source_log_tail = ""
            await self._arm()
            self.emit(ev.FreezeStarted())
            c.frozen_at = time.monotonic()
            c.dump_fired = True
            self._save_ctx()
            self._undo.push(RESUME_SOURCE, self.resume_source, decisive=True, kind="resume")
            c.t_fire = time.monotonic()
            if self.strategy in LAZY:
                await self._fire_lazy_dump()
            else:
                await self._fire(
                    c.armed_dump, "runc checkpoint", f"{c.src_dir}/work/dump.log", "dump.log"
                )
            if c.pages is not None:
                await c.pages.wait_done()
            c.t_dump_end = time.monotonic()
            self._save_ctx()

    async def _frozen_part_of_dump(self, wall_s: float) -> float:
        """How much of the dump the container spent frozen: CRIU's own frozen_time.

        runc and CRIU start up (and CRIU freezes the cgroup) before the freeze begins; the
        wall time of the command would count that start-up as downtime.
        """
        c = self.ctx
        data = await read_remote_file(self.src.ssh, f"{c.src_dir}/work/stats-dump")
        try:
            stats = criu_stats.parse_dump_stats(data) if data else None
        except criu_stats.StatsError:
            stats = None
        if stats is None or not stats.frozen_time_us:
            self.log(
                self.src.name, "no CRIU dump statistics: the freeze counts the whole dump command"
            )
            return wall_s
        frozen = min(wall_s, stats.frozen_time_s)
        self.log(
            self.src.name,
            f"dump: {wall_s * 1000:.0f} ms in all, {frozen * 1000:.0f} ms frozen "
            f"(CRIU: {stats.pages_written} pages written)",
        )
        return frozen

    async def _paused_part_of_dump(self, wall_s: float) -> float:
        """A source frozen by `runc pause`: frozen from the pause (before CRIU starts) to
        the dump's end, as the source's own clock saw it (core/engine/checkpoint.py)."""
        c = self.ctx
        w = f"{c.src_dir}/work"
        r = await self.src.ssh.run(
            remote.quote(["cat", f"{w}/{checkpoint.FROZEN_FROM}", f"{w}/{checkpoint.FROZEN_TO}"]),
            check=False,
            timeout=30,
        )
        frozen = checkpoint.frozen_seconds(r.stdout)
        if frozen is None:
            self.log(self.src.name, "no pause time stamps: the freeze counts the whole command")
            return wall_s
        frozen = min(wall_s, frozen)
        self.log(
            self.src.name,
            f"dump: {wall_s * 1000:.0f} ms in all, {frozen * 1000:.0f} ms frozen (from the "
            "end of runc pause to the dump's end)",
        )
        return frozen

    async def _transfer(self) -> None:
        c = self.ctx
        async with self.phase(Phase.TRANSFER):
            meter = c.meter or self._meter()
            self._check_abort()
            pipes = []
            for out, into in c.armed_streams:
                self.log(out.host.name, f"$ {out.command} | (relay) | {into.command}", "cmd")
                p_in = into.fire()  # the newline first, then the stream
                p_out = out.fire()
                p_out.stdin.write_eof()
                pipes.append(
                    pipe(
                        out.host.name,
                        out.command,
                        p_out,
                        into.host.name,
                        into.command,
                        p_in,
                        meter,
                        lambda: self._aborted,
                    )
                )
            # In parallel: the streams share the link, and none waits for another's start.
            await asyncio.gather(*pipes)
            meter.finish()
            c.bytes_moved = meter.total

    async def _restore(self) -> None:
        c = self.ctx
        async with self.phase(Phase.RESTORE):
            self._undo.push(STOP_TWIN, self.stop_twin, decisive=True)
            t0 = time.monotonic()
            await self._fire(
                c.armed_restore,
                "docker start (restore runtime)"
                if c.twin_route == restore_runtime.ROUTE_RUNTIME
                else "docker start --checkpoint",
                f"{c.dst_dir}/work/restore.log",
                "restore.log",
            )
            t_end = time.monotonic()
            # The container runs again. Only now the bookkeeping that the freeze need not wait for.
            if c.pages is not None:
                await c.pages.close()
                if c.pages.refused:
                    self.emit(ev.Warning(text=postcopy.refused_text(self.src.name, c.pages.refused,
                                                                    "CRIU's dump")))
            c.restore_s = t_end - t0
            # The source may be lost now without harm to the move: its bookkeeping is a
            # courtesy, and never a reason to stop the only running copy.
            try:
                if self.strategy in LAZY:
                    c.dump_s = await self._frozen_part_of_lazy_dump(c.t_dump_end - c.t_fire)
                elif c.src_paused:
                    c.dump_s = await self._paused_part_of_dump(c.t_dump_end - c.t_fire)
                else:
                    c.dump_s = await self._frozen_part_of_dump(c.t_dump_end - c.t_fire)
            except (HostError, EngineError) as e:
                c.dump_s = c.t_dump_end - c.t_fire
                self.log(self.src.name, f"no dump statistics ({e}): the freeze counts it all")
            c.transfer_s = t0 - c.t_dump_end  # the streams, and whatever else ran in between
            self.emit(
                ev.FreezeEnded(
                    total_s=c.dump_s + c.transfer_s + c.restore_s,
                    dump_s=c.dump_s,
                    transfer_s=c.transfer_s,
                    restore_s=c.restore_s,
                    where=self.dst.name,
                )
            )
            # Docker noticed the exit of the checkpointed process; its logs stay readable.
            try:
                c.source_log_tail = await self._logs(self.src, c.container_id)
            except (HostError, EngineError) as e:
                self.log(self.src.name, f"the source's last log lines are out of reach ({e})")

    async def _verify(self) -> None:
        c = self.ctx
        async with self.phase(Phase.VERIFY):
            deadline = time.monotonic() + health_wait_s(c.inspect)
            settle = time.monotonic() + 0.5
            while True:
                st = (await self.dst.engine.inspect(c.twin_id) or {}).get("State", {})
                if not st.get("Running"):
                    raise MigrationError(
                        f"{c.name} stopped on {self.dst.name} right after the restore "
                        f"(exit code {st.get('ExitCode')}, {st.get('Error') or 'no error given'})",
                        host=self.dst.name,
                    )
                health = (st.get("Health") or {}).get("Status")
                if time.monotonic() >= settle and health in (None, "healthy"):
                    break
                if health == "unhealthy" or time.monotonic() > deadline:
                    raise MigrationError(
                        f"{c.name} is {health} on {self.dst.name} after the restore",
                        host=self.dst.name,
                    )
                await asyncio.sleep(0.1)
            self._target_log_tail = await self._logs(self.dst, c.twin_id, head=True)
            gap = heartbeat.gap(c.source_log_tail, self._target_log_tail)
            if gap is not None and not gap.continued:
                raise MigrationError(
                    f"{c.name}'s heartbeat counter went from {gap.last_source.counter} on "
                    f"{self.src.name} to {gap.first_target.counter} on {self.dst.name}: the "
                    "application state did not continue",
                    "see the doctor and the CRIU logs; the move is rolled back",
                    host=self.dst.name,
                )
            self.log(
                self.dst.name,
                f"{c.name} runs on {self.dst.name}" + (f" ({health})" if health else ""),
            )

    async def _commit(self) -> None:
        c = self.ctx
        async with self.phase(Phase.COMMIT):
            # The twin must still run now (a dockerd restart since verify would have stopped
            # it): until the source copy is removed, a rollback can still bring it back.
            if not await is_running(self.dst, c.twin_id):
                raise MigrationError(
                    f"{c.name} no longer runs on {self.dst.name} (checked before removing the "
                    f"source copy)",
                    host=self.dst.name,
                )
            await self.give_twin_its_policy()
            self._check_abort()  # the last moment an abort is honoured
            self._undo.clear()  # past this point the move stands
            c.committed = True
            self._to(State.COMMITTED)
            self._save_ctx()
            await self.remove_source_copy()

    # --- steps the machine and `ferryman recover` share -----------------------------------

    async def give_twin_its_policy(self) -> None:
        c = self.ctx
        if c.restart_policy:
            await self.dst.engine.set_restart_policy(c.twin_id, c.restart_policy)
            self.log(self.dst.name, f"restart policy {c.restart_policy['Name']} set")

    async def remove_source_copy(self) -> None:
        """After the commit: the stopped source copy and the volumes whose data moved."""
        c = self.ctx
        await self._after_commit(
            f"remove the stopped copy of {c.name} from {self.src.name}",
            lambda: self.src.engine.remove(c.container_id),
        )
        self.log(self.src.name, f"removed {c.name} ({c.container_id[:12]}) from {self.src.name}")
        for v in list(c.moved_volumes):
            await self._after_commit(
                f"remove volume {v} from {self.src.name} (its data is on {self.dst.name})",
                functools.partial(self.src.engine.remove_volume, v, force=False),
            )

    async def start_twin(self) -> None:
        c = self.ctx
        await self.sh(
            self.dst,
            remote.quote(remote.docker("start", c.twin_id, socket=self.dst.spec.docker_socket)),
            what="docker start",
        )

    async def remove_target_volumes(self) -> None:
        for v in list(self.ctx.moved_volumes):
            await self.dst.engine.remove_volume(v)
            self.ctx.moved_volumes.remove(v)

    async def stop_page_server(self) -> None:
        if self.ctx.dst_dir:
            await self._run_quiet(
                self.dst, remote.kill_pidfile(f"{self.ctx.dst_dir}/work/page-server.pid")
            )

    async def boot_id(self, host: Host) -> str:
        r = await host.ssh.run(
            remote.quote(["cat", "/proc/sys/kernel/random/boot_id"]), check=False
        )
        return r.stdout.strip()

    async def _after_commit(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """A step after the commit point: the move stands whatever happens; a step that
        cannot be done is left, by name, for `ferryman recover`."""
        try:
            await step()
        except (HostError, EngineError, CommandError, MigrationError) as e:
            self._left.append(what)
            self.emit(ev.Warning(text=f"left for `ferryman recover`: {what} ({e})"))

    async def _cleanup(self) -> None:
        async with self.phase(Phase.CLEANUP):
            await self.tidy()

    async def tidy(self) -> None:
        """Delete the images and Docker's checkpoint folder, release the lock (also what
        `ferryman recover` does last)."""
        c = self.ctx
        await self._after_commit("delete the checkpoint images", self._cleanup_images)
        await self._after_commit(
            f"remove the twin's restore marker and CRIU file on {self.dst.name}",
            self.disarm_twin,
        )
        await self._after_commit(
            f"delete Docker's checkpoint folder on {self.dst.name}",
            lambda: self._rm(
                self.dst,
                restore.checkpoint_folder(c.dst_data_root, c.twin_id, c.checkpoint_name),
            ),
        )
        if not self._left:
            await self._after_commit("release the migration lock", self._unlock)

    async def _cleanup_images(self) -> None:
        c = self.ctx
        if self.req.keep_images:
            self.log(
                self.src.name,
                f"images kept: {self.src.name}:{c.src_dir}, {self.dst.name}:{c.dst_dir} "
                "(they hold the process memory: delete them when done)",
            )
            return
        for h, d in ((self.src, c.src_dir), (self.dst, c.dst_dir)):
            if d:
                await self._rm(h, d)

    # --- post-copy (core/engine/postcopy.py) ---------------------------------------------

    async def _arm_lazy(self) -> str:
        """The page link (target loopback → source loopback) and the source's lazy dump."""
        c = self.ctx
        c.lazy_link = postcopy.LazyLink(
            self.src.ssh,
            self.dst.ssh,
            self._lazy_meter(),
            daemon_pidfile=f"{c.dst_dir}/work/lazy-pages.pid",  # postcopy.lazy_daemon_cmd's
        )
        await c.lazy_link.open()
        self._undo.push("close the page link", c.lazy_link.close)
        # The source end of the link is held by a process of its own: a cut SSH connection
        # must not look like the end of the transfer to CRIU (core/engine/page_holder.py).
        c.lazy_link.hold_port = 20000 + secrets.randbelow(40000)
        holder_pid = f"{c.src_dir}/page-holder.pid"
        await self.sh(
            self.src,
            remote.quote(
                page_holder.holder_command(
                    c.lazy_link.hold_port, c.lazy_link.source_port, holder_pid
                )
            ),
            what="starting the page holder",
            input=c.lazy_link.hold_token.decode() + "\n",
        )
        c.lazy_boot_id = await self.boot_id(self.src)
        self._undo.push(
            "stop the page holder",
            lambda: self._run_quiet(self.src, remote.kill_pidfile(holder_pid)),
        )
        self.log(
            "ferryman",
            f"post-copy: {self.dst.name} 127.0.0.1:{c.lazy_link.target_port} will reach "
            f"{self.src.name} 127.0.0.1:{c.lazy_link.source_port} through this console",
        )
        return postcopy.lazy_dump_script(
            runc_root=self.src.spec.runc_root,
            container_id=c.container_id,
            image_path=f"{c.src_dir}/img",
            work_path=f"{c.src_dir}/work",
            port=c.lazy_link.source_port,
            systemd_cgroup=c.src_systemd,
            parent_path=c.rounds.last_parent if c.rounds else None,
            extra_flags=tuple(
                criu_options.dump_flags(self.req.criu_options)
                + criu_options.connection_defaults(self.req.criu_options)[0]
            ),
            extra_conf=criu_options.connection_defaults(self.req.criu_options)[1],
            conf_file=self._source_own_conf(),
        )

    def _lazy_meter(self) -> Meter:
        return Meter(lambda total, rate, done: None)  # reported by LazyProgress

    async def _fire_lazy_dump(self) -> None:
        c = self.ctx
        assert c.armed_dump is not None
        self.log(self.src.name, "$ " + c.armed_dump.command.strip(), "cmd")
        proc = c.armed_dump.fire()
        proc.stdin.write_eof()
        c.lazy_dump = postcopy.LazyDump(proc)
        # From here the source's tasks are held by the dump; bring them back before anything.
        self._undo.push(RESCUE_SOURCE, self.rescue_source, decisive=True, kind="rescue")
        if not await c.lazy_dump.wait_ready():
            raise MigrationError(
                f"runc checkpoint --lazy-pages failed on {self.src.name} "
                f"(status {c.lazy_dump.exit_status}): " + " ".join(c.lazy_dump.output[-3:]),
                host=self.src.name,
                log=await self._fetch(self.src, f"{c.src_dir}/work/dump.log"),
                log_name="dump.log",
            )
        self._save_ctx()  # recovery must know of the frozen copy, should this console die
        holder_mark = f"{c.src_dir}/page-holder.pid{page_holder.CRIU_MARK}"
        held = await self.src.ssh.run(
            remote.quote(remote.wait_for_file(holder_mark, 2.0)), check=False, timeout=15
        )
        if not held.ok:
            raise MigrationError(
                f"on {self.src.name}, a process other than ferryman's page holder connected "
                "to CRIU's lazy page server first (any local process can reach the loopback): "
                "the move stops before it serves any page to the target",
                "find what connects to 127.0.0.1 ports on the source (a `--network host` "
                "container, a port scanner), or use stop-and-copy or pre-copy",
                host=self.src.name,
            )
        self.log(self.src.name, "the frozen container serves its memory (lazy page server up)")

    async def _frozen_part_of_lazy_dump(self, wall_s: float) -> float:
        log = await self._fetch(self.src, f"{self.ctx.src_dir}/work/dump.log")
        frozen = postcopy.frozen_seconds(log)
        return min(wall_s, frozen) if frozen is not None else wall_s

    async def _lazy(self) -> None:
        """The container runs on the target; its memory follows. At risk until done."""
        c = self.ctx
        assert c.lazy_link is not None and c.lazy_dump is not None
        async with self.phase(Phase.LAZY):
            self.emit(
                ev.Warning(
                    text=f"lazy phase: {c.name}'s memory is split between {self.src.name} and "
                    f"{self.dst.name} until the last page arrives; losing either host or the "
                    "link now loses the container"
                )
            )

            def report(n: postcopy.PageCounts, total: int, rate: float, done: bool) -> None:
                self.emit(
                    ev.LazyProgress(
                        pages_on_fault=n.on_fault,
                        pages_prefetched=n.prefetched,
                        total_bytes=total,
                        rate_bps=rate,
                        done=done,
                    )
                )

            try:
                res = await postcopy.watch(
                    dump=c.lazy_dump,
                    link=c.lazy_link,
                    dst=self.dst.ssh,
                    lazy_log=f"{c.dst_dir}/work/lazy-pages.log",
                    report=report,
                    aborted=lambda: self._aborted,
                )
            except InterruptedError as e:
                raise Aborted(str(e)) from None
            except RuntimeError as e:
                raise MigrationError(
                    f"the lazy phase failed: {e}",
                    host=self.dst.name,
                    log=await self._fetch(self.dst, f"{c.dst_dir}/work/lazy-pages.log"),
                    log_name="lazy-pages.log",
                ) from None
            c.bytes_moved += res.bytes
            self.log(
                "ferryman",
                f"lazy phase over in {res.seconds:.1f} s: {res.counts.copied} pages "
                f"({res.counts.on_fault} on fault, {res.counts.prefetched} prefetched), "
                f"{res.bytes} bytes; {c.name} is whole on {self.dst.name}",
            )
            # The source's tasks are gone (CRIU ended them) and its images lack the memory:
            # from here a rollback can only restart the source container, and says so.
            self._undo.drop("rescue")
            self._undo.replace("resume", Step(RESUME_SOURCE, self.restart_source, True, "resume"))
            c.lazy_done = True
            self._save_ctx()
            await c.lazy_link.close()
            if refused := c.lazy_link.refused:
                self.emit(ev.Warning(text=postcopy.refused_text(self.dst.name, refused)))

    async def restart_source(self) -> None:
        c = self.ctx
        await self._cold_start_source(
            f"{c.name}'s memory was only on {self.dst.name} after the lazy phase; "
            f"restarting it on {self.src.name}: its memory state is lost"
        )

    async def _cold_start_source(self, warning: str) -> None:
        """The last resort of a rollback: start the source container afresh, said."""
        self.emit(ev.Warning(text=warning))
        await self.sh(
            self.src,
            remote.quote(
                remote.docker("start", self.ctx.container_id, socket=self.src.spec.docker_socket)
            ),
            what="docker start",
        )

    def _freeze_ended_on_source(self, t0: float) -> None:
        """After a rollback brought the source back: the freeze it saw, from its start."""
        c = self.ctx
        if c.frozen_at is not None:
            self.emit(
                ev.FreezeEnded(
                    total_s=time.monotonic() - c.frozen_at,
                    dump_s=c.dump_s,
                    transfer_s=0,
                    restore_s=time.monotonic() - t0,
                    where=self.src.name,
                )
            )

    async def rescue_source(self) -> str:
        """Rollback during post-copy: the twin is already stopped (the step before this one).
        Stop the dump process, whose tasks then stay frozen with all their memory, and thaw
        them: the container runs on the source again, never beside the twin."""
        c = self.ctx
        pid = c.lazy_dump.runc_pid if c.lazy_dump is not None else c.lazy_runc_pid
        if not pid:
            return "gone"
        out = await self.sh(
            self.src,
            remote.quote(postcopy.rescue_script(self.src.spec.runc_root, c.container_id, pid)),
            what="bringing the container back from its frozen copy",
        )
        if c.lazy_link is not None:
            await c.lazy_link.close()
        status = out.strip().rsplit(" ", 1)[-1] if out.strip() else "gone"
        if status == "running":
            self.log(
                self.src.name,
                f"{c.name} runs on {self.src.name} again, from its frozen copy (memory intact)",
            )
        else:
            self.log(self.src.name, f"the frozen copy of {c.name} is {status}", "error")
        return status

    # --- failure and rollback ------------------------------------------------------------

    async def _fail(self, e: BaseException) -> None:
        phase = self._phase
        cause = e.cause if isinstance(e, MigrationError) else str(e)
        fix = e.fix if isinstance(e, MigrationError) else ""
        host = e.host if isinstance(e, MigrationError) else getattr(e, "host", "")
        excerpt: tuple[str, ...] = ()
        log_path = ""
        if isinstance(e, MigrationError) and e.log:
            log_path = self._keep_log(e.log_name or "criu.log", e.log)
            diag = _diagnose(e.log)
            if diag is not None:
                cause = f"{cause}. {diag.cause}"
                fix = fix or diag.fix
                excerpt = tuple(x.text for x in diag.evidence[:8])
            else:
                excerpt = tuple(line for line in e.log.splitlines() if "Error" in line)[:8]
        self._to(State.ROLLING_BACK)
        self.emit(ev.RollbackStarted(reason=cause))
        running_on, ok, detail = await self._rollback(phase)
        self._to(State.IN_DOUBT if self._in_doubt else State.ROLLED_BACK)
        if self._in_doubt:
            fix = "the rollback could not finish: " + self._in_doubt
        self.emit(ev.RollbackFinished(running_on=running_on, ok=ok, detail=detail))
        self.emit(
            ev.MigrationFailed(
                phase=phase.value,
                cause=cause,
                fix=fix,
                host=host,
                log_excerpt=excerpt,
                log_path=log_path,
                running_on=running_on,
            )
        )
        if self.journal is not None:
            self.journal.result = (
                "in doubt" if self._in_doubt else "rolled back" if ok else "failed"
            )
            if self._left and not self._in_doubt:
                self.journal.result = "incomplete"
                self.journal.cause += "; left for `ferryman recover`: " + "; ".join(self._left)
            self._save_journal()

    async def _rollback(self, phase: Phase) -> tuple[str, bool, str]:
        self._phase = Phase.ROLLBACK
        self.emit(ev.PhaseStarted(phase=Phase.ROLLBACK.value))
        t0 = time.monotonic()
        problems = []
        if not self._undo:
            self.log("ferryman", "rollback: nothing had changed yet")
        while self._undo:
            step = self._undo.pop()
            label = step.label
            self.log("ferryman", f"rollback: {label}")
            try:
                await _retry_while_unreachable(step.run, self.log)
            except (HostError, EngineError) as e:
                if not step.decisive:
                    # Tidying only (a never-started twin, a volume, a throttle): leave it.
                    self._left.append(f"{label} ({e})")
                    self.log("ferryman", f"rollback: left for `ferryman recover`: {label}", "error")
                    continue
                # A host that does not answer leaves the outcome in doubt: going on could
                # start a second copy (the twin may run) or lose the memory for good (it may
                # be only on that host). Stop here, keep the lock, leave it to recovery.
                self._undo.clear()
                who = getattr(e, "host", "") or "that host"
                who = who if isinstance(who, str) else getattr(who, "name", "that host")
                self._in_doubt = (
                    f"{label}: {e}. Nothing more was changed: when {who} answers again, "
                    "`ferryman recover` (or the console at its next start) finishes the rollback"
                )
                self.log("ferryman", f"rollback stopped: {self._in_doubt}", "error")
                break
            except Exception as e:  # noqa: BLE001 - keep unwinding; report every problem
                problems.append(f"{label}: {e}")
                self.log("ferryman", f"rollback step failed: {label}: {e}", "error")
        where = "" if self._in_doubt else await self._where_running()
        if where in ("BOTH", "nowhere", "unknown"):
            # Never saved as a plain failure with the lock gone: recovery must see it.
            self._in_doubt = (
                f"after the rollback {self.ctx.name or self.req.container} runs "
                + {"BOTH": "on both hosts", "nowhere": "nowhere"}.get(
                    where, "where it cannot be told (a host does not answer)"
                )
                + ": `ferryman recover` puts it right"
            )
            self.log("ferryman", self._in_doubt, "error")
        if not self._in_doubt and not self._left:
            await self._unlock()
        self.emit(ev.PhaseFinished(phase=Phase.ROLLBACK.value, seconds=time.monotonic() - t0))
        if self._in_doubt:
            return where if where == "BOTH" else "", False, self._in_doubt
        return where, not problems and where == self.src.name, "; ".join(problems)

    _in_doubt = ""

    async def _where_running(self) -> str:
        c = self.ctx
        try:
            src = await _running_strict(self.src, c.container_id or self.req.container)
            dst = await _running_strict(self.dst, c.twin_id) if c.twin_id else False
        except (HostError, EngineError, OSError):
            return "unknown"
        if src and dst:
            return "BOTH"
        return self.src.name if src else self.dst.name if dst else "nowhere"

    async def resume_source(self) -> None:
        """Bring the source container back from its own checkpoint (or, failing that, restart
        it); a source frozen by `runc pause` (Docker >= 28) is thawed instead."""
        c = self.ctx
        if c.src_paused:
            await self.thaw_source()
            return
        if await is_running(self.src, c.container_id):
            self.log(
                self.src.name, f"{c.name} is still running on {self.src.name}: nothing to resume"
            )
            if c.frozen_at is not None:
                self.emit(
                    ev.FreezeEnded(
                        total_s=time.monotonic() - c.frozen_at,
                        dump_s=0,
                        transfer_s=0,
                        restore_s=0,
                        where=self.src.name,
                    )
                )
            return
        t0 = time.monotonic()
        try:
            if c.pages_streamed and c.dump_fired:
                # The dump streamed its memory to the target: bring the pages back first.
                self.log(self.src.name, f"copying the memory pages back from {self.dst.name}")
                await relay(
                    self.dst.ssh,
                    remote.quote(remote.tar_create(f"{c.dst_dir}/img")),
                    self.src.ssh,
                    # Only what the page server wrote there: the source's own image files
                    # win over the target's copies, which a failed transfer may have cut.
                    remote.quote(remote.tar_extract(f"{c.src_dir}/img", keep_existing=True)),
                    self._meter(),
                    lambda: False,
                )
            if restore_runtime.needs_restore_runtime(c.src_engine or "0"):
                raise MigrationError(
                    f"Docker {c.src_engine} on {self.src.name} cannot restore a checkpoint "
                    "(`docker start --checkpoint` fails there)"
                )
            name = f"{c.checkpoint_name}-back"
            own = self._source_own_conf()
            script = restore.restore_script(
                docker_socket=self.src.spec.docker_socket,
                data_root=c.src_data_root,
                container_id=c.container_id,
                name=name,
                images_dir=f"{c.src_dir}/img",
                work_dir=f"{c.src_dir}/restore-work",
                extra=(c.src_cgroup.criu_options(c.container_id) if c.src_cgroup else ())
                + criu_options.config_lines(self.req.criu_options)
                + tuple(c.restore_lines),
                criu_conf_file=own,
            )
            await self.sh(self.src, script, what="resuming from the source's checkpoint")
            await self._rm(
                self.src, restore.checkpoint_folder(c.src_data_root, c.container_id, name)
            )
        except HostError:
            raise  # a host that does not answer: no cold restart, the rollback is in doubt
        except (MigrationError, CommandError) as e:
            log = await self._fetch(self.src, f"{c.src_dir}/restore-work/restore.log")
            if log:
                self._keep_log("source-restore.log", log)
            why = e.cause if isinstance(e, MigrationError) else str(e)
            await self._cold_start_source(
                f"could not resume {c.name} from its checkpoint ({why}); "
                "restarting it instead: its memory state is lost"
            )
        self._freeze_ended_on_source(t0)

    async def thaw_source(self) -> None:
        """Rollback of a source frozen by `runc pause`: thaw it (its memory never left it).
        A source that is no longer frozen and does not run is restarted (said)."""
        c = self.ctx
        t0 = time.monotonic()
        out = await self.sh(
            self.src,
            remote.quote(
                checkpoint.thaw_cmd(self.src.spec.runc_root, c.container_id, c.src_systemd)
            ),
            what="thawing the frozen source",
        )
        status = checkpoint.thaw_status(out)
        if status == "running":
            self.log(
                self.src.name, f"{c.name} thawed on {self.src.name}: it runs on, memory intact"
            )
        elif status == "paused":
            raise MigrationError(
                f"{c.name} stays frozen on {self.src.name} (runc resume did not thaw it)",
                host=self.src.name,
            )
        else:
            await self._cold_start_source(
                f"{c.name} is {status} on {self.src.name}, not frozen: restarting it "
                "instead, its memory state is lost"
            )
        self._freeze_ended_on_source(t0)

    async def source_runc_state(self) -> str:
        """runc's word for the source container (`running`, `paused`, `stopped`, `gone`)."""
        c = self.ctx
        r = await self.src.ssh.run(
            remote.quote(
                checkpoint.thaw_cmd(
                    self.src.spec.runc_root, c.container_id, c.src_systemd, thaw=False
                )
            ),
            check=False,
            timeout=30,
        )
        return checkpoint.thaw_status(r.stdout)

    async def stop_twin(self) -> None:
        """Stop the twin, and make sure it is stopped: the source is resumed next, so a
        twin that may still run (a refusing or hung dockerd) stops the rollback here."""
        c = self.ctx
        if c.lazy_link is not None and not c.lazy_done:
            c.lazy_link.hold()
        if not c.twin_id:
            return
        with contextlib.suppress(EngineError):  # it must not restart on its own
            await self.dst.engine.set_restart_policy(c.twin_id, {"Name": "no"})
        await self.dst.engine.kill(c.twin_id)
        for _ in range(50):
            if not await _running_strict(self.dst, c.twin_id):
                return
            await asyncio.sleep(0.1)
        raise EngineError(f"{self.dst.name}: the twin {c.twin_id[:12]} still runs after kill")

    async def remove_twin(self) -> None:
        if self.ctx.twin_id:
            await self.dst.engine.remove(self.ctx.twin_id)
        await self.disarm_twin()

    async def disarm_twin(self) -> None:
        """No restore marker and no CRIU file of this migration's twin left on the target
        (the restore script removes them itself; a killed one may not have)."""
        c = self.ctx
        if c.twin_route == restore_runtime.ROUTE_RUNTIME and c.twin_id and c.twin_criu_conf:
            await self._run_quiet(self.dst, restore_runtime.disarm_cmd(c.twin_id, c.twin_criu_conf))
        elif c.twin_criu_conf:
            await self._run_quiet(self.dst, ["rm", "-f", c.twin_criu_conf])

    # --- helpers -------------------------------------------------------------------------

    def _lock_path(self) -> str:
        return f"{self.src.spec.images_dir}/locks/{self.ctx.container_id}"

    async def _refuse_if_locked(self, container_id: str) -> None:
        """Say early, and by name, that another migration holds this container
        (the lock itself is taken atomically in prepare)."""
        path = f"{self.src.spec.images_dir}/locks/{container_id}"
        r = await self.src.ssh.run(remote.quote(["cat", f"{path}/owner"]), check=False)
        if r.ok:
            raise MigrationError(
                f"{self.req.container} on {self.src.name} is already being migrated ({r.stdout.strip()})",
                "wait for it to finish, or run `ferryman recover` if that migration died",
                host=self.src.name,
            )

    async def _lock(self) -> None:
        path = self._lock_path()
        owner = f"{self.id} by {getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
        r = await self.src.ssh.run(remote.quote(remote.take_lock(path, owner)), check=False)
        if not r.ok:
            holder = (
                await self.src.ssh.run(remote.quote(["cat", f"{path}/owner"]), check=False)
            ).stdout.strip()
            raise MigrationError(
                f"{self.ctx.name} on {self.src.name} is already being migrated ({holder or 'lock ' + path})",
                "wait for it to finish, or run `ferryman recover` if that migration died",
                host=self.src.name,
            )
        self._locked = True

    _locked = False

    async def _unlock(self) -> None:
        if self._locked:
            await self.src.ssh.run(remote.quote(remote.remove_tree(self._lock_path())), check=False)
            self._locked = False

    async def _run_quiet(self, host: Host, argv: list[str]) -> None:
        await host.ssh.run(remote.quote(argv), check=False)

    async def _rm(self, host: Host, path: str) -> None:
        await host.ssh.run(remote.quote(remote.remove_tree(path)), check=False)

    async def _fetch(self, host: Host, path: str) -> str:
        try:
            r = await host.ssh.run(
                remote.quote(["tail", "-c", "200000", path]), check=False, timeout=30
            )
        except HostError:
            return ""
        return r.stdout if r.ok else ""

    async def _logs(self, host: Host, cid: str, head: bool = False) -> str:
        def get(cl: Any) -> str:
            try:
                # head: the first lines (a lazy phase may have run long since the restore)
                raw = cl.api.logs(cid, stdout=True, stderr=False, tail="all" if head else 200)
            except Exception:  # noqa: BLE001 - logs are a courtesy for the gap measurement
                return ""
            text = raw.decode(errors="replace")
            return "".join(text.splitlines(keepends=True)[:200]) if head else text

        return await host.engine.call(get)

    def _keep_log(self, name: str, text: str) -> str:
        d = journal_dir() / self.id
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        p = d / name
        p.write_text(text)
        return str(p)


async def _retry_while_unreachable(
    step: Callable[[], Awaitable[object]], log: Callable[[str, str], None], pauses=(1.0, 2.0, 4.0)
) -> None:
    """Run a rollback step; while its host does not answer, try again after a pause (a
    dropped connection is opened again on the next try)."""
    waits = list(pauses)
    while True:
        try:
            await step()
            return
        except HostError as e:
            if not waits:
                raise
            log(e.host, f"{e}; trying again in {waits[0]:.0f} s")
            await asyncio.sleep(waits.pop(0))


def _last_words(stderr: str) -> str:
    """What a failed command said last (or the daemon's answer), runc's logrus lines cleaned (core/runc_text.py),
    a trailing "log file: …" line skipped (the log is fetched and shown on its own)."""
    said = [ln.strip() for ln in runc_text.clean(stderr).splitlines() if ln.strip()]
    words = [ln for ln in said if not ln.startswith("log file:")] or said
    # The daemon's own answer when the docker CLI gave one: Docker 28's CLI ends with
    # `Error: failed to start containers: <id>`, which says nothing.
    daemon = [ln for ln in words if "Error response from daemon" in ln]
    return (daemon or words or [""])[-1]


async def _running_strict(host: Host, cid: str) -> bool:
    """Whether `cid` runs on `host`; a host or engine that does not answer raises."""
    ins = await host.engine.inspect(cid)
    return bool(ins and ins["State"].get("Running"))


def health_wait_s(inspect: dict[str, Any]) -> float:
    """How long verify waits for a health check's first verdict: its start period plus
    interval × retries (Docker's defaults: 0 s, 30 s, 3), and a margin; 30 s without one."""
    hc = (inspect.get("Config") or {}).get("Healthcheck") or {}
    if not hc or hc.get("Test") in (None, [], ["NONE"]):
        return 30.0
    ns = 1e-9
    start = (hc.get("StartPeriod") or 0) * ns
    interval = (hc.get("Interval") or 30 * 10**9) * ns
    retries = hc.get("Retries") or 3
    timeout = (hc.get("Timeout") or 30 * 10**9) * ns
    return start + (interval + timeout) * retries + 10.0


async def is_running(host: Host, cid: str) -> bool:
    try:
        ins = await host.engine.inspect(cid)
    except (HostError, EngineError, OSError):
        return False
    return bool(ins and ins["State"].get("Running"))


def _diagnose(log: str) -> Any:
    try:
        from core.doctor import diagnose
    except ImportError:
        return None
    found = diagnose(log)
    return found[0] if found else None
