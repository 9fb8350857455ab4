"""Preflight: per host and per source/target pair, pass / warn / fail with the reason and the fix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from core import remote, versions, volume_room
from core.container_settings import settings_lines
from core.dockerapi import EngineError
from core.engine import restore, restore_runtime
from core.fleet import Fleet, Host
from core.inventory import why_not_migratable
from core.models import CheckResult, CheckStatus, HostFacts
from core.remote import parse_facts
from core.ssh import CommandError, HostError

PASS, WARN, FAIL = CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL
MIN_CRIU = (3, 17)  # Debian 12's; below 4.2 restores take the copy route (core/engine/restore.py)
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


LAZY_TRIAL_SCRIPT = r"""
d=$(mktemp -d /tmp/ferryman-lazy-trial.XXXXXX) || exit 2
pid=; dp=
cleanup() {
  [ -n "$dp" ] && kill -9 "$dp" 2>/dev/null
  [ -s "$d/lp.pid" ] && kill -9 "$(cat "$d/lp.pid")" 2>/dev/null
  [ -s "$d/rst.pid" ] && kill -9 "$(cat "$d/rst.pid")" 2>/dev/null
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  [ -n "${up:-}" ] && kill -9 "$up" 2>/dev/null
  rm -rf "$d"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 40000))
mkdir "$d/img"
# In its own PID namespace: the frozen original keeps its PID until the last page has
# been served, so the restored copy on the same host needs other PIDs.
setsid unshare -p -f setsid sleep 300 </dev/null >/dev/null 2>&1 &
up=$!
for _ in $(seq 40); do pid=$(pgrep -P "$up" | head -1); [ -n "$pid" ] && break; sleep 0.05; done
[ -n "$pid" ] || { echo "dump=none restore=none alive=no pages=none"; echo "unshare -p failed"; exit 0; }
criu dump -t "$pid" -D "$d/img" -W "$d" -o dump.log -v4 --lazy-pages \
  --address 127.0.0.1 --port "$port" </dev/null >/dev/null 2>&1 &
dp=$!
for _ in $(seq 400); do
  grep -q 'Starting lazy pages server' "$d/dump.log" 2>/dev/null && break
  kill -0 "$dp" 2>/dev/null || break
  sleep 0.05
done
criu lazy-pages --page-server --address 127.0.0.1 --port "$port" -D "$d/img" -W "$d" \
  -o lazy-pages.log -v4 --daemon --pidfile "$d/lp.pid" </dev/null >/dev/null 2>&1
criu restore -D "$d/img" -W "$d" -o restore.log -v4 --lazy-pages -d --pidfile "$d/rst.pid" \
  </dev/null >/dev/null 2>&1
rrc=$?
drc=timeout
[ "$rrc" = 0 ] || sleep 1
[ "$rrc" = 0 ] || kill -0 "$dp" 2>/dev/null || { wait "$dp"; drc=$?; }
for _ in $( [ "$rrc" = 0 ] && seq 400); do
  if ! kill -0 "$dp" 2>/dev/null; then wait "$dp"; drc=$?; break; fi
  sleep 0.05
done
alive=no
[ -s "$d/rst.pid" ] && kill -0 "$(cat "$d/rst.pid")" 2>/dev/null && alive=yes
pages=$(sed -n 's/.*UFFD transferred pages: (\([0-9]*\/[0-9]*\)).*/\1/p' "$d/lazy-pages.log" 2>/dev/null | tail -1)
echo "dump=$drc restore=$rrc alive=$alive pages=${pages:-none}"
grep -h -m3 'Error\|FAILED' "$d/dump.log" "$d/lazy-pages.log" "$d/restore.log" 2>/dev/null \
  | grep -v RLIMIT_NOFILE | head -3
