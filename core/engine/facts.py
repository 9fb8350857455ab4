"""What a migration has learned and done, as the journal keeps it.

The machine saves these facts (a `ctx` record in the journal entry) whenever one changes
that recovery would need: which container and twin, the image folders, whether the
source was frozen and its dump fired, whether the move passed the commit point, the
restart policy it suspended, how the source was frozen and how the twin is restored
(Docker >= 28 on either side). `ferryman recover` reads them back with `from_record()` and
decides from them alone; live handles (connections, armed commands, meters) are not facts
and live with the code that owns them (core/engine/machine.py's `Ctx`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Facts:
    container_id: str = ""
    name: str = ""
    src_dir: str = ""
    dst_dir: str = ""
    twin_id: str = ""
    checkpoint_name: str = ""
    src_data_root: str = ""
    dst_data_root: str = ""
    frozen: bool = False  # the source was frozen (a dump began)
    dump_fired: bool = False  # the dump command started: pages may be on the target only
    dump_done: bool = False  # the dump's end was seen
    pages_streamed: bool = False  # the dump streams its pages to the target
    lazy_runc_pid: int = 0  # post-copy: the source's serving dump (holds the frozen tasks)
    lazy_boot_id: str = ""  # post-copy: the source's boot, for that pid to mean anything
    lazy_done: bool = False  # post-copy: every page arrived, the frozen copy is gone
    committed: bool = False  # past the commit point: the move stands
    restart_policy: dict[str, Any] | None = None  # the source's, suspended for the move
    moved_volumes: list[str] = field(default_factory=list)  # created on the target
    src_engine: str = ""  # the engines' ServerVersion (`docker info`)
    dst_engine: str = ""
    src_systemd: bool = False  # the source's engine uses the systemd cgroup driver
    src_paused: bool = False  # Docker >= 28 source: frozen by `runc pause`, dumped leaving it
    #   frozen (--leave-running); a rollback thaws it (`runc resume`), the commit removes it
    src_criu_conf: str = ""  # the CRIU file runc reads for the source ("" or runc.conf: the
    #   host's; else its own, named by its org.criu.config annotation)
    twin_route: str = ""  # how the twin is restored (core/engine/restore_runtime.py `route`)
    twin_criu_conf: str = ""  # the twin's own CRIU file (annotation), "" on the runc.conf route
    src_copies_images: bool = False  # CRIU < 4.2 there: a restore gets Docker's copy of the
    twin_copies_images: bool = False  #   whole image folder (core/engine/restore.py)
    restore_lines: list[str] = field(default_factory=list)  # CRIU options its restores need
    console_pid: int = 0
    console_started: str = ""
    src_address: str = ""
    dst_address: str = ""
    direct_keys_file: str = ""  # the target's authorized_keys holding a one-time key (--direct)

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": "ctx",
            "t": time.time(),
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(Facts)},
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Facts:
        """The facts of a journal record (older records lack some: they keep defaults;
        `dump_fired` was not kept before, and a finished dump implies it)."""
        names = {f.name for f in dataclasses.fields(Facts)}
        facts = cls(**{k: v for k, v in record.items() if k in names})
        if "dump_fired" not in record:
            facts.dump_fired = bool(record.get("dump_done"))
        facts.moved_volumes = list(facts.moved_volumes or [])
        facts.restore_lines = list(facts.restore_lines or [])
        return facts

    def facts(self) -> Facts:
        """Only the facts (for a subclass that carries live handles too)."""
        return Facts(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Facts)})
