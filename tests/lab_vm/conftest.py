"""Fixtures for tests against the VM lab: QEMU guests running Debian's 6.1 kernel (soft-dirty
and userfaultfd), each with its own sshd, dockerd, runc and CRIU, reached over SSH on the
bridge fmbr1. The fixtures bring the lab up through `ferryman lab up --vm` when it is not
(it is idempotent); booting two guests under TCG takes about a minute or two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lab import vm
from lab.control import WorkloadSpec

FERRYMAN = [sys.executable, "-m", "ferryman.cli"]

if os.geteuid() != 0:
    pytest.skip(
        "VM lab tests need root: the lab makes a bridge and tap devices and runs QEMU guests "
        "(run them as root, e.g. through scripts/test.sh)",
        allow_module_level=True,
    )


def ferryman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FERRYMAN, *args], capture_output=True, text=True, timeout=timeout)


def gssh(h: vm.VmHost, command: str, *, check: bool = True, timeout: float = 120) -> str:
    """A shell line run as root in a guest, through the lab's key and known_hosts."""
    p = subprocess.run(vm.ssh_argv(h, command), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{h.name}: {command!r} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


@pytest.fixture(scope="session")
def was_up() -> bool:
    """Whether the VM lab was up before these tests (then it is left up at the end)."""
    st = vm.status()
    return st["up"] and len(st["hosts"]) >= 2


@pytest.fixture(scope="session")
def vm_hosts(was_up) -> list[vm.VmHost]:
    if not was_up:
        p = ferryman("lab", "up", "--vm", "--hosts", "2")
        assert p.returncode == 0, f"lab up --vm failed: {p.stderr.strip()}\n{p.stdout}"
    return [vm.VmHost(1), vm.VmHost(2)]


@pytest.fixture()
def workload_on_host1(vm_hosts) -> vm.VmHost:
    """`workload` runs on host1 and exists nowhere else (a migration may have moved it)."""
    h1, *others = vm_hosts
    for h in others:
        gssh(h, "docker rm -f workload >/dev/null 2>&1 || true")
    if gssh(h1, "docker inspect -f '{{.State.Running}}' workload", check=False) != "true":
        gssh(h1, "docker rm -f workload >/dev/null 2>&1 || true")
        spec = json.loads(vm.STATUS_FILE.read_text()).get("workload", {})
        vm.start_workload(h1, WorkloadSpec(**spec))
        time.sleep(1)
    return h1


def heartbeat(h: vm.VmHost, name: str = "workload") -> int:
    out = gssh(h, f"docker logs --tail 1 {name}")
    parts = out.split()
    assert len(parts) >= 3 and parts[0] == "hb", f"no heartbeat from {name}: {out!r}"
    return int(parts[1])