"""


async def lazy_trial(host: Host) -> CheckResult:
    """Post-copy tried, not trusted: a tiny process moved with lazy pages on this host.

    `criu check` can say userfaultfd is fine on a kernel where serving lazy pages fails
    (`page-pipe: splice: Bad file descriptor`); this does what a post-copy move does, on
    the host's loopback: `criu dump --lazy-pages`, `criu lazy-pages --page-server`,
    `criu restore --lazy-pages`, and looks at the result. A few seconds; run on request.
    """
    name = host.name
    try:
        r = await host.ssh.run(
            remote.quote(["timeout", "60", "bash", "-c", LAZY_TRIAL_SCRIPT]),
            check=False,
            timeout=90,
        )
    except (CommandError, HostError) as e:
        return CheckResult(name, "post-copy", WARN, f"the lazy-pages trial did not run: {e}")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    facts = parse_facts(" ".join(lines[:1]).replace(" ", "\n")) if lines else {}
    ok = facts.get("dump") == "0" and facts.get("restore") == "0" and facts.get("alive") == "yes"
    if ok:
        return CheckResult(
            name,
            "post-copy",
            PASS,
            f"a lazy transfer of a tiny process works here ({facts.get('pages')} pages "
            "served on fault and in the background)",
        )
    said = "; ".join(ln.strip() for ln in lines[1:3]) or (lines[0] if lines else r.stderr.strip())
    return CheckResult(
        name,
        "post-copy",
        FAIL,
        f"a lazy transfer of a tiny process fails here ({lines[0] if lines else 'no output'}): "
        f"{said[:240]}",
        "post-copy is ruled out on this host (`criu check` may still say userfaultfd is fine); "
        "use stop-and-copy or pre-copy, or a kernel where CRIU's lazy pages work",
    )


async def host_report(host: Host, *, lazy_trial_run: bool = False) -> HostReport:
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
    version: dict[str, Any] = {}
    if info:
        try:
            version = await host.engine.version()
        except (EngineError, HostError, OSError):
            version = {}
    vers = versions.from_engine(
        info,
        version,
        containerd_line=f.get("containerd_line", ""),
        runc_line=f.get("runc_version", ""),
    )
    experimental = bool(info.get("ExperimentalBuild"))
    mode = engine_mode_check(name, info) if info else None
    if mode is not None:
        add(mode)
    if info:
        add(
            CheckResult(
                name,
                "engine",
                PASS if experimental else FAIL,
                f"{vers.line() or 'Docker ?'}, experimental {'on' if experimental else 'OFF'}",
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
    elif versions.numbers(cv) < MIN_CRIU:
        add(
            CheckResult(
                name,
                "criu",
                FAIL,
                f"CRIU {cv} is too old: ferryman works with CRIU 3.17 (Debian 12's) and later",
                "install CRIU ≥ 4.2 (lab/setup/install-deps.sh shows one way), or your "
                "distribution's CRIU if it is 3.17 or later",
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
    elif not restore.reads_in_place(cv):
        add(
            CheckResult(
                name,
                "criu",
                WARN,
                f"CRIU {cv} at {f.get('criu_path')}, `criu check` passes; "
                + (
                    "restores here go through ferryman's restore runtime, which reads the "
                    "images in place (not tried with CRIU before 4.2)"
                    if _engine_needs_runtime(vers.engine)
                    else "before 4.2 CRIU cannot read the image folder in place through "
                    "Docker, so a restore here waits for Docker to copy the whole image "
                    f"(about {restore.copy_cost_s(2**30):.0f} s per GiB of memory, inside "
                    "the freeze)"
                )
                + "; post-copy is ruled out",
                "install CRIU ≥ 4.2 for restores without the copy (lab/setup/install-deps.sh "
                "shows one way)",
            )
        )
    else:
        add(
            CheckResult(
                name, "criu", PASS, f"CRIU {cv} at {f.get('criu_path')}, `criu check` passes"
            )
        )
    rv = f.get("runc_version", "")
    add(runc_check(name, rv, vers.runc))
    route, refusal, fix = "", "", ""
    if info:
        digest = ""
        path = restore_runtime.runtime_path(info)
        if (
            path
            and versions.short(vers.engine)
            and restore_runtime.needs_restore_runtime(vers.engine)
        ):
            with_digest = await host.ssh.run(
                remote.quote(remote.file_digest(path)), check=False, timeout=30
            )
            digest = with_digest.stdout.strip()
        chk, route, refusal, fix = restore_route_check(
            name, f"{host.spec.user}@{host.spec.address}", vers, info, digest
        )
        add(chk)
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
    old_criu = bool(cv) and not restore.reads_in_place(cv)
    if uffd and old_criu:
        add(
            CheckResult(
                name,
                "userfaultfd",
                WARN,
                f"userfaultfd present, but post-copy is ruled out with CRIU {cv}: a lazy "
                "restore through Docker needs CRIU ≥ 4.2 to read the image folder in place",
                "install CRIU ≥ 4.2 for post-copy",
            )
        )
        uffd = False
    else:
        add(
            CheckResult(
                name,
                "userfaultfd",
                PASS if uffd else WARN,
                "userfaultfd (non-cooperative) present, as post-copy needs (`ferryman check` "
                "also tries a lazy transfer: `criu check` alone is not enough)"
                if uffd
                else "no non-cooperative userfaultfd: post-copy and hybrid are ruled out",
                "" if uffd else "a kernel with CONFIG_USERFAULTFD is needed for post-copy",
            )
        )
    pipes = pipe_check(name, f)
    if pipes is not None:
        add(pipes)
        uffd = uffd and pipes.status == PASS
    if lazy_trial_run and uffd:
        trial = await lazy_trial(host)
        add(trial)
        uffd = trial.status == PASS
    add(await runc_conf_check(host))
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
        engine_version=vers.engine,
        api_version=vers.api,
        containerd_version=vers.containerd,
        experimental=experimental,
        runc_version=rv,
        criu_version=cv,
        kernel=f.get("kernel", ""),
        cgroup_version=cg,
        dirty_tracking=dirty,
        lazy_pages=uffd,
        restore_route=route,
        restore_refusal=refusal,
        restore_fix=fix,
    )
    return rep


def _engine_needs_runtime(engine: str) -> bool:
    try:
        return bool(engine) and restore_runtime.needs_restore_runtime(engine)
    except restore_runtime.RouteError:
        return False


def engine_mode_check(name: str, info: dict[str, Any]) -> CheckResult | None:
    """A dockerd that remaps user namespaces (userns-remap) or runs rootless: refused.
    Its containers' root is another uid on each host (the subordinate range of
    /etc/subuid), so the writable layer's and the volumes' file owners are shifted per
    host, and ferryman has not moved a container from or to such an engine."""
    opts = [str(o) for o in info.get("SecurityOptions") or []]
    for mode, what, fix in (
        (
            "userns",
            "remaps user namespaces (userns-remap)",
            "remove `userns-remap` from its /etc/docker/daemon.json and restart dockerd, "
            "or move containers between hosts without it",
        ),
        (
            "rootless",
            "is rootless",
            "move containers between hosts whose dockerd runs as root",
        ),
    ):
        if any(o == f"name={mode}" or o.startswith(f"name={mode},") for o in opts):
            return CheckResult(
                name,
                "engine-mode",
                FAIL,
                f"dockerd on {name} {what}: a container's files belong to other uids on "
                "each host, and ferryman does not move containers from or to such an engine",
                fix,
            )
    return None


def runc_check(name: str, on_path: str, engines: str) -> CheckResult:
    """runc as ferryman's commands find it (they checkpoint through it) against the runc
    the engine itself runs: another runc could not be trusted with the engine's state."""
    if not on_path:
        return CheckResult(name, "runc", FAIL, "runc not found on PATH", "install runc")
    a, b = versions.short(on_path), versions.short(engines)
    if engines and a != b:
        return CheckResult(
            name,
            "runc",
            WARN,
            f"runc {on_path} on the PATH of ferryman's commands, but the engine runs runc "
            f"{engines}: checkpoints would go through another runc than the one that made "
            "the container",
            "put the engine's runc first on the PATH of SSH sessions (sshd `SetEnv "
            "FERRYMAN_PATH_PREFIX=<its folder>`, with `AcceptEnv` or `SetEnv`)",
        )
    return CheckResult(
        name, "runc", PASS, f"runc {on_path}" + (" (the engine's)" if engines else "")
    )


