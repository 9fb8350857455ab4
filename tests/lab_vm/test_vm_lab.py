"""The VM lab's guests look like any other host to the console: SSH at their own address,
their own engine, CRIU with soft-dirty tracking, the workload running on host1."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from lab import vm

from .conftest import ferryman, gssh, heartbeat

pytestmark = pytest.mark.vmlab


def test_each_guest_answers_ssh_at_its_own_address_on_debians_kernel(vm_hosts):
    for h in vm_hosts:
        out = gssh(h, "hostname; uname -r; ip -4 -o addr show").splitlines()
        assert out[0] == h.name
        assert out[1].startswith("6.1."), f"{h.name} runs kernel {out[1]}, not Debian's 6.1"
        assert any(f" {h.address}/24 " in ln for ln in out[2:]), out


def test_each_guest_runs_its_own_experimental_engine(vm_hosts):
    ids = set()
    for h in vm_hosts:
        info = json.loads(gssh(h, "docker info --format '{{json .}}'"))
        assert info["ExperimentalBuild"] is True
        assert info["DockerRootDir"] == vm.GUEST_DATA_ROOT
        assert info["Name"] == h.name
        ids.add(info["ID"])
    assert len(ids) == len(vm_hosts), "the guests share an engine"


def test_criu_has_dirty_tracking_in_each_guest(vm_hosts):
    for h in vm_hosts:
        out = gssh(h, "criu --version | head -1; criu check --feature mem_dirty_track")
        assert "Version: 4." in out
        assert "mem_dirty_track is supported" in out, out


def test_workload_runs_on_host1_and_its_heartbeat_advances(workload_on_host1):
    h1 = workload_on_host1
    state = gssh(h1, "docker inspect -f '{{.State.Running}} {{.Config.Image}}' workload")
    assert state == "true ferryman-lab/workload:1"
    first = heartbeat(h1)
    time.sleep(2)
    assert heartbeat(h1) > first


def test_pre_dump_rounds_shrink_on_the_workload(workload_on_host1):
    """Soft-dirty really works: a second pre-dump round holds only what was rewritten."""
    h1 = workload_on_host1
    d = f"{vm.GUEST_IMAGES_DIR}/test-predump"
    runc = f"runc --root {vm.GUEST_EXEC_ROOT}/runtime-runc/moby"
    script = f"""set -e
id=$(docker inspect -f '{{{{.Id}}}}' workload)
rm -rf {d}; mkdir -p {d}
{runc} checkpoint --pre-dump --image-path {d}/p1 --work-path {d}/w1 $id
{runc} checkpoint --pre-dump --parent-path ../p1 --image-path {d}/p2 --work-path {d}/w2 $id
du -sk {d}/p1 {d}/p2 | cut -f1
"""
    try:
        sizes = [int(x) for x in gssh(h1, script, timeout=300).split()]
    finally:
        gssh(h1, f"rm -rf {d}", check=False)
    full, second = sizes
    assert full > 32 * 1024, f"first round only {full} KiB"
    assert second < full / 2, f"second round {second} KiB of {full} KiB: no dirty tracking?"
    assert heartbeat(h1) > 0


def test_guest_clocks_agree_with_this_machine(vm_hosts):
    """Heartbeat gaps are measured across guests: their clocks must agree to a few ms."""
    for h in vm_hosts:
        offset = vm.sync_clock(h, adjust=False)
        assert abs(offset) < 0.05, f"{h.name}'s clock is off by {offset:+.3f} s"


def test_status_and_hosts_file_say_how_to_reach_each_guest(vm_hosts):
    p = ferryman("lab", "status", "--vm", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["kind"] == "vm" and st["up"] and st["hosts_file"] == str(vm.HOSTS_FILE)
    doc = yaml.safe_load(vm.HOSTS_FILE.read_text())
    for h, s, f in zip(vm_hosts, st["hosts"], doc["hosts"], strict=False):
        assert s["name"] == f["name"] == h.name and s["address"] == f["address"] == h.address
        assert s["ssh_port"] == f["port"] == 22 and s["user"] == f["user"] == "root"
        assert s["key_file"] == f["key"] == str(vm.KEY)
        assert s["known_hosts_file"] == f["known_hosts"] == str(vm.KNOWN_HOSTS)
        assert f["docker_socket"] == vm.GUEST_DOCKER_SOCKET
        assert f["exec_root"] == vm.GUEST_EXEC_ROOT
        assert f["images_dir"] == vm.GUEST_IMAGES_DIR
        assert f["labels"] == {"lab": "vm"}
        assert s["sshd"] and s["dockerd"]
