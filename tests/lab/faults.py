"""Real faults on the lab's hosts, for the fault matrix.

Each fault is injected by real means (sessions killed, sshd stopped, a small full file
system, a failing `criu` or `runc` first on the host's PATH, dockerd restarted) and healed
afterwards. Nothing here reaches into ferryman: the engine meets the fault as it would
on real hosts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab import engine, sshd
from lab.layout import HOSTS_FILE, WORKLOAD, LabHost
from lab.shell import in_ns

FAILING_TOOL = '#!/bin/sh\necho "lab fault: {tool} fails on purpose ($*)" >&2\nexit 1\n'


def kill_sessions(h: LabHost) -> int:
    """Cut every SSH connection to `h` (the per-connection sshd processes), as a network
    reset would; the listener stays up, so a new connection works."""
    listener = sshd.pid(h)
    if not listener:
        return 0
    n = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == listener:
            try:
                os.kill(int(d.name), signal.SIGKILL)
                n += 1
            except OSError:
                pass
    return n


@dataclass
class Fault:
    name: str
    host: LabHost | None = None
    mounted: list[Path] = field(default_factory=list)

    def inject(self) -> None:
        raise NotImplementedError

    def heal(self) -> None:
        """Undo the fault (after the engine has finished with it)."""


class SessionsDrop(Fault):
    def inject(self) -> None:
        assert self.host is not None
        kill_sessions(self.host)


class SshdDown(Fault):
    """sshd is down: the listener stopped and the open connections cut."""

    def inject(self) -> None:
        assert self.host is not None
        kill_sessions(self.host)
        sshd.stop(self.host)
        kill_sessions(self.host)  # any connection accepted in between

    def heal(self) -> None:
        assert self.host is not None
        sshd.start(self.host)


class FailingTool(Fault):
    """`criu` or `runc` fails on the host (first on the PATH of its sshd and its dockerd)."""

    def __init__(self, name: str, host: LabHost, tool: str) -> None:
        super().__init__(name, host)
        self.tool = tool

    def inject(self) -> None:
        assert self.host is not None
        p = self.host.bin_dir / self.tool
        p.write_text(FAILING_TOOL.format(tool=self.tool))
        p.chmod(0o755)

    def heal(self) -> None:
        assert self.host is not None
        (self.host.bin_dir / self.tool).unlink(missing_ok=True)


class SlowTool(FailingTool):
    """`criu` that takes `seconds` longer before it starts (a loaded host, a slow disk):
    run against a short limit, the operation outlasts it."""

    def __init__(self, name: str, host: LabHost, tool: str, seconds: float) -> None:
        super().__init__(name, host, tool)
        self.seconds = seconds
        real = shutil.which(tool)
        assert real, f"no {tool} on this machine's PATH"
        self.real = real

    def inject(self) -> None:
        assert self.host is not None
        p = self.host.bin_dir / self.tool
        p.write_text(f'#!/bin/sh\nsleep {self.seconds}\nexec {self.real} "$@"\n')
        p.chmod(0o755)


class DiskFull(Fault):
    """The images folder of the host is a small file system, filled up when injected."""

    SIZE_MIB = 256

    def images(self) -> Path:
        assert self.host is not None
        return self.host.state / "images"

    def prepare(self) -> None:
        d = self.images()
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.SIZE_MIB}m,mode=0700", "fmfull", str(d)],
            check=True,
        )
        self.mounted.append(d)

    def inject(self) -> None:
        # Leave 64 KiB: the next write of any size fails with ENOSPC.
        st = os.statvfs(self.images())
        free = st.f_bavail * st.f_frsize - 64 * 1024
        if free > 0:
            with open(self.images() / "filler", "wb") as f:
                os.posix_fallocate(f.fileno(), 0, free)

    def leftovers(self) -> list[str]:
        """What is left in the full folder: anything but the filler and an empty locks
        folder (a lock left there is named)."""
        left = []
        for p in self.images().iterdir():
            if p.name == "locks":
                left += [f"locks/{x.name}" for x in p.iterdir()]
            elif p.name != "filler":
                left.append(p.name)
        return sorted(left)

    def heal(self) -> None:
        for d in self.mounted:
            subprocess.run(["umount", "-l", str(d)], check=False)
        self.mounted.clear()


class DiskFreedAgain(DiskFull):
    """A full images folder whose space is freed when healed (the filler removed), the
    file system and what ferryman left there kept: what an admin does before
    `ferryman recover`. `release()` unmounts it once the row is judged."""

    def heal(self) -> None:
        (self.images() / "filler").unlink(missing_ok=True)

    def release(self) -> None:
        super().heal()


class ConsoleDiskFull(Fault):
    """The console's state folder (the journal, the kept CRIU logs) on a small file system
    of its own for the row, filled up when injected: journal writes fail with ENOSPC from
    then on. `FERRYMAN_STATE_DIR` points there for the row (this process's engine and the
    `ferryman recover` it may run); `release()` unmounts it once the row is judged."""

    SIZE_MIB = 8

    def prepare(self, base: Path) -> Path:
        d = base / "console-state"
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.SIZE_MIB}m,mode=0700", "fmconsole", str(d)],
            check=True,
        )
        self.mounted.append(d)
        return d

    def inject(self) -> None:
        (d,) = self.mounted
        st = os.statvfs(d)
        with open(d / "filler", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize)

    def heal(self) -> None:
        for d in self.mounted:
            (d / "filler").unlink(missing_ok=True)

    def release(self) -> None:
        for d in self.mounted:
            subprocess.run(["umount", "-l", str(d)], check=False)
        self.mounted.clear()


LIVE = ("--live-restore",)


class DockerdRestart(Fault):
    """dockerd stopped and started again (`systemctl restart docker`); with `flags`
    (`--live-restore`) its containers keep running through it."""

    def __init__(self, name: str, host: LabHost, flags: tuple[str, ...] = ()) -> None:
        super().__init__(name, host)
        self.flags = flags

    def inject(self) -> None:
        assert self.host is not None
        engine.stop(self.host)
        engine.start(self.host, extra=self.flags)

    def heal(self) -> None:
        assert self.host is not None
        engine.start(self.host, extra=self.flags)


class PacketsDropped(Fault):
    """The host is lost without a reset: every packet on its network link is dropped
    (a cable pulled, a host hung), so only keepalives can tell."""

    def _rules(self, op: str) -> None:
        assert self.host is not None
        h = self.host
        for chain, side in (("INPUT", "-i"), ("OUTPUT", "-o")):
            subprocess.run(
                in_ns(h.netns, ["iptables", op, chain, side, h.veth_ns, "-j", "DROP"]),
                check=op == "-I", capture_output=True,
            )  # fmt: skip

    def inject(self) -> None:
        self._rules("-I")

    def heal(self) -> None:
        self._rules("-D")


def host_pids(h: LabHost) -> list[int]:
    """The processes in the host's network namespace (its daemons and what they run)."""
    out = subprocess.run(["ip", "netns", "pids", h.netns], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes(h: LabHost, needle: str) -> list[int]:
    """The host's processes whose command line holds `needle`."""
    return [p for p in host_pids(h) if needle in cmdline(p)]


def wait_until(cond: Callable[[], bool], timeout: float, poll: float = 0.002) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll)
    return False


