"""The one place where remote commands are built and quoted.

Call sites build argument lists (data); only this module turns them into the shell
text that SSH carries, with shlex.quote on every word. Nothing user-supplied (names,
paths, labels) is ever formatted into a command string anywhere else.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

Argv = Sequence[str]

# Lab and admin hosts alike: the CRIU that runc finds must come first.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def quote(argv: Argv) -> str:
    for a in argv:
        if not isinstance(a, str):
            raise TypeError(f"command words must be str, got {type(a).__name__}: {a!r}")
        if "\x00" in a:
            raise ValueError("a command word contains a NUL byte")
    return shlex.join(argv)


def pipe(*argvs: Argv) -> str:
    """`a | b | c`, failing if any stage fails."""
    return "set -o pipefail; " + " | ".join(quote(a) for a in argvs)


def all_of(*argvs: Argv) -> str:
    """`a && b && c`."""
    return " && ".join(quote(a) for a in argvs)


def parse_facts(text: str) -> dict[str, str]:
    """The `key=value` lines a facts command prints (other lines are skipped)."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def path_export() -> str:
    """Sets PATH for a remote command: a host may put its own tools first through
    FERRYMAN_PATH_PREFIX (sshd's SetEnv/AcceptEnv); then the usual places, /usr/local first."""
    return f'export PATH="${{FERRYMAN_PATH_PREFIX:+$FERRYMAN_PATH_PREFIX:}}{PATH}"; '


def bash(script: str) -> list[str]:
    """A script run by bash (for pipefail), as one quoted word."""
    return ["bash", "-c", script]


def write_file(path: str, mode: str = "600") -> list[str]:
    """A command that writes stdin to `path` with `mode` (umask set before creation)."""
    return bash(
        f"umask 077 && cat > {shlex.quote(path)} && chmod {shlex.quote(mode)} {shlex.quote(path)}"
    )


# --- the commands ferryman runs on hosts -------------------------------------------------


def docker(*args: str, socket: str | None = None) -> list[str]:
    return ["docker", *(["-H", f"unix://{socket}"] if socket else []), *args]


def runc(runc_root: str, *args: str) -> list[str]:
    return ["runc", "--root", runc_root, *args]


def mkdir_private(*paths: str) -> list[str]:
    """Folders for root only, the parents `-p` makes included (`-m` alone sets only the last)."""
    return ["sh", "-c", 'umask 077 && exec mkdir -p -m 700 -- "$@"', "mkdir_private", *paths]


def remove_tree(*paths: str) -> list[str]:
    return ["rm", "-rf", "--one-file-system", *paths]


def empty_dirs(paths: Sequence[str]) -> list[str]:
    """Remove what each folder holds, keeping the folder itself."""
    return [
        "find",
        *paths,
        "-mindepth",
        "1",
        "-maxdepth",
        "1",
        "-exec",
        "rm",
        "-rf",
        "--one-file-system",
        "{}",
        "+",
    ]


def tar_create(directory: str, *members: str) -> list[str]:
    return [
        "tar",
        "-C",
        directory,
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "-cf",
        "-",
        *(members or ["."]),
    ]


def tar_extract(directory: str, *, keep_existing: bool = False) -> list[str]:
    """`keep_existing`: files already there win (`--skip-old-files`), only missing ones
    are added."""
    return [
        "tar",
        "-C",
        directory,
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        *(["--skip-old-files"] if keep_existing else []),
        "-xpf",
        "-",
    ]


def tar_extract_missing(directory: str) -> list[str]:
    """Unpack a tar stream beside `directory`, then move in only the files it lacks (the
    files already there win). A stream cut off (a full disk) leaves its half-written
    files in the staging folder, never in `directory`; the next try starts that folder
    afresh."""
    d = shlex.quote(directory)
    untar = " ".join(shlex.quote(a) for a in tar_extract("$st"))
    untar = untar.replace("'$st'", '"$st"')
    return bash(
        f'st={shlex.quote(directory + ".back")}; rm -rf "$st" && mkdir -m 700 "$st" && '
        f"{untar} && "
        f'for f in "$st"/* "$st"/.[!.]*; do {{ [ -e "$f" ] || [ -L "$f" ]; }} || continue; '
        f'b=${{f##*/}}; {{ [ -e {d}/"$b" ] || [ -L {d}/"$b" ]; }} || mv "$f" {d}/ || exit 1; '
        f'done && rm -rf "$st"'
    )


