"""Moves between Docker 20.10 and Docker 28 hosts on the lab (real dockerd, runc, CRIU).

host1 and host2 run Debian 12's Docker 20.10; host3 and host4 run Docker 28.5.2
(`ferryman lab up --hosts 4 --engine 28`, added here when they are missing). Each chain
moves a container host1 → host3 → host4 → host1: 20.10 → 28, 28 → 28, 28 → 20.10. For
every move, independently of ferryman's journal:

- the heartbeat counter goes on from where it was (the state moved, not restarted);
- exactly one copy: dockerd's own event log on the source shows no `start` of the
  container after the move began, and it no longer exists there;
- nothing is left behind: no images or migration lock on either host, no restore marker
  or CRIU file of the migration (/run/ferryman), no /etc/criu/runc.conf, no checkpoint
  folder of Docker's on the target.

And a restore that fails on a Docker 28 target (its `criu` fails once the restore
begins) rolls back: the source runs on with its state, the twin is gone.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from core.engine import restore_runtime
from lab import control, engine, image
from lab.layout import HOSTS_FILE, IMAGE, WORKLOAD, LabHost
from tests.lab import faults
from tests.lab.conftest import docker, events, exists, ferryman, heartbeats, running

APP = "e28app"
NET, ALIAS, VOL, PORT = "e28net", "e28-alias", "e28vol", "18092"
CHAIN = (("host1", "host3"), ("host3", "host4"), ("host4", "host1"))
RUNC_CONF = Path("/etc/criu/runc.conf")


@pytest.fixture(scope="module")
def fleet(lab_hosts) -> dict[str, LabHost]:
    hs = {f"host{i}": LabHost(i) for i in (1, 2, 3, 4)}
    if any(not engine.answering(hs[n]) for n in ("host3", "host4")) or not all(
        h.engine_file.exists() for h in hs.values()
    ):
        control.up(4, log=lambda _m: None, engine="28")
    kinds = {n: engine.kind(h) for n, h in hs.items()}
    if kinds != {"host1": "20.10", "host2": "20.10", "host3": "28", "host4": "28"}:
        pytest.skip(f"this lab's engines are {kinds}: host3 and host4 must run Docker 28")
    for n in ("host3", "host4"):
        image.import_image(hs[n])  # for containers started there by these tests
    return hs


def _clean(fleet, *names: str) -> None:
    for h in fleet.values():
        for n in names:
            docker(h, "rm", "-f", n, check=False)
        docker(h, "volume", "rm", "-f", VOL, check=False)


def _starts_since(h: LabHost, name: str, since: float) -> int:
    out = docker(
        h, "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", f"container={name}", "--filter", "event=start", "--format", "{{.Action}}",
    )  # fmt: skip
    return len([ln for ln in out.splitlines() if ln.strip()])


def _wait_beats(h: LabHost, name: str, n: int = 5) -> list[int]:
    deadline = time.time() + 15
    while time.time() < deadline:
        beats = [c for c, _ in heartbeats(h, name)]
        if len(beats) >= n:
            return beats
        time.sleep(0.1)
    return [c for c, _ in heartbeats(h, name)]


def _continued(h: LabHost, name: str, before: int) -> bool:
    """The twin's log starts after `before` and counts up by one (never from 0 again)."""
    beats = _wait_beats(h, name)
    return len(beats) >= 5 and beats[0] > before and beats == list(range(beats[0], beats[0] + len(beats)))  # fmt: skip


def _left_behind(fleet, mid: str, twin_id: str, cid: str) -> list[str]:
    out = []
    for h in fleet.values():
        out += [f"{h.name}: images {p.name}" for p in (h.state / "images").glob(f"{mid}*")]
        out += [f"{h.name}: lock {p.name}" for p in (h.state / "images" / "locks").glob("*")
                if p.name in (cid, twin_id)]  # fmt: skip
        cps = h.data_root / "containers" / twin_id / "checkpoints"
        if twin_id and cps.exists() and any(cps.iterdir()):
            out.append(f"{h.name}: docker checkpoints {sorted(p.name for p in cps.iterdir())}")
    markers = Path(restore_runtime.MARKERS)
    out += [f"marker {p.name}" for p in markers.glob("*") if twin_id and p.name.startswith(twin_id)]
    # the twin's own file and a source's (written for its lazy dump) exist only meanwhile
    out += [f"CRIU file {p}" for p in Path(restore_runtime.CRIU_CONF_DIR).glob("*")]
    if RUNC_CONF.exists():
        out.append(f"{RUNC_CONF}: {RUNC_CONF.read_text()[:80]!r}")
    return out