REFUSAL_28 = (
    "Docker {v} cannot restore a checkpoint by itself: `docker start --checkpoint` fails "
    "with `bind-mount /proc/0/ns/net -> <exec-root>/netns/<id>: no such file or directory`, "
    "because dockerd >= 28 binds a new task's network namespace from its pid "
    "(moby daemon/start_linux.go `initializeCreatedTask`) before a restored task has one "
    "(containerd/containerd#12141; CRIU's CI skips Docker 28 for it, "
    "checkpoint-restore/criu PR 2834)"
)


def restore_fix_commands(name: str, ssh_target: str) -> str:
    w = restore_runtime.WRAPPER
    return (
        f"install ferryman's restore runtime on {name} and register it, from this machine: "
        f"`ferryman restore-runtime wrapper | ssh {ssh_target} 'install -D -m 755 /dev/stdin {w}'`; "
        f"`ssh {ssh_target} 'cat /etc/docker/daemon.json 2>/dev/null' | ferryman restore-runtime "
        f"daemon-json | ssh {ssh_target} 'cat > /etc/docker/daemon.json.new && mv "
        "/etc/docker/daemon.json.new /etc/docker/daemon.json'`; "
        f"`ssh {ssh_target} systemctl reload docker` (dockerd reloads its runtimes on SIGHUP; "
        "running containers are not touched)"
    )


