"""One dockerd per lab host: its own data root, exec root, socket; experimental on.

A host runs one of two engines, recorded in its state folder (`engine`) when the host is
made, and kept by every later `lab up`:

- `20.10`: Debian 12's docker.io (dockerd, containerd 1.6, runc 1.1 from the system);
- `28`: Docker 28.5.2 with containerd 2.1 and runc 1.3, unpacked by
  lab/setup/install-engine28.sh into /opt/ferryman/engine-28 (never over the system's).
  Its dockerd gets a daemon.json of its own with ferryman's restore runtime registered
  (core/engine/restore_runtime.py: Docker 28 cannot restore a checkpoint by itself), the
  wrapper is installed where the runtime names it, and the prefix comes first on the PATH
  of the daemon (so its managed containerd, shim, docker-proxy and runc are the prefix's)
  and of the host's SSH sessions (lab/sshd.py).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from core.engine import restore_runtime
from core.versions import EngineVersions, from_engine
from lab.layout import LabHost
from lab.shell import LabError, in_ns, run
from lab.sshd import PATH

ENGINES = ("20.10", "28")
DEFAULT = "20.10"
PREFIX_28 = Path(os.environ.get("FERRYMAN_ENGINE28_PREFIX", "/opt/ferryman/engine-28"))
INSTALL_28 = Path(__file__).parent / "setup" / "install-engine28.sh"


# --- which engine a host runs -----------------------------------------------------------


def kind(h: LabHost) -> str:
    """The engine recorded for `h` (hosts made before engines were recorded: 20.10)."""
    try:
        k = h.engine_file.read_text().strip()
    except OSError:
        return DEFAULT
    return k if k in ENGINES else DEFAULT


def record(h: LabHost, engine: str) -> None:
    if engine not in ENGINES:
        raise LabError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    h.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    h.engine_file.write_text(engine + "\n")


def path_dirs(engine: str) -> list[str]:
    """Folders that come before the system's on the PATH of this engine's hosts."""
    if engine == "28":
        return [str(PREFIX_28 / "usr/sbin"), str(PREFIX_28 / "usr/bin")]
    return []


def cli(h: LabHost) -> str:
    """The docker CLI of the host's own engine."""
    return str(PREFIX_28 / "usr/bin/docker") if kind(h) == "28" else "docker"


def docker(h: LabHost, *args: str) -> list[str]:
    return [cli(h), "-H", f"unix://{h.docker_socket}", *args]


# --- Docker 28: the prefix, the wrapper, daemon.json ------------------------------------


def ensure_engine28(log=print) -> None:
    """Install (or check) Docker 28 in its prefix: lab/setup/install-engine28.sh,
    idempotent, from its .deb cache when it has one."""
    p = subprocess.run(["bash", str(INSTALL_28)], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        said = (p.stderr or p.stdout).strip().splitlines()
        raise LabError(
            f"Docker 28 is not installed and {INSTALL_28} failed: "
            + (said[-1] if said else f"exit {p.returncode}")
        )
    for line in p.stdout.splitlines():
        if "dockerd:" in line:
            log("lab: " + line.removeprefix("install-engine28: ").strip())


@functools.cache
def _engine28_path() -> str:
    p = run(["bash", str(INSTALL_28), "--print-env"])
    return p.stdout.decode().strip()


def install_wrapper(path: str = restore_runtime.WRAPPER) -> None:
    """ferryman's restore runtime, where daemon.json names it (one file for every host:
    its `runc` is found on the PATH of the host's dockerd)."""
    text = restore_runtime.wrapper_script()
    p = Path(path)
    if p.exists() and p.read_text() == text:
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".new")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.replace(p)


