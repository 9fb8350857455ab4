"""The hosts of an inventory, each with its one SSH connection and its engine."""

from __future__ import annotations

import asyncio

from core.config import HostSpec, Inventory
from core.dockerapi import Engine
from core.models import HostState
from core.ssh import HostConnection


class Host:
    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.ssh = HostConnection(spec)
        self.engine = Engine(self.ssh)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> HostState:
        return self.ssh.state

    async def close(self) -> None:
        await self.engine.close()
        await self.ssh.close()


class Fleet:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.hosts = {s.name: Host(s) for s in inventory.hosts}

    def __getitem__(self, name: str) -> Host:
        if name not in self.hosts:
            self.inventory.get(name)  # raises the error that lists the known hosts
        return self.hosts[name]

    async def close(self) -> None:
        await asyncio.gather(*(h.close() for h in self.hosts.values()), return_exceptions=True)
