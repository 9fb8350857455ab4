"""`--direct` on the lab: the source's OpenSSH client streams to the target's sshd with a
one-time key that can do nothing else, and the key is gone afterwards, whatever the end."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from lab.layout import KEY, WORKLOAD
from lab.shell import in_ns
from tests.lab.conftest import (
    HOSTS_FILE,
    counters_continue,
    docker,
    events,
    exists,
    ferryman,
    heartbeats,
    running,
)

MARK = "ferryman-transfer-"


def _keys(h) -> str:
    return (h.state / "authorized_keys").read_text()


def test_direct_stop_and_copy_moves_host_to_host_and_removes_its_key(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    p = ferryman("migrate", WORKLOAD, "--to", "host2", "--strategy", "stop-and-copy", "--direct", "--json")
    evs = events(p.stdout)
    assert p.returncode == 0, p.stderr + p.stdout[-3000:]
    assert evs[0]["kind"] == "migration_started" and evs[0]["data_path"] == "direct"
    logs = [e["text"] for e in evs if e["kind"] == "log"]
    assert any(f"direct: {h1.address} → {h2.address}:22" in t for t in logs), logs
    cmds = [t for t in logs if t.startswith("$ ")]
    # Every stream of the freeze went by the source's ssh; none through the relay.
    assert any("| dd bs=1M status=progress | ssh -F /dev/null" in t for t in cmds), cmds
    assert not any("(relay)" in t for t in cmds), cmds
    assert evs[-1]["kind"] == "succeeded" and evs[-1]["bytes_moved"] > 32 << 20
    assert running(h2, WORKLOAD) and not exists(h1, WORKLOAD)
    assert counters_continue(h2, before)
    assert MARK not in _keys(h2) and MARK not in _keys(h1)
    # Back the same way (host2 → host1), so the lab ends as it began.
    p = ferryman("migrate", WORKLOAD, "--to", "host1", "--strategy", "stop-and-copy", "--direct", "--json")
    assert p.returncode == 0, p.stderr + p.stdout[-3000:]
    assert running(h1, WORKLOAD) and not exists(h2, WORKLOAD)
    assert MARK not in _keys(h1)


def test_the_one_time_key_runs_the_receiver_only_from_the_source_only(lab_hosts, workload_on_host1, tmp_path):
    """The key as `install` sets it up, tried the ways an intruder holding it would."""
    from core.config import load
    from core.engine import direct_path
    from core.fleet import Fleet

    h1, h2 = lab_hosts
    folder = f"{h2.state}/images/dtest"
    src_dir = f"{h1.state}/images/dtest"

    async def setup() -> direct_path.DirectPath:
        fl = Fleet(load(HOSTS_FILE))
        try:
            d = await direct_path.probe(fl["host1"], fl["host2"], "dtest")
            await direct_path.install(d, fl["host1"], fl["host2"], src_dir, folder)
            await direct_path.add_stream(d, fl["host2"], f"{folder}/into")
            return d
        finally:
            await fl.close()

    d = asyncio.run(setup())
    line = next(ln for ln in _keys(h2).splitlines() if ln.endswith(f"{MARK}dtest"))
    assert line.startswith(f'restrict,from="{h1.address}",command="/bin/sh {folder}/direct/receiver" ')

    def ssh_from(h, *command: str, opts: tuple[str, ...] = (), stdin: bytes = b"") -> subprocess.CompletedProcess:
        base = d.ssh_argv(1)[:-3]  # the path's own client options, without -- address stream
        if opts:  # the client's own refusal of forwardings off: sshd must refuse them
            i = base.index("ClearAllForwardings=yes")
            base = base[: i - 1] + base[i + 1 :]
        argv = [*base, *opts, "--", h2.address, *command]
        run = in_ns(h.netns, argv) if h else argv
        return subprocess.run(run, input=stdin, capture_output=True, timeout=60)

    try:
        # Its one use: a tar stream into the listed folder.
        (tmp_path / "probe").write_text("x")
        tar = subprocess.run(["tar", "-C", str(tmp_path), "-cf", "-", "probe"], capture_output=True).stdout
        r = ssh_from(h1, "1", stdin=tar)
        assert r.returncode == 0, r.stderr
        assert (h2.state / "images/dtest/into/probe").read_text() == "x"
        # Anything else is refused by the receiver: a shell command, another stream.
        for ask in ("id", "2", "1; touch /tmp/fm-owned"):
            r = ssh_from(h1, ask)
            assert r.returncode == 2 and b"ferryman: " in r.stderr, (ask, r.stderr)
        # No forwarding with it (restrict): sshd refuses a remote forward at once.
        r = ssh_from(h1, opts=("-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:18777:127.0.0.1:22"))
        assert r.returncode == 255 and b"forwarding" in r.stderr.lower(), r.stderr
        # From anywhere but the source (the console's own namespace here), no login at all.
        r = ssh_from(None, "1")
        assert r.returncode == 255 and b"Permission denied" in r.stderr, r.stderr
        # The admin's line is still there, untouched.
        assert Path(f"{KEY}.pub").read_text().strip() in _keys(h2).splitlines()
    finally:
        asyncio.run(_revoke(d))
    assert f"{MARK}dtest" not in _keys(h2)
    r = ssh_from(h1, "1", stdin=tar)
    assert r.returncode == 255 and b"Permission denied" in r.stderr
    subprocess.run(["rm", "-rf", folder, src_dir], check=True)


async def _revoke(d) -> None:
    from core.config import load
    from core.engine import direct_path
    from core.fleet import Fleet

    fl = Fleet(load(HOSTS_FILE))
    try:
        await direct_path.revoke(fl["host2"], d.keys_file, d.migration_id)
    finally:
        await fl.close()


def test_a_failed_direct_move_rolls_back_and_removes_the_key(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    fake = h2.bin_dir / "criu"  # CRIU's own fault injection fails the restore (as test_migrate)
    fake.write_text('#!/bin/sh\nexport CRIU_FAULT=6\nexec /usr/local/sbin/criu "$@"\n')
    fake.chmod(0o755)
    before = heartbeats(h1, WORKLOAD)[-1][0]
    try:
        p = ferryman("migrate", WORKLOAD, "--to", "host2", "--strategy", "stop-and-copy", "--direct", "--json")
    finally:
        fake.unlink()
    evs = events(p.stdout)
    assert p.returncode == 1, p.stdout[-2000:]
    assert evs[-1]["kind"] == "failed" and evs[-1]["phase"] == "restore"
    logs = [e["text"] for e in evs if e["kind"] == "log"]
    assert any("rollback: remove the one-time transfer key" in t for t in logs), logs
    assert running(h1, WORKLOAD) and not exists(h2, WORKLOAD)
    assert counters_continue(h1, before)
    assert MARK not in _keys(h2)


def test_direct_is_refused_in_words_when_the_source_cannot_reach_the_target(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    drop = ["iptables", "-I", "OUTPUT", "-d", h2.address, "-p", "tcp", "--dport", "22", "-j", "REJECT"]
    subprocess.run(in_ns(h1.netns, drop), check=True)
    try:
        p = ferryman("migrate", WORKLOAD, "--to", "host2", "--direct", "--json")
    finally:
        subprocess.run(in_ns(h1.netns, ["iptables", "-D", *drop[2:]]), check=True)
    evs = events(p.stdout)
    assert p.returncode == 1
    f = evs[-1]
    assert f["kind"] == "failed" and f["phase"] == "preflight"
    assert "no direct path from host1 to host2" in f["cause"] and "sshd" in f["cause"]
    assert "without --direct" in f["fix"]
    assert running(h1, WORKLOAD) and not exists(h2, WORKLOAD)
    assert docker(h1, "inspect", "-f", "{{.State.Running}}", WORKLOAD).strip() == "true"


def test_recover_removes_the_key_of_a_console_killed_mid_transfer(lab_hosts, workload_on_host1):
    from tests.lab.faults import move_and_signal_console

    h1, h2 = lab_hosts
    before = heartbeats(h1, WORKLOAD)[-1][0]
    mid = move_and_signal_console("transfer", extra=("--direct",))
    assert f"{MARK}{mid}" in _keys(h2)  # the console died holding it
    r = ferryman("recover", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{MARK}{mid}" not in _keys(h2)
    assert MARK not in _keys(h2)
    on = [h for h in lab_hosts if running(h, WORKLOAD)]
    assert len(on) == 1, "exactly one copy"
    assert counters_continue(on[0], before)
    if on[0] is h2:  # it was finished there: bring it home for the next test
        p = ferryman("migrate", WORKLOAD, "--to", "host1", "--strategy", "stop-and-copy")
        assert p.returncode == 0, p.stdout[-2000:]


def test_check_says_whether_the_direct_path_is_there(lab_hosts, workload_on_host1):
    """`ferryman check --container C --to H --direct`: the move's own probe, nothing
    installed; a pass on the lab, a failure in words when sshd is out of reach."""
    import json

    h1, h2 = lab_hosts

    def direct_line() -> tuple[int, dict]:
        p = ferryman("check", "--container", WORKLOAD, "--to", "host2", "--direct", "--json")
        lines = [c for c in json.loads(p.stdout)["checks"] if c["name"] == "direct-path"]
        assert len(lines) == 1, p.stdout[-2000:] + p.stderr
        return p.returncode, lines[0]

    rc, line = direct_line()
    assert rc == 0 and line["status"] == "pass", line
    assert h2.address in line["reason"] and "one-time key" in line["reason"]
    assert MARK not in _keys(h2), "a check must install no key"
    drop = ["iptables", "-I", "OUTPUT", "-d", h2.address, "-p", "tcp", "--dport", "22", "-j", "REJECT"]
    subprocess.run(in_ns(h1.netns, drop), check=True)
    try:
        rc, line = direct_line()
    finally:
        subprocess.run(in_ns(h1.netns, ["iptables", "-D", *drop[2:]]), check=True)
    assert rc == 1 and line["status"] == "fail", line
    assert "no direct path from host1 to host2" in line["reason"] and line["fix"]
