"""The Backend that talks to real hosts: SSH, Docker, CRIU."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core import journal
from core.config import Inventory
from core.engine import direct_path, recovery
from core.engine.machine import Migration
from core.engine.strategy import Strategy
from core.fleet import Fleet
from core.inventory import containers, host_status
from core.journal import JournalEntry
from core.k8s.pod_run import PodRun, is_pod_request, move_targets
from core.models import CheckResult, ContainerInfo, HostState, HostStatus, MigrationRequest
from core.preflight import container_checks, host_report, pair_checks


class LiveBackend:
    def __init__(self, inventory: Inventory) -> None:
        self.fleet = Fleet(inventory)
        self.inventory = inventory

    async def hosts(self) -> list[HostStatus]:
        async def one(name: str) -> HostStatus:
            h = self.fleet[name]
            st = await host_status(h)
            if st.state != HostState.UP:
                return st
            rep = await host_report(h)
            return HostStatus(st.name, st.address, st.state, st.reason, rep.facts)

        return list(await asyncio.gather(*(one(n) for n in self.fleet.hosts)))

    async def containers(self, host: str) -> list[ContainerInfo]:
        return await containers(self.fleet[host])

    async def pods(self) -> list[ContainerInfo]:
        """The pods of the clusters the hosts file names, as rows beside the containers."""
        from core.k8s import podmigration as pm

        if not self.inventory.clusters:
            return []
        return [pm.pod_info(self.inventory, r) for r in await pm.list_pods(self.inventory)]

    async def preflight(self, request: MigrationRequest) -> list[CheckResult]:
        # Lazy pages are tried, not trusted (`criu check` says yes where they fail).
        trial = Strategy.tries_lazy_pages(request.strategy, request.accept_risk)
        src, dst = await asyncio.gather(
            host_report(self.fleet[request.source], lazy_trial_run=trial),
            host_report(self.fleet[request.target], lazy_trial_run=trial),
        )
        out = src.checks + dst.checks + pair_checks(src, dst)
        if src.reachable and dst.reachable:
            out += await container_checks(
                self.fleet, request.container, request.source, request.target
            )
            if request.direct:
                fleet = self.fleet
                out.append(await direct_path.check(fleet[request.source], fleet[request.target]))
        return out

    def migrate(self, request: MigrationRequest) -> Migration | PodRun:
        """A Docker move, or a pod move (a pod row's id: core/k8s/pod_run.py)."""
        if is_pod_request(request):
            return PodRun(self.inventory, request)
        return Migration(self.fleet, request)

    def pod_targets(self, pod: ContainerInfo) -> list[str]:
        """The hosts of the other nodes of a pod's cluster: where the console may move it."""
        return move_targets(self.inventory, pod.id, pod.host)

    def history(self) -> list[JournalEntry]:
        return journal.load_all()

    async def pending_recoveries(self) -> list[recovery.Pending]:
        if not journal.unfinished():
            return []
        return await recovery.pending(self.fleet)

    async def recover(self, item: recovery.Pending, log: Callable[[str], None]) -> str:
        return await recovery.apply(self.fleet, item.entry, item.plan, log)

    async def close(self) -> None:
        await self.fleet.close()