def _move(fleet, name: str, src: str, dst: str, strategy: str) -> dict:
    hs, hd = fleet[src], fleet[dst]
    cid = docker(hs, "inspect", "-f", "{{.Id}}", name)
    before = heartbeats(hs, name)[-1][0]
    t0 = time.time()
    p = ferryman("migrate", name, "--from", src, "--to", dst, "--strategy", strategy, "--json")
    evs = events(p.stdout)
    assert p.returncode == 0, f"{src} → {dst}: " + p.stdout[-4000:] + p.stderr[-2000:]
    done = evs[-1]
    assert done["kind"] == "succeeded", done
    mid = evs[0]["migration_id"]
    assert _starts_since(hs, name, t0) == 0, f"dockerd on {src} started {name} again"
    assert not exists(hs, name) and running(hd, name)
    assert _continued(hd, name, before), f"{src} → {dst}: heartbeat did not continue from {before}"
    twin_id = docker(hd, "inspect", "-f", "{{.Id}}", name)
    assert _left_behind(fleet, mid, twin_id, cid) == []
    runtime = docker(hd, "inspect", "-f", "{{.HostConfig.Runtime}}", name)
    assert runtime == (restore_runtime.RUNTIME if engine.kind(hd) == "28" else "runc"), runtime
    return done


def _chain(fleet, name: str, strategy: str, check=None) -> list[str]:
    """The chain of moves; returns one line of figures a move (printed by the test)."""
    lines = []
    for src, dst in CHAIN:
        done = _move(fleet, name, src, dst, strategy)
        if check is not None:
            check(fleet[dst])
        lines.append(
            f"{name} {strategy} {src}({engine.kind(fleet[src])}) → {dst}({engine.kind(fleet[dst])}): "
            f"freeze {done['freeze_s'] * 1000:.0f} ms (dump {done['dump_s'] * 1000:.0f} + transfer "
            f"{done['transfer_s'] * 1000:.0f} + restore {done['restore_s'] * 1000:.0f}), app gap "
            + (f"{done['app_gap_s'] * 1000:.0f} ms" if done["app_gap_s"] is not None else "-")
            + f", {done['bytes_moved'] / 2**20:.1f} MiB, {done['total_s']:.1f} s"
        )
    return lines


@pytest.mark.parametrize("strategy", ["stop-and-copy", "post-copy"])
def test_the_workload_moves_across_20_10_and_28(fleet, workload_on_host1, strategy):
    for n in ("host3", "host4"):
        docker(fleet[n], "rm", "-f", WORKLOAD, check=False)
    lines = _chain(fleet, WORKLOAD, strategy)
    print("\n" + "\n".join(lines))
    assert running(fleet["host1"], WORKLOAD)


@pytest.fixture()
def app_network(fleet):
    _clean(fleet, APP)
    for h in fleet.values():
        docker(h, "network", "rm", NET, check=False)
        docker(h, "network", "create", "--subnet", "172.31.92.0/24", NET)
    yield
    for h in fleet.values():
        docker(h, "network", "rm", NET, check=False)


