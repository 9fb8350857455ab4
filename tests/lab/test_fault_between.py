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

from core.engine import arming, criu_conf, freeze
from lab import control, engine
from lab.layout import WORKLOAD
from tests.lab import faults
from tests.lab.conftest import docker, heartbeats, move_in_process
from tests.lab.test_fault_matrix import _entry, fresh_images_folders, judge  # noqa: F401

ALWAYS = "--restart always"
LIVE = "live-restore"
# A real service's settings together: a restart policy, a health check, a named volume,
# a published port, a user network with an alias and an address, a memory limit and a
# Compose label.
SETTINGS = "a service's settings"
NET, VOL, PORT = "fmrownet", "fmrowvol", "18099"
SETTINGS_ARGS = [
    "--restart", "unless-stopped", "--health-cmd", "true", "--health-interval", "2s",
    "-v", f"{VOL}:/data", "-p", f"{PORT}:8080", "--network", NET, "--network-alias", "wl",
    "--ip", "172.31.78.20", "--memory", "256m", "--label", "com.docker.compose.project=shop",
]  # fmt: skip
# (fault, phase, setting): the fault goes in at the start of the phase, or at the moment
# the fault's name gives, inside it.
ROWS = [
    ("source SSH cut at the end of the dump", "checkpoint", ""),
    # The dump done, the armed streams' channels cut before they are fired (the moment
    # the row above hits when the cut lands after the dump's own reply).
    ("source SSH cut before the streams start", "transfer", ""),
    ("console killed inside the restore command", "restore", ""),
    ("the dump outlasts its limit", "checkpoint", ""),
    ("the restore outlasts its limit", "restore", ""),
    ("console killed while runc.conf is in place", "restore", ""),
    ("restore shell killed while runc.conf is in place", "restore", ""),
    ("console SIGINT", "restore", ""),
    ("console SIGINT twice", "restore", ""),
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
    ("target criu fails", "restore", SETTINGS),
    ("console killed", "verify", SETTINGS),
    ("target dockerd restarts", "verify", SETTINGS),
]


def _cut_first(f: faults.Fault, transfer_phase):
    """The transfer phase, after the source's connections are cut and the console has
    seen the reset: its armed streams' channels are closed when it fires them."""

    async def cut_then_transfer(m) -> None:
        f.inject()
        await asyncio.sleep(0.5)
        await transfer_phase(m)

    return cut_then_transfer


def _workload(hosts, setting: str) -> None:
    """The workload on host1 again, under the row's setting."""
    h1 = hosts[0]
    if setting == LIVE:
        for h in hosts:
            engine.stop(h)
            engine.start(h, extra=faults.LIVE)
    if setting == SETTINGS:
        for h in hosts:
            docker(h, "network", "create", "--subnet", "172.31.78.0/24", NET, check=False)
    if setting:
        docker(h1, "rm", "-f", WORKLOAD, check=False)
        args = control.workload_run_args(control.WorkloadSpec())
        if setting == ALWAYS:
            args[2:2] = ["--restart", "always"]
        if setting == SETTINGS:
            args[2:2] = SETTINGS_ARGS
        docker(h1, *args)
        assert faults.wait_until(lambda: len(heartbeats(h1, WORKLOAD)) >= 5, 10, 0.1)


def _plain_workload(hosts) -> None:
    """The row's own container removed, with its volume and network: the next test starts
    the plain workload again."""
    for h in hosts:
        docker(h, "rm", "-f", WORKLOAD, check=False)
        docker(h, "volume", "rm", "-f", VOL, check=False)
        docker(h, "network", "rm", NET, check=False)


