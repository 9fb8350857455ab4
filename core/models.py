"""Plain records shared by the inventory, preflight, engine and both faces."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class HostState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    AUTH_FAILED = "auth failed"
    HOST_KEY_MISMATCH = "host key mismatch"
    HOST_KEY_UNKNOWN = "host key unknown"
    UNREACHABLE = "unreachable"
    ENGINE_DOWN = "engine down"


@dataclass(frozen=True)
class HostFacts:
    """What preflight learned about a host; empty strings when unknown."""

    engine_version: str = ""
    api_version: str = ""
    containerd_version: str = ""
    experimental: bool = False
    runc_version: str = ""
    criu_version: str = ""
    kernel: str = ""
    cgroup_version: str = ""
    dirty_tracking: bool | None = None  # soft-dirty: pre-copy possible
    lazy_pages: bool | None = None  # userfaultfd: post-copy possible
    restore_route: str = ""  # how a twin is restored here (core/engine/restore_runtime.py)
    restore_refusal: str = ""  # why a move onto this host is refused ("" when it is not)
    restore_fix: str = ""


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    state: HostState
    reason: str = ""  # why the host is not up, in words, with the fix
    facts: HostFacts = field(default_factory=HostFacts)


@dataclass(frozen=True)
class ContainerInfo:
    host: str
    id: str
    name: str
    image: str
    state: str  # running, exited, paused, ...
    started_at: float | None = None  # epoch seconds
    memory_bytes: int | None = None
    migratable: bool = True
    why_not: str = ""  # the reason it cannot move, when migratable is False
    project: str = ""  # its Docker Compose project (label com.docker.compose.project)

    @property
    def short_id(self) -> str:
        return self.id[:12]


class CheckStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    host: str  # a host name, or "host1→host2" for a pair check
    name: str  # e.g. "criu", "soft-dirty"
    status: CheckStatus
    reason: str
    fix: str = ""


@dataclass(frozen=True)
class MigrationRequest:
    container: str
    source: str
    target: str
    strategy: str = "auto"  # auto | stop-and-copy | pre-copy | post-copy | hybrid
    downtime_budget_s: float = 0.3
    keep_images: bool = False
    direct: bool = False  # host-to-host stream instead of the relay through the console
    max_rounds: int = 8
    max_precopy_s: float = 120.0
    converge_policy: str = "throttle"  # throttle | switch | postcopy
    criu_options: tuple[str, ...] = ()  # e.g. ("--tcp-established",): core/engine/criu_options.py
    accept_risk: bool = False  # auto may pick post-copy (its risk accepted)
    watch: str = ""  # a client container, NAME[@HOST]: what it saw (core/client_view.py)
