"""Extra CRIU options a user (or the restore doctor's retry) asks for, made safe.

An option is one of a known set (`--tcp-established`, `--ext-mount-map auto`, ...), given
as `--name`, `--name=value` or `--name value`. The dump gets the ones runc has flags for;
the restore gets them all as lines of runc's CRIU configuration file. Anything else is
refused: a value can never carry a newline (a second option) or shell syntax.
"""

from __future__ import annotations

import re

# CRIU option -> the runc checkpoint flag that carries it (None: restore only).
KNOWN: dict[str, str | None] = {
    "tcp-established": "--tcp-established",
    "ext-unix-sk": "--ext-unix-sk",
    "file-locks": "--file-locks",
    "shell-job": "--shell-job",
    "link-remap": None,
    "ext-mount-map": None,
    "manage-cgroups": None,
    "cpu-cap": None,
    "ghost-limit": None,
    "skip-in-flight": None,
    "tcp-close": None,
}
VALUE = re.compile(r"^[A-Za-z0-9_./:,+@-]{1,200}$")


class OptionError(ValueError):
    pass


def parse(option: str) -> tuple[str, str]:
    text = option.strip()
    if not text.startswith("--"):
        raise OptionError(f"{option!r}: CRIU options start with --")
    name, _, value = text[2:].replace("=", " ", 1).partition(" ")
    value = value.strip()
    if name not in KNOWN:
        raise OptionError(
            f"{option!r} is not a CRIU option ferryman passes on; known: "
            + ", ".join(f"--{k}" for k in KNOWN)
        )
    if value and not VALUE.match(value):
        raise OptionError(f"{option!r}: the value may hold letters, digits and ./:,+@_- only")
    return name, value


def validate(options: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(parse(o) for o in options)


def dump_flags(options: tuple[str, ...]) -> list[str]:
    flags = []
    for name, _ in validate(options):
        flag = KNOWN[name]
        if flag:
            flags.append(flag)
    return flags


def config_lines(options: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{name} {value}".strip() for name, value in validate(options))


# A move gives the container another host, and (on a bridge network) another address:
# its TCP connections cannot survive it. So by default the dump takes established
# connections along (TCP repair) and skips half-open ones still in a listen queue, and the
# restore brings them back closed: the application sees them reset, clients reconnect.
# Without this a server with a client connecting at the moment of the freeze makes CRIU
# refuse the dump ("Connected TCP socket" / "In-flight connection"). Asking for
# --tcp-established keeps them open instead (for a container that keeps its address).
def connection_defaults(
    options: tuple[str, ...],
) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    """(runc checkpoint flags, dump config lines, restore config lines) added by default."""
    names = {n for n, _ in validate(options)}
    if "tcp-established" in names:
        return [], (), ()
    restore = () if "tcp-close" in names else ("tcp-close",)
    dump = () if "skip-in-flight" in names else ("skip-in-flight",)
    return ["--tcp-established"], dump, restore
