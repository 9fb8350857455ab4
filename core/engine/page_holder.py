"""The source end of the post-copy page link, held by a process of its own.

CRIU's lazy dump takes any end of its page-server connection for the end of the transfer
and then kills the source's tasks, whose frozen memory is the only whole copy. If that
connection belonged to the SSH connection (sshd's direct-tcpip), a cut SSH connection to
the source would end it, and the container with it. So a small holder, started detached
on the source before the freeze, makes the connection to CRIU and joins it to the
console's channel on another loopback port:

- CRIU's lazy page server serves the first connection it accepts, from any local
  process: the holder connects as soon as that server listens (it tries every 2 ms from
  before the freeze) and marks that it holds the connection (`CRIU_MARK`); the engine
  checks the mark once the dump is ready, and stops the move when another process got
  there first;
- it takes the console's channel only when that sends the migration's token first (any
  local process can connect to the holder's loopback port too); others are closed;

- bytes pass both ways; it watches the requests for `PS_IOV_CLOSE` (the target has
  every page), as the console's link does;
- when the console's side ends after that close, it passes the end on to CRIU: the
  normal finish;
- when the console's side ends before it (the SSH connection cut), it keeps CRIU's
  connection open and waits: the tasks stay frozen with their memory until the rollback
  stops the dump and thaws them (core/engine/postcopy.py, `rescue_script`);
- it exits when CRIU closes its side, or when CRIU's server did not listen within `WAIT_S`.

Needs python3 on the source (Debian and most distributions have it); the command says
so when it is missing.
"""

from __future__ import annotations

from core.engine.postcopy import PS_CMD_MASK, PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE, PSI_SIZE

WAIT_S = 900
# Where the holder says it holds CRIU's connection (beside its pidfile).
CRIU_MARK = ".criu"
TOKEN_ENV = "FERRYMAN_HOLD_TOKEN"

HOLDER = f"""
import hmac, os, select, socket, struct, sys, time
hold, criu, pidfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
token = os.environ.pop("{TOKEN_ENV}", "").encode()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", hold))
ls.listen(8)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
# CRIU's lazy page server serves the first connection it accepts: be that one, at once.
deadline = time.monotonic() + {WAIT_S}
s = None
while s is None:
    try:
        s = socket.create_connection(("127.0.0.1", criu), timeout=1)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(0)
        time.sleep(0.002)
s.settimeout(None)
open(pidfile + "{CRIU_MARK}", "w").close()
c, served, closed, pending = None, False, False, b""
while True:
    watch = [x for x in (c, s) if x is not None] + ([ls] if not served else [])
    r = select.select(watch, [], [])[0]
    if ls in r and not served:
        # The console's channel, known by the token it sends first; anyone else is closed.
        n, _ = ls.accept()
        n.settimeout(2)
        got = b""
        try:
            while len(got) < len(token):
                d = n.recv(len(token) - len(got))
                if not d:
                    break
                got += d
        except OSError:
            pass
        if token and hmac.compare_digest(got, token):
            n.settimeout(None)
            c, served = n, True
            ls.close()
        else:
            n.close()
        continue
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
    """Start the holder detached (its own session: a cut SSH connection does not end it).
    The command's first input line is the token the console's channel must present
    (read from stdin, so no other user sees it in a process list)."""
    return [
        "sh",
        "-c",
        'command -v python3 >/dev/null || { echo "python3 is needed on this host for post-copy" >&2; exit 127; }; '
        f'read -r {TOKEN_ENV} && export {TOKEN_ENV}; '
        'setsid python3 -c "$0" "$@" </dev/null >/dev/null 2>&1 & '
        'for _ in $(seq 200); do [ -s "$3" ] && exit 0; sleep 0.05; done; '
        'echo "the page holder did not start" >&2; exit 1',
        HOLDER,
        str(hold_port),
        str(criu_port),
        pidfile,
    ]
