"""A TCP-to-UNIX-socket forwarder: the lab registry listens on a socket in /run/fk; each
node reaches it on its own loopback (127.0.0.1:5000), which containerd treats as a local
registry. Run in the node's network namespace:

    python3 forward.py 127.0.0.1 5000 /run/fk/registry.sock
"""

from __future__ import annotations

import socket
import sys
import threading


def pump(a: socket.socket, b: socket.socket) -> None:
    try:
        while d := a.recv(1 << 16):
            b.sendall(d)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def connection(c: socket.socket, u: socket.socket) -> None:
    t = threading.Thread(target=pump, args=(c, u), daemon=True)
    t.start()
    pump(u, c)
    t.join()
    c.close()
    u.close()


def serve(host: str, port: int, path: str) -> None:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        try:
            u = socket.socket(socket.AF_UNIX)
            u.connect(path)
        except OSError:
            c.close()
            continue
        threading.Thread(target=connection, args=(c, u), daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
