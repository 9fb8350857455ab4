"""Pre-copy (or post-copy) against stop-and-copy on the VM lab's hosts, at several sizes.

    sudo .venv/bin/python -m bench.precopy_vs_stop_and_copy [--mib 128 512] [--dirty 0.25] [--runs 1]
    sudo .venv/bin/python -m bench.precopy_vs_stop_and_copy --strategy post-copy --mib 128 1024

For each size: a fresh workload on host1 is moved to host2 with pre-copy, then a fresh
one of the same size with stop-and-copy, in the same run. Prints rounds, total time,
freeze window and application-visible gap side by side with the ratios, and writes
bench/results/precopy_vs_stop_and_copy.json. The VM lab is software-emulated: compare
within it, never with the namespace lab.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bench.common import fleet, fmt_s, save, start_workload, summary
from core.engine.machine import Migration
from core.events import MigrationFailed, MigrationSucceeded, RoundFinished
from core.models import MigrationRequest

VM_HOSTS = Path("/var/lib/ferryman-vmlab/hosts.yaml")
NAME = "bench-pc"


async def move(fl, strategy: str, budget: float) -> dict:
    req = MigrationRequest(container=NAME, source="host1", target="host2", strategy=strategy,
                           downtime_budget_s=budget)
    rounds, done = [], None
    async for e in Migration(fl, req):
        if isinstance(e, RoundFinished):
            rounds.append(e.pages_written)
        if isinstance(e, MigrationFailed):
            raise RuntimeError(f"{strategy} failed: {e.cause}")
        if isinstance(e, MigrationSucceeded):
            done = e
    assert done is not None
    return {"rounds": len(rounds), "pages_per_round": rounds, "total_s": done.total_s,
            "freeze_s": done.freeze_s, "gap_s": done.app_gap_s, "dump_s": done.dump_s,
            "transfer_s": done.transfer_s, "restore_s": done.restore_s}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--dirty", type=float, default=0.25)
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--hosts-file", type=Path, default=VM_HOSTS)
    ap.add_argument("--strategy", default="pre-copy", choices=["pre-copy", "post-copy"],
                    help="the strategy to set against stop-and-copy")
    args = ap.parse_args()
    fl = fleet(args.hosts_file)
    src, dst = fl["host1"], fl["host2"]
    out: dict = {"dirty_mib_s": args.dirty, "budget_s": args.budget, "sizes": {}}
    try:
        for mib in args.mib:
            res: dict[str, list[dict]] = {args.strategy: [], "stop-and-copy": []}
            for _ in range(args.runs):
                for strategy in res:
                    await start_workload(src, NAME, mib, args.dirty, [dst])
                    r = await move(fl, strategy, args.budget)
                    res[strategy].append(r)
                    print(f"{mib} MiB {strategy:14} rounds {r['rounds']} total {fmt_s(r['total_s'])} "
                          f"freeze {fmt_s(r['freeze_s'])} (dump {fmt_s(r['dump_s'])}, transfer "
                          f"{fmt_s(r['transfer_s'])}, restore {fmt_s(r['restore_s'])}) gap {fmt_s(r['gap_s'])}",
                          flush=True)
            out["sizes"][mib] = {k: {"runs": v, **{m: summary([x[m] for x in v]) for m in
                                                   ("total_s", "freeze_s", "gap_s")}} for k, v in res.items()}
    finally:
        from bench.common import docker

        for h in (src, dst):
            await docker(h, "rm", "-f", NAME, check=False)
        await fl.close()
    print(f"\ndirtying {args.dirty} MiB/s, budget {fmt_s(args.budget)}, median of {args.runs} run(s)")
    print(f"{'MiB':>5} {'strategy':14} {'rounds':>6} {'total':>9} {'freeze':>9} {'gap':>9}")
    for mib, per in out["sizes"].items():
        for k, v in per.items():
            print(f"{mib:>5} {k:14} {v['runs'][0]['rounds']:>6} {fmt_s(v['total_s']['median']):>9} "
                  f"{fmt_s(v['freeze_s']['median']):>9} {fmt_s(v['gap_s']['median']):>9}")
        pc, sc = per[args.strategy], per["stop-and-copy"]
        print(f"{'':>5} ratio {args.strategy} / stop-and-copy: freeze {pc['freeze_s']['median'] / sc['freeze_s']['median']:.2f}, "
              f"gap {pc['gap_s']['median'] / sc['gap_s']['median']:.2f}")
    sizes = list(out["sizes"])
    if len(sizes) >= 2:
        a, b = out["sizes"][sizes[0]], out["sizes"][sizes[-1]]
        for k in (args.strategy, "stop-and-copy"):
            g = b[k]["freeze_s"]["median"] / a[k]["freeze_s"]["median"]
            print(f"freeze growth {sizes[0]} → {sizes[-1]} MiB, {k}: ×{g:.2f}")
    name = "precopy_vs_stop_and_copy" if args.strategy == "pre-copy" else "postcopy_vs_stop_and_copy"
    print(f"wrote {save(name, out)}")


if __name__ == "__main__":
    asyncio.run(main())
