"""The direct data path: the source's OpenSSH client to the target's sshd, host to host.

The relay (core/engine/transfer.py) carries every byte through the console, which caps a
stream at the console's own rate. With `--direct`, the image folders, the writable layer
and the volumes go straight from the source to the target instead:

- preflight (`probe`) asks the target which address and port the console's session came
  in on, and tries that address from the source (an sshd must answer there);
- prepare (`install`) makes a one-time ed25519 key on the console, writes its private half
  and the target's host key (as the console's own connection saw it) into the source's
  image folder, and adds the public half to the target's authorized_keys as
  `restrict,from="<source>",command="<receiver>"`: it logs in from the source only, runs
  nothing but the migration's receiver (core/remote.py `DIRECT_RECEIVER`, which unpacks
  into the folders the console listed for it), and opens no forwarding, agent or tty;
- the streams run `tar -c | dd | ssh` on the source (dd says the bytes for the live view);
- the key is removed at cleanup, by the rollback and by `ferryman recover` (`revoke`).

Nothing listens on the network beyond the target's own sshd, and the bytes are encrypted
by OpenSSH. The page stream (memory during the dump) is not used with this path: the dump
writes to the source's disk and the freeze's tar carries it at the host-to-host rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncssh

from core import remote
from core.engine.transfer import Meter, StreamCancelled
from core.fleet import Host
from core.models import CheckResult, CheckStatus, HostState
from core.ssh import CommandError, HostError, as_text, killed_by

_BYTES = re.compile(rb"(\d+) bytes")


class DirectUnavailable(Exception):
    """The source cannot reach the target directly; the words say why."""


@dataclass
class DirectPath:
    """One migration's direct path (live; its key file path is a journaled fact)."""

    migration_id: str
    address: str  # the target's sshd, as the source reaches it
    port: int
    user: str
    from_address: str  # the source, as the target sees it (the key's from=)
    host_key: str  # the target's public host key, OpenSSH format
    keys_file: str  # the target's authorized_keys
    src_dir: str = ""  # on the source: the key and known_hosts (the migration's folder)
    dst_dir: str = ""  # on the target: the receiver and its stream list
    streams: list[str] = field(default_factory=list)  # the target folders, line n = stream n

    @property
    def marker(self) -> str:
        return marker(self.migration_id)

    @property
    def key_file(self) -> str:
        return f"{self.src_dir}/direct/key"

    @property
    def known_hosts(self) -> str:
        return f"{self.src_dir}/direct/known_hosts"

    @property
    def receiver(self) -> str:
        return f"{self.dst_dir}/direct/receiver"

    def describe(self) -> str:
        return f"direct: {self.from_address} → {self.address}:{self.port} (one-time key)"

    def ssh_argv(self, stream: int) -> list[str]:
        return remote.direct_send_ssh(
            self.key_file, self.known_hosts, self.user, self.address, self.port, stream
        )


def marker(migration_id: str) -> str:
    """The comment that names a migration's key in authorized_keys."""
    return f"ferryman-transfer-{migration_id}"


def keys_line(d: DirectPath, public_key: str, command: str = "") -> str:
    """The authorized_keys line: from the source only, the receiver only (or `command`),
    nothing else."""
    words = [d.from_address] + ([] if command else [d.receiver])  # no blank, no quote
    for word in words:
        if any(ch in word for ch in '"\\\n ,'):
            raise ValueError(f"cannot put {word!r} into an authorized_keys option")
    if any(ch in command for ch in '"\\\n'):
        raise ValueError(f"cannot put {command!r} into an authorized_keys option")
    opts = f'restrict,from="{d.from_address}",command="{command or "/bin/sh " + d.receiver}"'
    return f"{opts} {public_key.strip()} {d.marker}"


def known_hosts_line(address: str, port: int, host_key: str) -> str:
    name = address if port == 22 else f"[{address}]:{port}"
    kind, blob = host_key.split()[:2]
    return f"{name} {kind} {blob}"


async def check(src: Host, dst: Host) -> CheckResult:
    """The preflight line of a direct move (the console's dialog, `ferryman check
    --direct`): the same probe the move makes, nothing installed."""
    pair = f"{src.name}→{dst.name}"
    try:
        path = await probe(src, dst, "check")
    except (DirectUnavailable, HostError, CommandError) as e:
        return CheckResult(
            pair,
            "direct-path",
            CheckStatus.FAIL,
            f"no direct path from {src.name} to {dst.name}: {e}",
            "move without the direct path (the data is then relayed through this console)",
        )
    return CheckResult(pair, "direct-path", CheckStatus.PASS, path.describe())


async def probe(src: Host, dst: Host, migration_id: str) -> DirectPath:
    """Whether the source reaches the target's sshd, and how; DirectUnavailable if not."""
    conn = await dst.ssh.connect()
    key = conn.get_server_host_key()
    if key is None:
        raise DirectUnavailable(f"the console holds no host key of {dst.name}")
    t = remote.parse_facts(
        (await dst.ssh.run(remote.quote(remote.direct_target_facts()), timeout=30)).stdout
    )
    if not t.get("addr") or not t.get("port"):
        raise DirectUnavailable(f"{dst.name} did not say which address its sshd answers on")
    addr, port = t["addr"], int(t["port"])
    s = remote.parse_facts(
        (
            await src.ssh.run(
                remote.quote(remote.direct_source_probe(addr, port)), check=False, timeout=30
            )
        ).stdout
    )
    if not s.get("ssh"):
        raise DirectUnavailable(f"{src.name} has no OpenSSH client (apt install openssh-client)")
    if not s.get("dd"):
        raise DirectUnavailable(f"{src.name} has no dd (coreutils)")
    if not s.get("from"):
        raise DirectUnavailable(f"{src.name} has no route to {dst.name}'s address {addr}")
    if s.get("banner") != "SSH-":
        raise DirectUnavailable(
            f"{src.name} cannot reach {dst.name}'s sshd at {addr}:{port} (no SSH greeting "
            "from there: a firewall, or another network)"
        )
    home = t.get("home") or "/root"
    return DirectPath(
        migration_id=migration_id,
        address=addr,
        port=port,
        user=t.get("user") or "root",
        from_address=s["from"],
        host_key=key.export_public_key("openssh").decode().strip(),
        keys_file=dst.spec.authorized_keys or f"{home}/.ssh/authorized_keys",
    )


