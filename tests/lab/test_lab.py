"""The lab itself: hosts answer SSH at their own address and run their own engine."""

from __future__ import annotations

import subprocess
import time

from lab import control
from lab.layout import KEY, KNOWN_HOSTS, WORKLOAD
from tests.lab.conftest import docker, ferryman, heartbeats, running


def ssh(h, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(KEY),
            "-o",
            f"UserKnownHostsFile={KNOWN_HOSTS}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"root@{h.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_each_host_answers_ssh_at_its_own_address(lab_hosts):
    for h in lab_hosts:
        p = ssh(h, "echo $FERRYMAN_LAB_HOST; ip -4 -o addr show")
        assert p.returncode == 0, p.stderr
        first, *rest = p.stdout.splitlines()
        assert first == h.name
        assert h.address in "\n".join(rest)
        others = [o.address for o in lab_hosts if o is not h]
        assert not any(a in "\n".join(rest) for a in others)


def test_each_host_runs_its_own_engine(lab_hosts):
    pids = set()
    for h in lab_hosts:
        p = ssh(
            h,
            "docker info --format '{{.DockerRootDir}} {{.ExperimentalBuild}}'; "
            "cat /proc/$(cat " + str(h.dockerd_pidfile) + ")/net/fib_trie | grep -c " + h.address,
        )
        assert p.returncode == 0, p.stderr
        root, experimental, addr_seen = p.stdout.split()
        assert root == str(h.data_root)
        assert experimental == "true"
        assert int(addr_seen) > 0  # the engine lives in the host's own network namespace
        pids.add(h.dockerd_pidfile.read_text())
    assert len(pids) == len(lab_hosts)


def test_criu_passes_its_check_on_every_host(lab_hosts):
    for h in lab_hosts:
        p = ssh(h, "criu --version && criu check")
        assert p.returncode == 0, p.stdout + p.stderr
        assert "Version: 4.2" in p.stdout


def test_docker_checkpoint_round_trip_keeps_the_heartbeat_counter(lab_hosts, workload_on_host1):
    h1 = workload_on_host1
    before = heartbeats(h1, WORKLOAD)[-1][0]
    docker(h1, "checkpoint", "create", WORKLOAD, "cp1")
    assert not running(h1, WORKLOAD)
    docker(h1, "start", "--checkpoint", "cp1", WORKLOAD)
    deadline = time.time() + 10
    while time.time() < deadline:
        beats = heartbeats(h1, WORKLOAD)
        later = [c for c, _ in beats if c > before]
        if len(later) >= 3:
            break
        time.sleep(0.1)
    counters = [c for c, _ in heartbeats(h1, WORKLOAD)]
    assert running(h1, WORKLOAD)
    # The counter went on from where it was: no restart from 0 after the checkpoint.
    after_restore = counters[counters.index(before) :]
    assert after_restore == list(range(before, before + len(after_restore)))
    assert len(after_restore) > 3
    docker(h1, "checkpoint", "rm", WORKLOAD, "cp1", check=False)


def test_bad_host_count_is_refused_with_one_line_and_changes_nothing(lab_hosts):
    before = control.status()
    for bad in ("0", "50", "two"):
        p = ferryman("lab", "up", "--hosts", bad, hosts_file=None)
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "--hosts" in lines[0], p.stderr
    after = control.status()
    assert [h["name"] for h in after["hosts"]] == [h["name"] for h in before["hosts"]]
    assert after["up"] == before["up"]


def test_lab_status_json_says_how_to_reach_each_host(lab_hosts):
    import json

    p = ferryman("lab", "status", "--json", hosts_file=None)
    st = json.loads(p.stdout)
    assert st["up"] and st["hosts_file"]
    for h, want in zip(st["hosts"], control.existing_hosts(), strict=True):
        assert h["name"] == want.name and h["address"] == want.address
        assert h["ssh_port"] == 22 and h["user"] == "root"
        assert h["key_file"] == str(KEY) and h["known_hosts_file"] == str(KNOWN_HOSTS)
