"""The twin: a container created on the target with the source's full configuration."""

from __future__ import annotations

import copy
from typing import Any

# HostConfig fields that name things of the source host and must not be carried blindly.
_HOST_ONLY = ("ContainerIDFile", "LogConfig")


def create_body(inspect: dict[str, Any]) -> dict[str, Any]:
    """The POST /containers/create body that recreates this container elsewhere.

    Keeps cmd, entrypoint, env, labels, working dir, user, hostname, exposed ports,
    health check, stop signal, and the whole HostConfig (mounts, port bindings, restart
    policy, resource limits, capabilities, security options); network attachments are
    recreated by name.
    """
    cfg = copy.deepcopy(inspect["Config"])
    hc = copy.deepcopy(inspect["HostConfig"])
    for k in _HOST_ONLY:
        hc.pop(k, None)
    body: dict[str, Any] = dict(cfg)
    body["Image"] = inspect["Config"]["Image"]
    body["HostConfig"] = hc
    anon = anonymous_volumes(inspect)
    if anon:
        # An anonymous volume would be made anew (empty, another name): the twin mounts the
        # one made on the target under the source's volume's name, which gets its data.
        hc["Binds"] = [*(hc.get("Binds") or []), *(f"{m['Name']}:{m['Destination']}" for m in anon)]
    nets = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    endpoints = {}
    for name, ep in nets.items():
        if name in ("bridge", "host", "none"):
            continue
        endpoints[name] = {"Aliases": ep.get("Aliases"), "IPAMConfig": ep.get("IPAMConfig")}
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return body


def named_volumes(inspect: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in inspect.get("Mounts", []) if m.get("Type") == "volume" and m.get("Name")]


def anonymous_volumes(inspect: dict[str, Any]) -> list[dict[str, Any]]:
    """Volume mounts that no `-v name:dest` or `--mount` names (from `-v /dest` or the
    image's VOLUME): Docker would give a new container a fresh, empty one."""
    hc = inspect.get("HostConfig") or {}
    named = {b.split(":")[1] for b in hc.get("Binds") or [] if b.count(":") >= 1}
    named |= {m.get("Target") for m in hc.get("Mounts") or []}
    return [
        m for m in named_volumes(inspect) if m.get("Destination") and m["Destination"] not in named
    ]


def restore_conf_lines(inspect: dict[str, Any]) -> tuple[str, ...]:
    """CRIU options a restore of this container needs. `--init` bind-mounts a single file
    (docker-init) into the container; CRIU's default mount engine (v2) fails on it
    (`mnt-v2: Can't remount ... with MS_PRIVATE: No such file or directory`), its older
    one restores it."""
    if (inspect.get("HostConfig") or {}).get("Init"):
        return ("mntns-compat-mode",)
    return ()


def container_name(inspect: dict[str, Any]) -> str:
    return str(inspect["Name"]).lstrip("/")
