"""Checkpointing through the engine's own runc state, with the options Docker would pass.

`docker checkpoint create` goes through containerd and takes seconds; `runc checkpoint`
on the runc state dockerd keeps (`<exec-root>/runtime-runc/moby`) makes the same image
in a fraction of that, and `docker start --checkpoint` restores it. runc stops the
container after the dump (Docker then sees it exit), unless `leave_running`.

A source on Docker >= 28 cannot be brought back with `docker start --checkpoint` (its
restore fails there: core/engine/restore_runtime.py), so it is never killed before the
commit: `runc pause` freezes it (the freeze starts there), `runc checkpoint
--leave-running` dumps the frozen tasks and leaves them frozen, a rollback thaws them
(`runc resume`: memory and state as they were), and the commit removes the frozen copy
(`docker rm -f`). Docker never sees it exit, so no restart policy can start it again.
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


def pause_cmd(runc_root: str, container_id: str, systemd_cgroup: bool = False) -> list[str]:
    """Freeze the container's tasks (cgroup freezer), behind Docker's back."""
    argv = remote.runc(runc_root, "pause", container_id)
    if systemd_cgroup:
        argv.insert(1, "--systemd-cgroup")
    return argv


THAW_SCRIPT = r"""
root="$1"; id="$2"; sd="$3"; thaw="$4"
st=$(runc $sd --root "$root" state "$id" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
if [ "$st" = paused ] && [ "$thaw" = thaw ]; then runc $sd --root "$root" resume "$id" && st=running; fi
echo "STATUS ${st:-gone}"
"""


def thaw_cmd(
    runc_root: str, container_id: str, systemd_cgroup: bool = False, *, thaw: bool = True
) -> list[str]:
    """Thaw a container frozen by `pause_cmd` (a no-op when it runs); prints `STATUS
    <runc's state>` at the end: `running` is what a rollback wants. `thaw=False`: only
    say the state."""
    sd = "--systemd-cgroup" if systemd_cgroup else ""
    return [
        "bash",
        "-c",
        THAW_SCRIPT,
        "thaw",
        runc_root,
        container_id,
        sd,
        "thaw" if thaw else "peek",
    ]


def frozen_seconds(stamps: str) -> float | None:
    """The freeze from FROZEN_FROM's and FROZEN_TO's text (`cat` of both, in that order)."""
    try:
        t0, t1 = (int(x) for x in stamps.split())
    except ValueError:
        return None
    return (t1 - t0) / 1e9 if t1 >= t0 else None


def thaw_status(output: str) -> str:
    """The state `thaw_cmd` printed (`running`, `paused`, `stopped`, `gone`, ...)."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("STATUS "):
            return line.split(" ", 1)[1].strip() or "gone"
    return "gone"


FROZEN_FROM = "frozen-from"  # in the work folder: `date +%s%N` once the pause has frozen it
FROZEN_TO = "frozen-to"  # ... and when the dump has ended


def under_conf_lock(
    argv: list[str],
    work_path: str,
    lock: str,
    conf_lines: tuple[str, ...] = (),
    *,
    first: list[str] | None = None,
    own_conf: str = "",
) -> str:
    """`argv` (a runc checkpoint) started under the host's runc.conf lock, held until CRIU
    has read its configuration (its log has begun), then released.

    runc hands CRIU `/etc/criu/runc.conf` on every call; a restore holds that file, with
    its own images and work folders in it, for as long as it starts. A dump starting then
    would read them too. So a dump waits for the lock (the container still runs, so the
    wait is not downtime) and lets go as soon as CRIU has its options.

    `own_conf`: the container's own CRIU file (its `org.criu.config` annotation), which
    runc reads instead of runc.conf: `conf_lines` go there.
    `first`: a command run just before the dump, once the lock is held (`runc pause`:
    the freeze starts after the wait for the lock, never before); the host's clock when
    it has returned (the tasks are frozen) and when the dump has ended go to FROZEN_FROM
    and FROZEN_TO in `work_path`: the freeze, measured on the source itself (runc's own
    start-up before the pause is not downtime).
    """
    q = remote.quote
    log = f"{work_path}/dump.log"
    run = q(argv)
    if first:
        t0, t1 = q([f"{work_path}/{FROZEN_FROM}"]), q([f"{work_path}/{FROZEN_TO}"])
        run = (
            f"{q(remote.mkdir_private(work_path))} && {q(first)} && date +%s%N > {t0} && "
            f"{q(argv)}; rc=$?; date +%s%N > {t1} 2>/dev/null; exit $rc"
        )
    held, release = "", ""
    if conf_lines:
        # Options runc has no flag for, in the CRIU config file runc reads for this
        # container (runc.conf, or its own file), for this dump only.
        text = "".join(f"{x}\n" for x in conf_lines)
        held = (
            criu_conf.hold_own(text, own_conf)
            if own_conf
            else criu_conf.hold(text, f"dump {argv[-1][:12]}")
        ) + "\n"
        release = "put_back; trap - EXIT; "
    return (
        f"{criu_conf.take_lock(lock, 120)}; "
        f"{held}"
        f"( {run} ) 9>&- & rp=$!; "
        f"for _ in $(seq 1000); do [ -s {q([log])} ] && break; kill -0 $rp 2>/dev/null || break; sleep 0.01; done; "
        f"{release}exec 9>&-; wait $rp"
    )
