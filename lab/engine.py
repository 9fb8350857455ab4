"""One dockerd per lab host: its own data root, exec root, socket; experimental on."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from lab.layout import LabHost
from lab.shell import LabError, in_ns, run
from lab.sshd import PATH


def pid(h: LabHost) -> int | None:
    try:
        p = int(h.dockerd_pidfile.read_text().strip())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def docker(h: LabHost, *args: str) -> list[str]:
    return ["docker", "-H", f"unix://{h.docker_socket}", *args]


def answering(h: LabHost) -> bool:
    return (
        run(
            docker(h, "version", "--format", "{{.Server.Version}}"), check=False, timeout=10
        ).returncode
        == 0
    )


def start(h: LabHost, timeout: float = 60) -> None:
    if pid(h) and answering(h):
        return
    for d in (h.data_root, h.exec_root, h.bin_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = in_ns(
        h.netns,
        [
            "dockerd",
            "--experimental",
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
        ],
    )
    log = open(h.dockerd_log, "ab")  # noqa: SIM115 - handed to the daemon
    subprocess.Popen(
        argv,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PATH": f"{h.bin_dir}:{PATH}"},
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


def stop(h: LabHost, timeout: float = 30) -> None:
    p = pid(h)
    if p:
        os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(p, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            os.kill(p, signal.SIGKILL)
    h.dockerd_pidfile.unlink(missing_ok=True)
