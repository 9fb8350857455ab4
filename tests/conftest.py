"""Every test run keeps its migration journal to itself (not the user's ~/.local/state)."""

from __future__ import annotations

import os
import tempfile

# Set at import, before any test or the processes it starts read it.
os.environ["FERRYMAN_STATE_DIR"] = tempfile.mkdtemp(prefix="ferryman-test-state-")