def restore_route_check(
    name: str, ssh_target: str, vers: versions.EngineVersions, info: dict[str, Any], digest: str
) -> tuple[CheckResult, str, str, str]:
    """How a twin gets restored on this engine, and why a move onto it is refused if it is:
    the check, the route, the refusal ("" when none) and its fix."""
    v = versions.short(vers.engine) or "?"
    try:
        route = restore_runtime.route(vers.engine, vers.api)
    except restore_runtime.RouteError:
        return (
            CheckResult(name, "restore", WARN, f"engine version {vers.engine!r} not understood"),
            "",
            "",
            "",
        )
    if route == restore_runtime.ROUTE_RUNC_CONF:
        return (
            CheckResult(
                name,
                "restore",
                PASS,
                f"Docker {v} (API {vers.api or '?'}) restores with `docker start --checkpoint`; "
                f"CRIU's options through {restore.CONF} under the host's lock (API < 1.43: no "
                "per-container org.criu.config)",
            ),
            route,
            "",
            "",
        )
    if route == restore_runtime.ROUTE_ANNOTATION:
        return (
            CheckResult(
                name,
                "restore",
                PASS,
                f"Docker {v} (API {vers.api}) restores with `docker start --checkpoint`; CRIU's "
                "options through the twin's own org.criu.config file (not tried on the lab: "
                "Docker 24-27 are not there)",
            ),
            route,
            "",
            "",
        )
    fix = restore_fix_commands(name, ssh_target)
    why = REFUSAL_28.format(v=v)
    path = restore_runtime.runtime_path(info)
    if not restore_runtime.runtime_registered(info):
        refusal = f"{why}, and the restore runtime `{restore_runtime.RUNTIME}` that moves onto it need is not registered with its dockerd"
    elif digest != restore_runtime.wrapper_digest():
        refusal = (
            f"{why}; the restore runtime `{restore_runtime.RUNTIME}` is registered, but {path} "
            + (
                "cannot be read"
                if not digest
                else "is not this ferryman's wrapper (another version)"
            )
        )
    else:
        untested = int(v.split(".")[0]) > restore_runtime.FIRST_MAJOR if v[0].isdigit() else False
        return (
            CheckResult(
                name,
                "restore",
                WARN if untested else PASS,
                f"Docker {v}: its own `docker start --checkpoint` cannot restore; moves onto it "
                f"are restored by the restore runtime `{restore_runtime.RUNTIME}` ({path}), "
                "CRIU's options through the twin's own org.criu.config file"
                + (
                    "; untested on this major (moby's code is the same as 28's in docker-v29.7.2)"
                    if untested
                    else ""
                ),
            ),
            route,
            "",
            "",
        )
    return (
        CheckResult(name, "restore", WARN, f"moves onto {name} will be refused: {refusal}", fix),
        route,
        refusal,
        fix,
    )


LAZY_PIPE_BYTES = 4 * 2**20
CAP_SYS_RESOURCE = 24


def pipe_check(name: str, f: dict[str, str]) -> CheckResult | None:
    """CRIU's lazy page server grows a pipe past `fs.pipe-max-size`, which needs
    CAP_SYS_RESOURCE; without it the failure is ignored and every lazy transfer dies
    (`page-pipe: splice: -1: Bad file descriptor`). None when the facts are missing."""
    try:
        pipe_max = int(f.get("pipe_max_size", ""))
        cap = int(f.get("cap_bnd", ""), 16)
    except ValueError:
        return None
    if cap & (1 << CAP_SYS_RESOURCE) or pipe_max >= LAZY_PIPE_BYTES:
        return CheckResult(name, "pipe-size", PASS, "CRIU's lazy page server can size its pipes")
    return CheckResult(
        name,
        "pipe-size",
        WARN,
        f"root lacks CAP_SYS_RESOURCE and fs.pipe-max-size is {pipe_max} bytes: CRIU's lazy "
        "page server cannot grow its pipes, so post-copy and hybrid are ruled out",
        f"`sysctl -w fs.pipe-max-size={LAZY_PIPE_BYTES}` on {name} (the lab sets it)",
    )


