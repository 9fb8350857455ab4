"""How long `ferryman ps` takes to list every host's containers, cold and warm, for 2 and 8 hosts.

    sudo .venv/bin/python -m bench.listing [--reps 5]

Brings the local lab up to 8 hosts (idempotent; hosts 3–8 stay up afterwards until
`ferryman lab down`). Cold: a new set of connections (SSH handshake, forwarded Docker
socket, listing). Warm: the same connections, listed again — what the console's refresh
costs. Prints median/min/max per case; the goal is ≤ 2 s warm.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import fmt_s, save, summary
from core.config import load
from core.fleet import Fleet
from core.inventory import listing
from lab import control
from lab.layout import HOSTS_FILE


def subset(n: int) -> Path:
    doc = yaml.safe_load(HOSTS_FILE.read_text())
    doc["hosts"] = doc["hosts"][:n]
    f = Path(tempfile.mkdtemp()) / f"hosts-{n}.yaml"
    f.write_text(yaml.safe_dump(doc))
    return f


async def measure(n: int, reps: int) -> dict:
    cold, warm = [], []
    path = subset(n)
    for _ in range(reps):
        fl = Fleet(load(path))
        t = time.monotonic()
        rows = await listing(fl)
        cold.append(time.monotonic() - t)
        assert all(h.state.value == "up" for h, _ in rows), [h.reason for h, _ in rows]
        for _ in range(3):
            t = time.monotonic()
            await listing(fl)
            warm.append(time.monotonic() - t)
        await fl.close()
    return {"hosts": n, "cold_s": summary(cold), "warm_s": summary(warm)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if len(control.status()["hosts"]) < 8:
        print("bringing the lab up to 8 hosts…", flush=True)
        control.up(8, log=lambda _m: None)
    results = [await measure(n, args.reps) for n in (2, 8)]
    print(f"{'hosts':>5} {'cold median [min–max]':>30} {'warm median [min–max]':>30}")
    for r in results:
        c, w = r["cold_s"], r["warm_s"]
        print(f"{r['hosts']:>5} {fmt_s(c['median']):>12} [{fmt_s(c['min'])}–{fmt_s(c['max'])}] "
              f"{fmt_s(w['median']):>12} [{fmt_s(w['min'])}–{fmt_s(w['max'])}]")
    worst = max(r["warm_s"]["max"] for r in results)
    print(f"warm listing ≤ 2 s: {'met' if worst <= 2 else 'NOT met'} (worst {fmt_s(worst)})")
    print(f"wrote {save('listing', results)}")


if __name__ == "__main__":
    asyncio.run(main())
