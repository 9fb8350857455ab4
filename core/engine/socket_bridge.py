"""A program's connected socket, carried over an SSH channel: no listener at all.

CRIU can use a socket it is handed (`--ps-socket FD`) instead of one it listens on or
connects to. Any local process can connect to a loopback listener; nobody can connect
to a socket pair. So the target's page server is started by a small bridge (python3,
run through SSH): it makes a socket pair, starts the command with one end as `FD_WORD`,
and joins the other end to its own stdin and stdout, which are the console's channel.
The bridge writes the command's pid to the pidfile it is given (for cleanup) and exits
with the command's status once the command has closed its end.
"""

from __future__ import annotations

FD_WORD = "{fd}"

BRIDGE = f"""
import os, select, socket, subprocess, sys
pidfile, argv = sys.argv[1], sys.argv[2:]
a, b = socket.socketpair()
argv = [str(b.fileno()) if x == "{FD_WORD}" else x for x in argv]
p = subprocess.Popen(argv, pass_fds=[b.fileno()], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL)
b.close()
with open(pidfile + ".tmp", "w") as f:
    f.write(str(p.pid))
os.rename(pidfile + ".tmp", pidfile)
inp = True
while True:
    r = select.select([a] + ([0] if inp else []), [], [])[0]
    if 0 in r:
        d = os.read(0, 1 << 20)
        if d:
            a.sendall(d)
        else:
            inp = False
            a.shutdown(socket.SHUT_WR)
    if a in r:
        d = a.recv(1 << 20)
        if not d:
            break
        while d:
            d = d[os.write(1, d):]
sys.exit(p.wait())
"""


def bridge_command(pidfile: str, argv: list[str]) -> list[str]:
    """`argv` (one word of it `FD_WORD`) run with a connected socket joined to stdio."""
    return ["python3", "-c", BRIDGE, pidfile, *argv]
