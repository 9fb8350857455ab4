"""How fast the console answers keys while a migration floods it with events.

    .venv/bin/python bench/key_latency.py [--events 20000] [--presses 60] [--runs 1]

Runs the app headless on a replayed migration that emits BytesMoved and LogLine events as
fast as possible (speed 0, a yield to the event loop between events, as a replay does), and
meanwhile presses keys that change what the screen shows (`l` toggles the log size twice,
`?` opens help, `escape` closes it). A key's latency is the time from the press until the
app has processed it and its effect is visible (the class toggled, the help screen up),
measured on the event loop's clock. Prints min / median / p95 / max in ms, and writes
every run with the load average to bench/results/key_latency.json.

The flood lasts until the last press (and at least --events events), so no press is
measured on a console that has nothing left to do; events are made as they are sent, as
the engine makes them, not held all at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from textual import events

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import (  # noqa: E402
    BytesMoved,
    Event,
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


T0 = 1763985600.0
ROUND_EVERY = 2500  # a pre-copy round ends every this many events


def head() -> list[Event]:
    return [
        MigrationStarted(
            migration_id="bench",
            container="cache-1",
            source="host1",
            target="host2",
            strategy="pre-copy",
            downtime_budget_s=0.3,
            t=T0,
        ),
        PhaseStarted(phase="precopy", t=T0),
    ]


def body(i: int, total: int) -> Iterator[Event]:
    """The events that follow the i-th chunk of 64 KiB (`total` bytes so far)."""
    if i % 3 == 0:
        yield LogLine(host="host1", text=f"page-xfer: sent {total} bytes [{i}]", t=T0)
    else:
        yield BytesMoved(phase="precopy", total_bytes=total, rate_bps=1e8 + i, t=T0)
    if i and i % ROUND_EVERY == 0:
        r = i // ROUND_EVERY
        yield RoundFinished(
            round=r,
            pages_scanned=300000,
            pages_skipped=0,
            pages_written=300000 // r,
            bytes_sent=total,
            duration_s=1.0,
            frozen_s=0.01,
            throughput_bps=1e8,
            dirty_rate_bps=1e7,
            predicted_freeze_s=1.0 / r,
            t=T0,
        )


def tail(total: int) -> list[Event]:
    return [
        PhaseFinished(phase="precopy", seconds=1.0, t=T0),
        FreezeStarted(t=T0),
        FreezeEnded(total_s=0.2, dump_s=0.1, transfer_s=0.05, restore_s=0.05, t=T0),
        MigrationSucceeded(
            container="cache-1",
            target="host2",
            total_s=2.0,
            freeze_s=0.2,
            dump_s=0.1,
            transfer_s=0.05,
            restore_s=0.05,
            bytes_moved=total,
            t=T0,
        ),
    ]


class Flood:
    """A migration run that floods until told to stop (and for at least `at_least` chunks)."""

    def __init__(self, at_least: int) -> None:
        self.at_least = at_least
        self.stop = False
        self.sent = 0

    def abort(self) -> None:
        """The benchmark never aborts."""

    async def __aiter__(self) -> AsyncIterator[Event]:
        i = total = 0

        def events() -> Iterator[Event]:
            nonlocal i, total
            yield from head()
            while i < self.at_least or not self.stop:
                total += 65536
                yield from body(i, total)
                i += 1
            yield from tail(total)

        for ev in events():
            await asyncio.sleep(0)  # as ReplayRun does at speed 0
            self.sent += 1
            yield ev


class FloodBackend(ReplayBackend):
    def __init__(self, recording: Recording, at_least: int) -> None:
        super().__init__(recording, speed=0)
        self.at_least = at_least
        self.flood: Flood | None = None

    def migrate(self, request: MigrationRequest) -> Flood:
        self.flood = Flood(self.at_least)
        return self.flood


async def run(n_events: int, presses: int) -> dict:
    backend = FloodBackend(Recording.load(PRECOPY), n_events)
    app = FerrymanApp(backend, refresh_s=0)
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
        assert backend.flood is not None
        backend.flood.stop = True
        while not view.progress.finished:
            await asyncio.sleep(0.01)
        sent = backend.flood.sent
    latencies.sort()
    for key, ms in sorted(by_key.items()):
        print(
            f"  {key:<14} n={len(ms):<3} median {statistics.median(ms):.1f} ms  max {max(ms):.1f} ms"
        )
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    print(
        f"events sent: {sent}; during the presses: {flowed} ({flowed / elapsed:.0f}/s); "
        f"migration finished before the last press: {finished}"
    )
    print(
        f"key latency over {len(latencies)} presses (ms): "
        f"min {latencies[0]:.1f}  median {statistics.median(latencies):.1f}  "
        f"p95 {p95:.1f}  max {latencies[-1]:.1f}"
    )
    return {
        "presses": len(latencies),
        "ms": {
            "min": latencies[0],
            "median": statistics.median(latencies),
            "p95": p95,
            "max": latencies[-1],
        },
        "median_ms_by_key": {k: statistics.median(v) for k, v in sorted(by_key.items())},
        "events_per_s_during_presses": flowed / elapsed,
        "flood_ended_before_last_press": finished,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20000, help="flood at least this long")
    ap.add_argument("--presses", type=int, default=60)
    ap.add_argument("--runs", type=int, default=1, help="runs, one after the other")
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        load = os.getloadavg()[0]
        if args.runs > 1:
            print(f"run {i + 1}/{args.runs} (load average {load:.2f})")
        runs.append({"load_average_1m": load, **asyncio.run(run(args.events, args.presses))})
    p95s = [r["ms"]["p95"] for r in runs]
    if args.runs > 1:
        print(f"p95 over {args.runs} runs (ms): best {min(p95s):.1f}  worst {max(p95s):.1f}")
    out = ROOT / "bench" / "results" / "key_latency.json"
    out.write_text(
        json.dumps(
            {
                "command": "bench/key_latency.py " + " ".join(sys.argv[1:]),
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                "cpus": os.cpu_count(),
                "runs": runs,
                "worst_p95_ms": max(p95s),
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
