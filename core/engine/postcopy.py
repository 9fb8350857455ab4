"""Post-copy: the container moves first, its memory after (CRIU lazy pages, stock Docker).

What runs where (all of it measured on Docker 20.10 / runc 1.1.5 / CRIU 4.2.1):

* source: `runc checkpoint --lazy-pages --page-server 127.0.0.1:P --status-fd 3` on the
  engine's runc state. CRIU freezes the container, writes every image except the memory
  of lazy-able mappings (a few hundred KiB), says "ready" on the status fd, and then
  *serves the memory from the frozen process itself* (page pipes held by the dump
  process) until the target's lazy-pages daemon says it has everything; only then does
  CRIU kill the source's tasks and runc exit. Over runc, CRIU ignores the address given
  with the page server in lazy mode (cr-service.c), so it would listen on every address:
  runc's CRIU config file on the source names `address 127.0.0.1` for the length of the
  dump's start (it is read once, when runc hands CRIU the request) and is removed as
  soon as CRIU is ready.
* target: `criu lazy-pages --page-server --address 127.0.0.1 --port P2` (a daemon), then
  `docker start --checkpoint` with runc's config file naming `lazy-pages`, the image
  folder and the work folder where the daemon's socket is (core/engine/restore.py): the
  restore maps the memory empty, registered with userfaultfd, and the container runs
  while the daemon pulls pages: on fault first, and everything else in the background.
* the link: P2 is a listener on the target's loopback (sshd's remote forward) that the
  console joins to a direct-tcpip channel to the source's page holder (127.0.0.1:H, a
  detached process, core/engine/page_holder.py), which holds the connection to CRIU's
  127.0.0.1:P. Nothing listens on the network; the bytes are encrypted by the two SSH
  connections.

The risk, and what keeps the source whole: until the last page has arrived, the
container's memory is split between the hosts. The complete copy is the frozen source
process: CRIU keeps it frozen (cgroup freezer, ptrace) and intact until the transfer
ends. CRIU takes *any* end of the page-server connection for the end of the transfer and
then kills the source's tasks, so no end reaches it that the target did not announce
(`PS_IOV_CLOSE` in the request stream): the console's link holds the target's end open
when the source side breaks, and the page holder holds CRIU's end open when the SSH
connection to the source is cut. Then the twin is killed first, the dump process next
(SIGKILL: the tasks stay frozen, memory intact) and the container is thawed on the
source (`runc resume`). If the dump process fails on its own (an error, not an end),
CRIU resumes the source's tasks itself; the twin is killed as the first rollback step.

Measured on the VM lab: without `address 127.0.0.1`, CRIU listened on 0.0.0.0, and a
connection from another host that closed at once was logged as "Lazy pages transfer
finished successfully": CRIU killed the container (exit 137) with its memory unsent.

Limits: after the lazy phase the source's tasks are gone and its images hold no memory,
so a later rollback can only restart the source container (said as a warning). If the
console itself dies during the lazy phase, the page holder keeps CRIU waiting and the
source frozen; `ferryman recover` (or the console at its next start) stops the twin and
thaws the source from its frozen copy. Losing the source host itself in the lazy phase
loses the container: that is post-copy's price, and the console marks the phase at risk.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shlex
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncssh

from core import remote
from core.engine import checkpoint, criu_conf
from core.engine.transfer import Meter
from core.ssh import HostConnection

CHUNK = 1 << 20
PAGE = 4096
# struct page_server_iov { u32 cmd; u64 nr_pages; u64 vaddr; u64 dst_id; } (criu/page-xfer.c)
PSI_SIZE = 32
PS_IOV_CLOSE = 0x1023
PS_IOV_FORCE_CLOSE = 0x1024
PS_CMD_MASK = 0xFFFF


def lazy_dump_script(
    *,
    runc_root: str,
    container_id: str,
    image_path: str,
    work_path: str,
    port: int,
    systemd_cgroup: bool = False,
    parent_path: str | None = None,
    extra_flags: tuple[str, ...] = (),
    extra_conf: tuple[str, ...] = (),
    conf_file: str = "",
) -> str:
    """The source's lazy dump: prints `RUNC <pid>`, `READY` when CRIU serves pages, `EXIT <rc>`.

    runc's CRIU config file names the loopback for the page server; it exists from before
    runc starts until CRIU is ready (or runc has exited), under the host's runc.conf lock.
    `conf_file`: the container's own CRIU file instead (a container restored onto Docker
    >= 28 by ferryman is annotated with one, and runc then reads only that file); no lock.
    """
    q = shlex.quote
    argv = checkpoint.checkpoint_cmd(
        runc_root=runc_root,
        container_id=container_id,
        image_path=image_path,
        work_path=work_path,
        systemd_cgroup=systemd_cgroup,
        page_server=f"127.0.0.1:{port}",
        parent_path=parent_path,  # hybrid: the last pre-copy round
        extra_flags=extra_flags,
    )
    i = argv.index("checkpoint") + 1
    argv[i:i] = ["--lazy-pages", "--status-fd", "3"]
    lock = criu_conf.LOCK
    text = "".join(x + chr(10) for x in ("address 127.0.0.1", *extra_conf))
    if conf_file:
        hold = criu_conf.hold_own(text, conf_file, unlock_fd=9)
    else:
        hold = criu_conf.hold(text, f"lazy dump {container_id[:12]}", unlock_fd=9)
    return f"""
