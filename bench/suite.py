"""The benchmark suite: every path on every case, the limits measured in the same run.

    sudo .venv/bin/python -m bench.suite [--lab ns|vm] [--source host1] [--target host2]
                                         [--runs 3] [--quick] [--mib ...] [--dirty ...] [--paths ...]

Cases: CRIU's floor (a tiny container), the lab workload at each size × dirty rate
(random memory), and a container with several processes and open files. Paths: every
ferryman strategy both hosts support (asked of preflight) and the naive path
(`docker checkpoint create` → copy over SSH → `docker start --checkpoint`), run side by
side within each run. Limits: raw SSH throughput through the same relay. Prints the
table, the ratios pair by pair and each target as met / not met with the phase split;
writes bench/results/<name>.json and <name>.svg. The lab's hosts share this machine's
CPUs: the load average is recorded with every run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
from pathlib import Path

from bench import chart, cpu, limits, report
from bench.common import (
    LAB_HOSTS,
    MULTI_CMD,
    MULTI_MIB,
    RESULTS,
    docker,
    ensure_image,
    fleet,
    fmt_s,
    save,
    start_workload,
    summary,
)
from bench.paths import DIRECT, NAIVE, move
from core.fleet import Fleet, Host
from core.preflight import host_report
from lab.layout import MAX_HOSTS, LabHost

VM_HOSTS = Path("/var/lib/ferryman-vmlab/hosts.yaml")
NAME = "bench-suite"
LABS = {"ns": ("namespace lab (this machine's kernel)", LAB_HOSTS, [64, 256, 1024], 512),
        "vm": ("VM lab (QEMU TCG guests, Debian 6.1 kernel)", VM_HOSTS, [64, 128, 512], 64)}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def netns_of(fl: Fleet) -> dict[str, str]:
    by_addr = {LabHost(i).address: LabHost(i).netns for i in range(1, MAX_HOSTS + 1)}
    return {n: by_addr[h.spec.address] for n, h in fl.hosts.items() if h.spec.address in by_addr}


async def supported_paths(src: Host, dst: Host) -> tuple[list[str], dict]:
    a, b = await asyncio.gather(host_report(src, lazy_trial_run=True), host_report(dst, lazy_trial_run=True))
    paths = ["stop-and-copy"]
    dirty, lazy = bool(a.facts.dirty_tracking), bool(a.facts.lazy_pages and b.facts.lazy_pages)
    paths += ["pre-copy"] * dirty + ["post-copy"] * lazy + ["hybrid"] * (dirty and lazy)
    return [*paths, NAIVE], {"soft_dirty_source": dirty, "lazy_pages_both": lazy}


def cases(args: argparse.Namespace) -> list[dict]:
    out = [{"case": "floor: tiny container", "kind": "floor", "mib": 0, "dirty": 0.0}]
    out += [{"case": f"{m} MiB @ {d:g} MiB/s", "kind": "workload", "mib": m, "dirty": d}
            for m in args.mib for d in args.dirty]
    if not args.no_multi:
        out.append({"case": f"5 procs + files {MULTI_MIB} MiB", "kind": "multi", "mib": MULTI_MIB, "dirty": 4.0})
    return out


async def one(fl: Fleet, src: Host, dst: Host, c: dict, path: str, run: int, args, netns) -> dict:
    """One move; a failed attempt is kept in the record and tried again once."""
    failed: list[str] = []
    for _ in range(2):
        rec: dict = {"run": run, "load": os.getloadavg()}
        try:
            cmd = MULTI_CMD if c["kind"] == "multi" else None
            await start_workload(src, NAME, c["mib"], c["dirty"], [dst], cmd)
            async with cpu.CpuMeter(src, dst, netns) as m:
                rec |= await move(fl, src, dst, NAME, path, args.budget)
            rec |= m.result
        except Exception as e:  # noqa: BLE001 - a failed run is a figure too; the suite goes on
            failed.append(f"{type(e).__name__}: {e}")
            print(f"  run {run + 1} {path:14} FAILED: {failed[-1][:300]}", flush=True)
            continue
        print(f"  run {run + 1} {path:14} gap {fmt_s(rec['gap_s'] or 0)} freeze {fmt_s(rec['freeze_s'])} "
              f"(dump {fmt_s(rec['dump_s'])}, transfer {fmt_s(rec['transfer_s'])}, restore "
              f"{fmt_s(rec['restore_s'])}) total {fmt_s(rec['total_s'])} wire {rec['wire_bytes'] / 2**20:.0f} MiB "
              f"load {rec['load'][0]:.2f}", flush=True)
        break
    else:
        rec["error"] = failed[-1]
    rec["failed_attempts"] = failed
    return rec


async def run_suite(args: argparse.Namespace) -> dict:
    lab_name, default_hosts, _, _ = LABS[args.lab]
    fl = fleet(args.hosts_file or default_hosts)
    src, dst = fl[args.source], fl[args.target]
    res: dict = {"lab": args.lab, "lab_name": lab_name, "source": src.name, "target": dst.name,
                 "runs": args.runs, "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                 "uptime_start": uptime(), "load_start": f"{os.getloadavg()[0]:.2f}", "cpu_method": cpu.__doc__}
    try:
        if args.paths:
            paths, res["capabilities"] = args.paths, {}
        else:
            paths, res["capabilities"] = await supported_paths(src, dst)
        res["paths"] = paths
        print(f"{lab_name}: {src.name} → {dst.name}; paths {', '.join(paths)}; {res['uptime_start']}", flush=True)
        await ensure_image(src, dst)
        netns = netns_of(fl) if args.lab == "ns" else None
        raw = await limits.raw_ssh(src, dst, args.raw_mib, max(args.runs, 2))
        res["raw_ssh"], res["raw_ssh_mib_s"] = raw, summary([r["rate_mib_s"] for r in raw])
        print(f"raw SSH throughput through the relay, {args.raw_mib} MiB: "
              + ", ".join(f"{r['rate_mib_s']:.0f}" for r in raw) + " MiB/s", flush=True)
        if any(p.endswith(DIRECT) for p in paths):
            h2h = await limits.raw_host_to_host(src, dst, args.raw_mib, max(args.runs, 2))
            res["raw_h2h"], res["raw_h2h_mib_s"] = h2h, summary([r["rate_mib_s"] for r in h2h])
            print(f"raw OpenSSH host to host, {args.raw_mib} MiB: "
                  + ", ".join(f"{r['rate_mib_s']:.0f}" for r in h2h) + " MiB/s", flush=True)
        res["cases"] = []
        for c in cases(args):
            print(f"{c['case']}:", flush=True)
            c["paths"] = {p: {"runs": []} for p in paths}
            for i in range(args.runs):
                for p in paths:
                    c["paths"][p]["runs"].append(await one(fl, src, dst, c, p, i, args, netns))
            for p in paths:
                c["paths"][p]["summary"] = report.summarise(c["paths"][p]["runs"])
            res["cases"].append(c)
            save(f"{args.name}.partial", res)  # what is done so far, should the run be cut short
    finally:
        for h in (src, dst):
            await docker(h, "rm", "-f", NAME, check=False)
        await fl.close()
    res["uptime_end"] = uptime()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lab", choices=list(LABS), default="ns")
    ap.add_argument("--hosts-file", type=Path)
    ap.add_argument("--source", default="host1")
    ap.add_argument("--target", default="host2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="64 MiB at 4 MiB/s only, one run (a smoke run)")
    ap.add_argument("--mib", type=int, nargs="+")
    ap.add_argument("--dirty", type=float, nargs="+", default=[0, 4, 32])
    ap.add_argument("--paths", nargs="+", help=f"instead of every supported strategy + {NAIVE}")
    ap.add_argument("--no-multi", action="store_true", help="leave out the multi-process container")
    ap.add_argument("--budget", type=float, default=0.3, help="pre-copy's downtime budget, seconds")
    ap.add_argument("--raw-mib", type=int, help="size of the raw SSH throughput probe")
    ap.add_argument("--name", help="results file name (default suite-<lab>[-quick])")
    ap.add_argument("--report", type=Path, metavar="JSON", help="print and draw a results file again, run nothing")
    args = ap.parse_args()
    _, _, sizes, raw_mib = LABS[args.lab]
    if args.quick:
        args.runs, args.mib, args.dirty = 1, args.mib or [64], [4] if args.dirty == [0, 4, 32] else args.dirty
    args.mib = args.mib or sizes
    args.raw_mib = args.raw_mib or (raw_mib // 4 if args.quick else raw_mib)
    name = args.name = args.name or f"suite-{args.lab}" + ("-quick" if args.quick else "")
    if args.report:  # the table, targets and chart again from a results file
        res = json.loads(args.report.read_text())
        name = args.report.name.removesuffix(".json")
    else:
        res = asyncio.run(run_suite(args))
        (RESULTS / f"{name}.partial.json").unlink(missing_ok=True)
    lines = ["", f"{res['lab_name']}, {res['source']} → {res['target']}, {res['runs']} run(s) per path, "
             f"median [min–max]; {res['uptime_start']}",
             f"raw SSH throughput (relay through this console): {res['raw_ssh_mib_s']['median']:.0f} MiB/s "
             f"[{res['raw_ssh_mib_s']['min']:.0f}–{res['raw_ssh_mib_s']['max']:.0f}]", ""]
    lines += report.table(res) + [""] + report.ratio_lines(res) + [""]
    res["targets"] = report.targets(res)
    lines += report.target_lines(res["targets"])
    res["printed"] = lines
    print("\n".join(lines))
    out = args.report or save(name, res)
    print(f"\nwrote {'' if args.report else f'{out} and '}{chart.svg(res, RESULTS / f'{name}.svg')}")


if __name__ == "__main__":
    main()
