"""End to end on the lab: `ferryman migrate` moves real containers between real hosts."""

from __future__ import annotations

import json
import time

from lab.layout import IMAGE, WORKLOAD
from tests.lab.conftest import docker, events, exists, ferryman, heartbeats, running


def _wait_beats(h, name: str, n: int = 5) -> list[tuple[int, int]]:
    deadline = time.time() + 10
    beats = heartbeats(h, name)
    while len(beats) < n and time.time() < deadline:
        time.sleep(0.1)
        beats = heartbeats(h, name)
    return beats


def test_stop_and_copy_moves_the_workload_and_its_heartbeat_continues(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    counter_before = heartbeats(h1, WORKLOAD)[-1][0]
    p = ferryman(
        "migrate",
        WORKLOAD,
        "--from",
        "host1",
        "--to",
        "host2",
        "--strategy",
        "stop-and-copy",
        "--json",
    )
    evs = events(p.stdout)
    assert p.returncode == 0, p.stderr + p.stdout[-3000:]
    kinds = [e["kind"] for e in evs]
    assert kinds[0] == "migration_started" and kinds[-1] == "succeeded"
    phases = [e["phase"] for e in evs if e["kind"] == "phase_started"]
    assert phases == [
        "preflight",
        "prepare",
        "checkpoint",
        "transfer",
        "restore",
        "verify",
        "commit",
        "cleanup",
    ]
    # It runs on host2 and no longer exists on host1.
    assert running(h2, WORKLOAD)
    assert not exists(h1, WORKLOAD)
    # Its heartbeat counter continues from where it was (state moved, not restarted).
    beats = _wait_beats(h2, WORKLOAD, 10)
    counters = [c for c, _ in beats]
    assert counters[0] > counter_before
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    # The last event reports the freeze window and its split.
    done = evs[-1]
    assert done["freeze_s"] > 0
    assert abs(done["freeze_s"] - (done["dump_s"] + done["transfer_s"] + done["restore_s"])) < 1e-6
    assert done["bytes_moved"] >= 64 * 2**20
    assert done["app_gap_s"] is not None and done["app_gap_s"] > 0
    assert not [e for e in evs if e["kind"] == "warning" and "did not continue" in e["text"]]
    # The journal has it.
    hist = json.loads(ferryman("history", "--json", hosts_file=None).stdout)
    mid = evs[0]["migration_id"]
    entry = next(h for h in hist if h["migration_id"] == mid)
    assert entry["result"] == "succeeded" and entry["running_on"] == "host2"
    assert entry["freeze"]["total_s"] == done["freeze_s"]
    # No checkpoint images are left behind on either host.
    for h in lab_hosts:
        leftovers = list((h.state / "images").glob(f"{mid}*"))
        assert leftovers == []


def test_writable_layer_changes_and_a_named_volume_arrive(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    name, vol = "stateful", "fm-test-vol"
    for h in lab_hosts:
        docker(h, "rm", "-f", name, check=False)
        docker(h, "volume", "rm", "-f", vol, check=False)
    docker(
        h1,
        "run",
        "-d",
        "--name",
        name,
        "-v",
        f"{vol}:/vol",
        "--label",
        "app=stateful",
        "-e",
        "GREETING=hello there",
        IMAGE,
        "/workload",
        "8",
        "1",
        "50",
    )
    docker(
        h1,
        "exec",
        name,
        "sh",
        "-c",
        "echo layer-change > /tmp/changed && echo in-volume > /vol/data",
    )
    try:
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy", "--json")
        assert p.returncode == 0, p.stderr + p.stdout[-3000:]
        assert running(h2, name) and not exists(h1, name)
        assert docker(h2, "exec", name, "cat", "/tmp/changed") == "layer-change"
        assert docker(h2, "exec", name, "cat", "/vol/data") == "in-volume"
        assert docker(h2, "inspect", "-f", '{{index .Config.Labels "app"}}', name) == "stateful"
        env = docker(h2, "inspect", "-f", "{{json .Config.Env}}", name)
        assert "GREETING=hello there" in json.loads(env)
    finally:
        for h in lab_hosts:
            docker(h, "rm", "-f", name, check=False)
            docker(h, "volume", "rm", "-f", vol, check=False)


def test_failed_restore_rolls_back_to_the_source_with_the_criu_log(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    # host2's CRIU fails every restore: CRIU's own fault injection (FI_POST_RESTORE: the restore is aborted after the tasks are up),
    # so the failure and its log are CRIU's, not a stand-in's.
    fake = h2.bin_dir / "criu"
    fake.write_text('#!/bin/sh\nexport CRIU_FAULT=6\nexec /usr/local/sbin/criu "$@"\n')
    fake.chmod(0o755)
    counter_before = heartbeats(h1, WORKLOAD)[-1][0]
    try:
        p = ferryman("migrate", WORKLOAD, "--to", "host2", "--strategy", "stop-and-copy", "--json")
    finally:
        fake.unlink()
    evs = events(p.stdout)
    assert p.returncode == 1, p.stdout[-2000:]
    failed = evs[-1]
    assert failed["kind"] == "failed" and failed["phase"] == "restore"
    assert failed["running_on"] == "host1"
    assert "host2" in failed["cause"]
    rb = [e for e in evs if e["kind"] == "rollback_finished"]
    assert rb and rb[0]["ok"] and rb[0]["running_on"] == "host1"
    # Exactly one copy runs: on host1 again, resumed from its checkpoint (counter goes on).
    assert running(h1, WORKLOAD)
    assert not exists(h2, WORKLOAD)
    beats = [c for c, _ in heartbeats(h1, WORKLOAD)]
    after = beats[beats.index(counter_before) :]
    assert after == list(range(counter_before, counter_before + len(after)))
    # The journal has the cause and the CRIU restore log, copied back to this machine.
    assert failed["log_path"].endswith("restore.log")
    with open(failed["log_path"]) as f:
        log = f.read()
    assert "Error" in log or "BUG" in log
    hist = json.loads(ferryman("history", "--json", hosts_file=None).stdout)
    entry = next(h for h in hist if h["migration_id"] == evs[0]["migration_id"])
    assert entry["result"] == "rolled back" and entry["running_on"] == "host1"
    assert entry["cause"] == failed["cause"]
