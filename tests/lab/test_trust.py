"""Trust during a migration: nothing listens to the network (scanned from a third lab
host at the start of every phase), image folders are root's only, no secret lands in the
journal or the output, no agent is forwarded."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import asyncssh

from core import journal
from core.config import load
from core.ssh import HostConnection
from lab import control, sshd
from lab.layout import HOSTS_FILE, STATE_DIR, WORKLOAD, LabHost
from lab.shell import in_ns
from tests.lab.conftest import docker, move_in_process, running

SCAN = str(Path(__file__).with_name("portscan.py"))


def third_host() -> LabHost:
    if len(control.existing_hosts()) < 3:
        control.up(3, log=lambda _m: None)
    return LabHost(3)


def open_ports(scanner: LabHost, *targets: LabHost) -> list[str]:
    p = subprocess.run(in_ns(scanner.netns, ["python3", SCAN, *(t.address for t in targets)]),
                       capture_output=True, text=True, timeout=300, check=True)
    return p.stdout.split()


def listeners(h: LabHost) -> list[str]:
    """Local addresses of the TCP sockets listening in `h`'s namespace."""
    p = subprocess.run(in_ns(h.netns, ["ss", "-Hltn"]), capture_output=True, text=True, check=True)
    return [line.split()[3] for line in p.stdout.splitlines() if line.strip()]


def test_nothing_listens_to_the_network_during_a_migration(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    h3 = third_host()
    seen: dict[str, dict] = {}
    modes: list[tuple[str, int, int]] = []

    def look(m, phase: str) -> None:
        seen[phase] = {
            "open": open_ports(h3, h1, h2),
            "listening": {h.name: listeners(h) for h in (h1, h2)},
        }
        for h in (h1, h2):
            d = h.state / "images" / m.id
            if d.exists():
                st = d.stat()
                modes.append((f"{h.name}:{d}", st.st_mode & 0o777, st.st_uid))

    phases = {"prepare", "checkpoint", "transfer", "restore", "verify", "commit"}
    mid, done = asyncio.run(move_in_process(phases, look))
    assert done == phases, f"phases looked at: {sorted(done)}"
    assert running(h2, WORKLOAD), journal_cause(mid)
    for phase, s in seen.items():
        assert s["open"] == [f"{h1.address}:22", f"{h2.address}:22"], (phase, s["open"])
        for host, addrs in s["listening"].items():
            beyond = [a for a in addrs if not a.endswith(":22") and not a.startswith(("127.0.0.1:", "[::1]:"))]
            assert not beyond, f"{host} listens on {beyond} during {phase}"
    # Not vacuous: the source's end of the page stream did listen (on the loopback) while
    # the scans ran. (The target's page server listens nowhere: core/engine/socket_bridge.py.)
    assert any(a.startswith("127.0.0.1:") for s in seen.values() for a in s["listening"]["host1"])
    assert modes, "no image folder was seen"
    for where, mode, uid in modes:
        assert uid == 0 and mode & 0o077 == 0, f"{where} is {oct(mode)} owned by {uid}"


def journal_cause(mid: str) -> str:
    return next((e.cause for e in journal.load_all() if e.migration_id == mid), "")


def test_no_secret_in_the_journal_or_the_output(lab_hosts, workload_on_host1):
    h1, h2 = lab_hosts
    secret = "s3cr3t-" + secrets.token_hex(8)
    docker(h1, "rm", "-f", WORKLOAD)
    docker(h1, "run", "-d", "--name", WORKLOAD, "-e", f"API_TOKEN={secret}",
           "ferryman-lab/workload:1", "/workload", "8", "1", "10")
    from tests.lab.conftest import ferryman

    p = ferryman("migrate", WORKLOAD, "--to", "host2", "--strategy", "stop-and-copy", "--json")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    assert running(h2, WORKLOAD)
    env = docker(h2, "inspect", "-f", "{{json .Config.Env}}", WORKLOAD)
    assert secret in env  # it arrived: the check below is not vacuous
    key_body = "".join((STATE_DIR / "id_ed25519").read_text().splitlines()[1:-1])
    assert secret not in p.stdout + p.stderr and key_body[:40] not in p.stdout
    for f in journal.journal_dir().rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert secret not in text, f"the secret is in {f}"
            assert key_body[:40] not in text, f"the private key is in {f}"


def test_no_agent_is_forwarded(lab_hosts, tmp_path):
    """Against an sshd that would allow agent forwarding (the lab's own refuse it), with an
    agent running here: a session opened by ferryman has no agent socket."""
    h1 = lab_hosts[0]
    port = 2222
    cfg = tmp_path / "sshd_config"
    cfg.write_text(
        sshd.config_text(
            "agent forwarding allowed", address=h1.address, host_key=h1.state / "ssh_host_ed25519_key",
            pidfile=tmp_path / "sshd.pid", authorized_keys=h1.state / "authorized_keys",
            docker_socket=h1.docker_socket, bin_dir=h1.bin_dir, name=h1.name,
        )
        .replace(f"ListenAddress {h1.address}:22", f"ListenAddress {h1.address}:{port}")
        .replace("AllowAgentForwarding no", "AllowAgentForwarding yes")
    )
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line(h1).replace(h1.address, f"[{h1.address}]:{port}", 1))
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    subprocess.run(in_ns(h1.netns, ["/usr/sbin/sshd", "-f", str(cfg)]), check=True)
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        subprocess.run(["ssh-add", str(STATE_DIR / "id_ed25519")], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        os.environ["SSH_AUTH_SOCK"] = str(sock)
        spec = load(HOSTS_FILE).hosts[0]
        spec = dataclasses.replace(spec, port=port, known_hosts=str(known))

        async def ask(forward: bool) -> str:
            conn = HostConnection(spec)
            try:
                if forward:  # the control: the same sshd does forward an agent when asked
                    c = await asyncssh.connect(h1.address, port, username="root", known_hosts=str(known),
                                               client_keys=[str(STATE_DIR / "id_ed25519")],
                                               agent_forwarding=True)
                    async with c:
                        return (await c.run("echo ${SSH_AUTH_SOCK:-no-agent}")).stdout.strip()
                r = await conn.run("echo ${SSH_AUTH_SOCK:-no-agent}")
                return r.stdout.strip()
            finally:
                await conn.close()

        assert asyncio.run(ask(forward=True)) != "no-agent"
        assert asyncio.run(ask(forward=False)) == "no-agent"
    finally:
        os.environ.pop("SSH_AUTH_SOCK", None)
        agent.kill()
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "sshd.pid").read_text()), signal.SIGTERM)
