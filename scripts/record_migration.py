"""Record a real migration on the lab as a Recording (for `ferryman --replay`, the console's
tests and the README's screenshots).

    sudo .venv/bin/python scripts/record_migration.py OUT.json [--container workload]
        [--from host1] [--to host2] [--strategy stop-and-copy] [--fail-restore]

It captures what the console would show: the hosts with their facts, the containers,
the preflight checks, and every event of the migration as it ran. With --fail-restore,
the target's CRIU is made to fail its restores (CRIU's own fault injection, through the
lab host's PATH prefix), so the recording holds a real failed restore and its rollback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import load  # noqa: E402
from core.journal import load_all  # noqa: E402
from core.live import LiveBackend  # noqa: E402
from core.models import MigrationRequest  # noqa: E402
from core.replay import Recording  # noqa: E402
from lab.layout import HOSTS_FILE, LabHost  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--container", default="workload")
    ap.add_argument("--from", dest="source", default="host1")
    ap.add_argument("--to", dest="target", default="host2")
    ap.add_argument("--strategy", default="stop-and-copy")
    ap.add_argument("--fail-restore", action="store_true")
    args = ap.parse_args()
    be = LiveBackend(load(HOSTS_FILE))
    rec = Recording()
    rec.hosts = await be.hosts()
    for h in rec.hosts:
        rec.containers += await be.containers(h.name)
    req = MigrationRequest(container=args.container, source=args.source, target=args.target,
                           strategy=args.strategy)
    rec.checks = await be.preflight(req)
    fake = LabHost(int(args.target.removeprefix("host"))).bin_dir / "criu"
    if args.fail_restore:
        fake.write_text("#!/bin/sh\nexport CRIU_FAULT=6\nexec /usr/local/sbin/criu \"$@\"\n")
        fake.chmod(0o755)
    try:
        async for e in be.migrate(req):
            rec.events.append(e)
            print(e.to_json(), flush=True)
    finally:
        fake.unlink(missing_ok=True)
        await be.close()
    mid = next((e.migration_id for e in rec.events if e.kind == "migration_started"), None)
    rec.history = [j for j in load_all() if j.migration_id == mid]
    rec.save(args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