def after_process(h: LabHost, needle: str, action: Callable[[], None]) -> threading.Event:
    """Run `action` the moment a process of the host with `needle` in its command line,
    once seen, is gone (the end of a dump, say); in a thread, so the engine goes on.
    Returns an event set once `action` has run."""
    done = threading.Event()

    def watch() -> None:
        if wait_until(lambda: bool(processes(h, needle)), 60):
            wait_until(lambda: not processes(h, needle), 120)
            action()
            done.set()

    threading.Thread(target=watch, daemon=True).start()
    return done


def when(cond: Callable[[], bool], timeout: float = 60) -> threading.Event:
    """Poll `cond` in a thread (it acts when it is true); the event is set once it was."""
    done = threading.Event()

    def watch() -> None:
        if wait_until(cond, timeout):
            done.set()

    threading.Thread(target=watch, daemon=True).start()
    return done


def container_pids(h: LabHost) -> list[int]:
    """Every process of every container running on the host (by their pids cgroups)."""
    ps = subprocess.run(engine.docker(h, "ps", "-q"), capture_output=True, text=True)
    pids: set[int] = set()
    for cid in ps.stdout.split():
        top = subprocess.run(engine.docker(h, "inspect", "-f", "{{.State.Pid}}", cid),
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        try:
            lines = Path(f"/proc/{top}/cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if controllers in ("pids", ""):
                base = "/sys/fs/cgroup/pids" if controllers else "/sys/fs/cgroup"
                procs = Path(base + path) / "cgroup.procs"
                if procs.exists():
                    pids.update(int(x) for x in procs.read_text().split())
    return sorted(pids)


class Reboot(Fault):
    """The host reboots: every process of it killed at once (daemons, sessions,
    containers), its run folder gone, then its sshd and dockerd started again as a boot
    would. Its disk (the state folder, Docker's data root) survives."""

    def inject(self) -> None:
        assert self.host is not None
        h = self.host
        for _ in range(3):  # what a dying daemon started meanwhile
            for p in {*container_pids(h), *host_pids(h)}:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.2)
        for p in (h.exec_root, h.docker_socket, h.dockerd_pidfile, h.sshd_pidfile):
            subprocess.run(["rm", "-rf", str(p)], check=False)
        sshd.start(h)
        engine.start(h)


class Both(Fault):
    """Two faults at once (the second one is injected as the first)."""

    def __init__(self, name: str, first: Fault, second: Fault) -> None:
        super().__init__(name)
        self.parts = [first, second]

    def inject(self) -> None:
        for f in self.parts:
            f.inject()

    def heal(self) -> None:
        for f in self.parts:
            f.heal()


def make(kind: str, h1: LabHost, h2: LabHost) -> Fault:
    """A fault by its matrix name."""
    table = {
        "source SSH drops": lambda: SessionsDrop(kind, h1),
        "target SSH drops": lambda: SessionsDrop(kind, h2),
        "target sshd down": lambda: SshdDown(kind, h2),
        "target disk full": lambda: DiskFull(kind, h2),
        "source criu fails": lambda: FailingTool(kind, h1, "criu"),
        "target criu fails": lambda: FailingTool(kind, h2, "criu"),
        "source runc fails": lambda: FailingTool(kind, h1, "runc"),
        "target runc fails": lambda: FailingTool(kind, h2, "runc"),
        "target dockerd restarts": lambda: DockerdRestart(kind, h2),
        "source dockerd restarts": lambda: DockerdRestart(kind, h1),
        "target dockerd restarts (live-restore)": lambda: DockerdRestart(kind, h2, LIVE),
        "source dockerd restarts (live-restore)": lambda: DockerdRestart(kind, h1, LIVE),
        "target lost: packets dropped": lambda: PacketsDropped(kind, h2),
        "source lost: packets dropped": lambda: PacketsDropped(kind, h1),
        "target reboots": lambda: Reboot(kind, h2),
        "source reboots": lambda: Reboot(kind, h1),
        "console disk full": lambda: ConsoleDiskFull(kind),
    }
    return table[kind]()


def move_and_signal_console(
    at: str,
    sig: int = signal.SIGKILL,
    *,
    name: str = WORKLOAD,
    source: str | None = None,
    target: str = "host2",
    env: dict[str, str] | None = None,
    then: Callable[[], bool] | None = None,
    again_at: str = "",
    extra: tuple[str, ...] = (),
) -> str:
    """`ferryman migrate` of `name` (stop-and-copy; `extra`: more options) in a process of its own, sent `sig`
    the moment phase `at` starts (or, with `then`, once `then()` is true after it starts:
    a moment inside the phase), and once more when phase `again_at` starts (a second
    Ctrl-C during the rollback); returns the migration's id."""
    where = ["--from", source] if source else []
    p = subprocess.Popen(
        [sys.executable, "-m", "ferryman.cli", "--hosts", str(HOSTS_FILE), "migrate", name,
         *where, "--to", target, "--strategy", "stop-and-copy", "--json", *extra],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    mid = ""
    assert p.stdout is not None
    for line in p.stdout:
        e = json.loads(line)
        if e["kind"] == "migration_started":
            mid = e["migration_id"]
        if e["kind"] == "phase_started" and e["phase"] == at:
            if then is not None:
                assert wait_until(then, 120), f"the moment inside {at} never came"
            os.kill(p.pid, sig)
            break
    else:
        raise AssertionError(f"the migration ended before {at}")
    for line in p.stdout:  # a console that handles the signal rolls back first
        e = json.loads(line)
        if again_at and e["kind"] == "phase_started" and e["phase"] == again_at:
            os.kill(p.pid, sig)
            again_at = ""
    assert not again_at, f"no {again_at} phase came after the signal"
    p.wait(timeout=120)
    if sig == signal.SIGKILL:
        assert p.returncode == -signal.SIGKILL, f"the migration ended before {at}"
    else:
        assert p.returncode == 130, f"exit status {p.returncode} after signal {sig}"
    return mid
