"""The restore doctor: turn a CRIU log into the cause, the evidence and the fix.

A table of known CRIU failure patterns. Each one matches CRIU's own messages
(the ``pr_err``/``pr_warn`` strings of CRIU 3.x/4.x) in a dump, pre-dump,
restore, page-server or lazy-pages log, or in ``criu check`` output, and
explains in plain words what went wrong and what to change.

Pure standard library; used by the console's doctor screen and by
``ferryman doctor LOG [--json]``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "Diagnosis",
    "Evidence",
    "detect_kind",
    "diagnose",
    "error_lines",
    "is_noise",
    "load_log",
    "render_text",
]

MAX_EVIDENCE = 6


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Evidence:
    line_no: int  # 1-based line number in the log
    text: str  # the line, control characters made inert
    severity: str = ""  # "error", "warning", "bug" for lines CRIU marks; "" for context lines


@dataclass(frozen=True)
class Diagnosis:
    id: str
    title: str
    cause: str
    fix: str
    evidence: tuple[Evidence, ...]
    retry_option: str = ""

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "cause": self.cause,
            "fix": self.fix,
            "retry_option": self.retry_option,
            "evidence": [asdict(e) for e in self.evidence],
        }


# --------------------------------------------------------------------------- lines

_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _inert(text: str) -> str:
    """Make escape sequences and other control characters visible and harmless."""
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _split(log_text: str) -> list[str]:
    # Only "\n" separates lines: str.splitlines() would also split on \x1c, \x85,
    # \u2028 ... and shift line numbers against what an editor or grep shows.
    lines = log_text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


# "Error (criu/files-reg.c:2353): msg", "Warn  (criu/kerndat.c:1290): msg",
# "Error (mount.c:746): msg" (older CRIU), "pie: Error (pie/restorer.c:375): msg"
_MARK_RE = re.compile(r"\b(?P<sev>Error|Warn)\s*\((?P<src>[^)]*)\):\s?(?P<msg>.*)")
_BUG_RE = re.compile(r"\bBUG at (?P<src>\S+)")
_PLAIN_ERROR_RE = re.compile(r"(?:^|\s)Error:\s?(?P<msg>.*)")


@dataclass(frozen=True)
class _Line:
    no: int
    raw: str
    severity: str  # "error" | "warning" | "bug" | ""
    msg: str  # the message after "Error (...):", or the whole line

    def evidence(self) -> Evidence:
        return Evidence(self.no, _inert(self.raw), self.severity)


def _parse(log_text: str) -> list[_Line]:
    out: list[_Line] = []
    for no, raw in enumerate(_split(log_text), start=1):
        severity, msg = "", raw.strip()
        if m := _BUG_RE.search(raw):
            severity, msg = "bug", m.group(0)
        elif m := _MARK_RE.search(raw):
            severity = "error" if m.group("sev") == "Error" else "warning"
            msg = m.group("msg").strip()
        elif m := _PLAIN_ERROR_RE.search(raw):
            severity, msg = "error", m.group("msg").strip()
        out.append(_Line(no, raw, severity, msg))
    return out


def error_lines(log_text: str) -> list[Evidence]:
    """Every line CRIU marks as an error, a warning or a BUG, in log order."""
    return [line.evidence() for line in _parse(log_text) if line.severity]


# --------------------------------------------------------------------------- noise

# Messages CRIU prints on healthy runs too; never the cause of a failure.
_NOISE = [
    re.compile(p)
    for p in (
        r"rlimit: Can't setup RLIMIT_NOFILE for self",
        r"tun: Unable to create tun",
        r"Unable to get tun network namespace",
        r"Can't keep kdat cache on non-tempfs",
        r"Stale /run/criu\.kdat file",
        r"Will restore \d+ with interrupted system call",
        r"The early log isn't empty",
        r"Unable to get a socket network namespace",
    )
]

# Follow-up lines: true, but they only report that an earlier step failed.
_SUMMARY = [
    re.compile(p)
    for p in (
        r"^(Pre-dumping|Dumping|Restoring) FAILED",
        r"Killing processes because of failure on restore",
        r"Dump files \(pid: \d+\) failed",
        r"Pre-dumping files failed",
        r"Unable to open fd=\d+",
        r"Unable to detach from \d+: No such process",
        r"^\d+ exited, status=",
        r"killed by signal",
        r"Can't open core data for",
        r"Can't catch all tasks",
        r"Can't interrupt the \d+ task",
        r"Restorer (abnormal termination|fail)",
        r"Error parsing proc status file",
        r"Can't dump page with parasite",
        r"Collect mappings \(pid: \d+\) failed",
        # the cgroup daemon's socket, closed when the restore fails: a consequence
        r"cgroupd: recv req error",
    )
]


def is_noise(text: str) -> bool:
    """True for CRIU messages that show up on healthy runs and explain nothing."""
    return any(p.search(text) for p in _NOISE)


def _is_summary(msg: str) -> bool:
    return any(p.search(msg) for p in _SUMMARY)


# --------------------------------------------------------------------------- kind

_KIND_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    ("check", re.compile(r"^Looks good|criu/cr-check\.c|\bcriu check\b", re.M)),
    ("lazy-pages", re.compile(r"uffd: Waiting for incoming connections|uffd: Received PID")),
    (
        "pre-dump",
        re.compile(
            r"Pre-dumping task \(pid:|Pre-dumping (FAILED|finished)|memory tracking for pre-dump"
        ),
    ),
    ("dump", re.compile(r"Dumping processes \(pid:|Dumping FAILED|Dumping finished successfully")),
    ("page-server", re.compile(r"Starting page server on port")),
    (
        "restore",
        re.compile(
            r"Restoring FAILED|Restore finished successfully|Forking task with \d+ pid"
            r"|Will restore in \d+ namespaces|Reading image tree"
        ),
    ),
]


def detect_kind(log_text: str) -> str:
    """Which CRIU action wrote this log: dump, pre-dump, restore, page-server,
    lazy-pages, check, or unknown."""
    for kind, marker in _KIND_MARKERS:
        if marker.search(log_text):
            return kind
    return "unknown"


# --------------------------------------------------------------------------- patterns


@dataclass
class _Ctx:
    kind: str
    lines: list[_Line]

    def find(self, regex: re.Pattern[str]) -> list[_Line]:
        return [line for line in self.lines if regex.search(line.raw)]

    def before(self, line: _Line, regex: re.Pattern[str], within: int = 60) -> _Line | None:
        """The nearest line above ``line`` matching ``regex``."""
        for other in reversed(self.lines[max(0, line.no - 1 - within) : line.no - 1]):
            if regex.search(other.raw):
                return other
        return None


@dataclass
class _Hit:
    """What a pattern found: the lines it matched and anything it worked out."""

    lines: list[_Line]
    first: re.Match[str]
    context: list[_Line] = field(default_factory=list)


@dataclass(frozen=True)
class _Pattern:
    id: str
    rank: int  # lower = closer to the root cause; ties broken by line order
    triggers: tuple[re.Pattern[str], ...]  # matched against marked (error/warn/BUG) lines
    title: str
    cause: Callable[[_Hit, _Ctx], str]
    fix: str | Callable[[_Hit, _Ctx], str]
    retry: str | Callable[[_Hit, _Ctx], str] = ""
    gate: Callable[[_Ctx], bool] | None = None  # extra condition on the whole log
    context: Callable[[_Hit, _Ctx], list[_Line]] | None = None


def _rx(*patterns: str, flags: int = 0) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, flags) for p in patterns)


def _abs(path: str) -> str:
    """CRIU prints paths relative to the container root ("tmp/x"); show "/tmp/x"."""
    path = path.strip()
    if path.startswith("./"):
        path = path[1:]
    return path if path.startswith("/") else "/" + path


def _g(hit: _Hit, name: str, default: str = "") -> str:
    value = hit.first.groupdict().get(name)
    return _inert(value) if value else default


# -- missing file -----------------------------------------------------------------


def _missing_file_cause(hit: _Hit, ctx: _Ctx) -> str:
    path = _g(hit, "path")
    if path:
        return (
            f"The container had {_abs(path)} open when it was checkpointed, and that path "
            "does not exist on the target, so CRIU cannot reopen it."
        )
    return (
        "The working directory or root of a process does not exist on the target, "
        "so CRIU cannot put the process back into it."
    )


# -- TCP --------------------------------------------------------------------------


def _tcp_cause(hit: _Hit, ctx: _Ctx) -> str:
    if "in image" in hit.first.group(0):
        return (
            "The checkpoint contains established TCP connections, but the restore was "
            "started without --tcp-established, so CRIU refuses to restore them."
        )
    return (
        "The container has an established TCP connection. CRIU refuses to checkpoint "
        "open connections unless it is told to (--tcp-established) or told to drop "
        "them (--tcp-close)."
    )


# -- PID --------------------------------------------------------------------------


def _pid_cause(hit: _Hit, ctx: _Ctx) -> str:
    pid = _g(hit, "pid", "?")
    if _g(hit, "got"):
        return (
            f"CRIU must give the restored task PID {pid} but the kernel handed out "
            f"{_g(hit, 'got')}: PID {pid} is taken (or was grabbed meanwhile) on the target."
        )
    return (
        f"PID {pid} is already in use on the target, and CRIU restores every process "
        "with the PID it had when it was checkpointed."
    )


def _pid_fix(hit: _Hit, ctx: _Ctx) -> str:
    pid = _g(hit, "pid", "N")
    return (
        "Restore into a fresh PID namespace (a container restore through docker/runc does "
        "this; restoring a bare process tree into the host PID namespace does not), or stop "
        f"whatever holds PID {pid} on the target (`ps -o pid,cmd -p {pid}`). A second restore "
        "of the same checkpoint on one host always collides; remove the first copy or the "
        "still-running source container first."
    )


# -- address in use -----------------------------------------------------------------

_INET_RESTORE_RE = re.compile(
    r"inet:\s+Restore: .*?port\s+(?P<port>\d+).*?src_addr\s+(?P<addr>\S+)"
)


def _addr_context(hit: _Hit, ctx: _Ctx) -> list[_Line]:
    line = ctx.before(hit.lines[0], _INET_RESTORE_RE)
    return [line] if line else []


def _addr_where(hit: _Hit) -> tuple[str, str]:
    if hit.context and (m := _INET_RESTORE_RE.search(hit.context[0].raw)):
        addr, port = m.group("addr"), m.group("port")
        shown = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        return _inert(shown), _inert(port)
    if addr := _g(hit, "addr"):
        return addr, ""
    return "", ""


def _addr_cause(hit: _Hit, ctx: _Ctx) -> str:
    where, _ = _addr_where(hit)
    where = where or "the same address and port"
    return (
        f"Something on the target already uses {where}, so the container's socket "
        "cannot be bound to it again."
    )


def _addr_fix(hit: _Hit, ctx: _Ctx) -> str:
    _, port = _addr_where(hit)
    look = (
        f"`ss -ltnup 'sport = :{port}'`" if port else "`ss -ltnup` (or `ss -lx` for unix sockets)"
    )
    return (
        f"Find the owner on the target with {look} and stop it: often the old copy of the "
        "container, another container publishing the same port (docker -p), or a host "
        "service. Then retry the restore."
    )


# -- CPU ----------------------------------------------------------------------------


def _cpu_cause(hit: _Hit, ctx: _Ctx) -> str:
    msg = hit.first.group(0)
    if "xsave" in msg or "FPU" in msg or "xfeatures" in msg or "fxsave" in msg:
        return (
            "The target CPU saves FPU/vector registers in a different layout than the source "
            f"CPU ({_inert(msg)}), so the checkpointed register state cannot be loaded."
        )
    return (
        "The checkpoint was taken on a CPU with features the target CPU lacks (or of another "
        "vendor); the process may use instructions the target cannot run."
    )


def _cpu_retry(hit: _Hit, ctx: _Ctx) -> str:
    return "--cpu-cap=fpu" if "capabilities do not match" in hit.first.group(0) else ""


_CPU_FIX = (
    "Migrate between hosts with the same CPU model, or pin a common baseline (the same VM "
    "CPU model on both hosts). Test a pair beforehand with `criu cpuinfo dump` on the source "
    "and `criu cpuinfo check` on the target. Only if the workload does not use the missing "
    "instructions, retry with --cpu-cap=fpu (checks only the FPU layout); a different FPU "
    "layout cannot be overridden."
)


# -- image format --------------------------------------------------------------------


def _image_cause(hit: _Hit, ctx: _Ctx) -> str:
    msg = hit.first.group(0)
    img = _g(hit, "img")
    if "version" in msg or "Too old" in msg:
        return (
            "The checkpoint images were written by a CRIU version the target's CRIU does not "
            f"support ({_inert(msg)})."
        )
    what = f" {img}" if img else ""
    return (
        f"The image file{what} is not in the format the target's CRIU expects: written by a "
        "different CRIU version, or damaged/truncated on the way."
    )


_IMAGE_FIX = (
    "Install the same CRIU version on both hosts (compare `criu --version`; ferryman's "
    "preflight shows it per host), then checkpoint again. If the versions match, the images "
    "were damaged in transfer: delete them and migrate again."
)


# -- cgroups --------------------------------------------------------------------------


def _cgroup_cause(hit: _Hit, ctx: _Ctx) -> str:
    msg = _inert(hit.first.group(0))
    if "cpuset" in msg:
        return (
            "CRIU could not recreate the container's cpuset cgroup on the target "
            f"({msg}): the CPUs or memory nodes it was pinned to do not exist there."
        )
    return (
        "The container's cgroups could not be recreated on the target "
        f"({msg}): the cgroup layout differs between the hosts."
    )


_CGROUP_FIX = (
    "Make the hosts match: same cgroup version (v1 vs v2: `stat -fc %T /sys/fs/cgroup`), same "
    "docker cgroup driver (`docker info -f '{{.CgroupDriver}}'`), and CPU pinning (--cpuset-cpus) "
    "that exists on the target. Or let the runtime create the cgroups and have CRIU leave them "
    "alone with --manage-cgroups=ignore."
)


# -- seccomp --------------------------------------------------------------------------


def _seccomp_cause(hit: _Hit, ctx: _Ctx) -> str:
    msg = _inert(hit.first.group(0))
    if ctx.kind in ("dump", "pre-dump") or "not currently supported" in msg:
        return (
            f"CRIU could not save the container's seccomp filter ({msg}): the kernel or the "
            "CRIU version cannot dump seccomp filters."
        )
    return (
        f"The container's seccomp filter could not be installed again on the target ({msg}): "
        "the target kernel rejects it."
    )


_SECCOMP_FIX = (
    "Run `criu check --feature seccomp_filters` and `criu check --feature seccomp_suspend` on "
    "both hosts; both kernels need seccomp filter support (CONFIG_SECCOMP_FILTER) and the same "
    "CRIU version. Start the container with the same seccomp profile on both hosts "
    "(docker --security-opt seccomp=...)."
)


# -- disk full ------------------------------------------------------------------------


def _nospace_cause(hit: _Hit, ctx: _Ctx) -> str:
    where = {
        "page-server": "The disk holding the images directory on the target is full",
        "restore": "A disk on the target filled up during the restore",
    }.get(ctx.kind, "The disk holding the checkpoint images is full")
    return f"{where} (No space left on device), so CRIU could not write the memory pages."


_NOSPACE_FIX = (
    "Free space on the file system that holds the images directory (`df -h <dir>`), or point "
    "the images directory to a larger disk. The images need about as much room as the "
    "container's memory (`docker stats`); an images directory on tmpfs is counted against RAM."
)


# -- soft-dirty -----------------------------------------------------------------------

_DIRTY_OFF_RE = re.compile(r"Dirty tracking support is OFF|Dirty tracking is OFF")


def _dirty_gate(ctx: _Ctx) -> bool:
    return ctx.kind == "pre-dump" or bool(ctx.find(_DIRTY_OFF_RE))


def _dirty_context(hit: _Hit, ctx: _Ctx) -> list[_Line]:
    return [line for line in ctx.find(_DIRTY_OFF_RE) if not line.severity][:1]


def _dirty_cause(hit: _Hit, ctx: _Ctx) -> str:
    if ctx.kind == "check":
        return (
            "This kernel has no soft-dirty page tracking, so iterative pre-copy "
            "(criu pre-dump / --track-mem) will not work on this host."
        )
    return (
        "This kernel has no soft-dirty page tracking, which pre-dump and --track-mem need to "
        "find the memory pages written since the last copy; CRIU stopped."
    )


_DIRTY_FIX = (
    "Use the stop-and-copy strategy (or post-copy, if lazy pages work on both hosts) for this "
    "host; do not run pre-dump or pass --track-mem. Iterative pre-copy needs a kernel built "
    "with CONFIG_MEM_SOFT_DIRTY (`criu check --feature mem_dirty_track` says whether it is there)."
)


# -- lazy pages ------------------------------------------------------------------------


def _lazy_cause(hit: _Hit, ctx: _Ctx) -> str:
    msg = hit.first.group(0)
    if "splice" in msg:
        return (
            "Post-copy (lazy pages) failed inside the kernel: the source's page server could "
            "not splice memory pages to the target (splice: Bad file descriptor). Lazy "
            "migration does not work with this kernel."
        )
    if "restore finished indication" in msg:
        return (
            "The restore waited for the lazy-pages daemon, but the daemon was gone: the "
            "post-copy transfer of memory pages failed (see the lazy-pages and dump logs)."
        )
    return (
        "The post-copy (lazy pages) transfer of memory pages failed, so the restored "
        "container could not get its memory."
    )


_LAZY_FIX = (
    "Migrate this pair of hosts without lazy pages: use the pre-copy or stop-and-copy "
    "strategy (drop --lazy-pages). Post-copy needs userfaultfd and a working page-pipe splice "
    "on both kernels; check with `criu check --feature uffd-noncoop` and a test migration."
)


# -- page server gone ---------------------------------------------------------------------


def _ps_lost_cause(hit: _Hit, ctx: _Ctx) -> str:
    if ctx.kind == "lazy-pages":
        return (
            "The lazy-pages daemon lost its connection to the page server on the source, "
            "so it could not fetch the remaining memory pages."
        )
    return (
        "The page server on the other side stopped taking memory pages (the connection broke "
        "mid-transfer); the real reason is in that side's page-server log."
    )


_PS_LOST_FIX = (
    "Open the page-server log on the target (or the dump log on the source, for lazy pages) "
    "and run the doctor on it; common causes are a full disk there, a killed page server "
    "(OOM, timeout), or a network interruption between the hosts."
)


# -- ptrace ---------------------------------------------------------------------------------


def _ptrace_cause(hit: _Hit, ctx: _Ctx) -> str:
    pid = _g(hit, "pid", "?")
    return (
        f"CRIU was not allowed to ptrace PID {pid} (Operation not permitted): another tracer "
        "(strace, gdb, a profiler) is attached to it, or a security policy forbids ptrace."
    )


def _ptrace_fix(hit: _Hit, ctx: _Ctx) -> str:
    pid = _g(hit, "pid", "PID")
    return (
        f"Look at `grep TracerPid /proc/{pid}/status`; if it is not 0, detach that tracer. "
        "Otherwise check `sysctl kernel.yama.ptrace_scope` (3 forbids ptrace until reboot, "
        "lower it to 1 or 0), and AppArmor/SELinux rules that confine criu; CRIU must run "
        "as root with CAP_SYS_PTRACE."
    )


# -- external unix socket -------------------------------------------------------------------

_RUNAWAY_RE = re.compile(
    r"(Runaway socket|Ext stream not supported|Ext dgram w/o name):.*?\btype\s+(?P<type>\d+)"
    r".*?name\s+(?P<name>\S+)"
)


def _unix_context(hit: _Hit, ctx: _Ctx) -> list[_Line]:
    line = ctx.before(hit.lines[0], _RUNAWAY_RE, within=10)
    return [line] if line else []


def _unix_peer(hit: _Hit) -> tuple[str, str]:
    if hit.context and (m := _RUNAWAY_RE.search(hit.context[0].raw)):
        return _inert(m.group("name")), m.group("type")
    if name := _g(hit, "name"):
        return name, "1"
    return "", ""


def _unix_cause(hit: _Hit, ctx: _Ctx) -> str:
    name, _ = _unix_peer(hit)
    what = f"the unix socket {name}" if name else "a unix socket"
    return (
        f"The container is connected to {what}, whose other end belongs to a process outside "
        "the container (for example a host daemon), so CRIU cannot checkpoint both ends."
    )


def _unix_stream(hit: _Hit) -> bool:
    name, sock_type = _unix_peer(hit)
    return sock_type != "2" or "stream" in hit.first.group(0)


def _unix_retry(hit: _Hit, ctx: _Ctx) -> str:
    # --ext-unix-sk only helps for datagram sockets (e.g. /dev/log); CRIU refuses
    # "half of stream unix connection" even with it.
    return "" if _unix_stream(hit) else "--ext-unix-sk"


def _unix_fix(hit: _Hit, ctx: _Ctx) -> str:
    if _unix_stream(hit):
        return (
            "Close that connection before migrating: stop the client in the container, or "
            "do not bind-mount the host socket (docker.sock, an agent's socket) into it. "
            "CRIU cannot move one end of a stream connection, even with --ext-unix-sk."
        )
    return (
        "Retry with --ext-unix-sk; the socket's peer (e.g. /dev/log) must exist at the same "
        "path on the target."
    )


# -- unsupported file -------------------------------------------------------------------------


def _unsupported_cause(hit: _Hit, ctx: _Ctx) -> str:
    fd, info = _g(hit, "fd", "?"), _g(hit, "info")
    return (
        f"File descriptor {fd} ({info or 'unknown type'}) is a kind of file CRIU cannot checkpoint."
    )


_UNSUPPORTED_FIX = (
    "Stop what opened it before migrating (profilers and perf tools, io_uring, bpf maps, "
    "device files such as /dev/kvm or GPUs). CRIU cannot migrate such a container as it runs."
)


def _ghost_cause(hit: _Hit, ctx: _Ctx) -> str:
    size = int(_g(hit, "size", "0") or 0)
    return (
        f"The container holds open the deleted file {_g(hit, 'path')} "
        f"({size / 1048576:.1f} MiB). CRIU copies such files into the images, but only up to "
        "--ghost-limit (1 MiB by default)."
    )


def _ghost_retry(hit: _Hit, ctx: _Ctx) -> str:
    size = int(_g(hit, "size", "0") or 0)
    mib = max(2, -(-size // 1048576) + 1)
    return f"--ghost-limit={mib}M"


# -- a mapped file changed ----------------------------------------------------------------

_INIT = "/sbin/docker-init"


def _file_changed_cause(hit: _Hit, ctx: _Ctx) -> str:
    path = _abs(_g(hit, "path"))
    sizes = (
        f" ({_g(hit, 'got')} bytes on the target, {_g(hit, 'want')} when it was checkpointed)"
        if _g(hit, "got")
        else ""
    )
    out = (
        f"A process of the container runs or maps {path}, and the file at that path on the "
        f"target is not the same{sizes}. CRIU puts a file mapping back only onto the file "
        "that was mapped."
    )
    if path == _INIT:
        out += (
            " That is Docker's --init binary (docker-init), which each engine bind-mounts "
            "from its own installation: the two hosts' engines ship different builds."
        )
    return out


def _file_changed_fix(hit: _Hit, ctx: _Ctx) -> str:
    if _abs(_g(hit, "path")) == _INIT:
        return (
            "Give both engines the same docker-init (the same package, or daemon.json's "
            "init-path naming one copy of the file on both hosts), or move to a host whose "
            "engine has the same one; a container run without --init does not need it."
        )
    return (
        "Run the same image (same digest) on both hosts, with the same volumes and bind "
        "mount contents: the file must be byte for byte the one the process mapped."
    )


# -- no userfaultfd -----------------------------------------------------------------------------

_NO_UFFD_FIX = (
    "Use pre-copy or stop-and-copy on this host. Post-copy needs a kernel with userfaultfd "
    "(CONFIG_USERFAULTFD) and permission to use it (run criu as root, or set "
    "vm.unprivileged_userfaultfd=1)."
)


# --------------------------------------------------------------------------- the table

_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        id="no-space",
        rank=5,
        triggers=_rx(r"No space left on device|ENOSPC"),
        title="The disk ran out of space while writing the checkpoint",
        cause=_nospace_cause,
        fix=_NOSPACE_FIX,
    ),
    _Pattern(
        id="file-mount-v2",
        rank=8,
        triggers=_rx(
            r"mnt-v2: Can't remount (?P<path>\S+) with MS_PRIVATE: No such file or directory"
        ),
        title="CRIU's mount engine could not restore a bind mount of a single file",
        cause=lambda hit, ctx: (
            "CRIU's default mount engine (mount-v2) failed on a mount of one file into the "
            "container (Docker's --init bind-mounts docker-init this way): it could not "
            "remount the file's mountpoint private."
        ),
        fix=(
            "Restore with CRIU's older mount engine: the CRIU option mntns-compat-mode "
            "(ferryman sets it for containers started with --init)."
        ),
    ),
    _Pattern(
        id="rlimit-caps",
        rank=8,
        triggers=_rx(r"Can't get rlimit (?P<n>\d+): Operation not permitted"),
        title="CRIU may not read the limits of a process of another user",
        cause=lambda hit, ctx: (
            "A process of the container runs as another user than root, and CRIU, running "
            "as root without CAP_SYS_RESOURCE (dropped by the container or namespace that "
            "root's session runs in), may not read its resource limits (prlimit), so the "
            "dump stops."
        ),
        fix=(
            "Run CRIU (ferryman's SSH sessions, dockerd) with root's full capabilities on "
            "that host, or run the container's processes as root. ferryman's preflight "
            "refuses such a move before anything is frozen."
        ),
    ),
    _Pattern(
        id="file-changed",
        rank=8,
        triggers=_rx(
            r"File (?P<path>\S+) has bad (?:size (?P<got>\d+) \(expect (?P<want>\d+)\)|mode)"
        ),
        title="A file a process runs or maps is another file on the target",
        cause=_file_changed_cause,
        fix=_file_changed_fix,
    ),
    _Pattern(
        id="missing-file",
        rank=10,
        triggers=_rx(
            r"Can't open file (?P<path>.+?)(?: on restore)?: No such file or directory",
            r"Can't open (?:cwd|root)\b",
        ),
        title="A file the container had open is missing on the target",
        cause=_missing_file_cause,
        fix=lambda hit, ctx: (
            f"Make {_abs(_g(hit, 'path')) if _g(hit, 'path') else 'that path'} exist on the "
            "target before restoring: run the same image (same digest) and attach the same "
            "volumes and bind mounts there (copy the volume data, or mount the same share). "
            "Files the container created in its own writable layer must travel with the "
            "migration."
        ),
    ),
    _Pattern(
        id="mount-root",
        rank=10,
        triggers=_rx(
            r"(?P<mnt>\d+):(?P<path>\S+) doesn't have a proper root mount",
            r"No root found for mountpoint (?P<mnt>\d+) \(@(?P<path>[^)]+)\)",
            r"Can't lookup mount=(?P<mnt>\d+) for fd=\d+ path=(?P<path>\S+)",
        ),
        title="A mount of the container is a bind mount CRIU does not know how to recreate",
        cause=lambda hit, ctx: (
            f"The mount at {_abs(_g(hit, 'path'))} (mount id {_g(hit, 'mnt')}) is bound in "
            "from outside the container's root file system, and nobody told CRIU it is "
            "external, so it cannot be dumped or recreated."
        ),
        fix=lambda hit, ctx: (
            "Checkpoint through the container runtime (docker/runc), which declares the "
            "container's bind mounts (/etc/hosts, /etc/resolv.conf, volumes) as external "
            f"mounts. When running criu by hand, mark it: --external mnt[{_abs(_g(hit, 'path'))}]"
            ":name on dump and --external mnt[name]:/path/on/target on restore, or retry with "
            "--ext-mount-map auto."
        ),
        retry="--ext-mount-map auto",
    ),
    _Pattern(
        id="tcp-established",
        rank=10,
        triggers=_rx(
            r"Connected TCP socket, consider using --tcp-established",
            r"Connected TCP socket in image",
        ),
        title="The container has established TCP connections",
        cause=_tcp_cause,
        fix=(
            "Retry with --tcp-established on dump and restore (`ferryman migrate … --criu-opt=--tcp-established`, or `r` in the doctor): the connections survive "
            "only if the container keeps its IP address on the target and the peer can reach "
            "it there. To drop them instead, use --tcp-close (the application sees them reset)."
        ),
        retry="--tcp-established",
    ),
    _Pattern(
        id="pid-in-use",
        rank=10,
        triggers=_rx(
            r"Can't fork for (?P<pid>\d+): File exists",
            r"Pid (?P<got>\d+) do not match expected (?P<pid>\d+)",
            r"Thread pid mismatch (?P<got>\d+)/(?P<pid>\d+)",
        ),
        title="A PID the container needs is already in use on the target",
        cause=_pid_cause,
        fix=_pid_fix,
    ),
    _Pattern(
        id="address-in-use",
        rank=10,
        triggers=_rx(
            r"Can't bind inet socket \(id \d+\): Address already in use",
            r"Can't bind id \S+ ino \d+ addr (?P<addr>.*): Address already in use",
        ),
        title="An address or port the container listens on is already taken on the target",
        cause=_addr_cause,
        fix=_addr_fix,
        context=_addr_context,
    ),
    _Pattern(
        id="cpu-mismatch",
        rank=10,
        triggers=_rx(
            r"CPU (instruction )?capabilities do not match run time",
            r"CPU xsave (max )?size mismatch \(\d+/\d+\)",
            r"CPU xfeatures has unsupported bits",
            r"FPU feature required by image",
            r"missing support fxsave/restore insns",
            r"Image carries unknown (vendor|capability version)",
            r"Image carries \d+ words while \d+ expected",
            r"Unknown cpu vendor",
        ),
        title="The target CPU differs from the source CPU",
        cause=_cpu_cause,
        fix=_CPU_FIX,
        retry=_cpu_retry,
    ),
    _Pattern(
        id="criu-version",
        rank=10,
        triggers=_rx(
            r"(?:Head m|M)agic doesn't match for (?P<img>\S+)",
            r"Not supported images version \d+",
            r"Too old image, no longer supported",
            r"Failed unpacking object \S+ from (?P<img>\S+)",
        ),
        title="The checkpoint images do not fit the target's CRIU version",
        cause=_image_cause,
        fix=_IMAGE_FIX,
    ),
    _Pattern(
        id="lazy-pages-broken",
        rank=10,
        triggers=_rx(
            r"page-pipe: splice: .*Bad file descriptor",
            r"Lazy pages transfer FAILED",
            r"uffd: Failed sending restore finished indication",
        ),
        title="Post-copy (lazy pages) migration does not work on this kernel",
        cause=_lazy_cause,
        fix=_LAZY_FIX,
    ),
    _Pattern(
        id="no-uffd",
        rank=10,
        triggers=_rx(r"Lazy pages are not available"),
        title="The kernel has no usable userfaultfd, so post-copy migration is impossible",
        cause=lambda hit, ctx: (
            f"CRIU cannot use userfaultfd here ({_inert(hit.first.group(0))}), which post-copy "
            "(lazy pages) migration needs."
        ),
        fix=_NO_UFFD_FIX,
    ),
    _Pattern(
        id="no-soft-dirty",
        rank=10,
        triggers=_rx(
            r"BUG at criu/mem\.c",
            r"Dirty tracking is OFF",
            r"Tracking memory is not available",
        ),
        title="The kernel has no soft-dirty tracking, so pre-copy cannot work",
        cause=_dirty_cause,
        fix=_DIRTY_FIX,
        gate=_dirty_gate,
        context=_dirty_context,
    ),
    _Pattern(
        id="external-unix",
        rank=10,
        triggers=_rx(
            r"External socket is used",
            r"External socket found in image",
            r"Can't dump half of stream unix connection\. name: (?P<name>\S+?);",
            r"Can't dump name-less external socket",
        ),
        title="The container is connected to a unix socket outside it",
        cause=_unix_cause,
        fix=_unix_fix,
        retry=_unix_retry,
        context=_unix_context,
    ),
    _Pattern(
        id="ghost-limit",
        rank=10,
        triggers=_rx(r"Can't dump ghost file (?P<path>.+) of (?P<size>\d+) size, increase limit"),
        title="A deleted file the container holds open is too big to copy",
        cause=_ghost_cause,
        fix=lambda hit, ctx: (
            f"Retry with {_ghost_retry(hit, ctx)} (CRIU copies the deleted file's contents into "
            "the images), or make the application close or truncate the file first."
        ),
        retry=_ghost_retry,
    ),
    _Pattern(
        id="unsupported-file",
        rank=10,
        triggers=_rx(r"Can't dump file (?P<fd>\d+) of that type \[\w+\] \((?P<info>.*)\)"),
        title="The container has a file open that CRIU cannot checkpoint",
        cause=_unsupported_cause,
        fix=_UNSUPPORTED_FIX,
    ),
    _Pattern(
        id="ptrace",
        rank=15,
        triggers=_rx(
            r"Unable to interrupt task: (?P<pid>\d+) \(Operation not permitted\)",
            r"Can't attach to (?P<pid>\d+): Operation not permitted",
        ),
        title="CRIU was not allowed to ptrace a process of the container",
        cause=_ptrace_cause,
        fix=_ptrace_fix,
    ),
    _Pattern(
        id="cgroup",
        rank=20,
        triggers=_rx(
            # not the cgroup daemon's closed socket, a consequence of any failed restore
            r"^cg: (?!cgroupd: recv req error).*",
            r"^cgroupd: (?!recv req error).*",
            r"Restoring special cpuset props failed",
        ),
        title="The container's cgroups could not be recreated on the target",
        cause=_cgroup_cause,
        fix=_CGROUP_FIX,
        retry="--manage-cgroups=ignore",
    ),
    _Pattern(
        id="seccomp",
        rank=20,
        triggers=_rx(r".*seccomp.*", flags=re.I),
        title="The container's seccomp filter could not be saved or restored",
        cause=_seccomp_cause,
        fix=_SECCOMP_FIX,
    ),
    _Pattern(
        id="page-server-lost",
        rank=40,
        triggers=_rx(
            r"Can't write pages to socket: Broken pipe",
            r"Can't send PSI \d+ to server: Broken pipe",
            r"page-xfer: Remote side closed connection",
            r"page-xfer: The page server doesn't answer",
        ),
        title="The page server on the other side went away during the transfer",
        cause=_ps_lost_cause,
        fix=_PS_LOST_FIX,
    ),
)


def _call(value: str | Callable[[_Hit, _Ctx], str], hit: _Hit, ctx: _Ctx) -> str:
    return value(hit, ctx) if callable(value) else value


def _match(pattern: _Pattern, ctx: _Ctx, marked: list[_Line]) -> _Hit | None:
    if pattern.gate is not None and not pattern.gate(ctx):
        return None
    hits: list[_Line] = []
    first: re.Match[str] | None = None
    for line in marked:
        for regex in pattern.triggers:
            m = regex.search(line.msg)
            if m:
                hits.append(line)
                first = first or m
                break
    if not hits or first is None:
        return None
    hit = _Hit(hits, first)
    if pattern.context is not None:
        hit.context = pattern.context(hit, ctx)
    return hit


def _evidence(lines: list[_Line]) -> tuple[Evidence, ...]:
    unique = {line.no: line for line in lines}
    return tuple(unique[no].evidence() for no in sorted(unique))


def _generic(marked: list[_Line]) -> Diagnosis | None:
    errors = [line for line in marked if line.severity in ("error", "bug")]
    if not errors:
        return None
    causes = [line for line in errors if not _is_summary(line.msg)] or errors
    quoted = causes[:3]
    first = quoted[0]
    return Diagnosis(
        id="unknown",
        title="CRIU failed for a reason the doctor does not know yet",
        cause=f"CRIU stopped with: {_inert(first.msg)!s} (line {first.no}).",
        fix=(
            f"Read the log around line {first.no}: the lines just above the first error say "
            "what CRIU was doing (rerun with -v4 if the log is short). Search the message in "
            "https://github.com/checkpoint-restore/criu/issues and see "
            "https://criu.org/When_C/R_fails for common causes."
        ),
        evidence=_evidence(quoted),
    )


def diagnose(log_text: str) -> list[Diagnosis]:
    """Known failure patterns found in ``log_text``, the most specific first.

    Harmless noise never counts as a cause. When nothing known matches but CRIU
    reported errors, one generic diagnosis (id "unknown") quotes them.
    """
    lines = _parse(log_text)
    ctx = _Ctx(kind=detect_kind(log_text), lines=lines)
    marked = [line for line in lines if line.severity and not is_noise(line.raw)]
    found: list[tuple[int, int, Diagnosis]] = []
    for pattern in _PATTERNS:
        hit = _match(pattern, ctx, marked)
        if hit is None:
            continue
        diag = Diagnosis(
            id=pattern.id,
            title=pattern.title,
            cause=_call(pattern.cause, hit, ctx),
            fix=_call(pattern.fix, hit, ctx),
            evidence=_evidence(hit.lines[:MAX_EVIDENCE] + hit.context),
            retry_option=_call(pattern.retry, hit, ctx),
        )
        found.append((pattern.rank, hit.lines[0].no, diag))
    if not found:
        generic = _generic(marked)
        return [generic] if generic else []
    return [diag for _, _, diag in sorted(found, key=lambda t: (t[0], t[1]))]


# --------------------------------------------------------------------------- output


def _wrap(label: str, text: str, width: int = 96) -> str:
    indent = " " * (len(label) + 3)
    return textwrap.fill(text, width=width, initial_indent=f"   {label}", subsequent_indent=indent)


def render_text(diags: list[Diagnosis]) -> str:
    """The human-readable report printed by ``ferryman doctor LOG``."""
    if not diags:
        return "No known CRIU failure found: the log has no error lines that explain a failure.\n"
    out: list[str] = []
    noun = "finding" if len(diags) == 1 else "findings"
    out.append(f"{len(diags)} {noun}, most likely cause first.")
    for n, d in enumerate(diags, start=1):
        out.append("")
        out.append(f"{n}. {d.title}  [{d.id}]")
        out.append(_wrap("Cause: ", d.cause))
        out.append(_wrap("Fix:   ", d.fix))
        if d.retry_option:
            out.append(f"   Retry with: {d.retry_option}")
        if d.evidence:
            out.append("   Evidence:")
            for e in d.evidence:
                out.append(f"     line {e.line_no}: {_inert(e.text.strip())}")
    return "\n".join(out) + "\n"


def load_log(path: str | Path) -> str:
    """Read a CRIU log as text; undecodable bytes become U+FFFD, nothing is lost."""
    return Path(path).read_bytes().decode("utf-8", errors="replace")
