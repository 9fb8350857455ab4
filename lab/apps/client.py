"""Clients for the real-application lab image: the data loader and the writer loops.

Runs inside the image (python3, no third-party module) and is imported by the tests for
its pure parts (the data set's values, the output's parsing). Each writer makes one
short connection per operation (connect, ask, read the answer, close), tries the
endpoints in order until one answers, and prints one line per operation:

    ok <value> <endpoint> <unix ns>      an acknowledged write / an answered request
    fail <endpoint> <error>              no endpoint answered this time

    client.py redis-load N SIZE                        RESP for `redis-cli --pipe`
    client.py redis-writer INTERVAL HOST:PORT ...      EVAL: INCR writer:seq, SET w:<seq>
    client.py http INTERVAL URL ...                    GET, the body's first line
    client.py pg-writer INTERVAL HOST:PORT ...         INSERT INTO writes (seq) via psql
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

# One write, atomic in Redis: the sequence number and its key appear together, so at
# every moment DBSIZE = data set + 1 (writer:seq) + writer:seq's value.
WRITE_SCRIPT = "local n = redis.call('INCR', 'writer:seq'); redis.call('SET', 'w:' .. n, ARGV[1]); return n"
# How many of w:1 .. w:ARGV[1] exist (all of them, when no acknowledged write was lost).
COUNT_SCRIPT = "local c = 0; for i = 1, tonumber(ARGV[1]) do c = c + redis.call('EXISTS', 'w:' .. i) end; return c"


def redis_value(i: int, size: int) -> str:
    """The data set's value of key:<i>: deterministic, so a test can check any key."""
    h = hashlib.sha256(f"key:{i}".encode()).hexdigest()
    return (h * (size // len(h) + 1))[:size]


def resp(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespError(Exception):
    pass


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RespError(f"unexpected reply {line!r}")


def redis_call(endpoint: str, *args: str, timeout: float = 2.0):
    host, _, port = endpoint.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(resp(*args))
        with s.makefile("rb") as f:
            return read_reply(f)


def parse_lines(text: str) -> list[tuple[str, str, str]]:
    """The `ok` lines of a writer's output: (value, endpoint, unix ns)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "ok":
            out.append((parts[1], parts[2], parts[3]))
    return out


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def loop(interval: float, endpoints: list[str], once) -> None:
    while True:
        errors = []
        for e in endpoints:
            try:
                emit(f"ok {once(e)} {e} {time.time_ns()}")
                break
            except Exception as exc:  # noqa: BLE001 - reported, then the next endpoint
                errors.append(f"{e}:{type(exc).__name__}")
        else:
            emit(f"fail {','.join(endpoints)} {';'.join(errors)}")
        time.sleep(interval)


def redis_load(n: int, size: int) -> None:
    out = sys.stdout.buffer
    for i in range(n):
        out.write(resp("SET", f"key:{i}", redis_value(i, size)))
    out.flush()


def redis_write(endpoint: str) -> int:
    return redis_call(endpoint, "EVAL", WRITE_SCRIPT, "0", str(time.time_ns()))


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as r:
        body = r.read().decode(errors="replace")
    first = body.strip().splitlines()[0] if body.strip() else ""
    return first.replace(" ", "")


class PgWriter:
    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, endpoint: str) -> int:
        host, _, port = endpoint.rpartition(":")
        n = self.seq + 1
        subprocess.run(
            ["psql", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-Atq",
             "-v", "ON_ERROR_STOP=1", "-c", f"INSERT INTO writes (seq) VALUES ({n})"],
            check=True, capture_output=True, timeout=5, env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )
        self.seq = n
        return n


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "redis-load":
        redis_load(int(args[0]), int(args[1]))
    elif cmd == "redis-writer":
        loop(float(args[0]), args[1:], redis_write)
    elif cmd == "http":
        loop(float(args[0]), args[1:], http_get)
    elif cmd == "pg-writer":
        loop(float(args[0]), args[1:], PgWriter())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
