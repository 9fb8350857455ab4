"""`ferryman migrate POD -n NS --to NODE` as a user runs it, on the Kubernetes lab
(lab/k8s): the CLI in a process of its own, the lab's hosts file (which names the
cluster), a journal of the test's own. Runs only when named (tests/lab_k8s), as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

if os.geteuid() != 0:
    pytest.skip("the Kubernetes lab needs root (namespaces, kubelets)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from lab.k8s import cluster

    cluster.up()
    state = tmp_path_factory.mktemp("ferryman-state")
    yield cluster, state
    cluster.down()


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from lab.k8s.layout import HOSTS_FILE

    env = {**os.environ, "PYTHONPATH": str(REPO), "FERRYMAN_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "ferryman.cli", "--hosts", str(HOSTS_FILE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def history(state: Path) -> list[dict[str, Any]]:
    p = cli(state, "history", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def pods_on(c, node: str) -> list[str]:
    items = c.get(PODS)["items"]
    return sorted(p["metadata"]["name"] for p in items if p["spec"].get("nodeName") == node)


def all_pods(c) -> list[tuple[str, str, str]]:
    return sorted(
        (p["metadata"]["name"], p["spec"].get("nodeName", ""), p["status"].get("phase", ""))
        for p in c.get(PODS)["items"]
    )


def fresh_counter(c, name: str = "counter", owner: dict[str, Any] | None = None) -> dict:
    """Only one pod in the namespace: `name`, the lab's counter with an emptyDir, on node1."""
    from core.k8s.api import pod_ready
    from lab.k8s import prove
    from lab.k8s.layout import NODES, WORKLOAD_IMAGE

    for p in c.get(PODS)["items"]:
        prove.delete_pod(c, p["metadata"]["name"])
    spec = prove.pod_spec(name, NODES[0].node_name, WORKLOAD_IMAGE)
    if owner:
        spec["metadata"]["ownerReferences"] = [owner]
    c.create(PODS, spec)
    pod = c.wait_for(f"{PODS}/{name}", pod_ready, 120)
    c.wait_for(f"{PODS}/{name}", lambda p: prove.last_heartbeat(c, name) is not None, 30)
    time.sleep(1.5)
    return pod


def paused_tasks(h) -> list[str]:
    from lab.k8s import prove

    _, out = prove.ssh(h, ["ctr", "-n", "k8s.io", "task", "ls"])
    return [ln for ln in out.splitlines()[1:] if "PAUSED" in ln]


def leftovers(h) -> dict[str, list[str]]:
    """Checkpoint tars in the node's kubelet root, checkpoint images in its containerd."""
    from lab.k8s import prove

    d = h.kubelet_root / "checkpoints"
    _, images = prove.ssh(h, ["ctr", "-n", "k8s.io", "images", "ls", "-q"])
    return {
        "tars": sorted(p.name for p in d.iterdir()) if d.is_dir() else [],
        "images": [i for i in images.split() if i.startswith("ferryman.local/")],
    }


def heartbeats(c, pod: str) -> list[int]:
    text = c.request("GET", f"{PODS}/{pod}/log")
    return [int(ln.split()[1]) for ln in str(text).splitlines() if ln.startswith("hb ")]


