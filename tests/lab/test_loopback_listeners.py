"""Loopback listeners during a move, against hostile local processes.

Any process on a host can connect to its loopback. A listener of the move that took the
first connection would let a local process (or a `--network host` container) that
connects first be served the frozen source's memory, or end the transfer. Here probers
connect to every loopback listener, again and again, from prepare to the end of the
move: the move must succeed with the container whole, the probers must receive no byte,
and the console must say it turned connections away.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from lab.layout import HOSTS_FILE, LabHost
from lab.shell import in_ns
from tests.lab.conftest import FERRYMAN, WORKLOAD, counters_continue, heartbeats, running

PROBER = str(Path(__file__).with_name("loopback_prober.py"))


def move_with_probers(
    strategy: str, to: LabHost, probed: list[LabHost]
) -> tuple[int, list[dict], dict[str, dict[int, int]]]:
    """Move the workload with probers running on `probed`; the exit status, the events,
    and per prober host the bytes each loopback port it reached gave it."""
    extra = ["--accept-risk"] if strategy == "post-copy" else []
    mig = subprocess.Popen(
        [*FERRYMAN, "--hosts", str(HOSTS_FILE), "migrate", WORKLOAD, "--to", to.name,
         "--strategy", strategy, *extra, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    probers: dict[str, subprocess.Popen] = {}
    lines: list[str] = []
    assert mig.stdout is not None
    for line in mig.stdout:
        lines.append(line)
        if not probers and '"phase_started"' in line and '"prepare"' in line:
            # From before the move's listeners exist until after the move.
            probers = {
                h.name: subprocess.Popen(in_ns(h.netns, ["python3", PROBER, "25"]),
                                         stdout=subprocess.PIPE, text=True)
                for h in probed
            }
    mig.wait(timeout=300)
    assert probers, "the move never reached prepare:\n" + "".join(lines[-20:])
    reached = {}
    for name, p in probers.items():
        out, _ = p.communicate(timeout=60)
        reached[name] = {int(a): int(b) for a, b in (ln.split() for ln in out.splitlines())}
    events = [json.loads(ln) for ln in lines if ln.startswith("{")]
    return mig.returncode, events, reached


def succeeded(rc: int, events: list[dict]) -> bool:
    return rc == 0 and any(e.get("kind") == "succeeded" for e in events)


def turned_away(events: list[dict], host: str) -> list[str]:
    return [e["text"] for e in events
            if e.get("kind") == "warning" and e.get("text", "").startswith(f"{host}: ")
            and "turned away" in e["text"]]


def test_post_copy_with_a_prober_on_the_target(lab_hosts, workload_on_host1):
    """The target's end of the page link is a loopback listener: only the lazy-pages
    daemon ferryman started is relayed (without that check, this move failed: the
    prober was taken for the daemon)."""
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    rc, events, reached = move_with_probers("post-copy", h2, [h2])
    assert succeeded(rc, events), [e for e in events if e.get("kind") in ("failed", "warning")]
    assert running(h2, WORKLOAD) and not running(h1, WORKLOAD)
    assert counters_continue(h2, since), "the twin's counter did not continue the source's"
    assert reached[h2.name], "not vacuous: the prober found no loopback listener of the move"
    assert sum(reached[h2.name].values()) == 0, f"bytes handed to the prober: {reached}"
    assert turned_away(events, h2.name), "the console did not say it turned connections away"


def test_stop_and_copy_with_a_prober_on_the_target(lab_hosts, workload_on_host1):
    """The target's page server runs on a socket pair: nothing there to connect to. (The
    source's listener relays the first connection only: a prober there that connects
    before CRIU makes the dump fail and the move roll back, see core/engine/page_stream.py.)"""
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    rc, events, reached = move_with_probers("stop-and-copy", h2, [h2])
    assert succeeded(rc, events), [e for e in events if e.get("kind") in ("failed", "warning")]
    assert running(h2, WORKLOAD) and not running(h1, WORKLOAD)
    assert counters_continue(h2, since), "the twin's counter did not continue the source's"
    assert not reached[h2.name], f"the target listened on its loopback: {reached[h2.name]}"
