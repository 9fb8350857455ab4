"""Post-copy pieces that need no host: the daemon's log counts, the frozen part of a lazy
dump, the end-aware page link's parsing of the request stream, the scripts' quoting."""

from __future__ import annotations

import asyncio
import struct

from core.engine import postcopy
from core.engine.transfer import Meter

LAZY_LOG = """\
(13.425048) uffd: 1-8: Found 8201 pages to be handled by UFFD
(13.500000) uffd: 1-8: #PF at 0x7ffd86bfe000
(13.500100) uffd: 1-8: uffd_copy: 0x7ffd86bfe000/4096
(13.600000) uffd: 1-8: uffd_copy: 0x7f92ac80a000/65536
(13.700000) uffd: 1-8: #PF at 0x4b1000
(13.700100) uffd: 1-8: uffd_copy: 0x4b1000/4096
(35.691261) uffd: 1-8: UFFD transferred pages: (8201/8201)
"""


def test_page_counts_from_the_lazy_pages_log():
    n = postcopy.PageCounts()
    for line in LAZY_LOG.splitlines():
        n.feed(line)
    assert (n.total, n.tasks, n.finished) == (8201, 1, 1)
    assert n.copied == 1 + 16 + 1
    assert (n.on_fault, n.prefetched) == (2, 16)


def test_frozen_part_of_a_lazy_dump():
    log = (
        '(00.090903) cg-prop: Parsing controller "freezer"\n'
        "(00.118580) freezing cgroup /sys/fs/cgroup/docker/x: 100 x 100ms attempts\n"
        "(00.119349) cgroup.freeze=1\n"
        "(03.381611) Starting lazy pages server\n"
        "(48.138231) Lazy pages transfer finished successfully\n"
    )
    assert abs(postcopy.frozen_seconds(log) - (3.381611 - 0.118580)) < 1e-9
    assert postcopy.frozen_seconds("(00.1) nothing\n") is None


def test_lazy_dump_script_names_the_loopback_and_quotes_paths():
    s = postcopy.lazy_dump_script(
        runc_root="/run/docker/runtime-runc/moby",
        container_id="abc",
        image_path="/srv/im ages/x/img",
        work_path="/srv/im ages/x/work",
        port=41234,
    )
    assert "address 127.0.0.1\n' > /etc/criu/runc.conf || " in s  # written, or the end
    assert "trap put_back EXIT" in s  # never left behind, whatever ends the script
    assert "--lazy-pages --status-fd 3" in s and "--page-server 127.0.0.1:41234" in s
    assert "'/srv/im ages/x/img'" in s and "9>&-" in s
    assert postcopy.lazy_daemon_cmd("/d/img", "/d/work", 5)[:6] == [
        "criu",
        "lazy-pages",
        "--page-server",
        "--address",
        "127.0.0.1",
        "--port",
    ]


class _Reader:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def read(self, _n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


class _Writer:
    def __init__(self) -> None:
        self.data, self.eof = b"", False

    def write(self, d: bytes) -> None:
        self.data += d

    async def drain(self) -> None:
        pass

    def write_eof(self) -> None:
        self.eof = True


def _psi(cmd: int) -> bytes:
    return struct.pack("<IxxxxQQQ", cmd, 1, 0x1000, 1)


def _link() -> postcopy.LazyLink:
    return postcopy.LazyLink(None, None, Meter(lambda *a: None))  # type: ignore[arg-type]


def test_the_link_passes_an_end_only_after_the_target_said_close():
    link, w = _link(), _Writer()
    get, close = _psi(7), _psi(postcopy.PS_IOV_CLOSE)
    asyncio.run(link._requests(_Reader([get + close[:10], close[10:]]), w))  # noqa: SLF001
    assert link.closed_by_target and w.eof and not link.broken and w.data == get + close


def test_an_early_end_is_held_back_and_named():
    link, w = _link(), _Writer()
    asyncio.run(link._requests(_Reader([_psi(7)]), w))  # noqa: SLF001
    assert not w.eof and "target" in link.broken
    link2, w2 = _link(), _Writer()
    asyncio.run(link2._pages(_Reader([b"x" * 100]), w2))  # noqa: SLF001
    assert not w2.eof and "source" in link2.broken and link2.meter.total == 100


def test_runc_conf_left_by_a_killed_restore_is_repaired_and_the_admins_file_kept(tmp_path):
    """The config dance run for real in a shell (paths moved into tmp_path): a file
    ferryman left (marker, lock free) is removed and the admin's saved file comes back; the
    admin's own file is never overwritten by the next restore."""
    import subprocess

    from core.engine import criu_conf

    conf, saved, lock = tmp_path / "runc.conf", tmp_path / "runc.conf.ferryman-saved", tmp_path / "l"

    def run(script: str) -> str:
        script = (script.replace(criu_conf.SAVED, str(saved)).replace(criu_conf.CONF, str(conf))
                  .replace(criu_conf.LOCK, str(lock)).replace("mkdir -p /etc/criu", "true"))
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout

    saved.write_text("tcp-established\n")  # the admin's, moved aside by a restore ...
    conf.write_text(criu_conf.marker("restore fm-dead") + "images-dir /dead\n")  # ... killed
    assert run(criu_conf.stale_check()).strip() == "repaired"
    assert conf.read_text() == "tcp-established\n" and not saved.exists()
    assert run(criu_conf.stale_check()).strip() == "clean"
    # A restore now: the admin's file is saved, ours written, and the admin's put back.
    out = run(criu_conf.hold("images-dir /new\n", "restore fm-new") + f"\ncat {conf}\n")
    assert "images-dir /new" in out and "tcp-established" not in out
    assert conf.read_text() == "tcp-established\n" and not saved.exists()