set -u
{criu_conf.take_lock(lock, 60)}
{hold}
{remote.quote(argv)} 9>&- 3> >(n=$(head -c1 | wc -c); [ "$n" = 1 ] && echo READY) &
rp=$!
echo "RUNC $rp"
for _ in $(seq 600); do
  [ -s {q(work_path)}/dump.log ] && grep -q 'Starting lazy pages server' {q(work_path)}/dump.log && break
  kill -0 $rp 2>/dev/null || break
  sleep 0.05
done
put_back
wait $rp
rc=$?
echo "EXIT $rc"
exit $rc
"""


def lazy_daemon_cmd(images_dir: str, work_dir: str, port: int) -> list[str]:
    return [
        "criu",
        "lazy-pages",
        "--page-server",
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        "--images-dir",
        images_dir,
        "--work-dir",
        work_dir,
        "-o",
        "lazy-pages.log",
        "-v4",
        "--daemon",
        "--pidfile",
        f"{work_dir}/lazy-pages.pid",
    ]


def rescue_script(runc_root: str, container_id: str, runc_pid: int) -> list[str]:
    """Stop the dump process (its tasks stay frozen, their memory intact), then thaw them.

    Prints the container's runc status at the end: `running` is what a rescue wants.
    """
    script = r"""
root="$1"; id="$2"; rp="$3"
if [ "$rp" -gt 0 ] && kill -0 "$rp" 2>/dev/null; then
  pkill -KILL -P "$rp" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$rp" 2>/dev/null || break; sleep 0.1; done
fi
st=$(runc --root "$root" state "$id" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
if [ "$st" = paused ]; then runc --root "$root" resume "$id" && st=running; fi
echo "STATUS ${st:-gone}"
"""
    return ["bash", "-c", script, "rescue", runc_root, container_id, str(int(runc_pid))]


def frozen_seconds(dump_log: str) -> float | None:
    """From the dump log: the cgroup freeze to the lazy page server's start (CRIU's clock)."""
    t_freeze = t_ready = None
    for line in dump_log.splitlines():
        m = re.match(r"\((\d+\.\d+)\)", line)
        if not m:
            continue
        if t_freeze is None and ("freezing cgroup" in line or "cgroup.freeze=1" in line):
            t_freeze = float(m.group(1))
        elif "Starting lazy pages server" in line:
            t_ready = float(m.group(1))
    if t_freeze is None or t_ready is None or t_ready < t_freeze:
        return None
    return t_ready - t_freeze


@dataclass
class PageCounts:
    """What the target's lazy-pages daemon reports in its log (-v4)."""

    total: int = 0  # "Found N pages to be handled by UFFD", summed over tasks
    copied: int = 0  # pages placed (uffd_copy lengths)
    faults: int = 0  # "#PF at": pages asked for by a fault, ahead of the background
    finished: int = 0  # tasks whose "UFFD transferred pages" line came
    tasks: int = 0

    def feed(self, line: str) -> None:
        if "#PF at" in line:
            self.faults += 1
        elif "uffd_copy:" in line:
            m = re.search(r"uffd_copy: 0x[0-9a-f]+/(\d+)", line)
            if m:
                self.copied += int(m.group(1)) // PAGE
        elif "pages to be handled by UFFD" in line:
            m = re.search(r"Found (\d+) pages", line)
            if m:
                self.total += int(m.group(1))
                self.tasks += 1
        elif "UFFD transferred pages" in line:
            self.finished += 1

    @property
    def on_fault(self) -> int:
        return min(self.faults, self.copied)

    @property
    def prefetched(self) -> int:
        return max(self.copied - self.on_fault, 0)


