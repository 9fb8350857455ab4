"""Loopback listeners during a post-copy move, against a hostile local process.

Any process on a host can connect to its loopback. The target's end of the post-copy page
link is such a listener; had it taken the first connection, a local process (or a
`--network host` container) connecting first would have been served the frozen source's
memory, and the real lazy-pages daemon turned away. Here a prober on the target connects
to every loopback listener, again and again, from the freeze to the end of the move: the
move must succeed with the container whole, the prober must receive no byte, and the
console must say it turned connections away.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from lab.layout import HOSTS_FILE
from lab.shell import in_ns
from tests.lab.conftest import FERRYMAN, WORKLOAD, counters_continue, heartbeats, running

PROBER = str(Path(__file__).with_name("loopback_prober.py"))


def test_a_local_prober_on_the_target_gets_nothing_and_the_move_succeeds(
    lab_hosts, workload_on_host1
):
    h1, h2 = lab_hosts
    since = heartbeats(h1, WORKLOAD)[-1][0]
    mig = subprocess.Popen(
        [*FERRYMAN, "--hosts", str(HOSTS_FILE), "migrate", WORKLOAD, "--to", h2.name, "--strategy", "post-copy",
         "--accept-risk", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    prober = None
    lines: list[str] = []
    assert mig.stdout is not None
    for line in mig.stdout:
        lines.append(line)
        if prober is None and '"phase_started"' in line and '"prepare"' in line:
            # From before the link listens until after the move.
            prober = subprocess.Popen(in_ns(h2.netns, ["python3", PROBER, "25"]),
                                      stdout=subprocess.PIPE, text=True)
    mig.wait(timeout=300)
    assert prober is not None, "the move never reached prepare:\n" + "".join(lines[-20:])
    out, _ = prober.communicate(timeout=60)
    reached = {int(p): int(n) for p, n in (ln.split() for ln in out.splitlines())}
    events = [json.loads(ln) for ln in lines if ln.startswith("{")]
    done = [e for e in events if e.get("kind") == "succeeded"]
    assert mig.returncode == 0 and done, "".join(lines[-20:])
    assert running(h2, WORKLOAD) and not running(h1, WORKLOAD)
    assert counters_continue(h2, since), "the twin's counter did not continue the source's"
    # Not vacuous: the prober did reach a listener of the move (the page link).
    assert reached, "the prober found no loopback listener during the move"
    assert sum(reached.values()) == 0, f"bytes handed to the prober: {reached}"
    warned = [e for e in events if e.get("kind") == "warning" and "turned away" in e.get("text", "")]
    assert warned, "the console did not say it turned connections away"
