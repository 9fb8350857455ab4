"""How fast the console answers keys while a migration floods it with events.

    .venv/bin/python bench/key_latency.py [--events 20000] [--presses 60]

Runs the app headless on a replayed migration that emits thousands of BytesMoved and
LogLine events as fast as possible (speed 0), and meanwhile presses keys that change what
the screen shows (`l` toggles the log size twice, `?` opens help, `escape` closes it). A key's
latency is the time from the press until the app has processed it and its effect is
visible (the class toggled, the help screen up), measured on the event loop's clock.
Prints min / median / p95 / max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from textual import events

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import (  # noqa: E402
    BytesMoved,
    FreezeEnded,
    FreezeStarted,
    LogLine,
    MigrationStarted,
    MigrationSucceeded,
    PhaseFinished,
    PhaseStarted,
    RoundFinished,
)
from core.models import MigrationRequest  # noqa: E402
from core.replay import Recording, ReplayBackend  # noqa: E402
from tui.app import FerrymanApp  # noqa: E402
from tui.demo import PRECOPY  # noqa: E402
from tui.screens.help import HelpScreen  # noqa: E402
from tui.screens.migration import MigrationScreen  # noqa: E402

CHARS = {"l": "l", "question_mark": "?", "escape": None}


def flood(n: int) -> list:
    t = 1763985600.0
    evs = [
        MigrationStarted(
            migration_id="bench",
            container="cache-1",
            source="host1",
            target="host2",
            strategy="pre-copy",
            downtime_budget_s=0.3,
            t=t,
        ),
        PhaseStarted(phase="precopy", t=t),
    ]
    total = 0
    for i in range(n):
        total += 65536
        if i % 3 == 0:
            evs.append(LogLine(host="host1", text=f"page-xfer: sent {total} bytes [{i}]", t=t))
        else:
            evs.append(BytesMoved(phase="precopy", total_bytes=total, rate_bps=1e8 + i, t=t))
        if i and i % (n // 8) == 0:
            evs.append(
                RoundFinished(
                    round=i // (n // 8),
                    pages_scanned=300000,
                    pages_skipped=0,
                    pages_written=300000 // (i // (n // 8)),
                    bytes_sent=total,
                    duration_s=1.0,
                    frozen_s=0.01,
                    throughput_bps=1e8,
                    dirty_rate_bps=1e7,
                    predicted_freeze_s=1.0 / (i // (n // 8)),
                    t=t,
                )
            )
    evs += [
        PhaseFinished(phase="precopy", seconds=1.0, t=t),
        FreezeStarted(t=t),
        FreezeEnded(total_s=0.2, dump_s=0.1, transfer_s=0.05, restore_s=0.05, t=t),
        MigrationSucceeded(
            container="cache-1",
            target="host2",
            total_s=2.0,
            freeze_s=0.2,
            dump_s=0.1,
            transfer_s=0.05,
            restore_s=0.05,
            bytes_moved=total,
            t=t,
        ),
    ]
    return evs


async def run(n_events: int, presses: int) -> None:
    rec = Recording.load(PRECOPY)
    rec.events = flood(n_events)
    app = FerrymanApp(ReplayBackend(rec, speed=0), refresh_s=0)
    latencies: list[float] = []
    by_key: dict[str, list[float]] = {}
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause(0.2)
        app.start_migration(MigrationRequest("cache-1", "host1", "host2"))
        while not isinstance(app.screen, MigrationScreen):
            await asyncio.sleep(0.005)
        view = app.screen
        while view.events_seen < 50:
            await asyncio.sleep(0.005)
        seen_at_start = view.events_seen
        started = time.perf_counter()
        for i in range(presses):
            key = ("l", "l", "question_mark", "escape")[i % 4]
            if key == "l":
                want = not view.has_class("-big-log")
                done = lambda want=want: view.has_class("-big-log") == want  # noqa: E731
            elif key == "question_mark":
                done = lambda: isinstance(app.screen, HelpScreen)  # noqa: E731
            else:
                done = lambda: app.screen is view  # noqa: E731
            t0 = time.perf_counter()
            app.post_message(events.Key(key, CHARS.get(key)))  # as the terminal driver does
            while not done():
                await asyncio.sleep(0)
            latencies.append((time.perf_counter() - t0) * 1000)
            by_key.setdefault(key, []).append(latencies[-1])
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        flowed = view.events_seen - seen_at_start
        finished = view.progress.finished
    latencies.sort()
    for key, ms in sorted(by_key.items()):
        print(
            f"  {key:<14} n={len(ms):<3} median {statistics.median(ms):.1f} ms  max {max(ms):.1f} ms"
        )
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    print(
        f"events in the recording: {len(rec.events)}; during the presses: {flowed} "
        f"({flowed / elapsed:.0f}/s); migration finished during the run: {finished}"
    )
    print(
        f"key latency over {len(latencies)} presses (ms): "
        f"min {latencies[0]:.1f}  median {statistics.median(latencies):.1f}  "
        f"p95 {p95:.1f}  max {latencies[-1]:.1f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--presses", type=int, default=60)
    args = ap.parse_args()
    asyncio.run(run(args.events, args.presses))
