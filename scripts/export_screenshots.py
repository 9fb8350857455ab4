"""Write SVG screenshots of every console screen into screenshots/.

    .venv/bin/python scripts/export_screenshots.py                    # synthetic recordings
    .venv/bin/python scripts/export_screenshots.py --recording FILE   # a recorded migration
    .venv/bin/python scripts/export_screenshots.py --lab              # the recorded lab moves

The live view is taken mid-way (after the second pre-copy round, or halfway through a
recording without rounds) as migration.svg, and finished as migration-done.svg. The
doctor needs a failed migration: from --failed FILE (default: the synthetic failed restore).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import (  # noqa: E402
    BytesMoved,
    Event,
    FreezeEnded,
    FreezeStarted,
    MigrationStarted,
    RoundFinished,
)
from core.models import MigrationRequest  # noqa: E402
from core.replay import Recording, ReplayBackend  # noqa: E402
from tui.app import FerrymanApp  # noqa: E402
from tui.demo import FAILED_RESTORE, PRECOPY, HoldBackend  # noqa: E402
from tui.screens.doctor import DoctorScreen  # noqa: E402
from tui.screens.history import HistoryScreen  # noqa: E402
from tui.screens.hosts import HostsScreen  # noqa: E402
from tui.screens.migrate_dialog import MigrateDialog  # noqa: E402
from tui.screens.migration import MigrationScreen  # noqa: E402

SIZE = (140, 45)


async def until(pilot, cond, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise TimeoutError("the screen did not get there")
        await pilot.pause(0.02)


def request_of(rec: Recording) -> MigrationRequest:
    for ev in rec.events:
        if isinstance(ev, MigrationStarted):
            return MigrationRequest(ev.container, ev.source, ev.target, ev.strategy)
    c = next(c for c in rec.containers if c.migratable)
    target = next(h.name for h in rec.hosts if h.name != c.host)
    return MigrationRequest(c.name, c.host, target)


def hold_point(rec: Recording) -> Callable[[Event], bool]:
    """After the second pre-copy round; without rounds, in the freeze, while the memory
    streams (the last byte count before the freeze ends); else halfway."""
    rounds = [ev for ev in rec.events if isinstance(ev, RoundFinished)]
    frozen = False
    streaming: list[Event] = []
    for ev in rec.events:
        frozen = frozen or isinstance(ev, FreezeStarted)
        if isinstance(ev, FreezeEnded):
            break
        if frozen and isinstance(ev, BytesMoved) and not ev.done:
            streaming.append(ev)
    if len(rounds) >= 2:
        target = rounds[1]
    elif streaming:
        target = streaming[-1]
    elif rec.events:
        target = rec.events[len(rec.events) // 2]
    else:
        return lambda ev: False
    return lambda ev: ev is target


def start_of(rec: Recording) -> float:
    return rec.events[0].t if rec.events else 0.0


Step = Callable[..., Awaitable[None]]


async def shoot(app: FerrymanApp, steps: Step, out: Path) -> str:
    async with app.run_test(size=SIZE) as pilot:  # SIZE may be set by --size
        await until(pilot, lambda: isinstance(app.screen, HostsScreen))
        await until(pilot, lambda: app.screen.query_one("#containers").row_count > 0)
        await steps(pilot)
        await pilot.pause(0.3)
        svg = app.export_screenshot(title="ferryman")
    out.write_text(svg)
    return svg


async def main(recording: Path, failed: Path, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    rec = Recording.load(recording)
    bad = Recording.load(failed)
    now = start_of(rec)

    def app_for(backend) -> FerrymanApp:
        return FerrymanApp(backend, clock=lambda: now, refresh_s=0)

    async def migrating(pilot) -> None:
        pilot.app.start_migration(request_of(rec))
        await until(pilot, lambda: pilot.app.backend.runs and pilot.app.backend.runs[0].held)

    # Mid-move, the clock follows the replayed events: the freeze timer shows the time the
    # container has been frozen at the held event, as it did live.
    seen = [now]
    point = hold_point(rec)

    def hold(ev: Event) -> bool:
        seen[0] = ev.t
        return point(ev)

    held = HoldBackend(ReplayBackend(rec, speed=0), hold)
    live = FerrymanApp(held, clock=lambda: seen[0], refresh_s=0)
    await shoot(live, migrating, outdir / "migration.svg")

    async def done(pilot) -> None:
        pilot.app.start_migration(request_of(pilot.app.backend.recording))
        await until(pilot, lambda: isinstance(pilot.app.screen, MigrationScreen))
        await until(pilot, lambda: pilot.app.screen.progress.finished)

    await shoot(app_for(ReplayBackend(rec, speed=0)), done, outdir / "migration-done.svg")

    async def hosts(pilot) -> None:
        return None

    await shoot(app_for(ReplayBackend(rec, speed=0)), hosts, outdir / "hosts.svg")

    async def dialog(pilot) -> None:
        await pilot.press("m")
        await until(pilot, lambda: isinstance(pilot.app.screen, MigrateDialog))
        await until(pilot, lambda: pilot.app.screen.checks is not None)

    await shoot(app_for(ReplayBackend(rec, speed=0)), dialog, outdir / "migrate-dialog.svg")

    async def doctor(pilot) -> None:
        await done(pilot)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, DoctorScreen))

    await shoot(app_for(ReplayBackend(bad, speed=0)), doctor, outdir / "doctor.svg")

    async def history(pilot) -> None:
        await pilot.press("h")
        await until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen))

    await shoot(app_for(ReplayBackend(rec, speed=0)), history, outdir / "history.svg")

    async def help_(pilot) -> None:
        await pilot.press("question_mark")

    await shoot(app_for(ReplayBackend(rec, speed=0)), help_, outdir / "help.svg")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recording", type=Path, default=PRECOPY)
    ap.add_argument("--failed", type=Path, default=FAILED_RESTORE)
    ap.add_argument("--out", type=Path, default=ROOT / "screenshots")
    ap.add_argument(
        "--lab",
        action="store_true",
        help="the migrations recorded on the lab (tests/data/recordings/lab-*.json)",
    )
    ap.add_argument("--size", default=f"{SIZE[0]}x{SIZE[1]}", help="terminal size, WxH")
    args = ap.parse_args()
    w, _, h = args.size.partition("x")
    SIZE = (int(w), int(h))
    if args.lab:
        recordings = ROOT / "tests" / "data" / "recordings"
        args.recording = recordings / "lab-stop-and-copy.json"
        args.failed = recordings / "lab-failed-restore.json"
    asyncio.run(main(args.recording, args.failed, args.out))
    for p in sorted(args.out.glob("*.svg")):
        print(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)
