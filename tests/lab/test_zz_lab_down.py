"""`lab down` leaves nothing behind. Runs last (it takes the lab down), then brings it back
when it was up before, so a developer's lab survives the suite."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab import control, sysctl
from lab.layout import BRIDGE, RUN_DIR, STATE_DIR


def _leftovers() -> list[str]:
    out = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += [f"netns {n.split()[0]}" for n in ns.splitlines() if n.startswith("fm-")]
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
        out.append(f"bridge {BRIDGE}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    out += [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines() if ": fmv" in ln]
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    out += [f"rule {r}" for r in rules.splitlines() if BRIDGE in r]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith((str(STATE_DIR), str(RUN_DIR))):
            out.append(f"mount {mp}")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    out += [f"process {p}" for p in ps.splitlines() if str(RUN_DIR) in p or str(STATE_DIR) in p]
    out += [f"folder {d}" for d in (STATE_DIR, RUN_DIR) if d.exists()]
    return out


def test_lab_down_leaves_no_namespace_bridge_rule_daemon_or_mount(lab_hosts):
    assert _leftovers(), "the lab should be up before this test"
    assert int(sysctl.PIPE_MAX.read_text()) >= sysctl.WANT  # post-copy works on the lab
    machine_had = sysctl.SAVED.read_text().strip() if sysctl.SAVED.exists() else None
    control.down(log=lambda _m: None)
    try:
        assert _leftovers() == []
        if machine_had is not None:
            assert sysctl.PIPE_MAX.read_text().strip() == machine_had
    finally:
        control.up(2, log=lambda _m: None)
