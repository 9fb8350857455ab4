"""The rollback's order and its stops, with fake host operations (core/engine/rollback.py)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest

from core import events as ev
from core.dockerapi import EngineError
from core.engine import rollback
from core.engine.context import Ctx
from core.engine.errors import MigrationError
from core.engine.states import State
from core.engine.undo import UndoStack
from core.events import Phase
from core.models import HostState
from core.ssh import HostError


class FakeOps:
    """Host operations that only say where the container runs."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.asked: list[tuple[str, str]] = []

    async def where_running(self, src, dst, container_id: str, twin_id: str) -> str:
        self.asked.append((container_id, twin_id))
        return self.where


class FakeRun:
    """What the rollback sees of a migration (core/engine/context.py's Run)."""

    def __init__(self, where: str = "host1") -> None:
        self.ctx = Ctx(container_id="c1", twin_id="t1", name="web")
        self.req = SimpleNamespace(container="web")
        self.src = SimpleNamespace(name="host1")
        self.dst = SimpleNamespace(name="host2")
        self.undo = UndoStack()
        self.ops = FakeOps(where)
        self.left: list[str] = []
        self.in_doubt = ""
        self.current_phase = Phase.TRANSFER
        self.journal = None
        self.events: list[ev.Event] = []
        self.states: list[State] = []
        self.unlocked = False
        self.ran: list[str] = []

    def emit(self, e: ev.Event) -> None:
        self.events.append(e)

    def log(self, host: str, text: str, stream: str = "ferryman") -> None:
        self.emit(ev.LogLine(host=host, text=text, stream=stream))

    def set_state(self, new: State) -> None:
        self.states.append(new)

    def keep_log(self, name: str, text: str) -> str:
        return f"/journal/{name}"

    async def unlock(self) -> None:
        self.unlocked = True

    def step(self, name: str, raises: BaseException | None = None):
        async def run() -> None:
            self.ran.append(name)
            if raises is not None:
                raise raises

        return run


@pytest.fixture(autouse=True)
def no_retry_pauses(monkeypatch):
    monkeypatch.setattr(
        rollback,
        "retry_while_unreachable",
        functools.partial(rollback.retry_while_unreachable, pauses=()),
    )


def _stack(m: FakeRun, stop_twin_raises: BaseException | None = None) -> None:
    m.undo.push("remove the source's image folder", m.step("rm source folder"))
    m.undo.push("remove the twin on the target", m.step("remove twin"))
    m.undo.push(rollback.RESUME_SOURCE, m.step("resume"), decisive=True, kind="resume")
    m.undo.push(rollback.STOP_TWIN, m.step("stop twin", stop_twin_raises), decisive=True)


async def test_rollback_stops_the_twin_before_the_source_is_resumed_then_tidies():
    m = FakeRun()
    _stack(m)
    where, ok, detail = await rollback.rollback(m, Phase.RESTORE)
    assert m.ran == ["stop twin", "resume", "remove twin", "rm source folder"]
    assert (where, ok, detail) == ("host1", True, "")
    assert m.ops.asked == [("c1", "t1")]
    assert m.unlocked and not m.in_doubt and not m.left
    assert m.current_phase is Phase.ROLLBACK


async def test_a_decisive_step_whose_host_does_not_answer_stops_the_rollback_in_doubt():
    m = FakeRun()
    _stack(m, HostError("host2", HostState.UNREACHABLE, "no answer"))
    where, ok, detail = await rollback.rollback(m, Phase.RESTORE)
    # Nothing after the twin's stop: resuming the source could start a second copy.
    assert m.ran == ["stop twin"]
    assert not m.undo
    assert m.in_doubt.startswith(rollback.STOP_TWIN)
    assert (where, ok) == ("", False) and detail == m.in_doubt
    assert not m.unlocked  # the lock stays for `ferryman recover`
    assert m.ops.asked == []  # not asked: the rollback stopped


