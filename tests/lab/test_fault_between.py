"""The fault matrix's further rows: faults inside a phase, hosts lost without a reset or
rebooted, engines restarted (also with live-restore), the container's restart policy,
and two faults at once. Each row is judged as the matrix's are
(`tests.lab.test_fault_matrix.judge`): exactly one copy, its state intact, no images,
locks or CRIU files left, the journal saying how it ended. The rows join the matrix's
table.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from core.engine import criu_conf
from lab import control, engine
from lab.layout import WORKLOAD
from tests.lab import faults
from tests.lab.conftest import docker, heartbeats, move_in_process
from tests.lab.test_fault_matrix import _entry, fresh_images_folders, judge  # noqa: F401

ALWAYS = "--restart always"
LIVE = "live-restore"
# (fault, phase, setting): the fault goes in at the start of the phase, or at the moment
# the fault's name gives, inside it.
ROWS = [
    ("source SSH cut at the end of the dump", "checkpoint", ""),
    ("console killed inside the restore command", "restore", ""),
    ("console killed while runc.conf is in place", "restore", ""),
    ("restore shell killed while runc.conf is in place", "restore", ""),
    ("console SIGHUP", "checkpoint", ""),
    ("console SIGHUP", "verify", ""),
    ("source lost: packets dropped", "checkpoint", ""),
    ("source lost: packets dropped", "commit", ""),
    ("target lost: packets dropped", "restore", ""),
    ("target lost: packets dropped", "verify", ""),
    ("source reboots", "transfer", ""),
    ("source reboots", "commit", ""),
    ("target reboots", "restore", ""),
    ("target reboots", "verify", ""),
    ("source dockerd restarts", "restore", ""),
    ("source dockerd restarts", "commit", ""),
    ("source dockerd restarts (live-restore)", "prepare", LIVE),
    ("source dockerd restarts (live-restore)", "checkpoint", LIVE),
    ("target dockerd restarts (live-restore)", "verify", LIVE),
    ("source dockerd restarts", "restore", ALWAYS),
    ("target dockerd restarts", "verify", ALWAYS),
    ("target criu fails", "restore", ALWAYS),
    ("console killed", "verify", ALWAYS),
    ("target criu fails and source disk full", "restore", ""),
]


def _workload(hosts, setting: str) -> None:
    """The workload on host1 again, under the row's setting."""
    h1 = hosts[0]
    if setting == LIVE:
        for h in hosts:
            engine.stop(h)
            engine.start(h, extra=faults.LIVE)
    if setting:
        docker(h1, "rm", "-f", WORKLOAD, check=False)
        args = control.workload_run_args(control.WorkloadSpec())
        if setting == ALWAYS:
            args[2:2] = ["--restart", "always"]
        docker(h1, *args)
        assert faults.wait_until(lambda: len(heartbeats(h1, WORKLOAD)) >= 5, 10, 0.1)


def _plain_engines(hosts) -> None:
    for h in hosts:
        engine.stop(h)
        engine.start(h)


def _restore_shell_holding_conf(h) -> bool:
    """The restore's shell on `h` that holds runc.conf, killed as the OOM killer would."""
    conf = Path(criu_conf.CONF)
    if not (conf.exists() and conf.read_text().startswith(criu_conf.MARKER)):
        return False
    shells = faults.processes(h, criu_conf.MARKER)
    for p in shells:
        faults.os.kill(p, signal.SIGKILL)
    return bool(shells)


def _conf_in_place() -> bool:
    conf = Path(criu_conf.CONF)
    try:
        return conf.read_text().startswith(criu_conf.MARKER)
    except OSError:
        return False


@pytest.mark.parametrize(("fault", "phase", "setting"), ROWS,
                         ids=[f"{f}-{p}{'-' + s if s else ''}".replace(" ", "_") for f, p, s in ROWS])  # fmt: skip
def test_fault_between(lab_hosts, workload_on_host1, fault, phase, setting, request):
    h1, h2 = lab_hosts
    if setting == LIVE:
        request.addfinalizer(lambda: _plain_engines(lab_hosts))
    _workload(lab_hosts, setting)
    before = heartbeats(h1, WORKLOAD)[-1][0]
    name = f"{fault}, {setting}" if setting else fault
    f: faults.Fault | None = None
    leftovers: list[str] = []
    try:
        if fault.startswith("console"):
            sig = signal.SIGHUP if "SIGHUP" in fault else signal.SIGKILL
            then = None
            if "restore command" in fault:
                then = lambda: bool(faults.processes(h2, "--checkpoint"))  # noqa: E731
            elif "runc.conf" in fault:
                then = _conf_in_place
            mid = faults.move_and_signal_console(phase, sig, then=then)
        else:
            if fault == "source SSH cut at the end of the dump":
                f = faults.SessionsDrop(fault, h1)
            elif fault == "restore shell killed while runc.conf is in place":
                f = None
            elif fault == "target criu fails and source disk full":
                full = faults.DiskFull("source disk full", h1)
                full.prepare()
                f = faults.Both(fault, faults.FailingTool("criu", h2, "criu"), full)
            else:
                f = faults.make(fault, h1, h2)

            fired: list = []

            def inject(m, at):
                if fault == "source SSH cut at the end of the dump":
                    fired.append(faults.after_process(h1, "criu", f.inject))
                elif f is None:
                    fired.append(faults.when(lambda: _restore_shell_holding_conf(h2)))
                else:
                    f.inject()

            mid, hooked = asyncio.run(move_in_process({phase}, inject))
            assert hooked, f"the migration ended before {phase}: {_entry(mid).cause}"
            assert all(e.is_set() for e in fired), f"{fault}: the moment never came"
            if isinstance(f, faults.Both):
                leftovers = f.parts[1].leftovers()  # type: ignore[attr-defined]
    finally:
        if f is not None:
            f.heal()
    judge(lab_hosts, name, phase, mid, before, leftovers)
    if fault.startswith("restore shell killed"):
        assert "killed by SIGKILL on host2" in _entry(mid).cause  # said in words
    if setting == ALWAYS:
        home = h1 if docker(h1, "ps", "-q", "-f", f"name={WORKLOAD}") else h2
        policy = docker(home, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", WORKLOAD)
        assert policy == "always", f"the restart policy on {home.name} is {policy!r}"

