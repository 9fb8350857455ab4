"""Restoring through stock Docker without Docker copying the memory image.

`docker start --checkpoint NAME` makes Docker tar the checkpoint folder into containerd
and untar it again before CRIU starts (seconds for a big container). Instead the
checkpoint folder holds only `descriptors.json`, and runc's CRIU configuration file
(`/etc/criu/runc.conf`, which runc hands to CRIU on every restore, its options winning)
names the real image folder. That file is host-wide, so it exists only for the length of
our own restore, under a lock, and any file the admin had there is put back, even when
the restore fails or the connection drops.

CRIU before 4.2 (Debian 12's 3.17.1, Debian 13's 4.1.1) cannot take `images-dir` from
that file when runc drives it: its RPC service `readlink`s the images folder it was
given, which fails for a real folder (cr-service.c, `setup_opts_from_req`; gone in 4.2).
On such a host the copy route (`copy_images`) puts the whole image, pre-copy rounds
included, into the checkpoint folder, and Docker copies it twice before CRIU starts
(`COPY_BYTES_PER_S` below, measured). The rounds sit under `pre/` there with the final
image's `parent` link pointing into it, so the relative links survive Docker's copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import remote, versions
from core.engine import criu_conf as conf_file
from core.engine import restore_runtime

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


# Docker's own copy of a checkpoint folder (tar into containerd, untar into the task's
# work folder) before `docker start --checkpoint` hands it to runc, measured on Docker
# 20.10 (the lab's namespace hosts), 64 MiB workload: restores took 2.27-2.63 s with
# Debian 13's CRIU 4.1.1 on this route against 0.80-0.90 s in place with 4.2.1, about
# 1.6 s more for 64 MiB (Docker's copy alone took 4.0 s for 256 MiB by hand).
COPY_BYTES_PER_S = 40 * 2**20
IN_PLACE_CRIU = (4, 2)  # CRIU from which runc's file may name the images folder


def reads_in_place(criu_version: str) -> bool:
    """Whether CRIU of this version restores from a folder named in runc's file (else
    the copy route). Unknown versions: in place (preflight refuses a host without CRIU)."""
    n = versions.numbers(criu_version.strip())
    return not n or (n + (0,))[:2] >= IN_PLACE_CRIU


def copies_images(route: str, criu_version: str) -> bool:
    """Whether a restore on a target with this route and CRIU takes the copy route: not
    through the restore runtime (runc reads the images in place there), and CRIU < 4.2."""
    return route != restore_runtime.ROUTE_RUNTIME and not reads_in_place(criu_version)


def copy_cost_s(image_bytes: int) -> float:
    """Predicted seconds Docker's copy adds to a restore on the copy route."""
    return max(0, image_bytes) / COPY_BYTES_PER_S


def checkpoint_folder(data_root: str, container_id: str, name: str) -> str:
    return f"{data_root}/containers/{container_id}/checkpoints/{name}"


def criu_conf(
    images_dir: str, work_dir: str, extra: tuple[str, ...] = (), *, in_place: bool = True
) -> str:
    lines = [
        *([f"images-dir {images_dir}"] if in_place else []),
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
    copy_images: bool = False,
) -> str:
    """One shell script: stage the checkpoint folder, hold the config file, start.

    `criu_conf_file`: the container's own CRIU file (its `org.criu.config` annotation,
    engines with API >= 1.43): written for the length of the restore, no host lock, and
    removed after; without it, runc's host-wide file under the lock.
    `copy_images`: the copy route (CRIU < 4.2, see the module's text)."""
    folder = checkpoint_folder(data_root, container_id, name)
    conf = criu_conf(images_dir, work_dir, extra, in_place=not copy_images)
    start = remote.quote(
        remote.docker("start", "--checkpoint", name, container_id, socket=docker_socket)
    )
    stage = remote.all_of(
        remote.mkdir_private(folder, work_dir),
        copy_image_cmd(images_dir, folder)
        if copy_images
        else ["cp", f"{images_dir}/descriptors.json", f"{folder}/descriptors.json"],
    )
    if criu_conf_file:
        return f"{stage} && {remote.quote(remote.bash(conf_file.own_file(conf, criu_conf_file, start)))}"
    inner = f"""
{conf_file.take_lock(LOCK, 60)}
set -e
{conf_file.hold(conf, f"restore {name}")}
{start}
"""
    return f"{stage} && {remote.quote(remote.bash(inner))}"


def copy_image_cmd(images_dir: str, folder: str) -> list[str]:
    """The whole image into Docker's checkpoint folder, hard links where the file system
    allows (Docker reads it once to copy it; nothing writes to it). A pre-copy chain
    (`parent` -> `../preN`, each round naming the one before the same way) goes to
    `pre/` inside the folder, and the final image's link is pointed there."""
    script = r"""
set -e
img=$1 dst=$2
link() { cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }
for f in "$img"/* "$img"/.[!.]*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  [ "${f##*/}" = parent ] && continue
  link "$f" "$dst/"
done
if [ -L "$img/parent" ]; then
  up=$(dirname "$img")
  mkdir -p "$dst/pre"
  for r in "$up"/pre[0-9]*; do [ -d "$r" ] && link "$r" "$dst/pre/"; done
  ln -sfn "pre/$(basename "$(readlink "$img/parent")")" "$dst/parent"
fi
"""
    return ["bash", "-c", script, "copy_image", images_dir, folder]


def cleanup_folder(data_root: str, container_id: str, name: str) -> list[str]:
    return remote.remove_tree(checkpoint_folder(data_root, container_id, name))