@pytest.mark.parametrize("strategy", ["stop-and-copy", "post-copy"])
def test_a_volume_a_port_and_a_network_alias_move_across_20_10_and_28(fleet, app_network, strategy):
    h1 = fleet["host1"]
    _clean(fleet, APP)
    script = (
        "[ -f /data/first ] || { echo one > /data/first; echo gone > /data/deleted; }; "
        "rm -f /data/deleted; exec /workload 16 1 10"
    )
    try:
        docker(h1, "run", "-d", "--name", APP, "-v", f"{VOL}:/data", "-p", f"{PORT}:8080",
               "--network", NET, "--network-alias", ALIAS, "--label", "e28=app",
               IMAGE, "sh", "-c", script)  # fmt: skip
        _wait_beats(h1, APP)

        def check(h: LabHost) -> None:
            assert docker(h, "exec", APP, "cat", "/data/first") == "one"
            assert docker(h, "exec", APP, "ls", "/data") == "first"
            assert docker(h, "port", APP, "8080/tcp").startswith(f"0.0.0.0:{PORT}")
            fmt = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{join $v.Aliases \",\"}}{{end}}"
            net = docker(h, "inspect", "-f", fmt, APP)
            assert net.startswith(f"{NET} ") and ALIAS in net, net
            assert docker(h, "inspect", "-f", "{{index .Config.Labels \"e28\"}}", APP) == "app"
            # the restored process has its network: an address on the user network
            addr = docker(h, "exec", APP, "cat", "/proc/net/fib_trie")
            assert "172.31.92." in addr
            for other in fleet.values():
                if other is not h:
                    assert docker(other, "volume", "ls", "-q", "--filter", f"name={VOL}") == ""
            ann = docker(h, "inspect", "-f", "{{json .HostConfig.Annotations}}", APP)
            assert (restore_runtime.CRIU_CONFIG_ANNOTATION in ann) == (engine.kind(h) == "28")

        lines = _chain(fleet, APP, strategy, check)
        print("\n" + "\n".join(lines))
    finally:
        _clean(fleet, APP)


def test_the_settings_real_containers_carry_move_onto_28_and_back(fleet):
    """A Compose service's container with a restart policy, a health check, an anonymous
    volume, a memory limit, ulimits, a read-only root and a tmpfs: host1 → host3 → host1
    (20.10 → 28 → 20.10). Each hop: no second copy (the source's dockerd never starts
    it), the twin has the policy, is healthy when the move ends, keeps the labels, the
    limits, the mounts and the data."""
    _clean(fleet, APP)
    script = "[ -f /scratch/f ] || echo kept > /scratch/f; exec /workload 16 1 10"
    try:
        docker(fleet["host1"], "run", "-d", "--name", APP, "--restart", "always",
               "--label", "com.docker.compose.project=shop", "--memory", "256m",
               "--health-cmd", "test -d /proc/1", "--health-interval", "2s",
               "--health-timeout", "2s", "--health-retries", "2", "-v", "/scratch",
               "--ulimit", "nofile=2048:4096", "--read-only", "--tmpfs", "/run",
               IMAGE, "sh", "-c", script)  # fmt: skip
        _wait_beats(fleet["host1"], APP)

        def check(h: LabHost) -> None:
            fmt = ("{{.HostConfig.RestartPolicy.Name}} {{.State.Health.Status}} "
                   "{{index .Config.Labels \"com.docker.compose.project\"}} "
                   "{{.HostConfig.Memory}}")  # fmt: skip
            assert docker(h, "inspect", "-f", fmt, APP) == f"always healthy shop {256 * 2**20}"
            assert docker(h, "exec", APP, "cat", "/scratch/f") == "kept"
            more = docker(h, "inspect", "-f", "{{.HostConfig.ReadonlyRootfs}} {{range "
                          ".HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}}{{end}} "
                          "{{json .HostConfig.Tmpfs}}", APP)  # fmt: skip
            assert more == 'true nofile=2048:4096 {"/run":""}', more

        c = ferryman("check", "--container", APP, "--from", "host1", "--to", "host3")
        assert c.returncode == 0, c.stdout + c.stderr
        assert "restart policy always: suspended on host1" in c.stdout
        lines = []
        for src, dst in (("host1", "host3"), ("host3", "host1")):
            done = _move(fleet, APP, src, dst, "stop-and-copy")
            check(fleet[dst])
            lines.append(f"{src} → {dst}: freeze {done['freeze_s'] * 1000:.0f} ms")
        print("\n" + "\n".join(lines))
    finally:
        _clean(fleet, APP)


def test_init_moves_between_engines_with_the_same_docker_init_and_is_refused_otherwise(fleet):
    """`--init`: each engine bind-mounts its own docker-init, and CRIU restores the process
    only onto the same file. Debian 12's Docker 20.10 and Docker 28.5.2 ship different
    builds (found by moving one: `File sbin/docker-init has bad size 752504 (expect
    708080)`): preflight refuses 20.10 → 28 before anything changes; 28 → 28 moves."""
    _clean(fleet, APP)
    try:
        for h in ("host1", "host3"):
            docker(fleet[h], "run", "-d", "--name", APP, "--init", IMAGE, "/workload", "16", "1", "10")  # fmt: skip
            _wait_beats(fleet[h], APP)
            if h == "host1":
                p = ferryman("migrate", APP, "--from", "host1", "--to", "host3", "--json")
                failed = events(p.stdout)[-1]
                assert p.returncode == 1 and failed["phase"] == "preflight", p.stdout[-3000:]
                assert "docker-init" in failed["cause"] and "another build" in failed["cause"]
                assert running(fleet["host1"], APP) and not exists(fleet["host3"], APP)
                docker(fleet["host1"], "rm", "-f", APP)
        _move(fleet, APP, "host3", "host4", "stop-and-copy")
        assert docker(fleet["host4"], "inspect", "-f", "{{.HostConfig.Init}}", APP) == "true"
    finally:
        _clean(fleet, APP)


# --- a restore that fails on a Docker 28 target ------------------------------------------


async def _move_with_failing_criu(src: str, dst: LabHost, name: str) -> tuple[list, str]:
    """Move `name` src → dst in this process; at the start of the restore, `criu` on dst
    starts failing (first on its dockerd's PATH, so the restore runtime's runc meets it)."""
    from core import events as ev
    from core.config import load
    from core.live import LiveBackend
    from core.models import MigrationRequest

    be = LiveBackend(load(HOSTS_FILE))
    fake = dst.bin_dir / "criu"
    m = be.migrate(MigrationRequest(container=name, source=src, target=dst.name,
                                    strategy="stop-and-copy"))  # fmt: skip
    got = []
    try:
        async with asyncio.timeout(240):
            async for e in m:
                got.append(e)
                if isinstance(e, ev.PhaseStarted) and e.phase == "restore":
                    fake.write_text("#!/bin/sh\necho 'lab fault: criu fails on purpose' >&2\nexit 1\n")
                    fake.chmod(0o755)
    finally:
        fake.unlink(missing_ok=True)
        await be.close()
    return got, m.id


@pytest.mark.parametrize("src", ["host1", "host4"])
def test_a_failed_restore_on_a_28_target_rolls_back_with_the_source_intact(fleet, src):
    hs, hd = fleet[src], fleet["host3"]
    _clean(fleet, APP)
    try:
        docker(hs, "run", "-d", "--name", APP, "--restart", "always", IMAGE, "/workload", "16", "1", "10")  # fmt: skip
        _wait_beats(hs, APP)
        cid = docker(hs, "inspect", "-f", "{{.Id}}", APP)
        before = heartbeats(hs, APP)[-1][0]
        t0 = time.time()
        got, mid = asyncio.run(_move_with_failing_criu(src, hd, APP))
        kinds = [type(e).__name__ for e in got]
        failed = got[-1]
        assert kinds[-1] == "MigrationFailed", kinds
        assert failed.phase == "restore", failed
        # the shim takes the wrapper's restore for a create: Docker says so
        assert "OCI runtime create failed" in failed.cause and "CRIU" in failed.cause, failed.cause
        assert failed.running_on == src
        assert running(hs, APP) and not exists(hd, APP)
        # A 28 source was frozen and is thawed: dockerd never starts it. A 20.10 source is
        # brought back from its checkpoint (`docker start --checkpoint`): one start, from
        # the checkpoint, as the counter says below.
        assert _starts_since(hs, APP, t0) == (0 if engine.kind(hs) == "28" else 1)
        beats = [c for c, _ in heartbeats(hs, APP)]
        assert before in beats and beats[-1] > before  # the same process went on
        tail = beats[beats.index(before):]
        assert tail == list(range(before, before + len(tail)))
        assert docker(hs, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", APP) == "always"
        assert _left_behind(fleet, mid, "", cid) == []
        assert not list(Path(restore_runtime.MARKERS).glob("*"))
        hist = json.loads(ferryman("history", "--json", hosts_file=None).stdout)
        entry = next(e for e in hist if e["migration_id"] == mid)
        assert entry["result"] == "rolled back" and entry["running_on"] == src
    finally:
        _clean(fleet, APP)


# --- a console killed mid-move, then `ferryman recover` ----------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "at", "ends_on"),
    [
        ("host3", "host4", "transfer", "host3"),  # frozen source, twin not started: thawed
        ("host3", "host4", "verify", "host4"),  # frozen source, twin restored: finished
        ("host1", "host3", "verify", "host3"),  # 20.10 source, route twin restored: finished
    ],
)
def test_recover_after_a_console_killed_mid_move(fleet, tmp_path, src, dst, at, ends_on):
    hs, hd = fleet[src], fleet[dst]
    env = {"FERRYMAN_STATE_DIR": str(tmp_path / "state")}  # only this test's journal
    _clean(fleet, APP)
    try:
        docker(hs, "run", "-d", "--name", APP, IMAGE, "/workload", "16", "1", "10")
        _wait_beats(hs, APP)
        cid = docker(hs, "inspect", "-f", "{{.Id}}", APP)
        before = heartbeats(hs, APP)[-1][0]
        t0 = time.time()
        mid = faults.move_and_signal_console(at, name=APP, source=src, target=dst, env=env)
        if src == "host3":  # the frozen source: Docker still calls it running, runc says paused
            assert running(hs, APP)
        p = ferryman("recover", "--yes", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        print("\n" + p.stdout)
        he = fleet[ends_on]
        other = hd if he is hs else hs
        assert running(he, APP) and not exists(other, APP), p.stdout
        if engine.kind(hs) == "28":
            assert _starts_since(hs, APP, t0) == 0
        beats = [c for c, _ in heartbeats(he, APP)]
        if he is hs:
            tail = beats[beats.index(before):]
            assert len(tail) > 5 and tail == list(range(before, before + len(tail)))
        else:
            assert _continued(he, APP, before)
        twin_id = docker(he, "inspect", "-f", "{{.Id}}", APP) if he is hd else ""
        assert _left_behind(fleet, mid, twin_id, cid) == []
        assert not list(Path(restore_runtime.MARKERS).glob("*"))
    finally:
        _clean(fleet, APP)
