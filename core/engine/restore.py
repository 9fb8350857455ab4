"""Restoring through stock Docker without Docker copying the memory image.

`docker start --checkpoint NAME` makes Docker tar the checkpoint folder into containerd
and untar it again before CRIU starts (seconds for a big container). Instead the
checkpoint folder holds only `descriptors.json`, and runc's CRIU configuration file
(`/etc/criu/runc.conf`, which runc hands to CRIU on every restore, its options winning)
names the real image folder. That file is host-wide, so it exists only for the length of
our own restore, under a lock, and any file the admin had there is put back, even when
the restore fails or the connection drops.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import remote
from core.engine import criu_conf as conf_file

CONF, LOCK = conf_file.CONF, conf_file.LOCK


@dataclass(frozen=True)
class CgroupLayout:
    """Where an engine puts a container's cgroup, for CRIU's `cgroup-root` on restore.

    On cgroup v2, runc (1.1) does not tell CRIU the new container's cgroup: the restored
    tasks would land in the *source* container's path (recorded in the image), outside
    the twin's cgroup, and the next checkpoint could not freeze them. So on v2 the CRIU
    configuration names the twin's cgroup explicitly; on v1 runc maps each controller.
    """

    version: str  # "1" or "2"
    driver: str  # cgroupfs | systemd

    @classmethod
    def from_info(cls, info: dict) -> CgroupLayout:
        return cls(
            str(info.get("CgroupVersion") or "1"), str(info.get("CgroupDriver") or "cgroupfs")
        )

    def path(self, container_id: str) -> str:
        if self.driver == "systemd":
            return f"/system.slice/docker-{container_id}.scope"
        return f"/docker/{container_id}"

    def criu_options(self, container_id: str) -> tuple[str, ...]:
        return (f"cgroup-root {self.path(container_id)}",) if self.version == "2" else ()


def checkpoint_folder(data_root: str, container_id: str, name: str) -> str:
    return f"{data_root}/containers/{container_id}/checkpoints/{name}"


def criu_conf(images_dir: str, work_dir: str, extra: tuple[str, ...] = ()) -> str:
    lines = [
        f"images-dir {images_dir}",
        f"work-dir {work_dir}",
        "log-file restore.log",
        "verbosity 4",
        *extra,
    ]
    return "".join(line + "\n" for line in lines)


def restore_script(
    *,
    docker_socket: str,
    data_root: str,
    container_id: str,
    name: str,
    images_dir: str,
    work_dir: str,
    extra: tuple[str, ...] = (),
    criu_conf_file: str = "",
) -> str:
    """One shell script: stage the tiny checkpoint folder, hold the config file, start.

    `criu_conf_file`: the container's own CRIU file (its `org.criu.config` annotation,
    engines with API >= 1.43): written for the length of the restore, no host lock, and
    removed after; without it, runc's host-wide file under the lock."""
    folder = checkpoint_folder(data_root, container_id, name)
    conf = criu_conf(images_dir, work_dir, extra)
    start = remote.quote(
        remote.docker("start", "--checkpoint", name, container_id, socket=docker_socket)
    )
    stage = remote.all_of(
        ["mkdir", "-p", LOCK.rsplit("/", 1)[0]],
        remote.mkdir_private(folder, work_dir),
        ["cp", f"{images_dir}/descriptors.json", f"{folder}/descriptors.json"],
    )
    if criu_conf_file:
        return f"{stage} && {remote.quote(remote.bash(conf_file.own_file(conf, criu_conf_file, start)))}"
    inner = f"""
set -e
{conf_file.hold(conf, f"restore {name}")}
{start}
"""
    return f"{stage} && {remote.quote(remote.flock(LOCK, inner))}"


def cleanup_folder(data_root: str, container_id: str, name: str) -> list[str]:
    return remote.remove_tree(checkpoint_folder(data_root, container_id, name))