def refused_text(host: str, refused: list[str], whose: str = "CRIU's lazy-pages daemon") -> str:
    """The warning for connections a loopback listener of the move turned away."""
    n = len(refused)
    shown = ", ".join(refused[:3]) + (f" and {n - 3} more" if n > 3 else "")
    return (
        f"{host}: the page link turned away {n} connection{'s' if n != 1 else ''} from "
        f"local processes other than {whose} ({shown}); no byte was relayed for them"
    )


@dataclass
class LazyLink:
    """Target 127.0.0.1:<listener> → console → source 127.0.0.1:<source_port>, end-aware."""

    src: HostConnection
    dst: HostConnection
    meter: Meter
    source_port: int = field(default_factory=lambda: 20000 + secrets.randbelow(40000))
    target_port: int = 0
    hold_port: int = 0  # the source's page holder (core/engine/page_holder.py), when started
    hold_token: bytes = field(default_factory=lambda: secrets.token_hex(16).encode())
    # The target's lazy-pages daemon's pidfile: a connection to the listener is relayed
    # only when that process holds it (any local process could connect to loopback).
    daemon_pidfile: str = ""
    refused: list[str] = field(default_factory=list)  # connections turned away, for the log
    closed_by_target: bool = False  # PS_IOV_CLOSE seen: the target has every page
    holding: bool = False  # rolling back: nothing more from the target reaches the source
    broken: str = ""  # why the link ended before that
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _listener: asyncssh.SSHListener | None = None
    _writers: list[asyncssh.SSHWriter] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self) -> None:
        conn = await self.dst.connect()
        self._listener = await conn.start_server(self._handler, "127.0.0.1", 0)
        self.target_port = self._listener.get_port()

    async def _from_daemon(self, peer_port: int) -> bool:
        if not self.daemon_pidfile:
            return True
        r = await self.dst.run(
            remote.quote(remote.peer_is(self.daemon_pidfile, peer_port, self.target_port)),
            check=False,
            timeout=10,
        )
        return r.ok

    def _handler(self, _host: str, peer_port: int):  # noqa: ANN202 - asyncssh's callback shape
        async def handle(t_reader: asyncssh.SSHReader, t_writer: asyncssh.SSHWriter) -> None:
            if self.connected.is_set():  # one session only
                t_writer.close()
                return
            if not await self._from_daemon(peer_port):
                self.refused.append(f"127.0.0.1:{peer_port}")
                t_writer.close()
                return
            if self.connected.is_set():  # the daemon's own connection came in meanwhile
                t_writer.close()
                return
            self.connected.set()
            src = await self.src.connect()
            try:
                s_reader, s_writer = await src.open_connection(
                    "127.0.0.1", self.hold_port or self.source_port
                )
            except (asyncssh.Error, OSError) as e:
                self.broken = f"the source's page server did not answer: {e}"
                self.ended.set()
                return
            if self.hold_port:  # the holder takes only the channel that knows the token
                s_writer.write(self.hold_token)
            self._writers += [t_writer, s_writer]
            up = asyncio.ensure_future(self._requests(t_reader, s_writer))
            down = asyncio.ensure_future(self._pages(s_reader, t_writer))
            self._tasks += [up, down]
            await asyncio.gather(up, down, return_exceptions=True)
            self.ended.set()

        return handle

    async def _requests(self, r: asyncssh.SSHReader, w: asyncssh.SSHWriter) -> None:
        """Target → source: page requests; an end passes only after PS_IOV_CLOSE."""
        pending = b""
        try:
            while data := await r.read(CHUNK):
                if self.holding:
                    continue  # a twin being stopped may say "close": it must not reach CRIU
                pending += data
                while len(pending) >= PSI_SIZE:
                    (cmd,) = struct.unpack_from("<I", pending)
                    if cmd & PS_CMD_MASK in (PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE):
                        self.closed_by_target = True
                    pending = pending[PSI_SIZE:]
                w.write(data)
                await w.drain()
        except (asyncssh.Error, OSError) as e:
            self.broken = self.broken or f"the link to the target broke: {e}"
            return
        if self.closed_by_target and not self.holding:
            with contextlib.suppress(Exception):
                w.write_eof()
        else:
            self.broken = self.broken or "the target's lazy-pages daemon went away before the end"

    async def _pages(self, r: asyncssh.SSHReader, w: asyncssh.SSHWriter) -> None:
        """Source → target: pages, metered; an early end is held back from the target."""
        try:
            while data := await r.read(CHUNK):
                w.write(data)
                await w.drain()
                self.meter.add(len(data))
        except (asyncssh.Error, OSError) as e:
            self.broken = self.broken or f"the link to the source broke: {e}"
            return
        if self.closed_by_target:
            with contextlib.suppress(Exception):
                w.write_eof()
        else:
            self.broken = self.broken or "the source's page server went away before the end"

    def hold(self) -> None:
        """From now on the source's end hears nothing more: the rollback is about to stop
        the twin, whose lazy-pages daemon may then announce an end CRIU must not see."""
        self.holding = True

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for t in self._tasks:
            t.cancel()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()
        self._writers = []