def memory_usage(pids: Sequence[int]) -> list[str]:
    """Print `PID BYTES` for each process: its memory cgroup's usage (v1 or v2), else its RSS."""
    script = r"""
for p in "$@"; do
  cg=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print "/sys/fs/cgroup/memory" $3; exit} $1 == "0" {v2="/sys/fs/cgroup" $3} END {if (v2 != "") print v2}' /proc/$p/cgroup 2>/dev/null | head -1)
  if [ -r "$cg/memory.usage_in_bytes" ]; then b=$(cat "$cg/memory.usage_in_bytes")
  elif [ -r "$cg/memory.current" ]; then b=$(cat "$cg/memory.current")
  else b=$(( $(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null || echo 0) * 1024 )); fi
  echo "$p $b"
done"""
    return ["bash", "-c", script, "memory_usage", *(str(int(p)) for p in pids)]


def host_facts(images_dir: str) -> list[str]:
    """Print `key=value` lines: kernel, CRIU/runc versions and features, cgroups, space, CPU."""
    script = r"""
d="$1"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "kernel=$(uname -r)"
echo "criu_path=$(command -v criu || true)"
echo "criu_version=$(criu --version 2>/dev/null | sed -n 's/^Version: //p' | head -1)"
echo "runc_version=$(runc --version 2>/dev/null | sed -n 's/^runc version //p' | head -1)"
echo "containerd_line=$(containerd --version 2>/dev/null | head -1)"
c=$(criu check 2>&1); echo "criu_check_rc=$?"; echo "criu_check=$(printf '%s' "$c" | tail -3 | tr '\n' ' ')"
criu check --feature mem_dirty_track >/dev/null 2>&1; echo "mem_dirty_track=$?"
criu check --feature uffd-noncoop >/dev/null 2>&1; echo "uffd_noncoop=$?"
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
echo "space_avail=$(df -B1 --output=avail "$d" 2>/dev/null | tail -1 | tr -d ' ')"
echo "space_dir=$d"
echo "cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2)"
echo "pipe_max_size=$(cat /proc/sys/fs/pipe-max-size 2>/dev/null)"
echo "cap_bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)"
"""
    return ["bash", "-c", script, "host_facts", images_dir]


def tool_versions() -> list[str]:
    """Print `containerd=<its --version line>` and `runc=<its --version line>` (as the
    host's PATH finds them: core/versions.py reads them where the engine names commits)."""
    return [
        "bash",
        "-c",
        'echo "containerd=$(containerd --version 2>/dev/null | head -1)"; '
        'echo "runc=$(runc --version 2>/dev/null | head -1)"',
    ]


def file_digest(path: str) -> list[str]:
    """Print the SHA-256 of `path` (nothing when it cannot be read)."""
    return ["bash", "-c", 'sha256sum -- "$1" 2>/dev/null | cut -d" " -f1', "file_digest", path]


def exe_digest(pid: int) -> list[str]:
    """Print the SHA-256 of the executable process `pid` runs (nothing when it is gone)."""
    return [
        "bash",
        "-c",
        'sha256sum -- "/proc/$1/exe" 2>/dev/null | cut -d" " -f1',
        "exe",
        str(pid),
    ]


# dockerd's docker-init: init-path when absolute, else the first "libexec" folder that has
# it, else its own PATH (moby's LookupInitPath); dockerd found by the socket it listens on.
_ENGINE_INIT = r"""
sock=$1 init=$2 f=""
case $init in
/*) f=$init ;;
*)
  pid=$(ss -xlpnH 2>/dev/null | grep -F " $sock " | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$pid" ] || exit 3
  dirs=/usr/local/libexec/docker:/usr/libexec/docker:/usr/local/lib/docker:/usr/lib/docker
  dirs=$dirs:$(tr '\0' '\n' < "/proc/$pid/environ" | sed -n 's/^PATH=//p')
  IFS=:
  for d in $dirs; do [ -x "$d/$init" ] && { f=$d/$init; break; }; done ;;
esac
[ -n "$f" ] && [ -x "$f" ] || exit 4
printf '%s %s\n' "$(sha256sum -- "$f" | cut -d" " -f1)" "$(readlink -f -- "$f")"
"""


