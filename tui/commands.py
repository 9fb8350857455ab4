"""The command palette as a command line over containers, hosts and actions:
"migrate web-1 → host2", "check host1", "doctor of the last failure", "history"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from core.models import HostState


class PaletteApp(Protocol):
    """What the palette needs of the app (tui/app.py's FerrymanApp has it)."""

    def hosts_screen(self) -> Screen | None: ...
    def migrate_to(self, host: str, container_id: str, target: str) -> None: ...
    def check_host(self, host: str) -> None: ...
    def action_history(self) -> None: ...
    def action_show_hosts(self) -> None: ...
    def action_last_doctor(self) -> None: ...


@dataclass(frozen=True)
class Command:
    text: str
    help: str
    run: Callable[[], object]


def commands(app: PaletteApp) -> list[Command]:
    """What the palette offers now, from what the hosts screen last listed."""
    from tui.screens.migrate_dialog import why_not_target

    out: list[Command] = []
    hosts_screen = app.hosts_screen()
    hosts = dict(getattr(hosts_screen, "hosts", {}) or {})
    containers = getattr(hosts_screen, "containers", {}) or {}
    for host, cs in containers.items():
        for c in cs:
            if not c.migratable or hosts.get(host) is None or hosts[host].state != HostState.UP:
                continue
            if hosts_screen is not None and hosts_screen.busy(c):  # type: ignore[attr-defined]
                continue  # locked, or in migration: not offered
            for h in hosts.values():
                if why_not_target(c, h):
                    continue
                out.append(
                    Command(
                        f"migrate {c.name} → {h.name}",
                        f"{c.name} from {host} to {h.name}: the migrate dialog, its preflight, "
                        "then a confirmation",
                        partial(app.migrate_to, host, c.id, h.name),
                    )
                )
    for h in hosts.values():
        out.append(
            Command(
                f"check {h.name}",
                f"preflight checks of {h.name} ({h.address}): engine, CRIU, soft-dirty, "
                "userfaultfd, space",
                partial(app.check_host, h.name),
            )
        )
    out.append(
        Command(
            "doctor of the last failure",
            "the doctor of the newest migration that did not succeed",
            app.action_last_doctor,
        )
    )
    out.append(Command("history", "past migrations", app.action_history))
    out.append(Command("hosts", "hosts and containers", app.action_show_hosts))
    return out


class FerrymanCommands(Provider):
    async def discover(self) -> Hits:
        for cmd in commands(cast("PaletteApp", self.app)):
            yield DiscoveryHit(cmd.text, cmd.run, help=cmd.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for cmd in commands(cast("PaletteApp", self.app)):
            score = matcher.match(cmd.text)
            if score > 0:
                yield Hit(score, matcher.highlight(cmd.text), cmd.run, text=cmd.text, help=cmd.help)