def _settings_kept(h) -> None:
    """The container on `h` still carries the service's settings."""
    fmt = (
        "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}} "
        "{{index .Config.Labels \"com.docker.compose.project\"}} "
        "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}} "
        "{{range $p, $b := .HostConfig.PortBindings}}{{$p}}={{(index $b 0).HostPort}}{{end}} "
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}/{{$v.IPAddress}}/"
        "{{join $v.Aliases \",\"}}{{end}}"
    )
    got = docker(h, "inspect", "-f", fmt, WORKLOAD).split()
    assert got[:5] == ["unless-stopped", str(256 * 2**20), "shop", f"{VOL}:/data",
                       f"8080/tcp={PORT}"], got  # fmt: skip
    assert got[5].startswith(f"{NET}/172.31.78.20/") and "wl" in got[5], got
    health = lambda: docker(h, "inspect", "-f", "{{.State.Health.Status}}", WORKLOAD)  # noqa: E731
    assert faults.wait_until(lambda: health() == "healthy", 15, 0.5), health()


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
def test_fault_between(lab_hosts, workload_on_host1, fault, phase, setting, request, monkeypatch):
    h1, h2 = lab_hosts
    if setting == LIVE:
        request.addfinalizer(lambda: _plain_engines(lab_hosts))
    elif setting:
        request.addfinalizer(lambda: _plain_workload(lab_hosts))
    _workload(lab_hosts, setting)
    before = heartbeats(h1, WORKLOAD)[-1][0]
    name = f"{fault}, {setting}" if setting else fault
    f: faults.Fault | None = None
    leftovers: list[str] = []
    try:
        if fault.startswith("console"):
            sig = {"SIGHUP": signal.SIGHUP, "SIGINT": signal.SIGINT}.get(
                fault.split()[1], signal.SIGKILL
            )
            then = None
            if "restore command" in fault:
                then = lambda: bool(faults.processes(h2, "--checkpoint"))  # noqa: E731
            elif "runc.conf" in fault:
                then = _conf_in_place
            again = "rollback" if fault.endswith("twice") else ""
            mid = faults.move_and_signal_console(phase, sig, then=then, again_at=again)
        else:
            if fault == "source SSH cut before the streams start":
                f = faults.SessionsDrop(fault, h1)
                monkeypatch.setattr(freeze, "transfer_phase", _cut_first(f, freeze.transfer_phase))
            elif fault == "source SSH cut at the end of the dump":
                f = faults.SessionsDrop(fault, h1)
            elif fault == "restore shell killed while runc.conf is in place":
                f = None
            elif "outlasts its limit" in fault:
                # The fired dump and restore are stopped on their host at their limit
                # (300 s), here 4 s so the row is short; CRIU there starts 10 s late.
                monkeypatch.setattr(arming, "FIRE_LIMIT_S", 4.0)
                f = faults.SlowTool(fault, h1 if "dump" in fault else h2, "criu", 10)
            elif fault == "target criu fails and source disk full":
                full = faults.DiskFreedAgain("source disk full", h1)
                full.prepare()
                request.addfinalizer(full.release)
                f = faults.Both(fault, faults.FailingTool("criu", h2, "criu"), full)
            else:
                f = faults.make(fault, h1, h2)

            fired: list = []

            def inject(m, at):
                if fault == "source SSH cut before the streams start":
                    pass  # cut by the wrapped transfer phase, before its first stream
                elif fault == "source SSH cut at the end of the dump":
                    fired.append(faults.after_process(h1, "criu", f.inject))
                elif f is None:
                    fired.append(faults.when(lambda: _restore_shell_holding_conf(h2)))
                else:
                    f.inject()

            mid, hooked = asyncio.run(move_in_process({phase}, inject))
            assert hooked, f"the migration ended before {phase}: {_entry(mid).cause}"
            assert all(e.is_set() for e in fired), f"{fault}: the moment never came"
    finally:
        if f is not None:
            f.heal()
    judge(lab_hosts, name, phase, mid, before, leftovers)
    if isinstance(f, faults.Both):  # judged with the freed file system still mounted
        left = f.parts[1].leftovers()  # type: ignore[attr-defined]
        assert not left, f"left in the source's images folder: {left}"
    if fault.startswith("restore shell killed"):
        assert "killed by SIGKILL on host2" in _entry(mid).cause  # said in words
    home = h1 if docker(h1, "ps", "-q", "-f", f"name={WORKLOAD}") else h2
    if setting == SETTINGS:
        _settings_kept(home)
        other = h2 if home is h1 else h1
        assert docker(other, "volume", "ls", "-q", "--filter", f"name={VOL}") == ""
    if setting == ALWAYS:
        policy = docker(home, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", WORKLOAD)
        assert policy == "always", f"the restart policy on {home.name} is {policy!r}"

