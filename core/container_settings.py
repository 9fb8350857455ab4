"""What a move does with the settings a container carries, said before it starts: its
restart policy, health check, volumes, Compose labels. One line each, for `ferryman
check --container` and the migration's preflight log; the refusals are in
core/inventory.py (why_not_migratable) and core/preflight.py (container_checks)."""

from __future__ import annotations

from typing import Any

from core.engine import twin
from core.models import CheckResult, CheckStatus

COMPOSE_PROJECT = "com.docker.compose.project"
NS = 1e-9


def health_wait_s(inspect: dict[str, Any]) -> float:
    """How long verify waits for a health check's first verdict: its start period plus
    (interval + timeout) × retries (Docker's defaults: 0 s, 30 s, 30 s, 3), and a margin;
    30 s without one."""
    hc = (inspect.get("Config") or {}).get("Healthcheck") or {}
    if not hc or hc.get("Test") in (None, [], ["NONE"]):
        return 30.0
    start = (hc.get("StartPeriod") or 0) * NS
    interval = (hc.get("Interval") or 30 * 10**9) * NS
    retries = hc.get("Retries") or 3
    timeout = (hc.get("Timeout") or 30 * 10**9) * NS
    return start + (interval + timeout) * retries + 10.0


def settings_lines(inspect: dict[str, Any], source: str, target: str) -> list[CheckResult]:
    """What happens to each setting this container carries (passes: nothing is refused
    here)."""
    name = str(inspect.get("Name") or "").lstrip("/")
    hc = inspect.get("HostConfig") or {}
    cfg = inspect.get("Config") or {}
    out: list[CheckResult] = []

    def line(check: str, text: str) -> None:
        out.append(CheckResult(source, check, CheckStatus.PASS, f"{name}: {text}"))

    policy = hc.get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        retries = policy.get("MaximumRetryCount") or 0
        shown = policy["Name"] + (f":{retries}" if retries else "")
        line(
            "restart",
            f"restart policy {shown}: suspended on {source} for the move (dockerd would "
            f"start the dumped copy again), given to the twin on {target} at the commit, "
            "put back on a rollback",
        )
    health = cfg.get("Healthcheck") or {}
    if health and health.get("Test") not in (None, [], ["NONE"]):
        line(
            "health",
            f"health check: verify waits up to {health_wait_s(inspect):.0f} s for the twin's "
            "first verdict (start period + (interval + timeout) × retries); unhealthy rolls "
            "the move back",
        )
    anon = [str(m["Name"]) for m in twin.anonymous_volumes(inspect)]
    named = [str(m["Name"]) for m in twin.named_volumes(inspect) if m["Name"] not in anon]
    if named:
        line(
            "volumes",
            f"volume {', '.join(named)}: created on {target} with its options and labels, "
            f"filled from {source} during the freeze, removed from {source} at the commit",
        )
    if anon:
        line(
            "volumes",
            f"anonymous volume {', '.join(anon)}: the twin mounts a volume of the same name "
            f"on {target}, which gets the data",
        )
    project = (cfg.get("Labels") or {}).get(COMPOSE_PROJECT)
    if project:
        line(
            "compose",
            f"Compose project {project}: its labels are kept, so `docker compose` on "
            f"{target} sees it as that project's (the project's other containers stay "
            "where they are)",
        )
    return out
