"""Freeze window and application-visible gap: ferryman's stop-and-copy vs the naive path.

    sudo .venv/bin/python -m bench.stop_and_copy_vs_naive [--mib 256] [--dirty 32] [--runs 3]

Runs on the local lab (host1 → host2), both paths in the same run, over the same SSH
transport. The naive path: `docker checkpoint create` → the checkpoint folder copied over
SSH → `docker start --checkpoint` on a twin created beforehand. The gap is read from the
workload's heartbeats (last on the source, first on the target). Prints a table and
writes bench/results/stop_and_copy_vs_naive.json. Target (issue "Migration engine I"):
stop-and-copy's gap ≤ 1/5 of the naive path's.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import app_gap, docker, ensure_image, fleet, fmt_s, save, start_workload, summary
from core import remote
from core.engine.machine import Migration
from core.engine.transfer import Meter, relay
from core.events import MigrationFailed, MigrationSucceeded
from core.fleet import Host
from core.models import MigrationRequest

NAME = "bench-wl"


async def ferryman_run(fl, src: Host, dst: Host) -> dict:
    req = MigrationRequest(container=NAME, source=src.name, target=dst.name, strategy="stop-and-copy")
    done = None
    async for e in Migration(fl, req):
        if isinstance(e, MigrationFailed):
            raise RuntimeError(f"migration failed: {e.cause}")
        if isinstance(e, MigrationSucceeded):
            done = e
    assert done is not None
    return {"freeze_s": done.freeze_s, "dump_s": done.dump_s, "transfer_s": done.transfer_s,
            "restore_s": done.restore_s, "gap_s": done.app_gap_s, "total_s": done.total_s,
            "bytes": done.bytes_moved}


async def naive_run(src: Host, dst: Host) -> dict:
    info = await dst.engine.info()
    ins = await src.engine.inspect(NAME)
    assert ins is not None
    cmd = ins["Config"]["Cmd"]
    twin = await docker(dst, "create", "--name", NAME, "ferryman-lab/workload:1", *cmd)
    src_root = (await src.engine.info())["DockerRootDir"]
    ck_src = f"{src_root}/containers/{ins['Id']}/checkpoints/naive"
    ck_dst = f"{info['DockerRootDir']}/containers/{twin}/checkpoints/naive"
    t0 = time.monotonic()
    await docker(src, "checkpoint", "create", NAME, "naive")
    t1 = time.monotonic()
    src_log = await docker(src, "logs", NAME)
    await dst.ssh.run(remote.quote(remote.mkdir_private(ck_dst)))
    await relay(src.ssh, remote.quote(remote.tar_create(ck_src)), dst.ssh,
                remote.quote(remote.tar_extract(ck_dst)), Meter(lambda *a: None))
    t2 = time.monotonic()
    await docker(dst, "start", "--checkpoint", "naive", NAME)
    t3 = time.monotonic()
    gap = await app_gap(src, dst, NAME, src_log)
    await docker(src, "rm", "-f", NAME)
    return {"freeze_s": t3 - t0, "dump_s": t1 - t0, "transfer_s": t2 - t1, "restore_s": t3 - t2,
            "gap_s": gap.seconds if gap else None, "continued": bool(gap and gap.continued)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--dirty", type=float, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    fl = fleet()
    src, dst = fl["host1"], fl["host2"]
    await ensure_image(src, dst)
    rows: dict[str, list[dict]] = {"ferryman stop-and-copy": [], "naive (docker checkpoint)": []}
    try:
        for i in range(args.runs):
            for path in rows:
                await start_workload(src, NAME, args.mib, args.dirty, [dst])
                r = await (ferryman_run(fl, src, dst) if path.startswith("ferryman") else naive_run(src, dst))
                rows[path].append(r)
                print(f"run {i + 1} {path:27} gap {fmt_s(r['gap_s'])}  freeze {fmt_s(r['freeze_s'])} "
                      f"(dump {fmt_s(r['dump_s'])}, transfer {fmt_s(r['transfer_s'])}, restore {fmt_s(r['restore_s'])})",
                      flush=True)
    finally:
        for h in (src, dst):
            await docker(h, "rm", "-f", NAME, check=False)
        await fl.close()
    print(f"\n{args.mib} MiB of random memory, dirtying {args.dirty} MiB/s, {args.runs} runs each (median [min–max])")
    print(f"{'path':27} {'app-visible gap':>26} {'freeze':>26} {'dump':>9} {'transfer':>9} {'restore':>9}")
    out = {"mib": args.mib, "dirty_mib_s": args.dirty, "runs": rows, "summary": {}}
    for path, rs in rows.items():
        s = {k: summary([r[k] for r in rs]) for k in ("gap_s", "freeze_s", "dump_s", "transfer_s", "restore_s")}
        out["summary"][path] = s
        g, f = s["gap_s"], s["freeze_s"]
        print(f"{path:27} {fmt_s(g['median']):>9} [{fmt_s(g['min'])}–{fmt_s(g['max'])}] "
              f"{fmt_s(f['median']):>9} [{fmt_s(f['min'])}–{fmt_s(f['max'])}] {fmt_s(s['dump_s']['median']):>9} "
              f"{fmt_s(s['transfer_s']['median']):>9} {fmt_s(s['restore_s']['median']):>9}")
    ratios = [a["gap_s"] / b["gap_s"] for a, b in zip(rows["ferryman stop-and-copy"], rows["naive (docker checkpoint)"], strict=True)]
    med = sorted(ratios)[len(ratios) // 2]
    out["gap_ratio_pairwise"] = ratios
    verdict = "met" if med <= 0.2 else "NOT met"
    print(f"\ngap ratio ferryman / naive, pair by pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {med:.2f} — target ≤ 0.20: {verdict}")
    print(f"wrote {save('stop_and_copy_vs_naive', out)}")


if __name__ == "__main__":
    asyncio.run(main())
