"""Inventory and preflight against the lab's real sshd and dockerd."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import yaml

from core.config import HostSpec, load
from core.models import HostState
from core.ssh import HostConnection, HostError
from lab import control, sshd
from lab.layout import KEY, KNOWN_HOSTS, WORKLOAD
from tests.lab.conftest import ferryman


def test_ps_json_lists_the_workload_running_on_host1(workload_on_host1):
    p = ferryman("ps", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    by_host = {r["host"]["name"]: r for r in rows}
    assert set(by_host) == {h.name for h in control.existing_hosts()}  # every lab host
    assert all(r["host"]["state"] == "up" for r in rows)
    wl = [c for c in by_host["host1"]["containers"] if c["name"] == WORKLOAD]
    assert len(wl) == 1 and wl[0]["state"] == "running" and wl[0]["migratable"] is True
    assert wl[0]["memory_bytes"] > 64 * 2**20  # it holds 64 MiB of random memory
    assert not [c for c in by_host["host2"]["containers"] if c["name"] == WORKLOAD]


def test_a_host_whose_sshd_stops_turns_unreachable_while_the_other_lists(
    lab_hosts, workload_on_host1
):
    h2 = lab_hosts[1]
    sshd.stop(h2)
    try:
        p = ferryman("ps", "--json")
    finally:
        sshd.start(h2)
    rows = {r["host"]["name"]: r for r in json.loads(p.stdout)}
    assert rows["host2"]["host"]["state"] == "unreachable"
    assert "10.77.0.12" in rows["host2"]["host"]["reason"]
    assert "sshd" in rows["host2"]["host"]["reason"]
    assert [c["name"] for c in rows["host1"]["containers"]] == [WORKLOAD]


def _spec(**kw) -> HostSpec:
    base = dict(
        name="host1",
        address="10.77.0.11",
        port=22,
        user="root",
        key=str(KEY),
        known_hosts=str(KNOWN_HOSTS),
    )
    return HostSpec(**{**base, **kw})


def _connect(spec: HostSpec) -> HostError:
    async def go() -> HostError:
        c = HostConnection(spec)
        try:
            await c.connect()
        except HostError as e:
            assert c.state == e.state
            return e
        finally:
            await c.close()
        raise AssertionError("connected, but should have been refused")

    return asyncio.run(go())


def test_unknown_host_key_is_refused_with_fingerprint_and_how_to_trust(lab_hosts, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    e = _connect(_spec(known_hosts=str(empty)))
    assert e.state == HostState.HOST_KEY_UNKNOWN
    fp = subprocess.run(
        ["ssh-keygen", "-lf", str(lab_hosts[0].state / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert fp in str(e)
    assert "ssh-keyscan" in str(e)


def test_changed_host_key_is_refused(lab_hosts, tmp_path):
    other = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts"
    kh.write_text("10.77.0.11 " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n")
    e = _connect(_spec(known_hosts=str(kh)))
    assert e.state == HostState.HOST_KEY_MISMATCH
    assert "CHANGED" in str(e)


def test_wrong_client_key_fails_authentication(lab_hosts, tmp_path):
    k = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    e = _connect(_spec(key=str(k)))
    assert e.state == HostState.AUTH_FAILED
    assert str(k) in str(e)


def test_unreachable_address(lab_hosts):
    e = _connect(_spec(address="10.77.0.99"))
    assert e.state == HostState.UNREACHABLE
    assert "10.77.0.99" in str(e)


def test_hosts_file_with_a_typo_names_line_and_key(lab_hosts, tmp_path):
    doc = yaml.safe_load(Path(lab_hosts[0].state.parent / "hosts.yaml").read_text())
    doc["hosts"][1]["docker_sockt"] = doc["hosts"][1].pop("docker_socket")
    bad = tmp_path / "hosts.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "docker_sockt" in t)
    p = ferryman("ps", hosts_file=bad)
    assert p.returncode == 2
    assert f"{bad}:{line}: unknown key 'docker_sockt'" in p.stderr
    assert "did you mean 'docker_socket'" in p.stderr


def test_check_json_reports_no_soft_dirty_and_lazy_pages_that_work(lab_hosts):
    p = ferryman("check", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for h in out["hosts"]:
        assert h["facts"]["dirty_tracking"] is False
        # `criu check` alone is not trusted: check tries a lazy transfer, which works on the
        # lab because `lab up` raises fs.pipe-max-size (this machine's root lacks
        # CAP_SYS_RESOURCE; without it every lazy transfer dies).
        assert h["facts"]["lazy_pages"] is True
        assert h["facts"]["criu_version"].startswith("4.2")
    soft = [c for c in out["checks"] if c["name"] == "soft-dirty"]
    n = len(control.existing_hosts())
    assert len(soft) == n and all(c["status"] == "warn" for c in soft)
    assert all("pre-copy and hybrid are ruled out" in c["reason"] for c in soft)
    uffd = [c for c in out["checks"] if c["name"] == "userfaultfd"]
    assert all(c["status"] == "pass" for c in uffd)
    trial = [c for c in out["checks"] if c["name"] == "post-copy"]
    assert len(trial) == n and all(c["status"] == "pass" for c in trial)
    assert all("a lazy transfer of a tiny process works here" in c["reason"] for c in trial)
    pipes = [c for c in out["checks"] if c["name"] == "pipe-size"]
    assert len(pipes) == n and all(c["status"] == "pass" for c in pipes)


def test_lab_hosts_file_loads(hosts_file):
    inv = load(hosts_file)
    assert [h.name for h in inv.hosts] == [h.name for h in control.existing_hosts()]
    assert [h.name for h in inv.hosts][:2] == ["host1", "host2"]