class LazyDump:
    """The source's lazy dump process, read line by line (`RUNC`, `READY`, `EXIT`)."""

    def __init__(self, proc: asyncssh.SSHClientProcess) -> None:
        self.proc = proc
        self.runc_pid = 0
        self.ready = asyncio.Event()
        self.exit_status: int | None = None
        self.exited = asyncio.Event()
        self.output: list[str] = []
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                line = line.rstrip("\n")
                self.output.append(line)
                if line.startswith("RUNC "):
                    self.runc_pid = int(line.split()[1])
                elif line == "READY":
                    self.ready.set()
                elif line.startswith("EXIT "):
                    self.exit_status = int(line.split()[1])
        except (asyncssh.Error, OSError, ValueError):
            pass
        if self.exit_status is None:
            with contextlib.suppress(Exception):
                r = await asyncio.wait_for(self.proc.wait(), 5)
                self.exit_status = r.exit_status if r.exit_status is not None else -1
        if self.exit_status is None:
            self.exit_status = -1
        self.exited.set()

    async def wait_ready(self, timeout: float = 300) -> bool:
        """True once CRIU serves pages; False if the dump ended first."""
        ready = asyncio.ensure_future(self.ready.wait())
        ended = asyncio.ensure_future(self.exited.wait())
        done, _ = await asyncio.wait({ready, ended}, timeout=timeout, return_when="FIRST_COMPLETED")
        for t in (ready, ended):
            t.cancel()
        return self.ready.is_set()


@dataclass
class LazyResult:
    seconds: float
    counts: PageCounts
    bytes: int


async def watch(
    *,
    dump: LazyDump,
    link: LazyLink,
    dst: HostConnection,
    lazy_log: str,
    report: Callable[[PageCounts, int, float, bool], None],
    aborted: Callable[[], bool],
    stall_s: float = 120.0,
) -> LazyResult:
    """Follow the lazy phase to its end; raise RuntimeError (with why) when it fails."""
    counts = PageCounts()
    t0 = time.monotonic()
    tail = await dst.process(remote.quote(["tail", "-n", "+1", "-F", lazy_log]))

    async def follow() -> None:
        with contextlib.suppress(Exception):
            while True:
                raw = await tail.stdout.readline()
                if not raw:
                    return
                counts.feed(raw.decode(errors="replace") if isinstance(raw, bytes) else raw)

    follower = asyncio.ensure_future(follow())
    last_bytes, last_change = -1, time.monotonic()
    try:
        while True:
            if aborted():
                raise InterruptedError("aborted by the user during the lazy phase")
            if link.broken:
                raise RuntimeError(link.broken)
            if dump.exited.is_set():
                if dump.exit_status == 0 and link.closed_by_target:
                    break
                raise RuntimeError(
                    f"the source's dump ended with status {dump.exit_status} before the "
                    "target had every page"
                )
            total = link.meter.total
            if total != last_bytes:
                last_bytes, last_change = total, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                raise RuntimeError(f"no page moved for {stall_s:.0f} s")
            report(counts, total, link.meter.rate, False)
            await asyncio.sleep(0.5)
        # The source's tasks are gone: the target has the only copy, whole.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.ended.wait(), 10)
        await asyncio.sleep(0.3)  # the daemon's last lines
        report(counts, link.meter.total, link.meter.rate, True)
        return LazyResult(time.monotonic() - t0, counts, link.meter.total)
    finally:
        follower.cancel()
        with contextlib.suppress(Exception):
            tail.kill()
