"""`lab down --vm` leaves nothing of the VM lab: no QEMU, tap, bridge, rule or folder. Runs
last; brings the lab back when it was up before the tests, so a developer's lab survives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import vm

from .conftest import ferryman

pytestmark = pytest.mark.vmlab


def _leftovers() -> list[str]:
    out = []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for ln in links.splitlines():
        name = ln.split(":")[1].strip().split("@")[0]
        if name == vm.BRIDGE or name.startswith("fmt"):
            out.append(f"link {name}")
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    out += [f"rule {r}" for r in rules.splitlines() if vm.BRIDGE in r]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith((str(vm.STATE_DIR), str(vm.RUN_DIR))):
            out.append(f"mount {mp}")
    ps = subprocess.run(["ps", "-eo", "comm=,args="], capture_output=True, text=True).stdout
    out += [
        f"process {p}"
        for p in ps.splitlines()
        if p.startswith("qemu-system") and (str(vm.STATE_DIR) in p or str(vm.RUN_DIR) in p)
    ]
    out += [f"folder {d}" for d in (vm.STATE_DIR, vm.RUN_DIR) if d.exists()]
    return out


def test_lab_down_vm_leaves_no_qemu_tap_bridge_rule_or_folder(vm_hosts, was_up):
    assert _leftovers(), "the VM lab should be up before this test"
    p = ferryman("lab", "down", "--vm")
    try:
        assert p.returncode == 0, p.stderr
        assert _leftovers() == []
    finally:
        if was_up:
            ferryman("lab", "up", "--vm")
