"""A migration lock on the source refuses a second migration of the same container,
even from another console."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from lab.layout import HOSTS_FILE, WORKLOAD
from tests.lab.conftest import events, exists, ferryman, running


def test_a_second_console_cannot_migrate_the_same_container(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferryman.cli",
            "--hosts",
            str(HOSTS_FILE),
            "migrate",
            WORKLOAD,
            "--to",
            "host2",
            "--strategy",
            "stop-and-copy",
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert first.stdout is not None
    mid = ""
    for line in first.stdout:
        e = json.loads(line)
        if e["kind"] == "migration_started":
            mid = e["migration_id"]
        if e["kind"] == "log" and e["text"].startswith("twin "):
            break  # past the lock, the container still running on host1
    os.kill(first.pid, signal.SIGSTOP)  # hold the first one there while a second console tries
    try:
        second = ferryman(
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
    finally:
        os.kill(first.pid, signal.SIGCONT)
    rest = first.communicate(timeout=300)[0]
    assert first.returncode == 0, rest[-2000:]
    assert second.returncode == 1
    failed = events(second.stdout)[-1]
    assert failed["kind"] == "failed" and failed["phase"] == "preflight", failed["cause"]
    assert "already being migrated" in failed["cause"] and mid in failed["cause"]
    assert "ferryman recover" in failed["fix"]
    # The refused one changed nothing: the first one's move stands, one copy runs.
    assert running(h2, WORKLOAD) and not exists(h1, WORKLOAD)
