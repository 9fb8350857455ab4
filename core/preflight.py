"""Preflight: per host and per source/target pair, pass / warn / fail with the reason and the fix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from core import remote
from core.dockerapi import EngineError
from core.fleet import Fleet, Host
from core.models import CheckResult, CheckStatus, HostFacts
from core.ssh import CommandError, HostError

PASS, WARN, FAIL = CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL
MIN_CRIU = (4, 2)
MIN_FREE_BYTES = 512 * 1024 * 1024


@dataclass
class HostReport:
    host: str
    facts: HostFacts = field(default_factory=HostFacts)
    checks: list[CheckResult] = field(default_factory=list)
    cpu_flags: frozenset[str] = frozenset()
    space_avail: int | None = None

    @property
    def reachable(self) -> bool:
        return not any(c.name in ("ssh", "engine") and c.status == FAIL for c in self.checks)


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("+")[0].split("-")[0].split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def parse_facts(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


async def host_report(host: Host) -> HostReport:
    name = host.name
    rep = HostReport(name)
    add = rep.checks.append
    try:
        await host.ssh.connect()
    except HostError as e:
        add(CheckResult(name, "ssh", FAIL, str(e).split(": ", 1)[1]))
        return rep
    add(CheckResult(name, "ssh", PASS, f"connected to {host.spec.address}"))
    info: dict[str, Any] = {}
    try:
        info = await host.engine.info()
    except (EngineError, HostError, OSError) as e:
        add(CheckResult(name, "engine", FAIL, str(e), "start dockerd, or fix `docker_socket:`"))
    try:
        raw = (
            await host.ssh.run(remote.quote(remote.host_facts(host.spec.images_dir)), timeout=60)
        ).stdout
    except (CommandError, HostError) as e:
        add(CheckResult(name, "facts", FAIL, str(e)))
        return rep
    f = parse_facts(raw)
    experimental = bool(info.get("ExperimentalBuild"))
    if info:
        add(
            CheckResult(
                name,
                "engine",
                PASS if experimental else FAIL,
                f"Docker {info.get('ServerVersion', '?')}, experimental {'on' if experimental else 'OFF'}",
                ""
                if experimental
                else "start dockerd with --experimental (checkpoint/restore needs it)",
            )
        )
    cv = f.get("criu_version", "")
    if not cv:
        add(
            CheckResult(
                name,
                "criu",
                FAIL,
                "CRIU is not installed (no `criu` on PATH)",
                "install CRIU ≥ 4.2 (lab/setup/install-deps.sh shows one way)",
            )
        )
    elif _version_tuple(cv) < MIN_CRIU:
        add(
            CheckResult(
                name,
                "criu",
                FAIL,
                f"CRIU {cv} is too old: restoring through Docker without copying the memory needs ≥ 4.2",
                "install CRIU ≥ 4.2",
            )
        )
    elif f.get("criu_check_rc") != "0":
        add(
            CheckResult(
                name,
                "criu",
                FAIL,
                f"CRIU {cv}: `criu check` fails: {f.get('criu_check', '')[:160]}",
                "run `criu check -v4` on the host; see `ferryman doctor` for the log",
            )
        )
    else:
        add(
            CheckResult(
                name, "criu", PASS, f"CRIU {cv} at {f.get('criu_path')}, `criu check` passes"
            )
        )
    rv = f.get("runc_version", "")
    add(
        CheckResult(
            name,
            "runc",
            PASS if rv else FAIL,
            f"runc {rv}" if rv else "runc not found on PATH",
            "" if rv else "install runc",
        )
    )
    dirty = f.get("mem_dirty_track") == "0"
    add(
        CheckResult(
            name,
            "soft-dirty",
            PASS if dirty else WARN,
            "memory dirty tracking (soft-dirty) works: pre-copy and hybrid possible"
            if dirty
            else "no memory dirty tracking (soft-dirty) on kernel "
            + f.get("kernel", "?")
            + ": pre-copy and hybrid are ruled out; stop-and-copy (and post-copy) remain",
            "" if dirty else "boot a kernel with CONFIG_MEM_SOFT_DIRTY=y for pre-copy",
        )
    )
    uffd = f.get("uffd_noncoop") == "0"
    add(
        CheckResult(
            name,
            "userfaultfd",
            PASS if uffd else WARN,
            "userfaultfd (non-cooperative) present: post-copy possible"
            if uffd
            else "no non-cooperative userfaultfd: post-copy and hybrid are ruled out",
            "" if uffd else "a kernel with CONFIG_USERFAULTFD is needed for post-copy",
        )
    )
    cg = {"cgroup2fs": "2", "tmpfs": "1"}.get(f.get("cgroup_fs", ""), "?")
    add(CheckResult(name, "cgroups", PASS, f"cgroup v{cg}"))
    try:
        avail = int(f.get("space_avail", ""))
    except ValueError:
        avail = None
    if avail is not None:
        rep.space_avail = avail
        ok = avail >= MIN_FREE_BYTES
        add(
            CheckResult(
                name,
                "space",
                PASS if ok else WARN,
                f"{avail / 2**30:.1f} GiB free in {f.get('space_dir')} (images go to {host.spec.images_dir})",
                "" if ok else "free space there or set `images_dir:` to a bigger file system",
            )
        )
    rep.cpu_flags = frozenset(f.get("cpu_flags", "").split())
    rep.facts = HostFacts(
        engine_version=str(info.get("ServerVersion", "")),
        experimental=experimental,
        runc_version=rv,
        criu_version=cv,
        kernel=f.get("kernel", ""),
        cgroup_version=cg,
        dirty_tracking=dirty,
        lazy_pages=uffd,
    )
    return rep


def pair_checks(src: HostReport, dst: HostReport) -> list[CheckResult]:
    pair = f"{src.host}→{dst.host}"
    out = []
    sv, dv = _version_tuple(src.facts.criu_version), _version_tuple(dst.facts.criu_version)
    if sv and dv:
        ok = dv >= sv
        out.append(
            CheckResult(
                pair,
                "criu-versions",
                PASS if ok else FAIL,
                f"CRIU {src.facts.criu_version} → {dst.facts.criu_version}",
                "" if ok else f"upgrade CRIU on {dst.host} to at least {src.facts.criu_version}",
            )
        )
    if src.cpu_flags and dst.cpu_flags:
        missing = sorted(src.cpu_flags - dst.cpu_flags)
        out.append(
            CheckResult(
                pair,
                "cpu",
                PASS if not missing else WARN,
                "the target CPU has every feature of the source's"
                if not missing
                else f"the target CPU lacks {', '.join(missing[:8])}: a process using them would crash there",
                "" if not missing else "move to a host with the same or a newer CPU",
            )
        )
    return out


async def container_checks(
    fleet: Fleet, container: str, source: str, target: str
) -> list[CheckResult]:
    """What this container needs from the target: its image, bind mounts, networks, its name."""
    src, dst = fleet[source], fleet[target]
    out: list[CheckResult] = []
    ins = await src.engine.inspect(container)
    if ins is None:
        return [
            CheckResult(
                source,
                "container",
                FAIL,
                f"no container {container!r} on {source}",
                f"`ferryman ps` lists what runs on {source}",
            )
        ]
    from core.inventory import why_not_migratable

    why = why_not_migratable(ins)
    out.append(
        CheckResult(
            source,
            "container",
            FAIL if why else PASS,
            f"{container}: {why}" if why else f"{container} is running and can be checkpointed",
        )
    )
    image = ins["Config"]["Image"]
    has = await dst.engine.has_image(ins["Image"]) or await dst.engine.has_image(image)
    out.append(
        CheckResult(
            target,
            "image",
            PASS if has else WARN,
            f"image {image} is on {target}"
            if has
            else f"image {image} is not on {target}: it will be streamed (docker save | docker load) before the freeze",
        )
    )
    if await dst.engine.inspect(ins["Name"].lstrip("/")) is not None:
        out.append(
            CheckResult(
                target,
                "name",
                FAIL,
                f"a container named {ins['Name'].lstrip('/')} already exists on {target}",
                f"remove or rename it on {target} first",
            )
        )
    binds = [m["Source"] for m in ins.get("Mounts", []) if m.get("Type") == "bind"]
    if binds:
        missing = (await dst.ssh.run(remote.quote(remote.paths_exist(binds)))).stdout.split("\n")
        missing = [m for m in missing if m]
        out.append(
            CheckResult(
                target,
                "bind-mounts",
                FAIL if missing else PASS,
                f"bind mount sources missing on {target}: {', '.join(missing)}"
                if missing
                else f"bind mount sources exist on {target}",
                f"create them on {target} (same content) before moving" if missing else "",
            )
        )
    nets = [
        n
        for n in (ins.get("NetworkSettings", {}).get("Networks") or {})
        if n not in ("bridge", "none", "host")
    ]
    for n in nets:
        exists = await dst.engine.has_network(n)
        out.append(
            CheckResult(
                target,
                "network",
                PASS if exists else FAIL,
                f"network {n} exists on {target}"
                if exists
                else f"network {n} does not exist on {target}",
                "" if exists else f"create it there: docker network create {n}",
            )
        )
    return out


async def run_checks(fleet: Fleet, hosts: list[str]) -> list[HostReport]:
    return list(await asyncio.gather(*(host_report(fleet[h]) for h in hosts)))
