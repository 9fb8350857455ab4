"""Hostile names, labels, env values and mount paths: commands stay correct (one quoting
place), nothing is executed that the user did not ask for, and bad names are refused up front."""

from __future__ import annotations

import json
from pathlib import Path

from lab.layout import IMAGE
from tests.lab.conftest import docker, exists, ferryman, running

NASTY = "$(touch /tmp/fm-pwned-1) `touch /tmp/fm-pwned-2` 'single' \"double\" ; touch /tmp/fm-pwned-3 \\ back"


def test_hostile_labels_env_and_mount_paths_arrive_verbatim_and_run_nothing(lab_hosts, workload_on_host1, tmp_path):
    h1, h2 = lab_hosts
    for p in Path("/tmp").glob("fm-pwned-*"):
        p.unlink()
    name = "hostile.name_1"
    # A bind mount whose path has spaces, quotes and $(): the lab's hosts share this
    # machine's file system, so it exists on the target too (preflight checks it).
    mnt = tmp_path / "dir with 'quotes' and $(x) `y`"
    mnt.mkdir()
    (mnt / "f").write_text("bind ok\n")
    for h in lab_hosts:
        docker(h, "rm", "-f", name, check=False)
    docker(h1, "run", "-d", "--name", name, "--label", f"nasty={NASTY}", "-e", f"NASTY={NASTY}",
           "-e", "MULTI=line1\nline2", "-v", f"{mnt}:/bind", IMAGE, "/workload", "4", "0", "50")
    try:
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy", "--json")
        assert p.returncode == 0, p.stderr + p.stdout[-2000:]
        assert running(h2, name) and not exists(h1, name)
        labels = json.loads(docker(h2, "inspect", "-f", "{{json .Config.Labels}}", name))
        assert labels["nasty"] == NASTY
        env = json.loads(docker(h2, "inspect", "-f", "{{json .Config.Env}}", name))
        assert f"NASTY={NASTY}" in env and "MULTI=line1\nline2" in env
        assert docker(h2, "exec", name, "cat", "/bind/f") == "bind ok"
        assert not list(Path("/tmp").glob("fm-pwned-*")), "a hostile value was executed"
    finally:
        for h in lab_hosts:
            docker(h, "rm", "-f", name, check=False)


def test_invalid_container_names_are_refused_before_anything_runs(lab_hosts):
    for bad in ("bad name", "x;touch /tmp/fm-pwned-4", "-rf", "../etc", "a" * 300):
        p = ferryman("migrate", "--from", "host1", "--to", "host2", "--", bad)
        assert p.returncode == 2, (bad, p.stdout, p.stderr)
        assert "not a valid container name" in p.stderr and "host1" in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert not Path("/tmp/fm-pwned-4").exists()


def test_a_missing_bind_mount_source_fails_preflight_naming_host_and_path(lab_hosts, workload_on_host1, tmp_path):
    h1, h2 = lab_hosts
    name = "binder"
    src = tmp_path / "only here"
    src.mkdir()
    for h in lab_hosts:
        docker(h, "rm", "-f", name, check=False)
    docker(h1, "run", "-d", "--name", name, "-v", f"{src}:/data", IMAGE, "/workload", "4", "0", "50")
    src.rename(tmp_path / "moved away")  # the container keeps running; the path is gone
    try:
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy", "--json")
        assert p.returncode == 1
        failed = [json.loads(x) for x in p.stdout.splitlines()][-1]
        assert failed["kind"] == "failed" and failed["phase"] == "preflight"
        assert "host2" in failed["cause"] and str(src) in failed["cause"]
        assert failed["fix"]
        assert running(h1, name) and not exists(h2, name)
    finally:
        for h in lab_hosts:
            docker(h, "rm", "-f", name, check=False)