async def runc_conf_check(host: Host) -> CheckResult:
    """runc's CRIU config file: a file a killed ferryman operation left behind is repaired
    (every later checkpoint on the host would read a dead migration's options)."""
    from core.engine import criu_conf

    try:
        out = (await host.ssh.run(criu_conf.stale_check(), check=False, timeout=30)).stdout
    except HostError as e:
        return CheckResult(host.name, "runc.conf", WARN, f"not checked: {e}")
    word = out.strip()
    if word == "repaired":
        return CheckResult(
            host.name,
            "runc.conf",
            WARN,
            f"{criu_conf.CONF} was left by a ferryman operation that was killed: removed, and "
            "the admin's own file put back",
        )
    if word == "busy":
        return CheckResult(
            host.name, "runc.conf", PASS, f"{criu_conf.CONF} is held by an operation now"
        )
    return CheckResult(host.name, "runc.conf", PASS, f"{criu_conf.CONF}: nothing left behind")


def pair_checks(src: HostReport, dst: HostReport) -> list[CheckResult]:
    pair = f"{src.host}→{dst.host}"
    out = []
    if dst.facts.restore_refusal:
        out.append(
            CheckResult(
                pair,
                "restore",
                FAIL,
                f"cannot restore onto {dst.host}: {dst.facts.restore_refusal}",
                dst.facts.restore_fix,
            )
        )
    sv, dv = versions.numbers(src.facts.criu_version), versions.numbers(dst.facts.criu_version)
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
    out += await volume_room.check(src, dst, ins)
    if not why:
        out += await _process_checks(src, source, ins)
        out += settings_lines(ins, source, target)
        if (ins.get("HostConfig") or {}).get("Init"):
            out.append(await _init_check(src, dst, ins))
    out += await _port_checks(dst, target, ins)
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


