"""Raw SSH throughput between the two hosts, measured in the same run as the moves.

A file of random bytes on the source, `cat` through the same relay ferryman's transfers
use (source → this console → target, over the console's two SSH connections) into
`cat >/dev/null` on the target. (CRIU's floor, the other limit, is a case of the suite:
a tiny container moved by each path.)
"""

from __future__ import annotations

import time

import asyncssh

from core import remote
from core.engine import direct_path
from core.engine.transfer import Meter, relay
from core.fleet import Host

RAW_FILE = "/tmp/ferryman-bench-raw"
MIB = 1 << 20


async def raw_ssh(src: Host, dst: Host, mib: int, runs: int) -> list[dict]:
    await src.ssh.run(f"head -c {mib * MIB} /dev/urandom >{RAW_FILE}", timeout=600)
    out = []
    try:
        for _ in range(runs):
            t0 = time.monotonic()
            n = await relay(src.ssh, f"cat {RAW_FILE}", dst.ssh, "cat >/dev/null", Meter(lambda *a: None))
            s = time.monotonic() - t0
            out.append({"bytes": n, "seconds": s, "rate_mib_s": n / MIB / s})
    finally:
        await src.ssh.run(f"rm -f {RAW_FILE}", check=False)
    return out


async def raw_host_to_host(src: Host, dst: Host, mib: int, runs: int) -> list[dict]:
    """The same file by plain OpenSSH from the source to the target's sshd (`cat | ssh`
    into `cat >/dev/null`), with a key made for the measure: the direct path's ceiling.
    The key is allowed from the source only, for that command only, and removed after."""
    d = await direct_path.probe(src, dst, "bench-raw")
    d.src_dir, d.dst_dir = "/tmp/ferryman-bench-raw.d", "/tmp/ferryman-bench-raw.d"
    key = asyncssh.generate_private_key("ssh-ed25519")
    await src.ssh.run(remote.quote(remote.mkdir_private(f"{d.src_dir}/direct")))
    await src.ssh.run(remote.quote(remote.write_file(d.key_file)), input=key.export_private_key().decode())
    await src.ssh.run(remote.quote(remote.write_file(d.known_hosts)),
                      input=direct_path.known_hosts_line(d.address, d.port, d.host_key) + "\n")
    line = (f'restrict,from="{d.from_address}",command="cat >/dev/null" '
            f"{key.export_public_key().decode().strip()} {d.marker}")
    await dst.ssh.run(remote.quote(remote.authorize_key(d.keys_file, line)))
    await src.ssh.run(f"head -c {mib * MIB} /dev/urandom >{RAW_FILE}", timeout=600)
    out = []
    try:
        for _ in range(runs):
            cmd = f"cat {RAW_FILE} | " + remote.quote(d.ssh_argv(0))
            t0 = time.monotonic()
            await src.ssh.run(cmd, timeout=600)
            s = time.monotonic() - t0
            out.append({"bytes": mib * MIB, "seconds": s, "rate_mib_s": mib / s})
    finally:
        await direct_path.revoke(dst, d.keys_file, d.migration_id)
        await src.ssh.run(f"rm -rf {RAW_FILE} {d.src_dir}", check=False)
    return out
