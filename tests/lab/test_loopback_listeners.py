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


def moved_whole(lab_hosts, rc: int, events: list[dict], since: int) -> None:
    """The move succeeded: the container runs on host2 only, its counter going on."""
    h1, h2 = lab_hosts
    assert succeeded(rc, events), [e for e in events if e.get("kind") in ("failed", "warning")]
    assert running(h2, WORKLOAD) and not running(h1, WORKLOAD)
    assert counters_continue(h2, since), "the twin's counter did not continue the source's"


def kept_away(h: LabHost, reached: dict[str, dict[int, int]], events: list[dict]) -> None:
    """The prober on `h` reached a listener of the move, got no byte, and was told of."""
    assert reached[h.name], f"not vacuous: the prober found no loopback listener on {h.name}"
    assert sum(reached[h.name].values()) == 0, f"bytes handed to the prober: {reached}"
    assert turned_away(events, h.name), "the console did not say it turned connections away"


def test_post_copy_with_a_prober_on_the_target(lab_hosts, workload_on_host1):
    """The target's end of the page link is a loopback listener: only the lazy-pages
    daemon ferryman started is relayed (without that check, this move failed: the
    prober was taken for the daemon)."""
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    rc, events, reached = move_with_probers("post-copy", h2, [h2])
    moved_whole(lab_hosts, rc, events, since)
    kept_away(h2, reached, events)


def test_stop_and_copy_with_a_prober_on_the_target(lab_hosts, workload_on_host1):
    """The target's page server runs on a socket pair: nothing there to connect to. (The
    source's listener is the next test's.)"""
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    rc, events, reached = move_with_probers("stop-and-copy", h2, [h2])
    moved_whole(lab_hosts, rc, events, since)
    assert not reached[h2.name], f"the target listened on its loopback: {reached[h2.name]}"


def _one_copy_and_where(lab_hosts, rc: int, events: list[dict]) -> LabHost:
    """Exactly one copy runs; where, by how the move ended."""
    h1, h2 = lab_hosts
    on = [h for h in lab_hosts if running(h, WORKLOAD)]
    assert len(on) == 1, f"copies running: {[h.name for h in on]}"
    if succeeded(rc, events):
        assert on == [h2], "the move succeeded but the container runs on host1"
    else:
        failed = [e for e in events if e.get("kind") == "failed"]
        assert failed and on == [h1], f"neither succeeded nor rolled back home: {failed}"
    return on[0]


def test_stop_and_copy_with_a_prober_on_the_source(lab_hosts, workload_on_host1):
    """On the source, the port CRIU's dump connects to turns away whatever connects before
    the dump is fired, and after it relays only a connection the source's checker says
    is CRIU's (without that, this prober made every such move fail and roll back). The
    move succeeds, the prober receives no byte, and the console says it turned it away."""
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    rc, events, reached = move_with_probers("stop-and-copy", h2, [h1])
    moved_whole(lab_hosts, rc, events, since)
    kept_away(h1, reached, events)


def test_post_copy_with_a_prober_on_the_source(lab_hosts, workload_on_host1):
    """On the source, the page holder takes only the channel that sends the migration's
    token first, and CRIU's lazy page server is marked by the page holder before any page
    is served: the prober gets no byte of memory, and one copy runs. A prober that wins
    the few milliseconds' race for CRIU's server stops the move (README: what is left);
    then the rollback says whether the source kept its state."""
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    rc, events, reached = move_with_probers("post-copy", h2, [h1])
    home = _one_copy_and_where(lab_hosts, rc, events)
    assert reached[h1.name], "not vacuous: the prober found no loopback listener on host1"
    assert sum(reached[h1.name].values()) == 0, f"bytes handed to the prober: {reached}"
    if counters_continue(home, since):
        return
    cold = [e["text"] for e in events if e.get("kind") == "warning" and "cold" in e.get("text", "")]
    assert home is h1 and cold, "the state was lost and the console did not say so"
