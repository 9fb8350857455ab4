"""The suite's chart as a plain SVG: one panel per case, one bar per path.

Each bar is the freeze window's median split into dump / transfer / restore; the black
tick is the application-visible gap's median with a whisker from min to max. Each
panel has its own scale (the cases differ by two orders of magnitude).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from bench.report import ordered

COLOURS = {"dump_s": "#4e79a7", "transfer_s": "#f28e2b", "restore_s": "#59a14f"}
W, PANEL_W, ROW_H, PAD = 1100, 520, 22, 14
LABEL_W = 110


def _nice(v: float) -> float:
    for m in (1, 2, 5, 10, 20, 50, 100, 200, 500):
        for e in (0.01, 0.1, 1):
            if m * e >= v:
                return m * e
    return v


def _panel(c: dict, order: list[str], x0: float, y0: float) -> tuple[list[str], float]:
    paths = [(p, c["paths"][p]["summary"]) for p in order if c["paths"][p]["summary"]]
    failed = [p for p in order if not c["paths"][p]["summary"]]
    h = 30 + ROW_H * max(len(paths), 1) + 18 + 14 * bool(failed)
    out = [f'<text x="{x0}" y="{y0 + 16}" font-weight="bold">{escape(c["case"])}</text>']
    if failed:
        out.append(f'<text x="{x0}" y="{y0 + h - 4}" font-size="11" fill="#b00">every attempt failed: '
                   f'{escape(", ".join(failed))} (why: in the JSON)</text>')
    top = max([s["gap_s"]["max"] for _, s in paths] + [s["freeze_s"]["median"] for _, s in paths] + [0.01])
    scale_max = _nice(top)
    bar_w = PANEL_W - LABEL_W - 60
    sx = lambda v: x0 + LABEL_W + bar_w * v / scale_max  # noqa: E731
    for i, (p, s) in enumerate(paths):
        y = y0 + 26 + i * ROW_H
        out.append(f'<text x="{x0 + LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(p)}</text>')
        x = sx(0)
        for k, col in COLOURS.items():
            w = sx(s[k]["median"]) - sx(0)
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 0):.1f}" height="{ROW_H - 8}" fill="{col}"/>')
            x += w
        g = s["gap_s"]
        yc = y + ROW_H / 2 - 1
        out.append(f'<line x1="{sx(g["min"]):.1f}" x2="{sx(g["max"]):.1f}" y1="{yc}" y2="{yc}" stroke="#000"/>')
        out.append(f'<line x1="{sx(g["median"]):.1f}" x2="{sx(g["median"]):.1f}" y1="{y + 1}" y2="{y + ROW_H - 3}" '
                   f'stroke="#000" stroke-width="3"/>')
        out.append(f'<text x="{max(sx(g["max"]), x) + 5:.1f}" y="{y + 13}" font-size="11">{g["median"]:.2f} s</text>')
    ya = y0 + 26 + len(paths) * ROW_H + 2
    out.append(f'<line x1="{sx(0)}" x2="{sx(scale_max)}" y1="{ya}" y2="{ya}" stroke="#999"/>')
    for f in (0, 0.5, 1):
        out.append(f'<text x="{sx(scale_max * f):.1f}" y="{ya + 12}" font-size="10" text-anchor="middle" '
                   f'fill="#555">{scale_max * f:g} s</text>')
    return out, h


def svg(res: dict, path: Path) -> Path:
    body, y, col, row_h = [], 70.0, 0, 0.0
    for c in res["cases"]:
        part, h = _panel(c, ordered(res, c), PAD + col * (PANEL_W + 30), y)
        body += part
        row_h = max(row_h, h)
        col += 1
        if col == 2:
            col, y, row_h = 0, y + row_h + 8, 0.0
    height = y + row_h + 20
    legend = [f'<rect x="{PAD + i * 150}" y="42" width="12" height="12" fill="{c}"/>'
              f'<text x="{PAD + i * 150 + 17}" y="52">{k[:-2]} (freeze)</text>' for i, (k, c) in enumerate(COLOURS.items())]
    legend.append(f'<line x1="{PAD + 450}" x2="{PAD + 450}" y1="40" y2="56" stroke="#000" stroke-width="3"/>'
                  f'<text x="{PAD + 458}" y="52">application-visible gap: median, whisker min–max</text>')
    raw = res["raw_ssh_mib_s"]["median"]
    title = (f"ferryman benchmark suite, {res['lab_name']}: {res['source']} → {res['target']}, "
             f"{res['runs']} run(s) per path, raw SSH {raw:.0f} MiB/s, load {res['load_start']}")
    doc = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0f}" '
           f'font-family="DejaVu Sans, sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="#fff"/>',
           f'<text x="{PAD}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>', *legend, *body, "</svg>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(doc) + "\n")
    return path
