"""Containers across hosts: listing through the Docker SDK, and whether each can move."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

import docker.errors

from core import remote, versions
from core.container_settings import COMPOSE_PROJECT
from core.dockerapi import EngineError
from core.fleet import Fleet, Host
from core.models import ContainerInfo, HostFacts, HostState, HostStatus
from core.remote import parse_facts
from core.ssh import HostError


def why_not_migratable(inspect: dict[str, Any]) -> str:
    """The reason a container cannot be moved live, or "" when it can."""
    state = inspect.get("State", {})
    cfg = inspect.get("Config", {})
    hc = inspect.get("HostConfig", {})
    if not state.get("Running"):
        return f"not running ({state.get('Status', 'unknown')}): nothing to move live"
    if state.get("Paused"):
        return "paused: unpause it first"
    if cfg.get("Tty"):
        return "has a terminal (docker run -t): CRIU cannot take its TTY along through Docker"
    if hc.get("AutoRemove"):
        return (
            "started with --rm: dockerd deletes it the moment the checkpoint stops it, so a "
            "failed move could not bring it back; run it again without --rm to move it"
        )
    for m in inspect.get("Mounts") or []:
        if m.get("Type") == "volume" and (m.get("Driver") or "local") != "local":
            return (
                f"volume {m.get('Name')} uses the {m['Driver']} driver: ferryman copies only "
                "local volumes; move its data with that driver's own tools"
            )
    net = hc.get("NetworkMode", "")
    if net == "host":
        return "uses the host's network (--network host): its sockets belong to the host"
    if net.startswith("container:"):
        return f"shares another container's network ({net}): move them together by hand"
    if hc.get("PidMode") == "host":
        return "uses the host's PID namespace (--pid host)"
    if hc.get("IpcMode") == "host":
        return "uses the host's IPC namespace (--ipc host)"
    if hc.get("Devices"):
        devs = ", ".join(d.get("PathOnHost", "?") for d in hc["Devices"])
        return f"has host devices ({devs}): they do not exist on another host"
    return ""


def _epoch(ts: str | None) -> float | None:
    if not ts or ts.startswith("0001-"):
        return None
    ts = ts.rstrip("Z")
    head, _, frac = ts.partition(".")
    try:
        return datetime.fromisoformat(head + "+00:00").timestamp() + (
            float("0." + frac[:6]) if frac else 0
        )
    except ValueError:
        return None


def _list(client: docker.DockerClient, host: str) -> list[tuple[ContainerInfo, int]]:
    """Containers with their main process's PID (0 when not running)."""
    out = []
    for summary in client.api.containers(all=True):
        try:
            ins = client.api.inspect_container(summary["Id"])
        except docker.errors.NotFound:
            continue  # removed while we listed
        running = ins["State"].get("Running", False)
        why = why_not_migratable(ins)
        out.append(
            (
                ContainerInfo(
                    host=host,
                    id=ins["Id"],
                    name=ins["Name"].lstrip("/"),
                    image=ins["Config"].get("Image", ""),
                    state=ins["State"].get("Status", "unknown"),
                    started_at=_epoch(ins["State"].get("StartedAt")) if running else None,
                    migratable=not why,
                    why_not=why,
                    project=(ins["Config"].get("Labels") or {}).get(COMPOSE_PROJECT, ""),
                ),
                int(ins["State"].get("Pid") or 0),
            )
        )
    # a Compose project's containers together, after the containers of none
    out.sort(key=lambda c: (c[0].project, c[0].name))
    return out


async def containers(host: Host) -> list[ContainerInfo]:
    found = await host.engine.call(lambda c: _list(c, host.name))
    pids = [pid for _, pid in found if pid]
    usage: dict[int, int] = {}
    if pids:
        res = await host.ssh.run(remote.quote(remote.memory_usage(pids)), check=False, timeout=10)
        for line in res.stdout.splitlines():
            p, _, b = line.partition(" ")
            if p.isdigit() and b.strip().isdigit():
                usage[int(p)] = int(b)
    return [replace(c, memory_bytes=usage.get(pid)) if pid else c for c, pid in found]


async def host_status(host: Host) -> HostStatus:
    try:
        await host.ssh.connect()
        await host.engine.client()
    except HostError as e:
        return HostStatus(host.name, host.spec.address, e.state, str(e))
    except EngineError as e:
        return HostStatus(host.name, host.spec.address, HostState.ENGINE_DOWN, str(e))
    return HostStatus(host.name, host.spec.address, HostState.UP, facts=await engine_facts(host))


async def engine_facts(host: Host) -> HostFacts:
    """The engine's, containerd's and runc's versions (empty where they cannot be had)."""
    try:
        info = await host.engine.info()
        version = await host.engine.version()
    except (EngineError, HostError, OSError, docker.errors.DockerException):
        return HostFacts()
    lines: dict[str, str] = {}
    ids = [str((info.get(k) or {}).get("ID") or "") for k in ("ContainerdCommit", "RuncCommit")]
    if not all(versions.version_word(i) for i in ids):
        try:
            r = await host.ssh.run(remote.quote(remote.tool_versions()), check=False, timeout=15)
            lines = parse_facts(r.stdout)
        except HostError:
            pass
    v = versions.from_engine(
        info,
        version,
        containerd_line=lines.get("containerd", ""),
        runc_line=lines.get("runc", ""),
    )
    return HostFacts(
        engine_version=v.engine,
        api_version=v.api,
        containerd_version=v.containerd,
        runc_version=v.runc,
        experimental=bool(info.get("ExperimentalBuild")),
    )


async def listing(fleet: Fleet) -> list[tuple[HostStatus, list[ContainerInfo]]]:
    """Every host with its containers, in parallel; a failing host keeps its error."""

    async def one(h: Host) -> tuple[HostStatus, list[ContainerInfo]]:
        st = await host_status(h)
        if st.state != HostState.UP:
            return st, []
        try:
            return st, await containers(h)
        except (HostError, EngineError, docker.errors.DockerException, OSError) as e:
            return HostStatus(h.name, h.spec.address, HostState.ENGINE_DOWN, f"{h.name}: {e}"), []

    return list(await asyncio.gather(*(one(h) for h in fleet.hosts.values())))