def test_migrate_pod_moves_it_with_its_counter_and_emptydir(lab):
    from core.k8s.api import pod_ready
    from lab.k8s import prove
    from lab.k8s.layout import NODES

    cluster, state = lab
    c = cluster.admin()
    n1, n2 = NODES
    fresh_counter(c)
    before = prove.last_heartbeat(c, "counter")
    assert before is not None

    p = cli(state, "migrate", "counter", "-n", "default", "--to", n2.node_name)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stderr
    for line in (
        "· preflight",
        "· checkpoint",
        "· transfer",
        "· restore",
        "· commit",
        "freeze window",
        "done: default/counter runs on fk-node2",
    ):
        assert line in p.stdout

    # Exactly one copy: the source pod is gone, the restored one Ready on node2.
    assert pods_on(c, n1.node_name) == []
    [restored] = pods_on(c, n2.node_name)
    assert restored.startswith("counter-m")
    pod = c.get(f"{PODS}/{restored}")
    assert pod_ready(pod)
    assert pod["metadata"]["annotations"]["ferryman.io/migrated-from"].startswith("fk-node1/")

    # The counter continues: the restored log (which starts with a copy of the source's)
    # counts on without a reset or a gap, past the value seen before the move.
    time.sleep(1.5)
    beats = heartbeats(c, restored)
    assert beats[-1] > before[0] + 2, beats[-5:]
    steps = {b - a for a, b in zip(beats, beats[1:], strict=False)}
    assert steps <= {0, 1}, f"counter jumped: {sorted(steps)}"
    assert beats[0] <= before[0]  # the source's history is there too: the same process

    # The emptyDir file came along.
    from core.k8s import podmove

    f = Path(podmove.emptydir_paths(pod, str(n2.kubelet_root))["scratch"], "in-emptydir")
    assert f.read_text().strip() == "kept"

    # Nothing left: no paused task, no checkpoint tar or image on either node.
    for h in NODES:
        assert paused_tasks(h) == [], h.node_name
        assert leftovers(h) == {"tars": [], "images": []}, h.node_name

    # The journal: one entry, succeeded, running on node2; `history` shows it.
    [entry] = [e for e in history(state) if e["container"] == "default/counter"]
    assert entry["result"] == "succeeded", entry
    assert entry["running_on"] == n2.node_name
    assert entry["kind"] == "pod" and entry["pod"]["restored"] == restored
    assert entry["freeze"]["total_s"] > 0
    text = cli(state, "history").stdout
    assert entry["migration_id"] in text and "succeeded" in text


def test_no_such_pod_is_refused_and_nothing_changes(lab):
    from lab.k8s.layout import NODES

    cluster, state = lab
    c = cluster.admin()
    fresh_counter(c)
    pods, journal = all_pods(c), history(state)
    p = cli(state, "migrate", "nope", "-n", "default", "--to", NODES[1].node_name)
    assert p.returncode != 0
    assert "no pod 'nope' in namespace 'default'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert all_pods(c) == pods
    assert history(state) == journal
    assert paused_tasks(NODES[0]) == []

    p = cli(state, "migrate", "counter", "-n", "default", "--to", "fk-node9")
    assert p.returncode != 0
    assert "no node 'fk-node9' in cluster ferryman-lab" in p.stderr, p.stderr
    assert all_pods(c) == pods


def test_controller_owned_pod_is_refused_and_nothing_changes(lab):
    from lab.k8s import prove
    from lab.k8s.layout import NODES

    cluster, state = lab
    c = cluster.admin()
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-5d8f",
        "uid": "6f1c0b8e-1f7e-4a57-9a34-3f4c7f3d1e11",
        "controller": True,
    }
    fresh_counter(c, "web-5d8f-x2k", owner)
    pods = all_pods(c)
    p = cli(state, "migrate", "web-5d8f-x2k", "-n", "default", "--to", NODES[1].node_name)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "owned by ReplicaSet web-5d8f" in p.stderr, p.stderr
    assert "fix:" in p.stderr and "nothing was changed" in p.stderr
    assert all_pods(c) == pods
    assert paused_tasks(NODES[0]) == []
    assert leftovers(NODES[1]) == {"tars": [], "images": []}
    # The pod prints on: not frozen.
    last = prove.last_heartbeat(c, "web-5d8f-x2k")
    time.sleep(1.2)
    assert prove.last_heartbeat(c, "web-5d8f-x2k")[0] > last[0]
    [entry] = [e for e in history(state) if e["container"] == "default/web-5d8f-x2k"]
    assert entry["result"] == "failed" and entry["phase"] == "preflight"
    ps = cli(state, "ps")
    assert "pods on fk-node1 (cluster ferryman-lab):" in ps.stdout, ps.stdout + ps.stderr
    assert "default/web-5d8f-x2k" in ps.stdout and "NOT movable: owned by ReplicaSet" in ps.stdout
    assert entry["running_on"] == NODES[0].node_name


