"""A real CRIU failure, explained by the doctor, fixed by its retry option."""

from __future__ import annotations

import json
import subprocess

from lab.layout import IMAGE
from tests.lab.conftest import FERRYMAN, docker, exists, ferryman, running

# Two processes of the container talk over loopback TCP: an established connection.
TALKERS = ("sleep 100000 | busybox nc -l -p 5000 >/dev/null & sleep 0.5; "
           "sleep 100000 | busybox nc 127.0.0.1 5000 >/dev/null & exec /workload 4 0 50")


def established(h, name: str) -> set[str]:
    out = docker(h, "exec", name, "busybox", "netstat", "-tn")
    return {" ".join(line.split()[3:5]) for line in out.splitlines() if "ESTABLISHED" in line}


def test_established_tcp_moves_closed_by_default_and_kept_with_the_doctors_option(
    lab_hosts, tmp_path
):
    """A default move takes a container's TCP connections along and brings them back
    closed (they cannot follow it to another address; the application sees them reset).
    The doctor's option for CRIU's "Connected TCP socket" refusal, --tcp-established, keeps
    them open: here a connection between two of the container's own processes."""
    h1, h2 = lab_hosts
    name = "talker"
    for h in lab_hosts:
        docker(h, "rm", "-f", name, check=False)
    docker(h1, "run", "-d", "--name", name, IMAGE, "sh", "-c", TALKERS)
    try:
        import time

        time.sleep(2)
        assert len(established(h1, name)) == 2
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy", "--json")
        assert p.returncode == 0, p.stdout[-2000:]
        assert running(h2, name) and not exists(h1, name)
        time.sleep(1)
        assert established(h2, name) == set()  # brought back closed
        # The doctor names CRIU's refusal of a connected socket (a real dump log) and the
        # option that keeps such connections.
        log = tmp_path / "dump.log"
        log.write_text(
            (__import__("pathlib").Path(__file__).parents[1] / "data" / "criu-logs"
             / "dump-tcp-established.log").read_text()
        )
        d = subprocess.run([*FERRYMAN, "doctor", str(log), "--json"], capture_output=True, text=True)
        diag = json.loads(d.stdout)["diagnoses"][0]
        assert diag["id"] == "tcp-established" and diag["retry_option"] == "--tcp-established"
        assert "--criu-opt=--tcp-established" in diag["fix"]
        # With it, the connections move open.
        docker(h2, "rm", "-f", name)
        docker(h1, "run", "-d", "--name", name, IMAGE, "sh", "-c", TALKERS)
        time.sleep(2)
        before = established(h1, name)
        assert len(before) == 2
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy",
                     f"--criu-opt={diag['retry_option']}", "--json")
        assert p.returncode == 0, p.stdout[-2000:]
        assert running(h2, name) and not exists(h1, name)
        assert established(h2, name) == before
    finally:
        for h in lab_hosts:
            docker(h, "rm", "-f", name, check=False)