async def install(d: DirectPath, src: Host, dst: Host, src_dir: str, dst_dir: str) -> None:
    """The one-time key on both ends, for the migration's receiver (the module's text)."""
    await dst.ssh.run(remote.quote(remote.mkdir_private(f"{dst_dir}/direct")), timeout=30)
    d.dst_dir = dst_dir
    await dst.ssh.run(
        remote.quote(remote.write_file(d.receiver, "700")),
        input=remote.DIRECT_RECEIVER,
        timeout=30,
    )
    await install_key(d, src, dst, src_dir)


async def install_key(d: DirectPath, src: Host, dst: Host, src_dir: str, command: str = "") -> None:
    """A one-time key: its private half and the target's host key in `src_dir`/direct on
    the source; its public half allowed on the target from the source only, for the
    receiver only (or for `command`: the benchmark's raw measure)."""
    d.src_dir = src_dir
    key = asyncssh.generate_private_key("ssh-ed25519", comment=d.marker)
    await src.ssh.run(remote.quote(remote.mkdir_private(f"{src_dir}/direct")), timeout=30)
    await src.ssh.run(
        remote.quote(remote.write_file(d.key_file)),
        input=key.export_private_key("openssh").decode(),
        timeout=30,
    )
    await src.ssh.run(
        remote.quote(remote.write_file(d.known_hosts)),
        input=known_hosts_line(d.address, d.port, d.host_key) + "\n",
        timeout=30,
    )
    line = keys_line(d, key.export_public_key("openssh").decode(), command)
    await dst.ssh.run(remote.quote(remote.authorize_key(d.keys_file, line)), timeout=60)


async def add_stream(d: DirectPath, dst: Host, folder: str) -> int:
    """Let the receiver unpack into `folder`; the stream's number."""
    d.streams.append(folder)
    await write_streams(d, dst)
    return len(d.streams)


async def write_streams(d: DirectPath, dst: Host) -> None:
    """The receiver's list (never empty: an empty input would leave stdin open)."""
    text = "".join(f"{s}\n" for s in d.streams)
    await dst.ssh.run(
        remote.quote(remote.write_file(f"{d.receiver}.streams")), input=text, timeout=30
    )


async def wait_ready(host: str, command: str, proc: asyncssh.SSHClientProcess) -> None:
    """Until the target's receiver has started (the ssh connection is up: an armed stream
    must not spend the freeze on its handshake); CommandError with ssh's words if not."""
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
    except TimeoutError:
        line = b""
    if remote.DIRECT_READY in line:
        return
    proc.kill()
    err = b""
    with contextlib.suppress(asyncio.TimeoutError, asyncssh.Error, OSError):
        err = await asyncio.wait_for(proc.stderr.read(8192), 5)
    raise CommandError(host, command, None, own_words(err) or "the target's receiver did not start")


async def revoke(dst: Host, keys_file: str, migration_id: str) -> None:
    """Remove the migration's key from the target (nothing when it is not there)."""
    await dst.ssh.run(remote.quote(remote.revoke_key(keys_file, marker(migration_id))), timeout=60)


async def send(
    host: str,
    command: str,
    proc: asyncssh.SSHClientProcess,
    meter: Meter,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Follow a running `direct_send` to its end: dd's counts into `meter`; the bytes sent."""
    sent, err = 0, b""
    try:
        while True:
            if cancelled():
                proc.kill()
                raise StreamCancelled("aborted by the user")
            chunk = await proc.stderr.read(4096)
            if not chunk:
                break
            err = (err + chunk)[-8192:]
            counts = _BYTES.findall(chunk)
            if counts:
                n = int(counts[-1])
                if n > sent:
                    meter.add(n - sent)
                    sent = n
        r = await proc.wait()
    except (asyncssh.Error, OSError) as e:
        raise HostError(
            host, HostState.UNREACHABLE, f"the connection was lost during a stream ({e!r})"
        ) from e
    except BaseException:
        proc.kill()
        raise
    if r.exit_status is None and not r.exit_signal:
        raise HostError(
            host, HostState.UNREACHABLE, f"the connection was lost while `{command[:60]}` ran"
        )
    if r.exit_status != 0:
        said = killed_by(r.exit_signal, host) or ""
        raise CommandError(host, command, r.exit_status, (own_words(err) + "\n" + said).strip())
    return sent


def own_words(stderr: bytes) -> str:
    """The stream's errors without dd's progress lines."""
    lines = as_text(stderr).replace("\r", "\n").splitlines()
    keep = [ln for ln in lines if not re.search(r"bytes .*copied|records (in|out)$", ln)]
    return "\n".join(keep)


async def run_stream(
    d: DirectPath,
    src: Host,
    dst: Host,
    folder: str,
    into: str,
    meter: Meter,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """One stream now, not armed (a pre-copy round): `folder` on the source into `into`."""
    n = await add_stream(d, dst, into)
    command = remote.direct_send(folder, d.ssh_argv(n))
    proc = await src.ssh.process(command)
    proc.stdin.write_eof()
    return await send(src.name, command, proc, meter, cancelled)