@contextmanager
def restore_fails_on(h) -> Iterator[None]:
    """A `criu` first on the node's PATH (containerd's runc, and SSH sessions) that
    answers --version as the real one (so preflight passes) and fails everything else:
    the restore fails."""
    from lab.k8s import prove

    h.bin_dir.mkdir(parents=True, exist_ok=True)
    fake = h.bin_dir / "criu"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version|-V) exec /usr/local/sbin/criu "$@";; esac\n'
        "echo 'ferryman fault test: criu fails on this node' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    prove.restart_containerd(h)
    wait_runtime_known(h)
    try:
        yield
    finally:
        fake.unlink(missing_ok=True)
        prove.restart_containerd(h)
        wait_runtime_known(h)


def wait_runtime_known(h) -> None:
    """After containerd restarts, the node reports `containerd://Unknown` for a while
    (which a move's preflight refuses): wait until it names its version again."""
    from lab.k8s import cluster

    c = cluster.admin()

    def known(n) -> bool:
        v = (n or {}).get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion", "")
        return v.startswith("containerd://") and not v.endswith("Unknown")

    c.wait_for(f"/api/v1/nodes/{h.node_name}", known, 90, interval=0.5)


def test_forced_restore_failure_rolls_back_to_node1(lab):
    from lab.k8s import prove
    from lab.k8s.layout import NODES

    cluster, state = lab
    c = cluster.admin()
    n1, n2 = NODES
    fresh_counter(c)
    with restore_fails_on(n2):
        p = cli(state, "migrate", "counter", "-n", "default", "--to", n2.node_name)
    print(p.stdout, p.stderr)
    assert p.returncode == 1
    assert "rolling back" in p.stdout and "rolled back: running on fk-node1" in p.stdout
    assert "FAILED in restore" in p.stderr
    assert pods_on(c, n2.node_name) == []
    assert pods_on(c, n1.node_name) == ["counter"]
    assert paused_tasks(n1) == []
    last = prove.last_heartbeat(c, "counter")
    time.sleep(1.2)
    assert prove.last_heartbeat(c, "counter")[0] > last[0]  # it runs on
    for h in NODES:
        assert leftovers(h) == {"tars": [], "images": []}, h.node_name
    entry = max(history(state), key=lambda e: e["started"])  # this test's move
    assert entry["container"] == "default/counter"
    assert entry["result"] == "rolled back", entry
    assert entry["running_on"] == n1.node_name
    assert "restore on fk-node2 failed" in entry["cause"]
    assert "rolled back" in cli(state, "history").stdout