def engine_init_digest(socket: str, init_binary: str) -> list[str]:
    """Print `SHA-256 path` of the docker-init the engine listening on `socket` mounts
    into `--init` containers (exit 3: that engine not found; 4: no such binary)."""
    return ["bash", "-c", _ENGINE_INIT, "engine_init", socket, init_binary or "docker-init"]


def bytes_used(paths: Sequence[str]) -> list[str]:
    """Print the bytes the files under `paths` hold together (one file system each)."""
    return [
        "bash",
        "-c",
        'du -sxB1 -- "$@" | awk \'{s += $1} END {print s + 0}\'',
        "bytes_used",
        *paths,
    ]


def bytes_free(path: str) -> list[str]:
    """Print the bytes free for root's files on the file system holding `path`, or on
    the nearest folder above it that exists."""
    return [
        "bash",
        "-c",
        'p=$1; while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; '
        'df -B1 --output=avail "$p" | tail -1 | tr -d " "',
        "bytes_free",
        path,
    ]


def paths_exist(paths: Sequence[str]) -> list[str]:
    """Print each path that does NOT exist."""
    return [
        "bash",
        "-c",
        'for p in "$@"; do [ -e "$p" ] || printf "%s\\n" "$p"; done',
        "paths_exist",
        *paths,
    ]


def take_lock(path: str, owner: str) -> list[str]:
    """Create the lock folder `path` atomically (fails if it exists) and record its owner."""
    return [
        "bash",
        "-c",
        'mkdir -p -m 700 "$(dirname "$1")" && mkdir -m 700 "$1" && printf %s "$2" > "$1/owner"',
        "take_lock",
        path,
        owner,
    ]


def kill_pidfile(pidfile: str) -> list[str]:
    """Stop the process named in `pidfile`, if it still runs."""
    return [
        "bash",
        "-c",
        '[ -r "$1" ] && kill "$(cat "$1")" 2>/dev/null; true',
        "kill_pidfile",
        pidfile,
    ]


# Exit status of coreutils `timeout` when it stopped the command.
TIMED_OUT = 124


