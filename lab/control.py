"""`ferryman lab up | down | status`: the local lab of SSH + Docker + CRIU hosts."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.versions import EngineVersions
from lab import engine, image, net, sshd, sysctl
from lab import engine as _engine  # `up` has a parameter named engine
from lab.layout import (
    BRIDGE,
    HOSTS_FILE,
    IMAGE,
    KEY,
    KNOWN_HOSTS,
    MAX_HOSTS,
    RUN_DIR,
    STATE_DIR,
    STATUS_FILE,
    WORKLOAD,
    LabHost,
    hosts,
)
from lab.shell import LabError, ok, run

CRIU = "/usr/local/sbin/criu"


@dataclass(frozen=True)
class WorkloadSpec:
    mib: int = 64
    dirty_mib_s: float = 4.0
    interval_ms: int = 10


def parse_host_count(value: str | int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise LabError(
            f"--hosts must be a whole number from 1 to {MAX_HOSTS}, not {value!r}"
        ) from None
    if not 1 <= n <= MAX_HOSTS:
        raise LabError(
            f"--hosts must be from 1 to {MAX_HOSTS} (got {n}): each host runs its own "
            "sshd and dockerd on this machine"
        )
    return n


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (it creates network namespaces and runs dockerd "
            "and sshd): run it with sudo"
        )


def preflight_tools() -> None:
    missing = [
        t
        for t in ("dockerd", "runc", "/usr/sbin/sshd", "nsenter", "iptables", "gcc")
        if not shutil.which(t)
    ]
    if missing or not os.access(CRIU, os.X_OK):
        raise LabError(
            f"missing {', '.join(missing + ([] if os.access(CRIU, os.X_OK) else ['criu 4.2']))}: "
            "run `bash lab/setup/install-deps.sh` (or `make demo`) first"
        )


def existing_hosts() -> list[LabHost]:
    found = set()
    for p in Path("/var/run/netns").glob("fm-host*"):
        if m := re.fullmatch(r"fm-host(\d+)", p.name):
            found.add(int(m.group(1)))
    for p in RUN_DIR.glob("h*") if RUN_DIR.exists() else []:
        if m := re.fullmatch(r"h(\d+)", p.name):
            found.add(int(m.group(1)))
    return [LabHost(i) for i in sorted(found)]


def present() -> bool:
    """Anything of the namespace lab on this machine (to take down or report)."""
    return bool(existing_hosts()) or STATE_DIR.exists() or ok(["ip", "link", "show", BRIDGE])


def write_hosts_file(hs: list[LabHost]) -> None:
    doc = {
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "port": 22,
                "user": "root",
                "key": str(KEY),
                "known_hosts": str(KNOWN_HOSTS),
                "docker_socket": str(h.docker_socket),
                "exec_root": str(h.exec_root),
                "images_dir": str(h.state / "images"),
                "authorized_keys": str(h.state / "authorized_keys"),
                "labels": {"lab": "netns"},
            }
            for h in hs
        ]
    }
    HOSTS_FILE.write_text(
        "# Written by `ferryman lab up`: the local lab's hosts.\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def _has_workload(h: LabHost) -> bool:
    """The workload exists on `h` (a lab brought up again must not start a second copy of a
    workload that was moved to another host)."""
    return run(engine.docker(h, "inspect", WORKLOAD), check=False).returncode == 0


def start_workload(h: LabHost, spec: WorkloadSpec, name: str = WORKLOAD) -> None:
    p = run(engine.docker(h, "inspect", "-f", "{{.State.Running}}", name), check=False)
    if p.returncode == 0:
        if p.stdout.decode().strip() == "true":
            return
        run(engine.docker(h, "rm", "-f", name))
    run(engine.docker(h, *workload_run_args(spec, name)))


def workload_run_args(spec: WorkloadSpec, name: str = WORKLOAD) -> list[str]:
    """`docker run` arguments of the lab's workload container (both lab kinds)."""
    return [
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "ferryman.lab=workload",
        IMAGE,
        "/workload",
        str(spec.mib),
        str(spec.dirty_mib_s),
        str(spec.interval_ms),
    ]


def assign_engines(hs: list[LabHost], wanted: str, log=print) -> dict[str, str]:
    """Each host's engine: the one recorded when it was made (hosts keep their engine; a
    host made before engines were recorded runs 20.10), `wanted` for a new host."""
    if wanted not in engine.ENGINES:
        raise LabError(f"--engine must be one of {', '.join(engine.ENGINES)}, not {wanted!r}")
    made = {h.index for h in existing_hosts()}
    out = {}
    for h in hs:
        if h.engine_file.exists():
            got = engine.kind(h)
        elif h.index in made:
            got = engine.DEFAULT
        else:
            got = wanted
        if not h.engine_file.exists():
            engine.record(h, got)
        if got != wanted:
            log(f"lab: {h.name} keeps Docker {got} (`lab down` first to give it another engine)")
        out[h.name] = got
    return out


