"""An armed command whose channel was cut while it waited (the source's sshd killed at
the end of the dump): firing it says which host was lost, as a HostError the rollback
handles, never an internal error."""

from __future__ import annotations

import pytest

from core.engine.armed import Armed
from core.models import HostState
from core.ssh import HostError


class _ClosedInput:
    def write(self, data: bytes) -> None:
        raise BrokenPipeError("Channel not open for sending")

    def write_eof(self) -> None:
        raise BrokenPipeError("Channel not open for sending")


class _OpenInput:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.eof = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def write_eof(self) -> None:
        self.eof = True


class _Proc:
    def __init__(self, stdin) -> None:
        self.stdin = stdin


class _Host:
    name = "host1"


def _armed(stdin) -> Armed:
    a = Armed(_Host(), "tar -C /var/lib/ferryman/x -c .")  # type: ignore[arg-type]
    a.proc = _Proc(stdin)  # type: ignore[assignment]
    return a


def test_fire_on_a_cut_channel_is_a_lost_host():
    with pytest.raises(HostError) as e:
        _armed(_ClosedInput()).fire(last=True)
    assert e.value.host == "host1"
    assert e.value.state is HostState.UNREACHABLE
    assert "connection was lost" in str(e.value)


def test_fire_sends_one_newline_and_closes_only_when_last():
    i = _OpenInput()
    _armed(i).fire()
    assert i.sent == [b"\n"] and not i.eof
    _armed(i).fire(last=True)
    assert i.eof
