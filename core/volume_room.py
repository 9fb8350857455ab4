"""Preflight: is there room on the target for the container's named volumes?

The volumes are copied into the target's Docker data root before the freeze (and again,
the last changes, inside it). A copy that runs out of space there fails half-way through
the move; the check refuses it before anything changes, in numbers.
"""

from __future__ import annotations

from typing import Any

from core import remote
from core.dockerapi import EngineError
from core.engine import twin
from core.fleet import Host
from core.models import CheckResult, CheckStatus
from core.ssh import CommandError, HostError

# Kept free beyond the volumes' own bytes: file-system overhead of the copy (directories,
# small files rounded up to blocks) and room for the engine to go on working.
SLACK_FRACTION = 0.05
SLACK_BYTES = 64 << 20


def needed(used: int) -> int:
    return int(used * (1 + SLACK_FRACTION)) + SLACK_BYTES


def verdict(
    used: int | None, free: int | None, names: list[str], target: str, where: str
) -> CheckResult:
    """The check's line from the measured bytes (None: could not be measured)."""
    listed = ", ".join(names)
    if used is None or free is None:
        return CheckResult(
            target,
            "volume-space",
            CheckStatus.WARN,
            f"could not measure the room for volume(s) {listed} in {where} on {target}",
            f"check `df -h {where}` on {target}: the volumes are copied there",
        )
    mib = lambda n: f"{n / 2**20:.0f} MiB"  # noqa: E731
    if needed(used) > free:
        return CheckResult(
            target,
            "volume-space",
            CheckStatus.FAIL,
            f"volume(s) {listed} hold {mib(used)}; {where} on {target} has {mib(free)} free "
            f"(the copy needs {mib(needed(used))})",
            f"free space in {where} on {target}, or move the container elsewhere",
        )
    return CheckResult(
        target,
        "volume-space",
        CheckStatus.PASS,
        f"room for volume(s) {listed} ({mib(used)}) on {target}: {mib(free)} free in {where}",
    )


async def _number(host: Host, argv: list[str]) -> int | None:
    try:
        r = await host.ssh.run(remote.quote(argv), check=False, timeout=60)
    except HostError:
        return None
    text = r.stdout.strip()
    return int(text) if r.ok and text.isdigit() else None


async def check(src: Host, dst: Host, ins: dict[str, Any]) -> list[CheckResult]:
    """One line when the container has named volumes; none otherwise."""
    vols = twin.named_volumes(ins)
    if not vols:
        return []
    try:
        root = (await dst.engine.info()).get("DockerRootDir") or "/var/lib/docker"
    except (EngineError, CommandError, HostError, OSError):
        root = "/var/lib/docker"
    where = f"{root}/volumes"
    used = await _number(src, remote.bytes_used([v["Source"] for v in vols]))
    free = await _number(dst, remote.bytes_free(where))
    return [verdict(used, free, [v["Name"] for v in vols], dst.name, where)]
