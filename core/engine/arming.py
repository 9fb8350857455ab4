"""Arming: every command the freeze will need started before it, waiting for one
newline (core/engine/armed.py): the dump, the streams, the target's restore."""

from __future__ import annotations

import functools

from core import events as ev
from core import remote
from core.engine import (
    checkpoint,
    criu_options,
    direct_path,
    lazy_phase,
    postcopy,
    restore,
    restore_runtime,
    twin,
)
from core.engine.armed import Armed
from core.engine.context import Run, source_own_conf
from core.engine.errors import MigrationError

# The dump and the restore are stopped on their host when they run longer than this
# (a lazy dump serves pages until the lazy phase ends: it is not bounded).
FIRE_LIMIT_S = 300.0


async def arm(m: Run) -> None:
    """Start, before the freeze, every command the freeze will need (core/engine/armed.py)."""
    c = m.ctx
    c.checkpoint_name = f"fm-{m.id}"
    conn_flags, conn_dump_lines, _ = criu_options.connection_defaults(m.req.criu_options)
    dump = checkpoint.checkpoint_cmd(
        runc_root=m.src.spec.runc_root,
        container_id=c.container_id,
        image_path=f"{c.src_dir}/img",
        work_path=f"{c.src_dir}/work",
        systemd_cgroup=c.src_systemd,
        leave_running=c.src_paused,  # frozen by the pause, and left so
        page_server=f"127.0.0.1:{c.pages.source_port}" if c.pages else None,
        parent_path=c.rounds.last_parent if c.rounds else None,
        extra_flags=tuple(criu_options.dump_flags(m.req.criu_options) + conn_flags),
    )
    pause = (
        checkpoint.pause_cmd(m.src.spec.runc_root, c.container_id, c.src_systemd)
        if c.src_paused
        else None
    )
    dump_cmd = checkpoint.under_conf_lock(
        dump,
        f"{c.src_dir}/work",
        restore.LOCK,
        conn_dump_lines,
        first=pause,
        own_conf=source_own_conf(m.ctx),
    )
    if m.strategy.lazy:
        dump_cmd = await lazy_phase.arm_lazy(m)
    c.armed_dump = await Armed(
        m.src.ssh, dump_cmd, limit_s=None if m.strategy.lazy else FIRE_LIMIT_S
    ).start()
    m.undo.push("disarm the prepared commands", functools.partial(disarm, m))
    streams: list[tuple[str, str]] = [(f"{c.src_dir}/img", f"{c.dst_dir}/img")]
    graph = c.inspect.get("GraphDriver") or {}
    upper = (graph.get("Data") or {}).get("UpperDir", "")
    if upper and c.twin_upper:
        streams.append((upper, c.twin_upper))
    else:
        m.emit(
            ev.Warning(text=f"the writable layer is not moved (storage driver {graph.get('Name')})")
        )
    for v in twin.named_volumes(c.inspect):
        dv = await m.dst.engine.volume(v["Name"])
        if dv is None:
            raise MigrationError(f"volume {v['Name']} vanished from {m.dst.name}", host=m.dst.name)
        streams.append((v["Source"], dv["Mountpoint"]))
    for s, d in streams:
        if c.direct is not None:  # host to host: the source's ssh connects now
            n = await direct_path.add_stream(c.direct, m.dst, d)
            send = remote.direct_send(s, c.direct.ssh_argv(n), armed=True)
            out = await Armed(m.src.ssh, send, waits_itself=True).start()
            c.armed_streams.append((out, None))
            assert out.proc is not None
            await direct_path.wait_ready(m.src.name, send, out.proc)
            continue
        c.armed_streams.append(
            (
                await Armed(m.src.ssh, remote.quote(remote.tar_create(s))).start(),
                await Armed(m.dst.ssh, remote.quote(remote.tar_extract(d))).start(),
            )
        )
    script = restore_script(m)
    if c.lazy_link is not None:  # post-copy: the lazy-pages daemon first, a lazy restore
        daemon = postcopy.lazy_daemon_cmd(
            f"{c.dst_dir}/img", f"{c.dst_dir}/work", c.lazy_link.target_port
        )
        script = f"{remote.quote(daemon)} && {script}"
    c.armed_restore = await Armed(m.dst.ssh, script, limit_s=FIRE_LIMIT_S).start()


def restore_script(m: Run) -> str:
    """The target's restore, by the twin's route (core/engine/restore_runtime.py)."""
    c = m.ctx
    extra = (
        (c.dst_cgroup.criu_options(c.twin_id) if c.dst_cgroup else ())
        + tuple(criu_options.config_lines(m.req.criu_options))
        + tuple(c.restore_lines)
    )
    lazy = c.lazy_link is not None
    if c.twin_route == restore_runtime.ROUTE_RUNTIME:
        try:
            return remote.quote(
                remote.bash(
                    restore_runtime.restore_script(
                        docker_socket=m.dst.spec.docker_socket,
                        container_id=c.twin_id,
                        images_dir=f"{c.dst_dir}/img",
                        work_dir=f"{c.dst_dir}/work",
                        criu_conf_file=c.twin_criu_conf,
                        flags=("--lazy-pages",) if lazy else (),
                        extra=extra,
                    )
                )
            )
        except restore_runtime.RouteError as e:
            raise MigrationError(f"the restore on {m.dst.name}: {e}") from None
    return restore.restore_script(
        docker_socket=m.dst.spec.docker_socket,
        data_root=c.dst_data_root,
        container_id=c.twin_id,
        name=c.checkpoint_name,
        images_dir=f"{c.dst_dir}/img",
        work_dir=f"{c.dst_dir}/work",
        extra=extra + (("lazy-pages",) if lazy else ()),
        criu_conf_file=c.twin_criu_conf,
        copy_images=c.twin_copies_images,
    )


async def disarm(m: Run) -> None:
    c = m.ctx
    for a in [c.armed_dump, c.armed_restore, *(x for pair in c.armed_streams for x in pair if x)]:
        if a is not None:
            a.disarm()
