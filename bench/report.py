"""The suite's figures: medians with min and max, ratios pair by pair, the table, the targets."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import fmt_s, summary
from bench.paths import NAIVE

MIB = 1 << 20
METRICS = ("gap_s", "freeze_s", "dump_s", "transfer_s", "restore_s", "total_s", "wire_bytes",
           "rate_mib_s", "cpu_source_s", "cpu_target_s", "cpu_console_s")


def ok_runs(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "error" not in r and r.get("gap_s") is not None]


def summarise(runs: list[dict]) -> dict[str, dict[str, float]]:
    good = ok_runs(runs)
    for r in good:
        r["rate_mib_s"] = r["stream_bytes"] / MIB / r["stream_s"] if r["stream_s"] else 0.0
    return {m: summary([r[m] for r in good]) for m in METRICS if good and all(m in r for r in good)}


def pairwise(a: list[dict], b: list[dict], metric: str = "gap_s") -> list[float]:
    """a[i] / b[i] for the runs made side by side (same run index), both successful."""
    bi = {r["run"]: r for r in ok_runs(b)}
    return [r[metric] / bi[r["run"]][metric] for r in ok_runs(a) if r["run"] in bi and bi[r["run"]][metric]]


def med(case: dict, path: str, metric: str) -> float | None:
    s = case["paths"].get(path, {}).get("summary", {}).get(metric)
    return s["median"] if s else None


def ordered(res: dict, case: dict) -> list[str]:
    """The case's paths in the order they ran (a results file has its keys sorted)."""
    return [p for p in res.get("paths", case["paths"]) if p in case["paths"]]


def split(case: dict, path: str) -> str:
    s = case["paths"][path]["summary"]
    if not s:
        return f"{path}: no successful run"
    g = lambda m: fmt_s(s[m]["median"])  # noqa: E731
    return (f"{path}: gap {g('gap_s')} = freeze {g('freeze_s')} (dump {g('dump_s')} + transfer "
            f"{g('transfer_s')} + restore {g('restore_s')}) + {fmt_s(max(s['gap_s']['median'] - s['freeze_s']['median'], 0))} outside it")


def _mm(s: dict[str, float], f=fmt_s) -> str:
    return f"{f(s['median'])} [{f(s['min'])}–{f(s['max'])}]"


def table(res: dict) -> list[str]:
    raw = res["raw_ssh_mib_s"]["median"]
    head = (f"{'case':22} {'path':14} {'app-visible gap':>24} {'freeze window':>24} {'dump':>7} {'xfer':>7} "
            f"{'restore':>7} {'total':>7} {'wire MiB':>12} {'rate MiB/s':>14} {'CPU s src/dst/console':>22}")
    lines = [head, "-" * len(head)]
    for c in res["cases"]:
        for path in ordered(res, c):
            p = c["paths"][path]
            s = p["summary"]
            fails = sum(len(r.get("failed_attempts", [])) for r in p["runs"])
            if not s:
                lines.append(f"{c['case']:22} {path:14} every attempt failed ({fails}): {p['runs'][0].get('error', '')[:80]}")
                continue
            wire = s["wire_bytes"]["median"] / MIB
            x_mem = f"×{wire / c['mib']:.2f}" if c["mib"] else ""
            cpu = "/".join(f"{s[k]['median']:.1f}" for k in ("cpu_source_s", "cpu_target_s", "cpu_console_s"))
            lines.append(
                f"{c['case']:22} {path:14} {_mm(s['gap_s']):>24} {_mm(s['freeze_s']):>24} "
                f"{fmt_s(s['dump_s']['median']):>7} {fmt_s(s['transfer_s']['median']):>7} "
                f"{fmt_s(s['restore_s']['median']):>7} {fmt_s(s['total_s']['median']):>7} "
                f"{wire:>6.0f} {x_mem:>5} {s['rate_mib_s']['median']:>6.0f} ({s['rate_mib_s']['median'] / raw:>4.0%}) "
                f"{cpu:>22}" + (f"  ({fails} failed attempt(s) retried)" if fails else ""))
    return lines


def ratio_lines(res: dict) -> list[str]:
    out = []
    for c in res["cases"]:
        if NAIVE not in c["paths"]:
            continue
        for path in ordered(res, c):
            if path == NAIVE:
                continue
            r = pairwise(c["paths"][path]["runs"], c["paths"][NAIVE]["runs"])
            c.setdefault("gap_ratio_vs_naive", {})[path] = r
            if r:
                out.append(f"{c['case']:22} gap {path} / naive, pair by pair: "
                           f"{', '.join(f'{x:.2f}' for x in r)} (median {statistics.median(r):.2f})")
    return out


def _case(res: dict, mib: int, dirty: float) -> dict | None:
    return next((c for c in res["cases"] if c["kind"] == "workload" and c["mib"] == mib and c["dirty"] == dirty), None)


