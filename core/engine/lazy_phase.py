"""Post-copy's side of the machine (core/engine/postcopy.py holds the mechanism): the page
link and the lazy dump armed, the dump fired until its page server is up, and the lazy
phase, when the container runs on the target and its memory follows."""

from __future__ import annotations

import functools
import secrets

from core import events as ev
from core import remote
from core.engine import (
    criu_options,
    page_holder,
    postcopy,
    rollback,
)
from core.engine.context import Run, source_own_conf
from core.engine.errors import Aborted, MigrationError
from core.engine.transfer import Meter
from core.engine.undo import Step
from core.events import Phase


async def arm_lazy(m: Run) -> str:
    """The page link (target loopback → source loopback) and the source's lazy dump."""
    c = m.ctx
    c.lazy_link = postcopy.LazyLink(
        m.src.ssh,
        m.dst.ssh,
        lazy_meter(m),
        daemon_pidfile=f"{c.dst_dir}/work/lazy-pages.pid",  # postcopy.lazy_daemon_cmd's
    )
    await c.lazy_link.open()
    m.undo.push("close the page link", c.lazy_link.close)
    # The source end of the link is held by a process of its own: a cut SSH connection
    # must not look like the end of the transfer to CRIU (core/engine/page_holder.py).
    c.lazy_link.hold_port = 20000 + secrets.randbelow(40000)
    holder_pid = f"{c.src_dir}/page-holder.pid"
    await m.ops.sh(
        m.src,
        remote.quote(
            page_holder.holder_command(c.lazy_link.hold_port, c.lazy_link.source_port, holder_pid)
        ),
        what="starting the page holder",
        input=c.lazy_link.hold_token.decode() + "\n",
    )
    c.lazy_boot_id = await m.ops.boot_id(m.src)
    m.undo.push(
        "stop the page holder",
        lambda: m.ops.run_quiet(m.src, remote.kill_pidfile(holder_pid)),
    )
    m.log(
        "ferryman",
        f"post-copy: {m.dst.name} 127.0.0.1:{c.lazy_link.target_port} will reach "
        f"{m.src.name} 127.0.0.1:{c.lazy_link.source_port} through this console",
    )
    return postcopy.lazy_dump_script(
        runc_root=m.src.spec.runc_root,
        container_id=c.container_id,
        image_path=f"{c.src_dir}/img",
        work_path=f"{c.src_dir}/work",
        port=c.lazy_link.source_port,
        systemd_cgroup=c.src_systemd,
        parent_path=c.rounds.last_parent if c.rounds else None,
        extra_flags=tuple(
            criu_options.dump_flags(m.req.criu_options)
            + criu_options.connection_defaults(m.req.criu_options)[0]
        ),
        extra_conf=criu_options.connection_defaults(m.req.criu_options)[1],
        conf_file=source_own_conf(m.ctx),
    )


def lazy_meter(m: Run) -> Meter:
    return Meter(lambda total, rate, done: None)  # reported by LazyProgress


async def fire_lazy_dump(m: Run) -> None:
    c = m.ctx
    assert c.armed_dump is not None
    m.log(m.src.name, "$ " + c.armed_dump.command.strip(), "cmd")
    proc = c.armed_dump.fire(last=True)
    c.lazy_dump = postcopy.LazyDump(proc)
    # From here the source's tasks are held by the dump; bring them back before anything.
    m.undo.push(
        rollback.RESCUE_SOURCE,
        functools.partial(rollback.rescue_source, m),
        decisive=True,
        kind="rescue",
    )
    if not await c.lazy_dump.wait_ready():
        raise MigrationError(
            f"runc checkpoint --lazy-pages failed on {m.src.name} "
            f"(status {c.lazy_dump.exit_status}): " + " ".join(c.lazy_dump.output[-3:]),
            host=m.src.name,
            log=await m.ops.fetch(m.src, f"{c.src_dir}/work/dump.log"),
            log_name="dump.log",
        )
    m.save_ctx()  # recovery must know of the frozen copy, should this console die
    holder_mark = f"{c.src_dir}/page-holder.pid{page_holder.CRIU_MARK}"
    held = await m.src.ssh.run(
        remote.quote(remote.wait_for_file(holder_mark, 2.0)), check=False, timeout=15
    )
    if not held.ok:
        raise MigrationError(
            f"on {m.src.name}, a process other than ferryman's page holder connected "
            "to CRIU's lazy page server first (any local process can reach the loopback): "
            "the move stops before it serves any page to the target",
            "find what connects to 127.0.0.1 ports on the source (a `--network host` "
            "container, a port scanner), or use stop-and-copy or pre-copy",
            host=m.src.name,
        )
    m.log(m.src.name, "the frozen container serves its memory (lazy page server up)")


async def frozen_part_of_lazy_dump(m: Run, wall_s: float) -> float:
    log = await m.ops.fetch(m.src, f"{m.ctx.src_dir}/work/dump.log")
    frozen = postcopy.frozen_seconds(log)
    return min(wall_s, frozen) if frozen is not None else wall_s


async def lazy_phase(m: Run) -> None:
    """The container runs on the target; its memory follows. At risk until done."""
    c = m.ctx
    assert c.lazy_link is not None and c.lazy_dump is not None
    async with m.phase(Phase.LAZY):
        m.emit(
            ev.Warning(
                text=f"lazy phase: {c.name}'s memory is split between {m.src.name} and "
                f"{m.dst.name} until the last page arrives; losing either host or the "
                "link now loses the container"
            )
        )

        def report(n: postcopy.PageCounts, total: int, rate: float, done: bool) -> None:
            m.emit(
                ev.LazyProgress(
                    pages_on_fault=n.on_fault,
                    pages_prefetched=n.prefetched,
                    total_bytes=total,
                    rate_bps=rate,
                    done=done,
                )
            )

        try:
            res = await postcopy.watch(
                dump=c.lazy_dump,
                link=c.lazy_link,
                dst=m.dst.ssh,
                lazy_log=f"{c.dst_dir}/work/lazy-pages.log",
                report=report,
                aborted=lambda: m.aborted,
            )
        except InterruptedError as e:
            raise Aborted(str(e)) from None
        except RuntimeError as e:
            raise MigrationError(
                f"the lazy phase failed: {e}",
                host=m.dst.name,
                log=await m.ops.fetch(m.dst, f"{c.dst_dir}/work/lazy-pages.log"),
                log_name="lazy-pages.log",
            ) from None
        c.bytes_moved += res.bytes
        m.log(
            "ferryman",
            f"lazy phase over in {res.seconds:.1f} s: {res.counts.copied} pages "
            f"({res.counts.on_fault} on fault, {res.counts.prefetched} prefetched), "
            f"{res.bytes} bytes; {c.name} is whole on {m.dst.name}",
        )
        # The source's tasks are gone (CRIU ended them) and its images lack the memory:
        # from here a rollback can only restart the source container, and says so.
        m.undo.drop("rescue")
        m.undo.replace(
            "resume",
            Step(
                rollback.RESUME_SOURCE,
                functools.partial(rollback.restart_source, m),
                True,
                "resume",
            ),
        )
        c.lazy_done = True
        m.save_ctx()
        await c.lazy_link.close()
        if refused := c.lazy_link.refused:
            m.emit(ev.Warning(text=postcopy.refused_text(m.dst.name, refused)))