async def test_a_tidying_step_that_fails_is_left_for_recovery_and_the_rollback_goes_on():
    m = FakeRun()
    m.undo.push("remove the source's image folder", m.step("rm source folder"))
    m.undo.push("remove volume v on host2", m.step("rm volume", EngineError("host2: no")))
    m.undo.push(rollback.STOP_TWIN, m.step("stop twin"), decisive=True)
    where, ok, _ = await rollback.rollback(m, Phase.PREPARE)
    assert m.ran == ["stop twin", "rm volume", "rm source folder"]
    assert m.left == ["remove volume v on host2 (host2: no)"]
    assert where == "host1" and ok
    assert not m.unlocked  # something is left: the lock stays


async def test_a_container_found_on_both_hosts_after_the_rollback_is_in_doubt():
    m = FakeRun(where="BOTH")
    _stack(m)
    where, ok, detail = await rollback.rollback(m, Phase.VERIFY)
    assert (where, ok) == ("BOTH", False)
    assert "runs on both hosts" in detail and not m.unlocked


async def test_fail_reports_the_phase_it_failed_in_and_ends_rolled_back():
    m = FakeRun()
    _stack(m)
    await rollback.fail(m, MigrationError("the restore failed", "fix it", host="host2"))
    assert m.states == [State.ROLLING_BACK, State.ROLLED_BACK]
    failed = [e for e in m.events if isinstance(e, ev.MigrationFailed)]
    assert len(failed) == 1
    assert failed[0].phase == Phase.TRANSFER.value and failed[0].running_on == "host1"
    done = [e for e in m.events if isinstance(e, ev.RollbackFinished)]
    assert done and done[0].ok


async def test_pages_that_cannot_come_back_stop_the_rollback_instead_of_a_cold_start(monkeypatch):
    """The dump streamed the memory to the target; copying it back fails (the source's
    disk is full): the source is not started cold (its memory would be lost) and the
    target's copy, the only one, is not removed. The rollback stops in doubt, saying
    what to free before `ferryman recover`."""
    from core.engine.errors import Stuck
    from core.ssh import CommandError

    m = FakeRun()
    m.ctx.pages_streamed = m.ctx.dump_fired = True
    m.ctx.src_dir, m.ctx.dst_dir = "/img/h1/mig", "/img/h2/mig"
    m.src = SimpleNamespace(name="host1", ssh=None, spec=SimpleNamespace(images_dir="/img/h1"))
    m.dst = SimpleNamespace(name="host2", ssh=None)
    m.ops.meter = lambda: None
    cold: list[str] = []

    async def not_running(host, cid):
        return False

    async def full_disk(*a, **k):
        raise CommandError("host1", "tar -x", 2, "tar: ./pages-1.img: No space left on device")

    async def cold_start(m, why):
        cold.append(why)

    monkeypatch.setattr(rollback, "is_running", not_running)
    monkeypatch.setattr(rollback, "relay", full_disk)
    monkeypatch.setattr(rollback, "cold_start_source", cold_start)
    with pytest.raises(Stuck) as e:
        await rollback.resume_source(m)
    assert e.value.host == "host1" and "No space left" in str(e.value)
    assert "/img/h2/mig on host2" in str(e.value) and "ferryman recover" in str(e.value)
    assert not cold

    m.undo.push("remove the target's image folder", m.step("rm target folder"))
    m.undo.push(rollback.RESUME_SOURCE, m.step("resume", e.value), decisive=True, kind="resume")
    m.undo.push(rollback.STOP_TWIN, m.step("stop twin"), decisive=True)
    where, ok, detail = await rollback.rollback(m, Phase.RESTORE)
    assert m.ran == ["stop twin", "resume"]  # the target's pages stay
    assert not ok and m.in_doubt.startswith(rollback.RESUME_SOURCE) and not m.unlocked
    assert "Free space in /img/h1 on host1" in detail
