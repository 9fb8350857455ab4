"""A hostile local process: connects again and again to every TCP listener on the
loopback of the namespace it runs in, reads what it is given, and says how much.

    python3 loopback_prober.py SECONDS   → prints `port bytes` per port it reached
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time


def main(seconds: float) -> None:
    got: dict[int, int] = {}
    end = time.time() + seconds
    while time.time() < end:
        out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            local = line.split()[3]
            if not local.startswith("127.0.0.1:"):
                continue
            port = int(local.rsplit(":", 1)[1])
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
            except OSError:
                continue
            got.setdefault(port, 0)
            s.settimeout(0.3)
            try:
                while d := s.recv(65536):
                    got[port] += len(d)
            except OSError:
                pass
            s.close()
        time.sleep(0.005)
    for port, n in sorted(got.items()):
        print(port, n, flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]))
