"""runc's CRIU configuration file, held for the length of one operation: written once.

runc hands CRIU `/etc/criu/runc.conf` on every checkpoint and restore, its options winning.
ferryman writes its own there only under the host's lock, for as long as one restore (or
the start of one lazy dump) needs it, and puts back whatever the admin had:

- ferryman's file starts with a marker line naming the migration;
- the admin's own file waits in `runc.conf.ferryman-saved` meanwhile;
- a file with the marker found while the lock is free was left by a shell that was killed
  (OOM, reboot): it is removed, and a saved admin file put back, never overwritten.
"""

from __future__ import annotations

import shlex

CONF = "/etc/criu/runc.conf"
SAVED = CONF + ".ferryman-saved"
LOCK = "/run/lock/ferryman-runc-conf.lock"
MARKER = "# written by ferryman"


def marker(owner: str) -> str:
    return f"{MARKER} for {owner}; removed when its operation ends\n"


def _repair() -> str:
    """Shell lines, run under the lock: undo a file a killed operation left behind."""
    q = shlex.quote
    return (
        f"if [ -e {q(CONF)} ] && head -n1 {q(CONF)} | grep -q {q('^' + MARKER)}; then "
        f"rm -f {q(CONF)}; fi; "
        f"if [ ! -e {q(CONF)} ] && [ -e {q(SAVED)} ]; then mv {q(SAVED)} {q(CONF)}; fi"
    )


def take_lock(lock: str = LOCK, wait_s: int = 60) -> str:
    """Shell lines: wait up to `wait_s` for the host's runc.conf lock, held on fd 9 from
    then on (until the script closes it or ends); a lock that stays busy ends the script
    with exit 75 and says so. Every operation that reads or writes runc.conf takes it
    here: a dump, a lazy dump's start, a restore."""
    q = shlex.quote
    busy = f"the runc.conf lock ({lock}) stayed busy for {wait_s} s"
    return (
        f"mkdir -p {q(lock.rsplit('/', 1)[0])} && exec 9>{q(lock)} && "
        f"{{ flock -w {int(wait_s)} 9 || {{ echo {q(busy)} >&2; exit 75; }}; }}"
    )


def hold(text: str, owner: str, *, unlock_fd: int | None = None) -> str:
    """Shell lines, run under the lock: repair, save the admin's file, write ours, and
    define `put_back` (idempotent), trapped on exit. A file that cannot be written ends
    the script (exit 78) rather than letting runc run without our options."""
    q = shlex.quote
    unlock = f" flock -u {unlock_fd};" if unlock_fd is not None else ""
    return "\n".join(
        [
            "mkdir -p /etc/criu",
            _repair(),
            f"if [ -e {q(CONF)} ]; then mv {q(CONF)} {q(SAVED)}; fi",
            f"put_back() {{ rm -f {q(CONF)}; if [ -e {q(SAVED)} ]; then mv {q(SAVED)} {q(CONF)}; fi;{unlock} }}",
            "trap put_back EXIT",
            "trap 'exit 129' HUP INT TERM",
            f"printf %s {q(marker(owner) + text)} > {q(CONF)} || "
            f"{{ echo 'cannot write {CONF}' >&2; exit 78; }}",
        ]
    )


def stale_check() -> str:
    """A command for preflight: prints `busy` (an operation holds the file now),
    `repaired` (a dead operation's file was removed and the admin's put back) or `clean`."""
    q = shlex.quote
    return (
        f"mkdir -p {q(LOCK.rsplit('/', 1)[0])} && exec 9>{q(LOCK)} && "
        f"{{ flock -n 9 || {{ echo busy; exit 0; }}; }}; "
        f"if {{ [ -e {q(CONF)} ] && head -n1 {q(CONF)} | grep -q {q('^' + MARKER)}; }} "
        f"|| {{ [ ! -e {q(CONF)} ] && [ -e {q(SAVED)} ]; }}; then "
        f"{_repair()}; echo repaired; else echo clean; fi"
    )


def own_file(text: str, path: str, command: str) -> str:
    """A script that gives `command` a container's own CRIU file (named by its
    `org.criu.config` annotation) holding `text`, and removes the file when it ends: the
    annotation names the file for the container's whole life, and CRIU ignores a missing
    file. No host lock: no other container reads it."""
    q = shlex.quote
    return "\n".join(
        [
            "set -e",
            "umask 077",
            f"mkdir -p {q(path.rsplit('/', 1)[0])}",
            f"own_off() {{ rm -f {q(path)}; }}",
            "trap own_off EXIT",
            "trap 'exit 129' HUP INT TERM",
            f"printf %s {q(text)} > {q(path)}",
            command,
        ]
    )


def hold_own(text: str, path: str, *, unlock_fd: int | None = None) -> str:
    """Shell lines, as `hold` but for a container's own CRIU file (no admin's file to
    keep: it is ferryman's, core/engine/restore_runtime.py): write it, and define
    `put_back` (remove it), trapped on exit."""
    q = shlex.quote
    unlock = f" flock -u {unlock_fd};" if unlock_fd is not None else ""
    return "\n".join(
        [
            f"mkdir -p {q(path.rsplit('/', 1)[0])}",
            f"put_back() {{ rm -f {q(path)};{unlock} }}",
            "trap put_back EXIT",
            "trap 'exit 129' HUP INT TERM",
            f"(umask 077; printf %s {q(text)} > {q(path)}) || "
            f"{{ echo 'cannot write {path}' >&2; exit 78; }}",
        ]
    )
