"""The lab's image, made from a folder (no registry is reachable): busybox + the workload."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from lab.engine import docker
from lab.layout import IMAGE, STATE_DIR, LabHost
from lab.shell import LabError, run

BUSYBOX = Path("/bin/busybox")
APPLETS = [
    "sh",
    "ls",
    "cat",
    "sleep",
    "echo",
    "ps",
    "touch",
    "mkdir",
    "rm",
    "date",
    "true",
    "wc",
    "head",
    "tail",
    "grep",
    "kill",
    "env",
    "id",
]


def workload_binary(state_dir: Path = STATE_DIR) -> Path:
    """Build the static workload once (cached next to the lab's state)."""
    out = state_dir / "workload"
    src = Path(__file__).parent / "workload" / "workload.c"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    state_dir.mkdir(parents=True, exist_ok=True)
    run(["gcc", "-O2", "-static", "-o", str(out), str(src)])
    return out


def rootfs_tar(state_dir: Path = STATE_DIR) -> bytes:
    """The image's root file system as a tar: busybox, a few applets, the workload."""
    if not BUSYBOX.exists():
        raise LabError("busybox-static is missing: run lab/setup/install-deps.sh")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "bin").mkdir()
        (root / "tmp").mkdir(mode=0o1777)
        (root / "data").mkdir()
        shutil.copy(BUSYBOX, root / "bin" / "busybox")
        for a in APPLETS:
            (root / "bin" / a).symlink_to("busybox")
        shutil.copy(workload_binary(state_dir), root / "workload")
        return subprocess.run(
            ["tar", "-C", str(root), "-c", "."], capture_output=True, check=True
        ).stdout


IMPORT_ARGS = ["import", "--change", 'CMD ["/workload"]', "-"]


def has_image(h: LabHost, image: str = IMAGE) -> bool:
    return run(docker(h, "image", "inspect", image), check=False).returncode == 0


def import_image(h: LabHost, image: str = IMAGE) -> None:
    if has_image(h, image):
        return
    run(docker(h, *IMPORT_ARGS, image), input=rootfs_tar())
