"""What a client saw of a move: the longest wait between two of its answers.

A client is any container that writes a line to its standard output for each answer it
gets from the moving container (a request answered, a write acknowledged). Lines whose
first word says it failed ("fail", "error", "timeout", ...) are failures, not answers;
its standard error is not read. The times are dockerd's own, taken as each line arrived
(`docker logs --timestamps`), so no clock of the client's is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FAILURE_WORDS = frozenset({"fail", "failed", "failure", "error", "err", "timeout", "refused"})


@dataclass(frozen=True)
class ClientView:
    container: str
    host: str
    longest_wait_s: float  # the longest time between two answers in the window
    wait_from: float  # epoch seconds: the answer before that wait
    wait_to: float  # and the one after it (or the window's end, when none came)
    answers: int
    failures: int
    last_failure: str = ""

    def text(self) -> str:
        fails = (
            f"; {self.failures} failure(s) meanwhile, the last: {self.last_failure[:120]}"
            if self.failures
            else ""
        )
        still = "" if self.answers else " (no answer since the move began)"
        return (
            f"client {self.container} on {self.host} waited at most "
            f"{self.longest_wait_s:.2f} s for an answer{still}, "
            f"{self.answers} answer(s) during the move{fails}"
        )


def epoch(stamp: str) -> float | None:
    """dockerd's RFC 3339 time with nanoseconds ("2026-12-01T19:12:15.123456789Z")."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    try:
        t = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
    return t + (float("0." + frac) if frac.isdigit() else 0.0)


def is_failure(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0].lower().rstrip(":") in FAILURE_WORDS


def view(
    container: str, host: str, timestamped: str, start: float, end: float
) -> ClientView | None:
    """The client's view of the window [start, end] from its `docker logs --timestamps`
    output; None when it printed nothing that can be read as an answer or a failure."""
    answers: list[float] = []
    failures: list[tuple[float, str]] = []
    for raw in timestamped.splitlines():
        stamp, _, line = raw.partition(" ")
        t = epoch(stamp)
        if t is None or not line.strip():
            continue
        if is_failure(line):
            if start <= t <= end:
                failures.append((t, line.strip()))
        else:
            answers.append(t)
    answers.sort()
    before = [t for t in answers if t < start]
    inside = [t for t in answers if start <= t <= end]
    if not before and not inside and not failures:
        return None
    points = ([before[-1]] if before else [start]) + inside
    # a wait begun before the move counts from the move's start
    waits = [(b - max(a, start), a, b) for a, b in zip(points, points[1:], strict=False)]
    waits.append((end - points[-1], points[-1], end))  # the wait still going at the end
    longest, a, b = max(waits)
    return ClientView(
        container=container,
        host=host,
        longest_wait_s=longest,
        wait_from=a,
        wait_to=b,
        answers=len(inside),
        failures=len(failures),
        last_failure=failures[-1][1] if failures else "",
    )


def parse_target(watch: str, source: str) -> tuple[str, str]:
    """`NAME[@HOST]` → (NAME, HOST); the host defaults to the move's source."""
    name, _, host = watch.partition("@")
    return name, host or source
