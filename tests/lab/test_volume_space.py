"""A named volume larger than the room in the target's Docker data root: the move is
refused in preflight, in numbers, and the container keeps running on its host. The
target's `volumes` folder is given a small file system of its own (a 96 MiB tmpfs)."""

from __future__ import annotations

import json
import os
import subprocess

from lab.layout import IMAGE
from tests.lab.conftest import docker, exists, ferryman, running

NAME, VOL = "big-volume", "fm-big-vol"


def test_a_volume_too_big_for_the_target_is_refused_in_preflight(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    for h in lab_hosts:
        docker(h, "rm", "-f", NAME, check=False)
        docker(h, "volume", "rm", "-f", VOL, check=False)
    where = h2.data_root / "volumes"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "fm-small", str(where)], check=True)
    try:
        docker(h1, "run", "-d", "--name", NAME, "-v", f"{VOL}:/vol", IMAGE,
               "/workload", "4", "0", "50")  # fmt: skip
        data = docker(h1, "volume", "inspect", "-f", "{{.Mountpoint}}", VOL)
        with open(f"{data}/blob", "wb") as f:  # the image has no dd: written from outside
            for _ in range(64):
                f.write(os.urandom(1 << 20))
        p = ferryman("migrate", NAME, "--to", "host2", "--strategy", "stop-and-copy", "--json")
        assert p.returncode == 1, p.stdout[-2000:] + p.stderr
        failed = [json.loads(x) for x in p.stdout.splitlines()][-1]
        assert failed["kind"] == "failed" and failed["phase"] == "preflight", failed
        cause = failed["cause"]
        assert VOL in cause and "host2" in cause and "64 MiB" in cause, cause
        assert str(where) in failed["fix"], failed
        assert running(h1, NAME) and not exists(h2, NAME)
        assert docker(h2, "volume", "ls", "-q", "--filter", f"name={VOL}") == ""
    finally:
        for h in lab_hosts:
            docker(h, "rm", "-f", NAME, check=False)
        subprocess.run(["umount", str(where)], check=False)
        for h in lab_hosts:
            docker(h, "volume", "rm", "-f", VOL, check=False)


def test_a_volume_that_fits_passes_the_check(lab_hosts, workload_on_host1):
    """The same check on the plain lab, where the room is there: it passes, with numbers."""
    h1, _ = lab_hosts
    docker(h1, "rm", "-f", NAME, check=False)
    docker(h1, "volume", "rm", "-f", VOL, check=False)
    try:
        docker(h1, "run", "-d", "--name", NAME, "-v", f"{VOL}:/vol", IMAGE,
               "/workload", "4", "0", "50")  # fmt: skip
        p = ferryman("check", "--container", NAME, "--to", "host2", "--json")
        room = [c for c in json.loads(p.stdout)["checks"] if c["name"] == "volume-space"]
        assert room and room[0]["status"] == "pass", p.stdout[-2000:] + p.stderr
        assert VOL in room[0]["reason"]
    finally:
        docker(h1, "rm", "-f", NAME, check=False)
        docker(h1, "volume", "rm", "-f", VOL, check=False)
