"""A real CRIU failure, explained by the doctor, fixed by its retry option."""

from __future__ import annotations

import json
import subprocess

from lab.layout import IMAGE
from tests.lab.conftest import FERRYMAN, docker, events, exists, ferryman, running

# Two processes of the container talk over loopback TCP: an established connection.
TALKERS = ("sleep 100000 | busybox nc -l -p 5000 >/dev/null & sleep 0.5; "
           "sleep 100000 | busybox nc 127.0.0.1 5000 >/dev/null & exec /workload 4 0 50")


def established(h, name: str) -> set[str]:
    out = docker(h, "exec", name, "busybox", "netstat", "-tn")
    return {" ".join(line.split()[3:5]) for line in out.splitlines() if "ESTABLISHED" in line}


def test_established_tcp_fails_is_diagnosed_and_the_suggested_retry_moves_it(lab_hosts, tmp_path):
    h1, h2 = lab_hosts
    name = "talker"
    for h in lab_hosts:
        docker(h, "rm", "-f", name, check=False)
    docker(h1, "run", "-d", "--name", name, IMAGE, "sh", "-c", TALKERS)
    try:
        import time

        time.sleep(2)
        before = established(h1, name)
        assert len(before) == 2
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy", "--json")
        assert p.returncode == 1
        failed = events(p.stdout)[-1]
        assert failed["phase"] == "checkpoint" and failed["running_on"] == "host1"
        assert "--tcp-established" in failed["fix"]
        assert running(h1, name) and not exists(h2, name)
        # The doctor, run on the log the failure saved, names the cause and the retry option.
        d = subprocess.run([*FERRYMAN, "doctor", failed["log_path"], "--json"], capture_output=True, text=True)
        diag = json.loads(d.stdout)["diagnoses"][0]
        assert diag["id"] == "tcp-established" and diag["retry_option"] == "--tcp-established"
        assert any("Connected TCP socket" in e["text"] for e in diag["evidence"])
        # Retried with it, the container moves with its connections.
        p = ferryman("migrate", name, "--to", "host2", "--strategy", "stop-and-copy",
                     f"--criu-opt={diag['retry_option']}", "--json")
        assert p.returncode == 0, p.stdout[-2000:]
        assert running(h2, name) and not exists(h1, name)
        assert established(h2, name) == before
    finally:
        for h in lab_hosts:
            docker(h, "rm", "-f", name, check=False)
