"""A command the console gave up on is stopped on its host, not left to finish later.

A dump or a restore that outlives its limit and then completes on its own could kill the
source or start a twin after the rollback has resumed the source. Here a marker command
stands in for them: it would write a file after its limit; the file must never appear,
and nothing of it may still run.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from core.config import load
from core.engine.armed import Armed
from core.ssh import CommandError, HostConnection
from lab.layout import HOSTS_FILE


def _slow(marker: str) -> str:
    # A recognisable sleep, then the effect a late finish would have.
    digits = int(marker[-8:], 16) % 100000
    return f"sleep 7.{digits:05d}1 && touch /tmp/{marker}"


async def _leftovers(conn: HostConnection, marker: str) -> tuple[str, bool]:
    sleep = _slow(marker).split(" &&")[0]
    ps = (await conn.run(f"pgrep -a -x sleep | grep -F {sleep!r} || true", timeout=10)).stdout
    there = (await conn.run(f"test -e /tmp/{marker}", check=False, timeout=10)).ok
    return ps.strip(), there


def test_run_past_its_limit_is_stopped_on_the_host(lab_hosts):
    spec = load(HOSTS_FILE).hosts[0]
    marker = f"ferryman-late-{uuid.uuid4().hex}"

    async def go() -> tuple[CommandError, float, str, bool]:
        conn = HostConnection(spec)
        try:
            t0 = time.monotonic()
            try:
                await conn.run(_slow(marker), timeout=2)
            except CommandError as e:
                err, took = e, time.monotonic() - t0
            else:
                raise AssertionError("a 7 s command ended inside a 2 s limit")
            await asyncio.sleep(8)  # past the moment the command would have finished
            ps, there = await _leftovers(conn, marker)
            return err, took, ps, there
        finally:
            await conn.close()

    err, took, ps, there = asyncio.run(go())
    assert "timed out after 2 s" in err.stderr and spec.name in err.stderr, err.stderr
    assert took < 7, f"the console waited {took:.1f} s for a command limited to 2 s"
    assert not ps, f"the command still runs on {spec.name}: {ps}"
    assert not there, f"the command finished on {spec.name} after the console gave up"


def test_armed_command_past_its_limit_is_stopped_on_the_host(lab_hosts):
    spec = load(HOSTS_FILE).hosts[0]
    marker = f"ferryman-late-{uuid.uuid4().hex}"

    async def go() -> tuple[CommandError, str, bool]:
        conn = HostConnection(spec)
        try:
            armed = await Armed(conn, _slow(marker), limit_s=2).start()
            try:
                await armed.run()
            except CommandError as e:
                err = e
            else:
                raise AssertionError("a 7 s command ended inside a 2 s limit")
            await asyncio.sleep(8)
            ps, there = await _leftovers(conn, marker)
            return err, ps, there
        finally:
            await conn.close()

    err, ps, there = asyncio.run(go())
    assert err.status == 124 and "timed out after 2 s" in err.stderr, (err.status, err.stderr)
    assert not ps, f"the armed command still runs on {spec.name}: {ps}"
    assert not there, f"the armed command finished on {spec.name} after its limit"


def test_a_command_within_its_limit_keeps_its_output_and_status(lab_hosts):
    spec = load(HOSTS_FILE).hosts[0]

    async def go():
        conn = HostConnection(spec)
        try:
            ok = await conn.run("printf 'a b\\n'; echo \"$0\" >&2", timeout=30)
            bad = await conn.run("exit 3", check=False, timeout=30)
            fed = await conn.run("cat", input="through stdin", timeout=30)
            return ok, bad, fed
        finally:
            await conn.close()

    ok, bad, fed = asyncio.run(go())
    assert ok.stdout == "a b\n" and ok.ok
    assert bad.status == 3
    assert fed.stdout == "through stdin"
