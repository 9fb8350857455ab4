"""Every test run keeps its migration journal to itself (not the user's ~/.local/state)."""

from __future__ import annotations

import os
import sys
import tempfile

# Set at import, before any test or the processes it starts read it.
os.environ["FERRYMAN_STATE_DIR"] = tempfile.mkdtemp(prefix="ferryman-test-state-")


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault matrix's table: each fault tried, the outcome, whether the invariant held."""
    matrix = sys.modules.get("tests.lab.test_fault_matrix")
    ROWS = getattr(matrix, "ROWS", [])
    if not ROWS:
        return
    cols = ["fault", "phase", "outcome", "runs on", "held", "cause"]
    width = {c: max(len(c), *(len(str(r[c])) for r in ROWS)) for c in cols}
    tr = terminalreporter
    tr.section("fault matrix: exactly one copy running, state intact, nothing left")
    tr.write_line("  ".join(c.ljust(width[c]) for c in cols))
    for r in ROWS:
        tr.write_line("  ".join(str(r[c] if c != "held" else ("yes" if r[c] else "NO")).ljust(width[c]) for c in cols))
    held = sum(r["held"] for r in ROWS)
    tr.write_line(f"{held} of {len(ROWS)} rows held the invariant")
