"""Machine-wide settings the lab needs, put back by `lab down`.

CRIU's lazy page server grows a pipe past `fs.pipe-max-size`; that needs CAP_SYS_RESOURCE,
which root lacks on some machines (this kind of VM among them). With the limit raised to
4 MiB, post-copy works between namespace hosts. The value the machine had is kept in the
lab's state folder and put back when the lab goes down.
"""

from __future__ import annotations

from pathlib import Path

from lab.layout import STATE_DIR

PIPE_MAX = Path("/proc/sys/fs/pipe-max-size")
WANT = 4 * 2**20
SAVED = STATE_DIR / "pipe-max-size.orig"


def raise_pipe_max() -> None:
    now = int(PIPE_MAX.read_text())
    if now >= WANT:
        return
    if not SAVED.exists():
        SAVED.parent.mkdir(parents=True, exist_ok=True)
        SAVED.write_text(str(now))
    PIPE_MAX.write_text(str(WANT))


def restore_pipe_max() -> None:
    if SAVED.exists():
        PIPE_MAX.write_text(SAVED.read_text().strip())
        SAVED.unlink()