def up(
    n: int = 2, spec: WorkloadSpec | None = None, log=print, *, engine: str = "20.10"
) -> dict[str, Any]:
    require_root()
    n = parse_host_count(n)
    preflight_tools()
    spec = spec or WorkloadSpec()
    hs = hosts(n)
    sshd.client_key()
    engines = assign_engines(hs, engine, log)
    if "28" in engines.values():
        _engine.ensure_engine28(log)
    net.bridge_up()
    sysctl.raise_pipe_max()  # post-copy between namespace hosts (lab/sysctl.py)
    for h in hs:
        kind = engines[h.name]
        log(f"lab: {h.name} at {h.address}: namespace, sshd, dockerd (Docker {kind})")
        net.host_up(h)
        sshd.write_config(h, _engine.path_dirs(kind))
        sshd.start(h)
        _engine.start(h)
    # Hosts an earlier `lab up --hosts N` made stay in the hosts file and known_hosts: a
    # smaller `lab up` never hides a host that runs (nor starts a second workload).
    every = sorted({h.index for h in hs} | {h.index for h in existing_hosts() if sshd.pid(h)})
    all_hosts = [LabHost(i) for i in every]
    sshd.write_known_hosts(all_hosts)
    write_hosts_file(all_hosts)
    image.import_image(hs[0])
    if not any(_has_workload(h) for h in all_hosts):
        start_workload(hs[0], spec)
    st = status()
    # The workload the lab was first made with stays; the engines are every host's.
    kept = json.loads(STATUS_FILE.read_text()) if STATUS_FILE.exists() else {}
    STATUS_FILE.write_text(
        json.dumps(
            {
                "workload": kept.get("workload") or spec.__dict__,
                "engines": {h.name: _engine.kind(h) for h in existing_hosts()},
            },
            indent=1,
        )
    )
    log(f"lab: up, {n} hosts; hosts file {HOSTS_FILE}")
    return st


def _mounts_under(prefixes: list[Path]) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == str(p) or mp.startswith(str(p) + "/") for p in prefixes):
            out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def _lab_pids() -> list[int]:
    """Processes started for the lab that outlived their daemon (shims, containerd)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(RUN_DIR) + "/" in cmd or str(STATE_DIR) + "/" in cmd:
            pids.append(int(d.name))
    return [p for p in pids if p != os.getpid()]


def down(log=print) -> None:
    require_root()
    hs = existing_hosts()
    for h in hs:
        log(f"lab: stopping {h.name}")
        sshd.stop(h)
        engine.stop(h)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in _lab_pids():
            try:
                os.kill(p, sig)
            except OSError:
                pass
        time.sleep(0.3)
    for mp in _mounts_under([STATE_DIR, RUN_DIR]):
        run(["umount", "-l", mp], check=False)
    for h in hs:
        net.host_down(h)
    net.bridge_down()
    sysctl.restore_pipe_max()
    _engine.remove_wrapper()
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    log("lab: down")


def status() -> dict[str, Any]:
    hs = existing_hosts()
    out_hosts = []
    for h in hs:
        dockerd_up = engine.pid(h) is not None and engine.answering(h)
        containers = []
        if dockerd_up:
            p = run(engine.docker(h, "ps", "-a", "--format", "{{.Names}}\t{{.State}}"), check=False)
            containers = [
                dict(zip(("name", "state"), ln.split("\t"), strict=False))
                for ln in p.stdout.decode().splitlines()
                if ln
            ]
        v = engine.versions(h) if dockerd_up else None
        out_hosts.append(
            {
                "name": h.name,
                "engine": {
                    "kind": engine.kind(h),
                    "docker": v.engine if v else "",
                    "api": v.api if v else "",
                    "containerd": v.containerd if v else "",
                    "runc": v.runc if v else "",
                },
                "address": h.address,
                "ssh_port": 22,
                "user": "root",
                "key_file": str(KEY),
                "known_hosts_file": str(KNOWN_HOSTS),
                "docker_socket": str(h.docker_socket),
                "netns": h.netns,
                "sshd": sshd.pid(h) is not None,
                "dockerd": dockerd_up,
                "containers": containers,
            }
        )
    extra = {}
    if STATUS_FILE.exists():
        extra = json.loads(STATUS_FILE.read_text())
    return {
        "kind": "netns",
        "up": bool(hs) and all(h["sshd"] and h["dockerd"] for h in out_hosts),
        "bridge": BRIDGE if ok(["ip", "link", "show", BRIDGE]) else None,
        "hosts_file": str(HOSTS_FILE) if HOSTS_FILE.exists() else None,
        "image": IMAGE,
        "hosts": out_hosts,
        **extra,
    }


def render_status(st: dict[str, Any]) -> str:
    if not st["hosts"]:
        return "lab: down (nothing running). Start it with `ferryman lab up`."
    lines = [f"lab: {'up' if st['up'] else 'partly up'}; hosts file {st['hosts_file']}"]
    for h in st["hosts"]:
        cs = ", ".join(f"{c['name']} ({c['state']})" for c in h["containers"]) or "no containers"
        e = h.get("engine") or {}
        ver = EngineVersions(
            e.get("docker", ""), e.get("api", ""), e.get("containerd", ""), e.get("runc", "")
        ).line()
        lines.append(
            f"  {h['name']:6} {h['address']:12} sshd {'up' if h['sshd'] else 'DOWN'}, "
            f"dockerd {'up' if h['dockerd'] else 'DOWN'} ({ver or 'Docker ' + e.get('kind', '?')}): {cs}"
        )
    return "\n".join(lines)


def criu_check() -> str:
    return subprocess.run([CRIU, "check"], capture_output=True, text=True).stdout
