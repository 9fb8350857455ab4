"""Checkpointing through the engine's own runc state, with the options Docker would pass.

`docker checkpoint create` goes through containerd and takes seconds; `runc checkpoint`
on the runc state dockerd keeps (`<exec-root>/runtime-runc/moby`) makes the same image
in a fraction of that, and `docker start --checkpoint` restores it. runc stops the
container after the dump (Docker then sees it exit), unless `leave_running`.
"""

from __future__ import annotations

from core import remote
from core.engine import criu_conf


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


def under_conf_lock(
    argv: list[str], work_path: str, lock: str, conf_lines: tuple[str, ...] = ()
) -> str:
    """`argv` (a runc checkpoint) started under the host's runc.conf lock, held until CRIU
    has read its configuration (its log has begun), then released.

    runc hands CRIU `/etc/criu/runc.conf` on every call; a restore holds that file, with
    its own images and work folders in it, for as long as it starts. A dump starting then
    would read them too. So a dump waits for the lock (the container still runs, so the
    wait is not downtime) and lets go as soon as CRIU has its options.
    """
    q = remote.quote
    log = f"{work_path}/dump.log"
    held, release = "", ""
    if conf_lines:
        # Options runc has no flag for, in runc's CRIU config file for this dump only.
        held = criu_conf.hold("".join(f"{x}\n" for x in conf_lines), f"dump {argv[-1][:12]}") + "\n"
        release = "put_back; trap - EXIT; "
    return (
        f"mkdir -p {q([lock.rsplit('/', 1)[0]])} && exec 9>{q([lock])} && "
        f"{{ flock -w 120 9 || {{ echo 'the runc.conf lock ({lock}) stayed busy for 120 s' >&2; exit 75; }}; }}; "
        f"{held}"
        f"{q(argv)} 9>&- & rp=$!; "
        f"for _ in $(seq 1000); do [ -s {q([log])} ] && break; kill -0 $rp 2>/dev/null || break; sleep 0.01; done; "
        f"{release}exec 9>&-; wait $rp"
    )