def remove_wrapper(path: str = restore_runtime.WRAPPER) -> None:
    """`lab down`: the wrapper goes if it is ours (and its folder if that is then empty)."""
    p = Path(path)
    try:
        if p.read_text() == restore_runtime.wrapper_script():
            p.unlink()
            p.parent.rmdir()
    except OSError:
        pass
    for d in (restore_runtime.MARKERS, restore_runtime.CRIU_CONF_DIR):
        try:
            Path(d).rmdir()
        except OSError:
            pass


def daemon_json(h: LabHost) -> str:
    return restore_runtime.daemon_json_with_runtime(json.dumps({"experimental": True}))


# --- the daemon -------------------------------------------------------------------------


def pid(h: LabHost) -> int | None:
    try:
        p = int(h.dockerd_pidfile.read_text().strip())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def answering(h: LabHost) -> bool:
    return (
        run(
            docker(h, "version", "--format", "{{.Server.Version}}"), check=False, timeout=10
        ).returncode
        == 0
    )


def dockerd_argv(h: LabHost, extra: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The daemon's command line (in the host's namespace) and its PATH; `extra`: more
    options (a test's engine mode)."""
    common = [
        *extra,
        "--data-root",
        str(h.data_root),
        "--exec-root",
        str(h.exec_root),
        "--pidfile",
        str(h.dockerd_pidfile),
        "-H",
        f"unix://{h.docker_socket}",
        "--storage-driver",
        "overlay2",
    ]
    if kind(h) == "28":
        argv = [str(PREFIX_28 / "usr/sbin/dockerd"), "--config-file", str(h.daemon_json), *common]
        return in_ns(h.netns, argv), f"{h.bin_dir}:{_engine28_path()}"
    return in_ns(h.netns, ["dockerd", "--experimental", *common]), f"{h.bin_dir}:{PATH}"


def start(h: LabHost, timeout: float = 60, extra: tuple[str, ...] = ()) -> None:
    if pid(h) and answering(h):
        return
    for d in (h.data_root, h.exec_root, h.bin_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if kind(h) == "28":
        install_wrapper()
        h.daemon_json.write_text(daemon_json(h))
    argv, path = dockerd_argv(h, extra)
    log = open(h.dockerd_log, "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen(
        argv,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PATH": path},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answering(h):
            return
        time.sleep(0.2)
    raise LabError(
        f"{h.name}: dockerd did not answer on {h.docker_socket} within "
        f"{timeout:.0f} s; see {h.dockerd_log}"
    )


def _gone(p: int) -> bool:
    """The process has ended: no such pid, or a zombie (a dockerd started by this very
    process, e.g. a test's restart, stays one until reaped: reap it)."""
    try:
        os.waitpid(p, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{p}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def stop(h: LabHost, timeout: float = 30) -> None:
    p = pid(h)
    if p:
        os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _gone(p):
                break
            time.sleep(0.1)
        else:
            os.kill(p, signal.SIGKILL)
    h.dockerd_pidfile.unlink(missing_ok=True)


def versions(h: LabHost) -> EngineVersions:
    """The host's engine, containerd and runc, as its engine (and its binaries) say."""
    info = run(docker(h, "info", "--format", "{{json .}}"), check=False, timeout=20)
    ver = run(docker(h, "version", "--format", "{{json .Server}}"), check=False, timeout=20)
    try:
        i = json.loads(info.stdout or b"{}")
        v = json.loads(ver.stdout or b"{}") or {}
    except json.JSONDecodeError:
        return EngineVersions()
    env = {**os.environ, "PATH": ":".join([*path_dirs(kind(h)), PATH])}

    def line(tool: str) -> str:
        try:
            p = subprocess.run(
                [tool, "--version"], capture_output=True, text=True, env=env, timeout=10
            )
        except OSError:
            return ""
        return (p.stdout.splitlines() or [""])[0]

    def which(tool: str) -> str:
        return shutil.which(tool, path=env["PATH"]) or tool

    return from_engine(
        i,
        {"ApiVersion": v.get("ApiVersion", "")},
        containerd_line=line(which("containerd")),
        runc_line=line(which("runc")),
    )
