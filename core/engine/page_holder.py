"""The source end of the post-copy page link, held by a process of its own.

CRIU's lazy dump takes any end of its page-server connection for the end of the transfer
and then kills the source's tasks, whose frozen memory is the only whole copy. If that
connection belonged to the SSH connection (sshd's direct-tcpip), a cut SSH connection to
the source would end it, and the container with it. So a small holder, started detached
on the source before the freeze, makes the connection to CRIU and joins it to the
console's channel on another loopback port:

- bytes pass both ways; it watches the requests for `PS_IOV_CLOSE` (the target has
  every page), as the console's link does;
- when the console's side ends after that close, it passes the end on to CRIU: the
  normal finish;
- when the console's side ends before it (the SSH connection cut), it keeps CRIU's
  connection open and waits: the tasks stay frozen with their memory until the rollback
  stops the dump and thaws them (core/engine/postcopy.py, `rescue_script`);
- it exits when CRIU closes its side, or when nothing connected within `WAIT_S`.

Needs python3 on the source (Debian and most distributions have it); the command says
so when it is missing.
"""

from __future__ import annotations

from core.engine.postcopy import PS_CMD_MASK, PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE, PSI_SIZE

WAIT_S = 900

HOLDER = f"""
import os, select, socket, struct, sys
hold, criu, pidfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", hold))
ls.listen(1)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
ls.settimeout({WAIT_S})
try:
    c = ls.accept()[0]
except OSError:
    sys.exit(0)
ls.close()
s = socket.create_connection(("127.0.0.1", criu))
closed, pending = False, b""
while True:
    r = select.select([x for x in (c, s) if x is not None], [], [])[0]
    if s in r:
        d = s.recv(1 << 20)
        if not d:
            break
        if c is not None:
            try:
                c.sendall(d)
            except OSError:
                c = None
    if c is not None and c in r:
        try:
            d = c.recv(1 << 20)
        except OSError:
            d = b""
        if not d:
            c.close()
            c = None
            if closed:
                s.shutdown(socket.SHUT_WR)
            continue
        pending += d
        while len(pending) >= {PSI_SIZE}:
            cmd = struct.unpack_from("<I", pending)[0] & {PS_CMD_MASK}
            if cmd in ({PS_IOV_CLOSE}, {PS_IOV_FORCE_CLOSE}):
                closed = True
            pending = pending[{PSI_SIZE}:]
        s.sendall(d)
"""


def holder_command(hold_port: int, criu_port: int, pidfile: str) -> list[str]:
    """Start the holder detached (its own session: a cut SSH connection does not end it)."""
    return [
        "sh",
        "-c",
        'command -v python3 >/dev/null || { echo "python3 is needed on this host for post-copy" >&2; exit 127; }; '
        'setsid python3 -c "$0" "$@" </dev/null >/dev/null 2>&1 & '
        'for _ in $(seq 200); do [ -s "$3" ] && exit 0; sleep 0.05; done; '
        'echo "the page holder did not start" >&2; exit 1',
        HOLDER,
        str(hold_port),
        str(criu_port),
        pidfile,
    ]
