"""The lab's threaded interpreter service: THREADS threads each bump a shared counter
(under a lock) and their own, every 50 ms; the main thread serves them over HTTP
(http.server, one thread per request) and prints a heartbeat line every 100 ms
(`hb <counter> <unix ns> py`, the shape ferryman measures the gap from).

    python3 /opt/ferryman/counter_service.py [PORT] [THREADS]

GET / answers {"counter", "per_thread", "started_ns", "pid"}: a moved process keeps its
counters and its start time; a restarted one would start again from 0.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
STARTED_NS = time.time_ns()
lock = threading.Lock()
counter = 0
per_thread = [0] * THREADS


def bump(i: int) -> None:
    global counter
    while True:
        with lock:
            counter += 1
            per_thread[i] += 1
        time.sleep(0.05)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with lock:
            doc = {"counter": counter, "per_thread": list(per_thread),
                   "started_ns": STARTED_NS, "pid": os.getpid()}
        body = (json.dumps(doc) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


def main() -> None:
    # PID 1 in a container gets no default action for SIGTERM: say what to do.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for i in range(THREADS):
        threading.Thread(target=bump, args=(i,), daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"py counter: listening on {PORT} with {THREADS} threads", flush=True)
    beat = 0
    while True:
        beat += 1
        print(f"hb {beat} {time.time_ns()} py", flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
