"""Running local commands for the lab (it runs as root on this machine)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class LabError(RuntimeError):
    pass


def run(
    argv: Sequence[str], *, check: bool = True, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    p = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        err = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
        raise LabError(f"{' '.join(argv)} failed: {err[-1] if err else 'exit %d' % p.returncode}")
    return p


def ok(argv: Sequence[str]) -> bool:
    return run(argv, check=False).returncode == 0


def out(argv: Sequence[str]) -> str:
    return run(argv).stdout.decode().strip()


def in_ns(netns: str, argv: Sequence[str]) -> list[str]:
    """A command run in a lab host's network namespace (and only that: see lab facts,
    `ip netns exec` would remount /sys and hide the cgroup mounts dockerd needs)."""
    return ["nsenter", f"--net=/var/run/netns/{netns}", *argv]
