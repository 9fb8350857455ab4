"""Restoring onto Docker >= 28 through a restore runtime: a runc wrapper the engine knows.

Docker 28 configures a new task's network between task create and task start, from
`/proc/<task pid>/ns/net` (moby `daemon/start_linux.go`, `initializeCreatedTask`). A task
created from a checkpoint has no pid until it starts (containerd's runc shim only restores
in `Start`), so every `docker start --checkpoint` fails: `bind-mount /proc/0/ns/net ->
<exec-root>/netns/<id>: no such file or directory` (containerd issue 12141, CRIU PR 2834).

The route that works on stock Docker 28: the twin is created with the source's full
configuration and `HostConfig.Runtime` set to RUNTIME, a runtime registered in the
target's daemon.json whose binary is the wrapper below. ferryman arms a one-shot marker
for the twin (the image folder, the work folder, runc's restore flags) and runs a plain
`docker start`. containerd's shim calls the wrapper's `create`; with a marker armed, the
wrapper runs `runc restore --detach` with create's own bundle, pid file and console
socket instead. dockerd then has a real pid and configures the restored namespace
(veth, address, routes, ports, aliases) exactly as for a fresh start. CRIU leaves the
tasks stopped (`leave-stopped` in the twin's own CRIU file) until the wrapper's `start`
sends them SIGCONT, so the application never runs without its network. Docker copies
nothing: runc reads the image folder in place.

Without a marker the wrapper is runc (`exec runc "$@"`): later starts of the container
are ordinary. runc's state stays in `<exec-root>/runtime-runc/<namespace>` (moby gives
every runtime named by a path that root), so checkpoints need no change.

Everything here is pure: scripts and argument lists, quoted by core.remote.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from typing import Any

from core import remote

RUNTIME = "ferryman-restore"
WRAPPER = "/usr/local/lib/ferryman/runc-restore"
MARKERS = "/run/ferryman/restore"
CRIU_CONF_DIR = "/run/ferryman/criu"
CRIU_CONFIG_ANNOTATION = "org.criu.config"
FIRST_MAJOR = 28  # engines from this major on need the route
ANNOTATIONS_API = (1, 43)  # HostConfig.Annotations (Docker 24)

# `runc restore` flags a marker may carry (values with `=`, one word each).
RESTORE_FLAGS = frozenset(
    {"--tcp-established", "--ext-unix-sk", "--file-locks", "--shell-job", "--lazy-pages"}
)
_MANAGE_CGROUPS = re.compile(r"^--manage-cgroups-mode=(soft|full|strict|ignore)$")
_PATH = re.compile(r"^/[A-Za-z0-9_./:+@-]{0,4000}$")
_ID = re.compile(r"^[0-9a-f]{64}$")


class RouteError(ValueError):
    pass


# --- which engines ---------------------------------------------------------------------


def _version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text or "")
    if not m:
        raise RouteError(f"not a version: {text!r}")
    return tuple(int(g or 0) for g in m.groups())


def needs_restore_runtime(server_version: str) -> bool:
    """True for Docker engines whose own `docker start --checkpoint` cannot restore
    (28.x; unchanged in 29.7.2's source, untested there)."""
    return _version_tuple(server_version)[0] >= FIRST_MAJOR


def annotations_supported(api_version: str) -> bool:
    """Whether the engine takes HostConfig.Annotations (and so `org.criu.config` per container)."""
    return _version_tuple(api_version)[:2] >= ANNOTATIONS_API


def runtime_registered(info: dict[str, Any], name: str = RUNTIME) -> bool:
    """From `docker info` (GET /info): is the restore runtime registered?"""
    return name in ((info or {}).get("Runtimes") or {})


def runtime_path(info: dict[str, Any], name: str = RUNTIME) -> str | None:
    rt = ((info or {}).get("Runtimes") or {}).get(name) or {}
    return rt.get("path")


# --- the host's one-time set-up --------------------------------------------------------


def wrapper_script(real_runc: str = "runc", markers: str = MARKERS) -> str:
    """The wrapper installed at WRAPPER on a target host (POSIX sh, no other tools than sed/mv/rm).

    containerd-shim-runc-v2 calls `runc --root R --log L --log-format json [--systemd-cgroup]
    create --bundle B --pid-file P [--console-socket S] [--no-pivot] [--no-new-keyring]
    [--preserve-fds N] ID`; runc restore takes the same bundle/pid-file/console-socket/
    no-pivot, not --no-new-keyring or --preserve-fds. Marker `<markers>/<ID>`, key=value lines:
    images=, work=, flags= (runc restore flags), cont=1 (send SIGCONT at `start`).
    """
    real = shlex.quote(real_runc)
    mk = shlex.quote(markers)
    return f"""#!/bin/sh
# ferryman's restore runtime (core/engine/restore_runtime.py). Without a marker for the
# container it is runc itself. With one, `create` restores the container from the marker's
# image folder and `start` only lets the restored tasks run.
REAL={real}
M={mk}
sub=""
for a in "$@"; do case "$a" in create|start) sub=$a; break;; esac; done
for a in "$@"; do id=$a; done
if [ "$sub" = create ]; then
  if [ -f "$M/$id" ]; then
    images=$(sed -n 's/^images=//p' "$M/$id"); work=$(sed -n 's/^work=//p' "$M/$id")
    flags=$(sed -n 's/^flags=//p' "$M/$id")
    g=""; c=""; seen=0; skip=0
    for a in "$@"; do
      if [ $skip = 1 ]; then skip=0; continue; fi
      if [ $seen = 0 ]; then
        if [ "$a" = create ]; then seen=1; else g="$g $a"; fi; continue
      fi
      case "$a" in
        --no-new-keyring) ;;
        --preserve-fds) skip=1 ;;
        --preserve-fds=*) ;;
        "$id") ;;
        *) c="$c $a" ;;
      esac
    done
    # shellcheck disable=SC2086  # words from runc's own arguments and the checked marker
    "$REAL" $g restore --detach --no-subreaper $c $flags --image-path "$images" --work-path "$work" "$id"
    rc=$?
    if [ $rc = 0 ]; then mv -f "$M/$id" "$M/$id.restored"; fi
    exit $rc
  fi
  rm -f "$M/$id.restored"
fi
if [ "$sub" = start ] && [ -f "$M/$id.restored" ]; then
  cont=$(sed -n 's/^cont=//p' "$M/$id.restored")
  rm -f "$M/$id.restored"
  if [ "$cont" = 1 ]; then
    g=""; for a in "$@"; do [ "$a" = start ] && break; g="$g $a"; done
    # shellcheck disable=SC2086
    "$REAL" $g kill --all "$id" CONT
    exit $?
  fi
  exit 0
fi
exec "$REAL" "$@"
"""


def wrapper_digest() -> str:
    """SHA-256 of the wrapper as this ferryman installs it (preflight compares the host's)."""
    return hashlib.sha256(wrapper_script().encode()).hexdigest()


def daemon_json_with_runtime(text: str, path: str = WRAPPER, name: str = RUNTIME) -> str:
    """daemon.json's text with the restore runtime registered (everything else kept).

    dockerd reloads `runtimes` on SIGHUP (`systemctl reload docker`); the name `runc` is
    reserved by dockerd (`runtime name 'runc' is reserved`), hence a name of our own.
    """
    try:
        conf = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise RouteError(f"daemon.json is not JSON: {e}") from None
    if not isinstance(conf, dict):
        raise RouteError("daemon.json does not hold an object")
    runtimes = conf.setdefault("runtimes", {})
    if not isinstance(runtimes, dict):
        raise RouteError("daemon.json: 'runtimes' is not an object")
    runtimes[name] = {"path": path}
    return json.dumps(conf, indent=2) + "\n"


def install_wrapper_cmd(path: str = WRAPPER) -> list[str]:
    """Writes stdin (wrapper_script()) to `path`, mode 755, its folder made first."""
    folder = path.rsplit("/", 1)[0]
    return remote.bash(
        f"mkdir -p {shlex.quote(folder)} && umask 022 && cat > {shlex.quote(path)}.new && "
        f"chmod 755 {shlex.quote(path)}.new && mv -f {shlex.quote(path)}.new {shlex.quote(path)}"
    )


# --- one restore -----------------------------------------------------------------------


def twin_body(body: dict[str, Any], criu_conf: str) -> dict[str, Any]:
    """The twin's create body for this route: the source's configuration, the restore
    runtime, and its own CRIU configuration file (which exists only during the restore)."""
    out = copy.deepcopy(body)
    hc = out.setdefault("HostConfig", {})
    hc["Runtime"] = RUNTIME
    ann = dict(hc.get("Annotations") or {})
    ann[CRIU_CONFIG_ANNOTATION] = criu_conf
    hc["Annotations"] = ann
    return out


def strip_route(body: dict[str, Any]) -> dict[str, Any]:
    """A create body made from the inspect of a container this route restored, for a
    target that does not use the route (or to show the user's own configuration): the
    engine's default runtime again, and no `org.criu.config` of ours."""
    out = copy.deepcopy(body)
    hc = out.get("HostConfig") or {}
    if hc.get("Runtime") == RUNTIME:
        hc.pop("Runtime")
    ann = dict(hc.get("Annotations") or {})
    if str(ann.get(CRIU_CONFIG_ANNOTATION, "")).startswith(CRIU_CONF_DIR + "/"):
        ann.pop(CRIU_CONFIG_ANNOTATION)
    if "Annotations" in hc:
        if ann:
            hc["Annotations"] = ann
        else:
            hc.pop("Annotations")
    return out


# --- which route a target gets ---------------------------------------------------------

ROUTE_RUNTIME = "restore runtime"  # Docker >= 28: the wrapper restores, `docker start`
ROUTE_ANNOTATION = (
    "annotation"  # API >= 1.43: `docker start --checkpoint`, the twin's own CRIU file
)
ROUTE_RUNC_CONF = "runc.conf"  # older engines: the host-wide file, under the host's lock


def route(server_version: str, api_version: str) -> str:
    """How a twin on an engine of this version is restored (see the module's text)."""
    if needs_restore_runtime(server_version):
        return ROUTE_RUNTIME
    if api_version and annotations_supported(api_version):
        return ROUTE_ANNOTATION
    return ROUTE_RUNC_CONF


def twin_for_route(body: dict[str, Any], how: str, migration_id: str) -> tuple[dict[str, Any], str]:
    """The twin's create body for the route `how`, and the path of its own CRIU file
    ("" on the runc.conf route: the twin reads the host-wide file)."""
    plain = strip_route(body)
    if how == ROUTE_RUNC_CONF:
        return plain, ""
    conf = criu_conf_path(migration_id)
    if how == ROUTE_RUNTIME:
        return twin_body(plain, conf), conf
    out = copy.deepcopy(plain)
    hc = out.setdefault("HostConfig", {})
    hc["Annotations"] = {**(hc.get("Annotations") or {}), CRIU_CONFIG_ANNOTATION: conf}
    return out, conf


def container_criu_conf(inspect: dict[str, Any]) -> str:
    """The CRIU file runc hands CRIU for this container: its `org.criu.config` annotation
    when it has one (a container this route restored names its own), else runc.conf."""
    ann = ((inspect.get("HostConfig") or {}).get("Annotations") or {}).get(CRIU_CONFIG_ANNOTATION)
    return str(ann) if ann else "/etc/criu/runc.conf"


def is_ours(conf_path: str) -> bool:
    """A per-container CRIU file of ferryman's (written only for the length of one operation)."""
    return conf_path.startswith(CRIU_CONF_DIR + "/") and "/.." not in conf_path


def criu_conf_path(migration_id: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.-]{1,100}$", migration_id):
        raise RouteError(f"migration id {migration_id!r}: letters, digits and _.- only")
    return f"{CRIU_CONF_DIR}/{migration_id}.conf"


def criu_conf(extra: tuple[str, ...] = (), leave_stopped: bool = True) -> str:
    """The twin's CRIU file for the length of its restore. runc passes images and work
    folders itself; `leave-stopped` keeps the tasks from running before dockerd has
    configured their network (the wrapper's `start` sends SIGCONT)."""
    lines = ["leave-stopped"] if leave_stopped else []
    for line in extra:
        if "\n" in line or "\r" in line:
            raise RouteError(f"a CRIU option line holds a newline: {line!r}")
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def marker_path(container_id: str) -> str:
    if not _ID.match(container_id):
        raise RouteError(f"not a full container id: {container_id!r}")
    return f"{MARKERS}/{container_id}"


def marker_text(
    images_dir: str, work_dir: str, flags: tuple[str, ...] = (), leave_stopped: bool = True
) -> str:
    for p in (images_dir, work_dir):
        if not _PATH.match(p):
            raise RouteError(f"{p!r}: an absolute path of letters, digits and _./:+@- only")
    for f in flags:
        if f not in RESTORE_FLAGS and not _MANAGE_CGROUPS.match(f):
            raise RouteError(
                f"{f!r} is not a runc restore flag the restore runtime passes on; known: "
                + ", ".join(sorted(RESTORE_FLAGS))
                + ", --manage-cgroups-mode=MODE"
            )
    return (
        f"images={images_dir}\nwork={work_dir}\nflags={' '.join(flags)}\n"
        f"cont={1 if leave_stopped else 0}\n"
    )


def restore_script(
    *,
    docker_socket: str | None,
    container_id: str,
    images_dir: str,
    work_dir: str,
    criu_conf_file: str,
    flags: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    leave_stopped: bool = True,
) -> str:
    """One shell script for the target: write the twin's CRIU file and marker, `docker
    start` the twin, and always remove both again (a per-container CRIU file stays named
    by the container's annotation for its whole life: left in place, its options would
    apply to the next checkpoint of the restored container; a missing file CRIU ignores)."""
    q = shlex.quote
    marker = marker_path(container_id)
    mtext = marker_text(images_dir, work_dir, flags, leave_stopped)
    ctext = criu_conf(extra, leave_stopped)
    start = remote.quote(remote.docker("start", container_id, socket=docker_socket))
    return f"""set -e
umask 077
mkdir -p {q(MARKERS)} {q(criu_conf_file.rsplit("/", 1)[0])} {q(work_dir)}
disarm() {{ rm -f {q(marker)} {q(marker + ".restored")} {q(criu_conf_file)}; }}
trap disarm EXIT
trap 'exit 129' HUP INT TERM
printf %s {q(ctext)} > {q(criu_conf_file)}
printf %s {q(mtext)} > {q(marker)}
{start}
"""


def disarm_cmd(container_id: str, criu_conf_file: str) -> list[str]:
    """For rollback, cleanup and recovery: no marker and no CRIU file for this twin."""
    marker = marker_path(container_id)
    return ["rm", "-f", marker, marker + ".restored", criu_conf_file]


def restore_log(work_dir: str) -> str:
    """Where CRIU's restore log is (for the doctor): the route's own work folder."""
    return f"{work_dir}/restore.log"