@pytest.mark.parametrize(
    ("kill_after", "runs_on"),
    [("created on", 0), ("freeze_ended", 1)],
    ids=["restored-pod-created", "restored-pod-ready"],
)
def test_a_move_whose_cli_was_killed_is_recovered(lab, kill_after, runs_on):
    """The CLI SIGKILLed mid-move: the source stays frozen, the journal says "running";
    `ferryman recover --yes` rolls it back (the restored pod not Ready) or finishes it
    (Ready): one copy runs, it counts on, nothing is left."""
    from core.k8s.api import pod_ready
    from lab.k8s import prove
    from lab.k8s.layout import HOSTS_FILE, NODES

    cluster, state = lab
    c = cluster.admin()
    fresh_counter(c)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FERRYMAN_STATE_DIR": str(state)}
    argv = ["migrate", "counter", "-n", "default", "--to", NODES[1].node_name, "--json"]
    p = subprocess.Popen(
        [sys.executable, "-m", "ferryman.cli", "--hosts", str(HOSTS_FILE), *argv],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert p.stdout is not None
    seen = []
    for line in p.stdout:
        e = json.loads(line)
        seen.append(e)
        if e["kind"] == kill_after or kill_after in e.get("text", ""):
            p.kill()
            break
    p.wait(timeout=30)
    for e in seen:
        if e["kind"] in ("failed", "rollback_started"):
            print("EVENT", json.dumps(e))
    assert p.returncode == -9, [
        (e["kind"], e.get("cause") or e.get("reason") or e.get("text") or e.get("phase"))
        for e in seen
        if e["kind"] in ("failed", "warning", "rollback_started", "phase_started")
    ]
    [entry] = [e for e in history(state) if e["result"] == "running"]
    assert entry["kind"] == "pod"

    r = cli(state, "recover", "--yes")
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    node = NODES[runs_on]
    assert f"done: default/counter runs on {node.node_name}" in r.stdout
    [name] = pods_on(c, node.node_name)
    assert pods_on(c, NODES[1 - runs_on].node_name) == []
    assert pod_ready(c.get(f"{PODS}/{name}"))
    for h in NODES:
        assert paused_tasks(h) == [], h.node_name
        assert leftovers(h) == {"tars": [], "images": []}, h.node_name
    last = prove.last_heartbeat(c, name)
    time.sleep(1.2)
    assert prove.last_heartbeat(c, name)[0] > last[0]
    [after] = [e for e in history(state) if e["migration_id"] == entry["migration_id"]]
    assert after["result"] == "recovered" and after["running_on"] == node.node_name


def test_sigterm_mid_move_rolls_back(lab):
    """SIGTERM (as Ctrl-C) once the restored pod exists: the move is rolled back before
    the CLI exits (130): the restored pod deleted, the source resumed on node1."""
    from lab.k8s import prove
    from lab.k8s.layout import HOSTS_FILE, NODES

    cluster, state = lab
    c = cluster.admin()
    fresh_counter(c)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FERRYMAN_STATE_DIR": str(state)}
    argv = ["migrate", "counter", "-n", "default", "--to", NODES[1].node_name]
    p = subprocess.Popen(
        [sys.executable, "-m", "ferryman.cli", "--hosts", str(HOSTS_FILE), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert p.stdout is not None and p.stderr is not None
    out = []
    for line in p.stdout:
        out.append(line)
        if "created on" in line:
            p.terminate()
            break
    rest, err = p.communicate(timeout=120)
    text = "".join(out) + rest
    print(text, err)
    assert p.returncode == 130, err
    assert "rolled back: running on fk-node1" in text
    assert pods_on(c, NODES[1].node_name) == []
    assert pods_on(c, NODES[0].node_name) == ["counter"]
    assert paused_tasks(NODES[0]) == []
    last = prove.last_heartbeat(c, "counter")
    time.sleep(1.2)
    assert prove.last_heartbeat(c, "counter")[0] > last[0]
    for h in NODES:
        assert leftovers(h) == {"tars": [], "images": []}, h.node_name
    entry = max(history(state), key=lambda e: e["started"])
    assert entry["result"] == "rolled back" and entry["cause"] == "interrupted"


def test_console_lists_pods_per_node_with_why_they_cannot_move(lab):
    """The console's container list has a row for each pod, on its node's host, with why
    it cannot move (a controller's pod), or a ✓ where it can."""
    import asyncio

    from core import config
    from core.live import LiveBackend
    from lab.k8s.layout import HOSTS_FILE, NODES
    from tui.app import FerrymanApp

    cluster, _ = lab
    c = cluster.admin()
    fresh_counter(c)
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web",
        "uid": "6f1c0b8e-1f7e-4a57-9a34-3f4c7f3d1e12",
        "controller": True,
    }
    from lab.k8s import prove
    from lab.k8s.layout import WORKLOAD_IMAGE

    spec = prove.pod_spec("web-1", NODES[1].node_name, WORKLOAD_IMAGE)
    spec["metadata"]["ownerReferences"] = [owner]
    c.create(PODS, spec)
    from core.k8s.api import pod_ready

    c.wait_for(f"{PODS}/web-1", pod_ready, 120)

    async def rows() -> list[list[str]]:
        app = FerrymanApp(LiveBackend(config.load(HOSTS_FILE)))
        async with app.run_test(size=(200, 40)) as pilot:
            for _ in range(60):
                await pilot.pause(0.5)
                t = app.screen.query_one("#containers")
                if t.row_count >= 2:
                    break
            return [[str(x) for x in t.get_row_at(i)] for i in range(t.row_count)]

    got = asyncio.run(rows())
    by_name = {r[1]: r for r in got}
    assert by_name["default/counter"][0] == NODES[0].node_name
    assert by_name["default/counter"][-1] == "✓"  # movable: `m` moves it
    assert by_name["default/web-1"][0] == NODES[1].node_name
    assert "owned by ReplicaSet web" in by_name["default/web-1"][-1]


def test_the_console_moves_a_pod_live(lab, monkeypatch):
    """`m` on a pod row, the target node, Enter: the live view follows the move through
    its phases and the freeze to the result; the pod runs on node2 alone, counting on."""
    import asyncio

    from textual.widgets import DataTable

    from core import config
    from core.events import MigrationSucceeded, PhaseStarted
    from core.live import LiveBackend
    from lab.k8s import prove
    from lab.k8s.layout import HOSTS_FILE, NODES
    from tui.app import FerrymanApp
    from tui.screens.migration import MigrationScreen
    from tui.screens.pod_dialog import PodMoveDialog

    cluster, state = lab
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(state))
    c = cluster.admin()
    n1, n2 = NODES
    fresh_counter(c)
    before = prove.last_heartbeat(c, "counter")

    async def move() -> tuple[list, str]:
        app = FerrymanApp(LiveBackend(config.load(HOSTS_FILE)))
        async with app.run_test(size=(200, 45)) as pilot:
            t = app.screen.query_one("#containers", DataTable)
            for _ in range(120):
                await pilot.pause(0.5)
                names = [str(t.get_row_at(i)[1]) for i in range(t.row_count)]
                if "default/counter" in names:
                    break
            t.move_cursor(row=names.index("default/counter"))
            await pilot.press("m")
            for _ in range(20):
                await pilot.pause(0.2)
                if isinstance(app.screen, PodMoveDialog):
                    break
            dialog = app.screen
            assert isinstance(dialog, PodMoveDialog), app.screen
            assert dialog.targets == [n2.node_name]
            await pilot.press("enter")
            for _ in range(20):
                await pilot.pause(0.2)
                if isinstance(app.screen, MigrationScreen):
                    break
            view = app.screen
            assert isinstance(view, MigrationScreen), app.screen
            for _ in range(600):
                await pilot.pause(0.2)
                if view.progress.finished:
                    break
            assert view.progress.finished, "the live view saw no result in 120 s"
            await pilot.pause(0.5)
            result = str(view.query_one("#result").render())
            return list(view.recorded), result

    events, result = asyncio.run(move())
    phases = [e.phase for e in events if isinstance(e, PhaseStarted)]
    for ph in ("preflight", "checkpoint", "restore", "commit"):
        assert ph in phases, phases
    done = events[-1]
    assert isinstance(done, MigrationSucceeded), done
    assert done.freeze_s > 0
    assert "fk-node2" in result, result

    assert pods_on(c, n1.node_name) == []
    [restored] = pods_on(c, n2.node_name)
    time.sleep(1.5)
    beats = heartbeats(c, restored)
    assert beats[-1] > before[0] + 2, beats[-5:]
    for h in NODES:
        assert paused_tasks(h) == [] and leftovers(h) == {"tars": [], "images": []}, h.node_name
    entry = max(history(state), key=lambda e: e["started"])
    assert entry["container"] == "default/counter" and entry["result"] == "succeeded"
    assert entry["running_on"] == n2.node_name


def _refused_and_nothing_changed(c, state, *, expect: str) -> None:
    from lab.k8s.layout import NODES

    pods, journal = all_pods(c), history(state)
    p = cli(state, "migrate", "counter", "-n", "default", "--to", NODES[1].node_name)
    assert p.returncode != 0, p.stdout
    assert expect in p.stdout + p.stderr, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert all_pods(c) == pods
    assert paused_tasks(NODES[0]) == []
    for h in NODES:
        assert leftovers(h) == {"tars": [], "images": []}, h.node_name
    new = [e for e in history(state) if e not in journal]
    assert all(e["result"] != "succeeded" for e in new), new


def _poll(c, path: str, cond, timeout: float = 90) -> None:
    """Until `cond` holds for the object at `path`; a kubelet that is restarting does not
    answer through the API server's proxy meanwhile (503): tried again."""
    from core.k8s.api import KubeError

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if cond(c.get(path)):
                return
        except KubeError as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"{path}: not as wanted within {timeout:.0f} s ({last})")


