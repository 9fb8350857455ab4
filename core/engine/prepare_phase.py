"""Prepare: the lock, the image folders, the image on the target, the volumes, the twin
(created, not started), the source's restart policy suspended, the page stream opened
(stop-and-copy). Each change pushes its undo step."""

from __future__ import annotations

import functools

from core import events as ev
from core import remote
from core.engine import (
    direct_path,
    restore_runtime,
    rollback,
    twin,
)
from core.engine.context import Run
from core.engine.errors import MigrationError
from core.engine.page_stream import PageStream
from core.engine.transfer import Meter, relay
from core.events import Phase
from core.ssh import CommandError, HostError


async def prepare(m: Run) -> None:
    c, req = m.ctx, m.req
    async with m.phase(Phase.PREPARE):
        await m.lock.take(c.container_id, m.id, c.name)
        c.src_dir = f"{m.src.spec.images_dir}/{m.id}"
        c.dst_dir = f"{m.dst.spec.images_dir}/{m.id}"
        await m.ops.sh(
            m.src,
            remote.quote(remote.mkdir_private(c.src_dir)),
            what="making the image folder",
        )
        m.undo.push("remove the source's image folder", lambda: m.ops.rm(m.src, c.src_dir))
        await m.ops.sh(
            m.dst,
            remote.quote(remote.mkdir_private(f"{c.dst_dir}/img", f"{c.dst_dir}/work")),
            what="making the image folder",
        )
        m.undo.push("remove the target's image folder", lambda: m.ops.rm(m.dst, c.dst_dir))
        if c.direct is not None:
            await install_direct(m)
        await ensure_image(m)
        m.check_abort()
        for v in twin.named_volumes(c.inspect):
            await create_volume(m, v["Name"], v.get("Driver") or "local")
        body, c.twin_criu_conf = restore_runtime.twin_for_route(
            twin.create_body(c.inspect), c.twin_route, m.id
        )
        # The twin never restarts on its own during the move: it gets the container's
        # restart policy at the commit point.
        body["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
        c.twin_id = await m.dst.engine.create_raw(c.name, body)
        m.undo.push("remove the twin on the target", functools.partial(rollback.remove_twin, m))
        m.save_ctx()
        if c.twin_route == restore_runtime.ROUTE_RUNTIME:
            m.log(
                m.dst.name,
                f"the twin runs under the restore runtime {restore_runtime.RUNTIME} "
                f"(Docker {c.dst_engine} cannot restore by itself); CRIU's options in "
                f"its own file {c.twin_criu_conf}, only for the restore",
            )
        tw = await m.dst.engine.inspect(c.twin_id) or {}
        c.twin_upper = ((tw.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir", "")
        src_upper = ((c.inspect.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
        if src_upper and not c.twin_upper:
            driver = (tw.get("GraphDriver") or {}).get("Name")
            raise MigrationError(
                f"{m.dst.name}'s storage driver ({driver}) gives the twin no upper "
                f"directory: {c.name}'s writable layer (files it wrote) could not be moved",
                f"use the overlay2 storage driver on {m.dst.name}",
                host=m.dst.name,
            )
        await empty_volumes(m)
        m.log(m.dst.name, f"twin {c.name} created ({c.twin_id[:12]}), not started")
        await suspend_restart_policy(m)
        if m.strategy.streams_pages and c.direct is None:
            await open_page_stream(m)
        del req


async def install_direct(m: Run) -> None:
    """The one-time key of the direct path on both hosts (core/engine/direct_path.py)."""
    c = m.ctx
    assert c.direct is not None
    c.direct_keys_file = c.direct.keys_file
    m.save_ctx()  # before the key exists: a console that dies now leaves it to recovery
    m.undo.push(
        f"remove the one-time transfer key from {m.dst.name}:{c.direct.keys_file}",
        functools.partial(rollback.revoke_direct_key, m),
    )
    try:
        await direct_path.install(c.direct, m.src, m.dst, c.src_dir, c.dst_dir)
    except (CommandError, HostError) as e:
        raise MigrationError(
            f"the direct path's one-time key could not be set up: {e}",
            "run without --direct, or check that the SSH user may write "
            f"{c.direct.keys_file} on {m.dst.name} (`authorized_keys:` in the hosts file "
            "names another file)",
            host=getattr(e, "host", m.dst.name),
        ) from None
    m.log(
        "ferryman",
        f"{c.direct.describe()}: key {c.direct.marker} allowed on {m.dst.name} from "
        f"{c.direct.from_address} only, for the migration's receiver only",
    )


async def open_page_stream(m: Run) -> None:
    c = m.ctx
    c.meter = m.ops.meter()
    stream = PageStream(m.src.ssh, m.dst.ssh, c.meter)
    m.undo.push("stop the page server", stream.close)
    try:
        await stream.open(f"{c.dst_dir}/img", f"{c.dst_dir}/work")
    except Exception as e:  # noqa: BLE001 - streaming is an optimisation; tar still works
        await stream.close()
        m.emit(
            ev.Warning(
                text=f"memory will be copied after the dump, not streamed during it "
                f"({e}); the freeze will be longer"
            )
        )
        return
    c.pages = stream
    c.pages_streamed = True
    where = (
        f"127.0.0.1:{stream.target_port}"
        if stream.target_port
        else "a socket pair (nothing listens there)"
    )
    m.log(
        "ferryman",
        f"page server on {m.dst.name} {where}, "
        f"reached from {m.src.name} 127.0.0.1:{stream.source_port} through this console",
    )


async def create_volume(m: Run, name: str, driver: str) -> None:
    if await m.dst.engine.volume(name) is not None:
        raise MigrationError(
            f"a volume named {name} already exists on {m.dst.name}",
            f"remove it there, or rename it, before moving {m.ctx.name}",
        )
    src = await m.src.engine.volume(name) or {}
    await m.dst.engine.create_volume(
        name, driver, options=src.get("Options"), labels=src.get("Labels")
    )
    m.ctx.moved_volumes.append(name)

    async def undo() -> None:
        await m.dst.engine.remove_volume(name)
        m.ctx.moved_volumes.remove(name)

    m.undo.push(f"remove volume {name} on {m.dst.name}", undo)


async def empty_volumes(m: Run) -> None:
    """Docker copies the image's files into a new volume when the twin is created; the
    volume must hold what the source's holds, no more (files deleted there stay so)."""
    paths = []
    for name in m.ctx.moved_volumes:
        dv = await m.dst.engine.volume(name)
        if dv is not None:
            paths.append(dv["Mountpoint"])
    if paths:
        await m.ops.sh(
            m.dst,
            remote.quote(remote.empty_dirs(paths)),
            what="emptying the new volumes",
        )


async def suspend_restart_policy(m: Run) -> None:
    """A restart policy would make dockerd start the container again the moment the
    dump stops it: two copies. Suspend it for the move; put back on rollback."""
    c = m.ctx
    pol = (c.inspect.get("HostConfig") or {}).get("RestartPolicy") or {}
    if (pol.get("Name") or "no") == "no":
        return
    c.restart_policy = {
        "Name": pol["Name"],
        "MaximumRetryCount": int(pol.get("MaximumRetryCount") or 0),
    }
    await m.src.engine.set_restart_policy(c.container_id, {"Name": "no"})
    m.undo.push(
        "put back the restart policy on the source", functools.partial(rollback.put_back_policy, m)
    )
    m.save_ctx()
    m.log(
        m.src.name,
        f"restart policy {pol['Name']} suspended on {m.src.name} for the move "
        "(the twin gets it at the commit)",
    )


async def ensure_image(m: Run) -> None:
    c = m.ctx
    image_id, ref = c.inspect["Image"], c.inspect["Config"]["Image"]
    if await m.dst.engine.has_image(image_id):
        m.log(m.dst.name, f"image {ref} already there")
        return
    m.log(m.dst.name, f"image {ref} missing: streaming docker save | docker load")
    meter = Meter(
        lambda total, rate, done: m.emit(
            ev.BytesMoved(phase=Phase.PREPARE.value, total_bytes=total, rate_bps=rate, done=done)
        )
    )
    await relay(
        m.src.ssh,
        remote.quote(remote.docker("save", ref, socket=m.src.spec.docker_socket)),
        m.dst.ssh,
        remote.quote(remote.docker("load", "-q", socket=m.dst.spec.docker_socket)),
        meter,
        lambda: m.aborted,
    )
    meter.finish()
    if not await m.dst.engine.has_image(image_id):
        raise MigrationError(
            f"image {ref} did not arrive on {m.dst.name} intact (different id)",
            host=m.dst.name,
        )
