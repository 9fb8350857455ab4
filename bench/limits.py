"""Raw SSH throughput between the two hosts, measured in the same run as the moves.

A file of random bytes on the source, `cat` through the same relay ferryman's transfers
use (source → this console → target, over the console's two SSH connections) into
`cat >/dev/null` on the target. (CRIU's floor, the other limit, is a case of the suite:
a tiny container moved by each path.)
"""

from __future__ import annotations

import time

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
    await direct_path.install_key(d, src, dst, "/tmp/ferryman-bench-raw.d", "cat >/dev/null")
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