def _wait_node_ready(c, node: str, ready: bool = True) -> None:
    from core.k8s.api import node_ready

    _poll(c, f"/api/v1/nodes/{node}", lambda n: node_ready(n) is ready)


def test_a_source_kubelet_with_the_checkpoint_gate_off_is_refused(lab):
    """The source node's kubelet restarted with ContainerCheckpoint off (its pods run on):
    the move is refused in preflight, naming the gate and the fix; nothing changes."""
    from lab.k8s.layout import NODES

    cluster, state = lab
    c = cluster.admin()
    n1 = NODES[0]
    fresh_counter(c)
    configz = f"/api/v1/nodes/{n1.node_name}/proxy/configz"

    def gate(doc) -> bool:
        return bool(doc["kubeletconfig"]["featureGates"].get("ContainerCheckpoint"))

    cluster.restart_kubelet(n1, checkpoint_gate=False)
    try:
        _poll(c, configz, lambda d: not gate(d))
        _wait_node_ready(c, n1.node_name)
        _refused_and_nothing_changed(c, state, expect="ContainerCheckpoint feature gate is off")
        before = prove_beat(c)
        time.sleep(1.2)
        assert prove_beat(c) > before  # the pod ran on through it all
    finally:
        cluster.restart_kubelet(n1, checkpoint_gate=True)
        _poll(c, configz, gate)
        _wait_node_ready(c, n1.node_name)