def outside_init(main_pid: int, procs: list[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """Processes of the container not descended from its main process (pid, command):
    started by `docker exec`, their parent is outside the container. CRIU cannot take them
    along through runc (`Unexpected process ... in the freezer cgroup`): they would be lost."""
    pids = {p for p, _, _ in procs}
    children: dict[int, list[int]] = {}
    for p, pp, _ in procs:
        children.setdefault(pp, []).append(p)
    tree, todo = set(), [main_pid]
    while todo:
        p = todo.pop()
        if p in tree:
            continue
        tree.add(p)
        todo += children.get(p, [])
    return [(p, cmd) for p, pp, cmd in procs if p not in tree and p in pids]


async def _process_checks(src: Host, source: str, ins: dict[str, Any]) -> list[CheckResult]:
    name = ins["Name"].lstrip("/")
    main = int((ins.get("State") or {}).get("Pid") or 0)
    try:
        top = await src.engine.call(lambda c: c.api.top(ins["Id"], ps_args="-o pid,ppid,uid,args"))
    except (EngineError, HostError, OSError) as e:
        return [CheckResult(source, "processes", WARN, f"{name}: processes not listed ({e})")]
    procs, uids = [], {}
    for row in top.get("Processes") or []:
        try:
            procs.append((int(row[0]), int(row[1]), " ".join(row[3:])))
            uids[int(row[0])] = int(row[2])
        except (ValueError, IndexError):
            continue
    others = [(p, cmd, uids[p]) for p, _, cmd in procs if uids.get(p)]
    if others:
        refused = await _rlimit_check(src, source, name, others)
        if refused is not None:
            return [refused]
    lost = outside_init(main, procs)
    if lost:
        shown = ", ".join(f"{cmd[:40]} (pid {p})" for p, cmd in lost[:4])
        return [
            CheckResult(
                source,
                "processes",
                FAIL,
                f"{name} has {len(lost)} process(es) started by `docker exec`, outside its "
                f"main process's tree: {shown}; CRIU cannot take them along, they would be lost",
                f"end them (or run them from the container's own command) before moving {name}",
            )
        ]
    return [CheckResult(source, "processes", PASS, f"{name}: {len(procs)} process(es), one tree")]


async def _rlimit_check(
    src: Host, source: str, name: str, others: list[tuple[int, str, int]]
) -> CheckResult | None:
    """CRIU reads every task's rlimits (prlimit); for a task of another user that needs
    CAP_SYS_RESOURCE, which root lacks in some hosts (a namespace or container that drops
    it): the dump would fail with `Can't get rlimit 0: Operation not permitted`."""
    r = await src.ssh.run(
        remote.quote(["sed", "-n", "s/^CapBnd:[[:space:]]*//p", "/proc/self/status"]), check=False
    )
    try:
        cap = int(r.stdout.strip(), 16)
    except ValueError:
        return None
    if cap & (1 << CAP_SYS_RESOURCE):
        return None
    shown = ", ".join(f"{cmd[:40]} (pid {p}, uid {u})" for p, cmd, u in others[:3])
    return CheckResult(
        source,
        "processes",
        FAIL,
        f"{name} runs processes as another user than root ({shown}), and root on {source} "
        "lacks CAP_SYS_RESOURCE: CRIU cannot read their rlimits, so the dump would fail "
        "(`Can't get rlimit 0: Operation not permitted`)",
        f"run ferryman's commands on {source} with root's full capabilities (sshd outside "
        "any container or namespace that drops CAP_SYS_RESOURCE)",
    )


async def _init_check(src: Host, dst: Host, ins: dict[str, Any]) -> CheckResult:
    """`--init`: the container's first process runs docker-init, which each engine
    bind-mounts from its own installation. CRIU restores it only onto the same file
    (`File sbin/docker-init has bad size`): engines of other versions or packages ship
    other builds."""
    name = ins["Name"].lstrip("/")
    pid = int((ins.get("State") or {}).get("Pid") or 0)
    try:
        info = await dst.engine.info()
        have = (await src.ssh.run(remote.quote(remote.exe_digest(pid)), check=False)).stdout
        there = await dst.ssh.run(
            remote.quote(
                remote.engine_init_digest(dst.spec.docker_socket, str(info.get("InitBinary") or ""))
            ),
            check=False,
        )
    except (EngineError, HostError) as e:
        return CheckResult(dst.name, "init", WARN, f"{name}: docker-init not compared ({e})")
    have = have.strip()
    digest, _, path = there.stdout.strip().partition(" ")
    if not have or there.status != 0 or not digest:
        why = {3: "its dockerd was not found by its socket", 4: "no docker-init was found"}
        return CheckResult(
            dst.name,
            "init",
            WARN,
            f"{name} runs with --init: the docker-init the engine on {dst.name} would mount "
            f"was not compared with the one on {src.name} "
            f"({why.get(there.status or 0, 'not readable')}); if they differ the restore "
            "fails and the move rolls back",
        )
    if digest != have:
        return CheckResult(
            dst.name,
            "init",
            FAIL,
            f"{name} runs with --init, and the docker-init of the engine on {dst.name} "
            f"({path}) is another build than the one it runs on {src.name}: CRIU can put "
            "the process back only onto the same file",
            f"give both engines the same docker-init (daemon.json's init-path), move to a "
            f"host whose engine has the same one, or run {name} without --init",
        )
    return CheckResult(
        dst.name, "init", PASS, f"{name}: the engine on {dst.name} mounts the same docker-init"
    )


async def _port_checks(dst: Host, target: str, ins: dict[str, Any]) -> list[CheckResult]:
    """Published ports the twin needs that a container on the target already publishes."""
    want = {
        (b.get("HostIp") or "", b.get("HostPort"), proto)
        for proto, binds in ((ins.get("HostConfig") or {}).get("PortBindings") or {}).items()
        for b in binds or []
        if b.get("HostPort")
    }
    if not want:
        return []

    def taken(c: Any) -> list[str]:
        out = []
        for other in c.api.containers():
            for p in other.get("Ports") or []:
                key = (p.get("PublicPort"), p.get("Type"))
                for ip, port, proto in want:
                    if key == (int(port), proto.split("/")[1]) and (
                        ip in ("", "0.0.0.0") or ip == p.get("IP")
                    ):
                        out.append(f"{port}/{key[1]} (used by {other['Names'][0].lstrip('/')})")
        return sorted(set(out))

    try:
        used = await dst.engine.call(taken)
    except (EngineError, HostError, OSError) as e:
        return [CheckResult(target, "ports", WARN, f"published ports not checked ({e})")]
    if used:
        return [
            CheckResult(
                target,
                "ports",
                FAIL,
                f"published port {', '.join(used)} already taken on {target}",
                f"free the port on {target}, or move to another host",
            )
        ]
    ports = ", ".join(sorted(f"{p}/{proto.split('/')[1]}" for _, p, proto in want))
    return [CheckResult(target, "ports", PASS, f"published ports free on {target}: {ports}")]


async def run_checks(
    fleet: Fleet, hosts: list[str], *, lazy_trial_run: bool = False
) -> list[HostReport]:
    """Every host's report; `lazy_trial_run` adds the post-copy trial (a few seconds a host)."""
    return list(
        await asyncio.gather(*(host_report(fleet[h], lazy_trial_run=lazy_trial_run) for h in hosts))
    )
