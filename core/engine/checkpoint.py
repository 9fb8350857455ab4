"""Checkpointing through the engine's own runc state, with the options Docker would pass.

`docker checkpoint create` goes through containerd and takes seconds; `runc checkpoint`
on the runc state dockerd keeps (`<exec-root>/runtime-runc/moby`) makes the same image
in a fraction of that, and `docker start --checkpoint` restores it. runc stops the
container after the dump (Docker then sees it exit), unless `leave_running`.
"""

from __future__ import annotations

from core import remote


def checkpoint_cmd(
    *,
    runc_root: str,
    container_id: str,
    image_path: str,
    work_path: str,
    systemd_cgroup: bool = False,
    leave_running: bool = False,
    parent_path: str | None = None,
    pre_dump: bool = False,
    tcp_established: bool = False,
    page_server: str | None = None,
    extra_flags: tuple[str, ...] = (),
) -> list[str]:
    args = ["checkpoint", "--image-path", image_path, "--work-path", work_path]
    if pre_dump:
        args.append("--pre-dump")
    if parent_path:
        args += ["--parent-path", parent_path]
    if leave_running:
        args.append("--leave-running")
    if page_server:
        args += ["--page-server", page_server]
    if tcp_established:
        args.append("--tcp-established")
    args += [f for f in extra_flags if f not in args]
    argv = remote.runc(runc_root, *args, container_id)
    if systemd_cgroup:
        argv.insert(1, "--systemd-cgroup")
    return argv