def kill_after_s(limit_s: float) -> int:
    """After SIGTERM at the limit, how long a command has before SIGKILL (1–10 s)."""
    return int(min(10, max(1, limit_s // 10)))


def limit_grace_s(limit_s: float) -> float:
    """How long the console waits past a command's own limit for its exit status."""
    return kill_after_s(limit_s) + 3.0


def bounded(command: str, limit_s: float) -> str:
    """`command`, stopped on its host once it has run `limit_s` seconds.

    A command the console gave up on must not finish later on its own (a dump that kills
    the source, a restore that starts a twin after the rollback resumed the source). So
    the limit is the host's, not only the console's: coreutils `timeout` sends SIGTERM to
    the command's whole process group at the limit (shell traps run: a CRIU config file
    is put back), SIGKILL `kill_after_s` later, and exits with `TIMED_OUT`; the console
    waits `limit_grace_s` longer for that status. Processes that left the group on
    purpose (`setsid`, CRIU's `--daemon`) are not touched. The login shell runs the
    command, as it would unbounded, with the environment the first one set up; without
    SSH_CLIENT, so that bash does not read ~/.bashrc a second time (it does when it
    thinks sshd started it: 100+ ms a command on a host whose rc file is slow)."""
    secs = max(1, round(limit_s))
    return (
        f"exec env -u SSH_CLIENT -u SSH2_CLIENT timeout -k {kill_after_s(limit_s)} {secs} "
        f'"${{SHELL:-/bin/sh}}" -c {shlex.quote(command)}'
    )


def armed(script: str, limit_s: float | None = None) -> str:
    """`script`, run only once a first input line arrives (see core/engine/armed.py).
    `read` takes its input a byte at a time from a pipe, so what follows the line
    (a tar stream, say) is left for the command. With `limit_s`, the fired script is
    `bounded` (it inherits the rest of the input)."""
    if limit_s is not None:
        return f"read -r _ || exit 125; {bounded(script, limit_s)}"
    return f"read -r _ || exit 125; {{ {script}\n}}"


# Exit 0 when the TCP connection from 127.0.0.1:$2 to local port $3 is held by the
# process whose pid is in the file $1 (its socket's inode is among that process's fds).
_PEER_IS = r"""
pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || exit 3
ino=$(awk -v a="$(printf '%04X' "$2")" -v b="$(printf '%04X' "$3")" '
  FNR > 1 { split($2, l, ":"); split($3, r, ":"); if (l[2] == a && r[2] == b) print $10 }
' /proc/net/tcp /proc/net/tcp6 2>/dev/null | head -n 1)
[ -n "$ino" ] || exit 4
ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF "socket:[$ino]" || exit 5
"""


def peer_is(pidfile: str, peer_port: int, local_port: int) -> list[str]:
    """Whether a loopback connection to a listener of ours came from the process we
    started (by pidfile), and not from another local process that connected first."""
    return ["sh", "-c", _PEER_IS, "peer_is", pidfile, str(peer_port), str(local_port)]


# Reads `PEER LOCAL` lines: a loopback connection from 127.0.0.1:PEER to our listener's
# port LOCAL. Answers `ok PID` when the connecting socket is held by CRIU's service (a
# child of runc, or whose command line reads `criu swrk`, as runc starts it, or `criu:
# dump ...`, once CRIU has set its title; CRIU 4.1 leaves only its loader's name there
# when run through one) of this host's root: uid 0, in this host's PID
# namespace (not a container's, nor a local user's); else `no REASON`. The owner is
# found by `ss -p` (iproute2); without ss the checker says `unchecked` once and exits.
# Started before the freeze, so that a check costs a line on an open channel.
_PEER_CHECKER = r"""
command -v ss >/dev/null 2>&1 || { echo unchecked; exit 0; }
me_pid=$(readlink /proc/self/ns/pid)
echo ready
while read -r peer local; do
  pid=$(ss -Htnp state established "( sport = :$peer and dport = :$local )" 2>/dev/null |
        sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n 1)
  if [ -z "$pid" ]; then echo "no connection from port $peer"; continue; fi
  ppid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  read -r parent < "/proc/$ppid/comm" 2>/dev/null || parent=""
  case "$parent: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
    runc*|*[/\ ]criu\ swrk\ *|*[/\ ]criu:\ dump\ *) ;;
    *) echo "no: process $pid is not CRIU's service"; continue ;;
  esac
  uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
  if [ "$uid" != 0 ]; then echo "no: CRIU of uid $uid"; continue; fi
  if [ "$(readlink "/proc/$pid/ns/pid")" != "$me_pid" ]; then
    echo "no: a CRIU in another PID namespace (a container's)"; continue
  fi
  echo "ok $pid"
done
"""


def peer_checker() -> list[str]:
    """The source's check of who connects to the dump's page-server port (see above)."""
    return ["sh", "-c", _PEER_CHECKER, "peer_checker"]


def wait_for_file(path: str, within_s: float) -> list[str]:
    """Exit 0 as soon as `path` exists, 1 if it does not within `within_s`."""
    tries = max(1, int(within_s / 0.02))
    return [
        "sh",
        "-c",
        'i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ "$i" -gt "$2" ] && exit 1; sleep 0.02; done',
        "wait_for_file",
        path,
        str(tries),
    ]


# --- the direct host-to-host path (core/engine/direct_path.py) ----------------------------

DIRECT_READY = b"ferryman-receiver-ready"
# The forced command of a migration's one-time key on the target: it takes only a stream
# number (`ssh ... 3`), looks that line up in the list beside it (written by the console
# over its own connection) and unpacks stdin there. Nothing else can be run with the key.
DIRECT_RECEIVER = r"""# ferryman: receiver of one migration's direct streams (its key's forced command)
case "$SSH_ORIGINAL_COMMAND" in
''|*[!0-9]*) echo "ferryman: refused: not a stream number: $SSH_ORIGINAL_COMMAND" >&2; exit 2 ;;
esac
d=$(sed -n "${SSH_ORIGINAL_COMMAND}p" "$0.streams")
[ -n "$d" ] || { echo "ferryman: no stream $SSH_ORIGINAL_COMMAND in $0.streams" >&2; exit 2; }
umask 077
mkdir -p -m 700 -- "$d" || exit 1
echo ferryman-receiver-ready
exec tar -C "$d" --numeric-owner --xattrs --xattrs-include='*' -xpf -
"""


def direct_target_facts() -> list[str]:
    """Print `key=value`: the address and port this SSH session came in on (the target's
    side of $SSH_CONNECTION), the login's home and name."""
    return [
        "sh",
        "-c",
        'set -- $SSH_CONNECTION; echo "addr=$3"; echo "port=$4"; '
        'echo "home=$HOME"; echo "user=$(id -un)"',
    ]


def direct_source_probe(address: str, port: int) -> list[str]:
    """On the source: print `key=value` lines: whether ssh and dd are there, the source's own
    address toward `address`, and the first bytes `address:port` sends (an sshd says `SSH-`)."""
    script = r"""
echo "ssh=$(command -v ssh || true)"
echo "dd=$(command -v dd || true)"
echo "from=$(ip -o route get "$1" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p' | head -n1)"
echo "banner=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" && head -c 4 <&3' _ "$1" "$2" 2>/dev/null)"
"""
    return ["bash", "-c", script, "direct_probe", address, str(int(port))]


def authorize_key(keys_file: str, line: str) -> list[str]:
    """Append `line` to `keys_file` (made if missing, a newline first if the file lacks its
    last one), under a lock beside it so that two migrations do not interleave."""
    script = r"""
f=$1; mkdir -p -m 700 -- "$(dirname -- "$f")" || exit 1
exec 9>>"$f.ferryman-lock" && flock -w 30 9 || exit 1
[ -e "$f" ] || { umask 077; : > "$f"; }
[ -s "$f" ] && [ "$(tail -c 1 -- "$f" | od -An -c | tr -d ' ')" != '\n' ] && echo >> "$f"
printf '%s\n' "$2" >> "$f"
"""
    return ["bash", "-c", script, "authorize_key", keys_file, line]


def revoke_key(keys_file: str, marker: str) -> list[str]:
    """Remove every line of `keys_file` that ends with ` marker` (the file keeps its owner,
    mode and other lines; nothing happens when there is none)."""
    script = r"""
f=$1; [ -e "$f" ] || exit 0
exec 9>>"$f.ferryman-lock" && flock -w 30 9 || exit 1
grep -qF -- " $2" "$f" || exit 0
t=$(mktemp "$f.XXXXXX") || exit 1
grep -vF -- " $2" "$f" > "$t"; cat -- "$t" > "$f"; rm -f -- "$t"
"""
    return ["bash", "-c", script, "revoke_key", keys_file, marker]


def direct_send_ssh(
    key: str, known_hosts: str, user: str, address: str, port: int, stream: int
) -> list[str]:
    """The source's OpenSSH client for one direct stream: only the one-time key, the host
    key the console saw, no agent, no forwardings, none of the admin's ssh_config."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "ClearAllForwardings=yes",
        "-o",
        "PermitLocalCommand=no",
        "-o",
        "Compression=no",
        "-o",
        "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "-p",
        str(int(port)),
        "-l",
        user,
        "--",
        address,
        str(int(stream)),
    ]


def direct_send(directory: str, ssh_argv: Argv, *, armed: bool = False) -> str:
    """`tar -c directory | dd | ssh …`: dd reports the bytes on stderr each second
    (`N bytes … copied`). `armed`: the ssh connection opens now and the tar waits for a
    first input line (core/engine/armed.py); unfired, it exits 125 and the target unpacks
    an empty stream."""
    tar = quote(tar_create(directory))
    first = f"{{ read -r _ || exit 125; exec {tar}; }}" if armed else tar
    return f"set -o pipefail; {first} | dd bs=1M status=progress | {quote(ssh_argv)}"