def prove_beat(c) -> int:
    from lab.k8s import prove

    beat = prove.last_heartbeat(c, "counter")
    assert beat is not None
    return beat[0]


def test_a_target_node_not_ready_or_cordoned_is_refused(lab):
    """The target's kubelet stopped and its node marked NotReady (as the node lifecycle
    controller does once its lease runs out; the lab runs no controller manager), then
    the node cordoned: each refused in preflight, nothing changed."""
    from lab.k8s.layout import NODES

    cluster, state = lab
    c = cluster.admin()
    n2 = NODES[1]
    fresh_counter(c)
    node = f"/api/v1/nodes/{n2.node_name}"
    cluster.stop(n2, "kubelet")
    try:
        conds = [
            x if x["type"] != "Ready" else {**x, "status": "False", "reason": "KubeletStopped"}
            for x in c.get(node)["status"]["conditions"]
        ]
        c.merge_patch(f"{node}/status", {"status": {"conditions": conds}})
        _wait_node_ready(c, n2.node_name, ready=False)
        _refused_and_nothing_changed(c, state, expect="not Ready (KubeletStopped)")
    finally:
        cluster.kubelet_up(n2)
        _wait_node_ready(c, n2.node_name)

    c.merge_patch(node, {"spec": {"unschedulable": True}})
    try:
        _refused_and_nothing_changed(c, state, expect="cordoned (spec.unschedulable)")
    finally:
        c.merge_patch(node, {"spec": {"unschedulable": False}})