def _best(c: dict, metric: str) -> str | None:
    cands = [(med(c, p, metric), p) for p in c["paths"] if p != NAIVE and med(c, p, metric) is not None]
    return min(cands)[1] if cands else None


def targets(res: dict) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, met: bool | None, value: str, where: list[str]) -> None:
        out.append({"target": name, "met": met, "value": value, "where": where})

    if res["lab"] == "ns":
        c = _case(res, 256, 32)
        name = "256 MiB dirtying 32 MiB/s: stop-and-copy's gap ≤ 1/5 of the naive path's"
        r = pairwise(c["paths"]["stop-and-copy"]["runs"], c["paths"][NAIVE]["runs"]) if c and NAIVE in c["paths"] and "stop-and-copy" in c["paths"] else []
        if r:
            m = statistics.median(r)
            add(name, m <= 0.2, f"ratio {m:.2f} (pairs {', '.join(f'{x:.2f}' for x in r)})",
                [split(c, "stop-and-copy"), split(c, NAIVE)])
        else:
            add(name, None, "not measured in this run", [])
    else:
        c = _case(res, 128, 4)
        name = "128 MiB dirtying 4 MiB/s: the best strategy's gap ≤ 1/10 of the naive path's"
        best = _best(c, "gap_s") if c else None
        r = pairwise(c["paths"][best]["runs"], c["paths"][NAIVE]["runs"]) if c and best and NAIVE in c["paths"] else []
        if r:
            m = statistics.median(r)
            add(name, m <= 0.1, f"best {best}, ratio {m:.2f} (pairs {', '.join(f'{x:.2f}' for x in r)})",
                [split(c, best), split(c, NAIVE)])
        else:
            add(name, None, "not measured in this run", [])
        a, b = _case(res, 64, 4), _case(res, 512, 4)
        name = "64 → 512 MiB at 4 MiB/s: the best strategy's freeze window grows ≤ 1.5×"
        best = _best(b, "freeze_s") if a and b else None
        if a and b and best and med(a, best, "freeze_s"):
            grow = {p: med(b, p, "freeze_s") / med(a, p, "freeze_s")  # type: ignore[operator]
                    for p in b["paths"] if med(a, p, "freeze_s") and med(b, p, "freeze_s")}
            add(name, grow[best] <= 1.5, f"best {best} ×{grow[best]:.2f}; " + ", ".join(f"{p} ×{g:.2f}" for p, g in grow.items()),
                [f"64 MiB {split(a, best)}", f"512 MiB {split(b, best)}"])
        else:
            add(name, None, "not measured in this run", [])

    raw = res["raw_ssh_mib_s"]["median"]
    work = [c for c in res["cases"] if c["kind"] == "workload" and c["mib"] and "stop-and-copy" in c["paths"]
            and c["paths"]["stop-and-copy"]["summary"]]
    top = [c for c in work if c["mib"] == max((x["mib"] for x in work), default=0)]
    name = "transfer rate ≥ 80 % of the raw SSH throughput (stop-and-copy, largest size)"
    if top:
        rates = [(med(c, "stop-and-copy", "rate_mib_s") or 0, c) for c in top]
        worst, wc = min(rates, key=lambda x: x[0])
        add(name, worst >= 0.8 * raw, f"worst {worst:.0f} MiB/s = {worst / raw:.0%} of raw {raw:.0f} MiB/s ({wc['case']})",
            [split(wc, "stop-and-copy")])
        name = "bytes on the wire ≤ 1.1 × memory (stop-and-copy)"
        xs = [((med(c, "stop-and-copy", "wire_bytes") or 0) / MIB / c["mib"], c) for c in work]
        x, xc = max(xs, key=lambda v: v[0])
        add(name, x <= 1.1, f"worst ×{x:.3f} ({xc['case']})", [])
    else:
        add(name, None, "not measured in this run", [])
    name = "application-visible gap ≤ 1.5 × the freeze window (every ferryman path and case)"
    xs2 = [((med(c, p, "gap_s") or 0) / (med(c, p, "freeze_s") or 1), c, p) for c in res["cases"] if c["kind"] != "floor"
           for p in c["paths"] if p != NAIVE and med(c, p, "freeze_s")]
    if xs2:
        x, xc, xp = max(xs2, key=lambda v: v[0])
        add(name, x <= 1.5, f"worst ×{x:.2f} ({xc['case']}, {xp})", [split(xc, xp)])
    else:
        add(name, None, "not measured in this run", [])
    return out


def target_lines(ts: list[dict]) -> list[str]:
    out = []
    for t in ts:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        out.append(f"[{verdict}] {t['target']}: {t['value']}")
        out += [f"    {w}" for w in t["where"]]
    return out
