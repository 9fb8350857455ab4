"""The application-visible gap, from heartbeat lines `hb <counter> <unix ns> ...`.

The lab's workload prints them; any container that prints the same shape gets the
measurement too. The gap is what a client of the application saw: from the last
heartbeat on the source to the first one on the target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HB = re.compile(r"^hb (\d+) (\d{15,20})\b")


@dataclass(frozen=True)
class Beat:
    counter: int
    t_ns: int


def beats(log_text: str) -> list[Beat]:
    out = []
    for line in log_text.splitlines():
        m = HB.match(line.strip())
        if m:
            out.append(Beat(int(m.group(1)), int(m.group(2))))
    return out


@dataclass(frozen=True)
class Gap:
    last_source: Beat
    first_target: Beat

    @property
    def seconds(self) -> float:
        return (self.first_target.t_ns - self.last_source.t_ns) / 1e9

    @property
    def continued(self) -> bool:
        """The counter went on from where it was: the process state came along."""
        return self.first_target.counter == self.last_source.counter + 1


def gap(source_log: str, target_log: str) -> Gap | None:
    src, dst = beats(source_log), beats(target_log)
    if not src or not dst:
        return None
    return Gap(src[-1], dst[0])
