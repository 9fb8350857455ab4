"""The subcommands of `ferryman`, each a thin face on core/ (and lab/)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from dataclasses import asdict

import humanize

from core import events as ev
from core import journal, versions
from core.config import ConfigError, Inventory
from core.engine.direct_path import check as direct_check
from core.inventory import listing
from core.live import LiveBackend
from core.models import MigrationRequest
from core.preflight import container_checks, pair_checks, run_checks
from ferryman.hostsfile import die as _die
from ferryman.hostsfile import load_inventory


def console(args: argparse.Namespace) -> None:
    from tui.app import FerrymanApp

    if args.replay:
        from core.replay import Recording, ReplayBackend

        backend = ReplayBackend(Recording.load(args.replay))
    else:
        backend = LiveBackend(load_inventory(args.hosts))
    FerrymanApp(backend).run()


def lab(args: argparse.Namespace) -> None:
    from lab import control, vm
    from lab.shell import LabError

    use_vm = getattr(args, "vm", False)
    if getattr(args, "k8s", False):
        return _k8s_lab(args)
    try:
        if args.lab_cmd == "up":
            n = control.parse_host_count(args.n)
            spec = control.WorkloadSpec(mib=args.workload_mib, dirty_mib_s=args.dirty_mib)
            if use_vm:
                if args.engine != "20.10":
                    _die("lab up --vm: the VM lab's guests run Debian 12's Docker 20.10 only")
                vm.up(n, spec, criu=args.criu or "4.2")
            else:
                if args.criu:
                    _die(
                        "lab up --criu: only the VM lab's guests can run another CRIU "
                        "(Debian 12's 3.17.1 fails `criu check` on this machine's kernel): "
                        "add --vm"
                    )
                control.up(n, spec, engine=args.engine)
            kind = vm if use_vm else control
            print(f"lab: try `ferryman --hosts {kind.HOSTS_FILE}`")
        elif args.lab_cmd == "down":
            # Each kind only by its own name: `down` never takes a VM lab in use with it.
            if use_vm:
                vm.down()
            else:
                control.down()
                if vm.present():
                    print("lab: the VM lab is still up; `ferryman lab down --vm` takes it down")
        elif use_vm or (vm.present() and not control.present()):
            st = vm.status()
            print(json.dumps(st, indent=1) if args.json else vm.render_status(st))
        else:
            st = control.status()
            other = [vm.status()] if vm.present() else []
            if args.json:
                print(json.dumps({**st, "other_labs": other} if other else st, indent=1))
            else:
                print("\n".join([control.render_status(st), *map(vm.render_status, other)]))
    except LabError as e:
        _die(f"lab {args.lab_cmd}: {e}")


def _k8s_lab(args: argparse.Namespace) -> None:
    """The Kubernetes lab (lab/k8s): the binaries are built once and cached
    (lab/k8s/build.sh, ~26 min cold), then the cluster comes up in seconds."""
    import subprocess
    from pathlib import Path

    from lab.k8s import cluster

    if args.lab_cmd == "up":
        build = Path(__file__).resolve().parent.parent / "lab" / "k8s" / "build.sh"
        if subprocess.run(["bash", str(build)]).returncode != 0:
            _die("lab up --k8s: building the Kubernetes binaries failed (see above)")
        st = cluster.up()
    elif args.lab_cmd == "down":
        cluster.down()
        return
    else:
        st = cluster.status()
    print(json.dumps(st, indent=1, default=str))


async def ps(inv: Inventory, args: argparse.Namespace) -> None:
    be = LiveBackend(inv)
    try:
        rows = await listing(be.fleet)
    finally:
        await be.close()
    pods = await _pods(inv)
    if args.json:
        doc = [{"host": asdict(h), "containers": [asdict(c) for c in cs]} for h, cs in rows]
        if inv.clusters:
            print(json.dumps({"hosts": doc, "pods": [asdict(p) for p in pods]}, indent=1))
        else:
            print(json.dumps(doc, indent=1))
        return
    now = time.time()
    for h, cs in rows:
        engine = versions.EngineVersions(
            h.facts.engine_version,
            h.facts.api_version,
            h.facts.containerd_version,
            h.facts.runc_version,
        ).line()
        print(
            f"{h.name} ({h.address}): {h.state.value}"
            + (f", {engine}" if engine else "")
            + (f" — {h.reason}" if h.reason else "")
        )
        project = ""
        for c in cs:  # a Compose project's containers come together (inventory's order)
            if c.project != project:
                project = c.project
                print(f"  compose project {project}:")
            up = humanize.naturaldelta(now - c.started_at) if c.started_at else "-"
            mem = humanize.naturalsize(c.memory_bytes, binary=True) if c.memory_bytes else "-"
            mark = "movable" if c.migratable else f"NOT movable: {c.why_not}"
            print(
                ("    " if project else "  ")
                + f"{c.name:20} {c.short_id}  {c.image:28} {c.state:8} up {up:12} {mem:>10}  {mark}"
            )
    by_node: dict[tuple[str, str], list] = {}
    for p in pods:
        by_node.setdefault((p.cluster, p.node), []).append(p)
    for (cl, node), ps_ in by_node.items():
        print(f"pods on {node or '(not scheduled)'} (cluster {cl}):")
        for p in ps_:
            mark = "movable" if not p.why_not else f"NOT movable: {p.why_not}"
            print(
                f"  {p.namespace + '/' + p.name:34} {p.phase:9} {p.containers} container(s)  {mark}"
            )


async def _pods(inv: Inventory) -> list:
    """The pods of the clusters the hosts file names (none: [])."""
    from core.k8s import podmigration as pm

    if not inv.clusters:
        return []
    try:
        return await pm.list_pods(inv)
    except pm.PodMoveError as e:
        print(f"  ! {e}", file=sys.stderr)
        return []


async def check(inv: Inventory, args: argparse.Namespace) -> None:
    """Hosts' checks; with --container C --to T, the pair's and C's, as `migrate` runs them."""
    container = getattr(args, "container", None)
    if container and not getattr(args, "target", None):
        _die(f"check --container {container}: say the target host with --to HOST")
    if getattr(args, "direct", False) and not container:
        _die("check --direct: say which container and target with --container NAME --to HOST")
    if getattr(args, "target", None) and not container:
        _die("check --to: say which container with --container NAME")
    if container and not CONTAINER_NAME.match(container):
        _die(f"{container[:80]!r} is not a valid container name or id; `ferryman ps` lists them")
    be = LiveBackend(inv)
    try:
        source = ""
        if container:
            source = args.source or await _find(be, container)
            if source == args.target:
                _die(f"{container} is already on {source}: pick another target with --to")
            names = [source, args.target]
        else:
            names = args.host or [h.name for h in inv.hosts]
        for n in names:
            be.fleet[n]
        # `check` is asked for: it also tries a lazy transfer on each host (post-copy)
        reps = await run_checks(be.fleet, names, lazy_trial_run=True)
        checks = [c for r in reps for c in r.checks]
        for a, b in zip(reps, reps[1:], strict=False):
            checks += pair_checks(a, b)
        if container and all(r.reachable for r in reps):
            checks += await container_checks(be.fleet, container, source, args.target)
            if getattr(args, "direct", False):
                checks.append(await direct_check(be.fleet[source], be.fleet[args.target]))
    except ConfigError as e:
        _die(str(e))
    finally:
        await be.close()
    # what `migrate` refuses on (no soft-dirty or userfaultfd only rules strategies out)
    refusing = [
        c
        for c in checks
        if c.status.value == "fail" and c.name not in ("soft-dirty", "userfaultfd")
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "hosts": [{"host": r.host, "facts": asdict(r.facts)} for r in reps],
                    "checks": [asdict(c) for c in checks],
                },
                indent=1,
            )
        )
    else:
        for c in checks:
            print(
                f"{c.status.value.upper():4}  {c.host:12} {c.name:14} {c.reason}"
                + (f"\n{'':33}fix: {c.fix}" if c.fix else "")
            )
        if container:
            print(
                f"{container} {source} → {args.target}: "
                + (
                    f"the move would be refused ({len(refusing)} failed check(s))"
                    if refusing
                    else "nothing refuses the move"
                )
            )
    if container and refusing:
        raise SystemExit(1)


CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def _is_pod_move(inv: Inventory, args: argparse.Namespace) -> bool:
    if getattr(args, "namespace", None) or getattr(args, "cluster", None):
        return True
    return any(c.node_of(args.target) for c in inv.clusters)


async def migrate(inv: Inventory, args: argparse.Namespace) -> None:
    if _is_pod_move(inv, args):
        return await migrate_pod(inv, args)
    if not CONTAINER_NAME.match(args.container):
        where = args.source or "any host"
        _die(
            f"{args.container[:80]!r} is not a valid container name or id (on {where}): Docker names are "
            "letters, digits, '_', '.' and '-', starting with a letter or digit; `ferryman ps` lists them"
        )
    be = LiveBackend(inv)
    # Ctrl-C, SIGTERM and SIGHUP: the first asks for the rollback, whose steps are printed
    # as they happen; a second one stops it there and leaves the move to `ferryman recover`.
    # Before the move has begun, the command just ends.
    loop, me = asyncio.get_running_loop(), asyncio.current_task()
    moving: list = []
    signals: list[int] = []

    def interrupted(sig: int) -> None:
        signals.append(sig)
        if not moving:
            if me is not None:
                me.cancel()
        elif len(signals) == 1:
            moving[0].abort()
            print("interrupted: rolling back (interrupt again to stop now and leave it to "
                  "`ferryman recover`)", file=sys.stderr, flush=True)  # fmt: skip
        elif moving[0].task is not None:
            moving[0].task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, interrupted, sig)
    try:
        source = args.source or await _find(be, args.container)
        req = MigrationRequest(
            container=args.container,
            source=source,
            target=args.target,
            strategy=args.strategy,
            downtime_budget_s=args.downtime_budget,
            keep_images=args.keep_images,
            direct=args.direct,
            criu_options=tuple(args.criu_opt),
            accept_risk=args.accept_risk,
            watch=args.watch,
        )
        try:
            be.fleet[req.target]
        except ConfigError as e:
            _die(str(e))
        ok = True
        m = be.migrate(req)
        moving.append(m)
        async for e in m:
            if args.json:
                print(e.to_json(), flush=True)
            else:
                _print_event(e)
            if isinstance(e, ev.MigrationFailed):
                ok = False
    finally:
        await be.close()
    if signals:
        _die("interrupted: `ferryman history` says how the move ended", 130)
    if not ok:
        raise SystemExit(1)


async def migrate_pod(inv: Inventory, args: argparse.Namespace) -> None:
    """`ferryman migrate POD [-n NS] --to NODE`: core/k8s/podmigration.py, printed as a
    Docker move is."""
    from core.k8s import podmigration as pm

    req = pm.PodMoveRequest(
        pod=args.container,
        namespace=args.namespace or "default",
        target=args.target,
        cluster=args.cluster,
        keep_images=args.keep_images,
    )
    loop, me = asyncio.get_running_loop(), asyncio.current_task()
    if me is not None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, me.cancel)
    ok = True
    try:
        async for e in pm.migrate_pod(inv, req):
            if args.json:
                print(e.to_json(), flush=True)
            else:
                _print_event(e)
            if isinstance(e, ev.MigrationFailed):
                ok = False
    except pm.PodMoveError as e:
        _die(str(e))
    if not ok:
        raise SystemExit(1)


async def _find(be: LiveBackend, name: str) -> str:
    rows = await listing(be.fleet)
    where = [h.name for h, cs in rows for c in cs if name in (c.name, c.id, c.short_id)]
    if not where:
        down = [h.name for h, _ in rows if h.state.value != "up"]
        _die(
            f"no container {name!r} on any host"
            + (f" (unreachable: {', '.join(down)})" if down else "")
            + "; `ferryman ps` lists them"
        )
    if len(where) > 1:
        _die(f"{name!r} exists on {', '.join(where)}: say which with --from")
    return where[0]


def _print_event(e: ev.Event) -> None:
    if isinstance(e, ev.MigrationStarted):
        print(
            f"migrating {e.container}: {e.source} → {e.target}, {e.strategy} ({e.strategy_reason})"
        )
    elif isinstance(e, ev.PhaseStarted):
        print(f"· {e.phase}")
    elif isinstance(e, ev.LogLine) and e.stream in ("check", "ferryman", "error"):
        print(f"    {e.host}: {e.text}")
    elif isinstance(e, ev.Warning):
        print(f"  ! {e.text}")
    elif isinstance(e, ev.BytesMoved) and e.done:
        print(
            f"    {humanize.naturalsize(e.total_bytes, binary=True)} at {humanize.naturalsize(e.rate_bps, binary=True)}/s"
        )
    elif isinstance(e, ev.FreezeEnded):
        print(
            f"  freeze window {e.total_s * 1000:.0f} ms (dump {e.dump_s * 1000:.0f} + transfer "
            f"{e.transfer_s * 1000:.0f} + restore {e.restore_s * 1000:.0f}), running on {e.where}"
        )
    elif isinstance(e, ev.RollbackStarted):
        print(f"  rolling back: {e.reason}")
    elif isinstance(e, ev.RollbackFinished):
        print(f"  rolled back: running on {e.running_on}" + (f" ({e.detail})" if e.detail else ""))
    elif isinstance(e, ev.MigrationFailed):
        print(f"FAILED in {e.phase}: {e.cause}", file=sys.stderr)
        if e.fix:
            print(f"  fix: {e.fix}", file=sys.stderr)
        for line in e.log_excerpt:
            print(f"  | {line}", file=sys.stderr)
        if e.log_path:
            print(f"  log: {e.log_path} (ferryman doctor {e.log_path})", file=sys.stderr)
    elif isinstance(e, ev.MigrationSucceeded):
        gap = f", application saw {e.app_gap_s * 1000:.0f} ms" if e.app_gap_s is not None else ""
        if e.client_wait_s is not None:
            gap += f", client {e.client} waited {e.client_wait_s * 1000:.0f} ms at most"
        print(
            f"done: {e.container} runs on {e.target}; freeze {e.freeze_s * 1000:.0f} ms{gap}, "
            f"{humanize.naturalsize(e.bytes_moved, binary=True)} moved, {e.total_s:.1f} s in all"
        )


async def recover(inv: Inventory, args: argparse.Namespace) -> None:
    from core.engine import recovery

    _, broken = journal.load()
    for line in broken:
        print(f"  ! {line}: move it aside once read; recovery cannot use it", file=sys.stderr)
    pods_failed = await _recover_pods(inv, args)
    if not journal.unfinished():
        if pods_failed:
            raise SystemExit(1)
        if pods_failed is False:
            return
        print("nothing to recover: no unfinished migration in the journal")
        if broken:
            raise SystemExit(1)
        return
    be = LiveBackend(inv)
    failed = False
    try:
        for item in await recovery.pending(be.fleet):
            entry, p = item.entry, item.plan
            print(
                f"{entry.migration_id}  {entry.container} {entry.source} → {entry.target} "
                f"(stopped in {entry.phase or 'start'}, {entry.result}): {p.reason}"
            )
            if p.action in ("other-hosts", "unreachable"):
                failed = True
            if not p.to_do:
                continue
            if not args.yes:
                if not sys.stdin.isatty():
                    print("  not done: run with --yes to carry it out", file=sys.stderr)
                    failed = True
                    continue
                if input("  do it? [y/N] ").strip().lower() not in ("y", "yes"):
                    continue
            try:
                where = await recovery.apply(be.fleet, entry, p, lambda t: print(f"    {t}"))
            except recovery.RecoveryBusy as e:
                print(f"  not done: {e}", file=sys.stderr)
                failed = True
                continue
            except Exception as e:  # noqa: BLE001
                print(
                    f"  failed: {e}; the journal entry stays open, run recover again",
                    file=sys.stderr,
                )
                failed = True
                continue
            print(f"  done: {entry.container} runs on {where}")
    finally:
        await be.close()
    if failed or pods_failed:
        raise SystemExit(1)


async def _recover_pods(inv: Inventory, args: argparse.Namespace) -> bool | None:
    """Pod moves left unfinished (core/k8s/podmigration.recover_pod). None: there were
    none; else whether one could not be finished."""
    from core.k8s import podmigration as pm

    entries = journal.unfinished_pods()
    if not entries:
        return None
    failed = False
    for entry in entries:
        d = entry.pod
        print(
            f"{entry.migration_id}  pod {entry.container} {d.get('source_node')} → "
            f"{d.get('target_node')} (stopped in {entry.phase or 'start'}, {entry.result}): "
            "finished if the restored pod is Ready, else rolled back"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                print("  not done: run with --yes to carry it out", file=sys.stderr)
                failed = True
                continue
            if input("  do it? [y/N] ").strip().lower() not in ("y", "yes"):
                continue
        try:
            where = await pm.recover_pod(inv, entry, lambda t: print(f"    {t}"))
        except Exception as e:  # noqa: BLE001
            print(
                f"  failed: {e}; the journal entry stays open, run recover again", file=sys.stderr
            )
            failed = True
            continue
        print(f"  done: {entry.container} runs on {where}")
    return failed


HISTORY_COLUMNS = (
    "STARTED (UTC)",
    "ID",
    "CONTAINER",
    "FROM → TO",
    "STRATEGY",
    "RESULT",
    "FREEZE",
    "MOVED",
    "TOOK",
    "RUNS ON",
    "CAUSE",
)


def history_rows(entries: list[journal.JournalEntry]) -> list[tuple[str, ...]]:
    """One row of text per migration. The figures are folded from the entry's events as
    the console folds them (core/outcome.py): both say the same of one move."""
    from core.outcome import outcome_of
    from core.runc_text import lines

    rows = []
    for e in entries:
        o = outcome_of(e.typed_events())
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.started))
        freeze = f"{e.freeze['total_s'] * 1000:.0f} ms" if e.freeze.get("total_s") else "-"
        moved = o.bytes or e.bytes_moved
        size = humanize.naturalsize(moved, binary=True, format="%.1f") if moved else "-"
        seconds = (
            o.seconds if o.seconds is not None else (e.finished - e.started if e.finished else None)
        )
        took = f"{seconds:.2f} s" if seconds is not None else "-"
        if e.result == "recovered" or not (o.failed or o.succeeded or o.rolled_back):
            where = e.running_on or "-"
        else:
            where = o.running_on or "unknown"
        cause = ""
        if e.cause and e.result != "succeeded":
            said = lines(e.cause)
            cause = said[0] if said else e.cause
        rows.append(
            (
                when,
                e.migration_id,
                e.container,
                f"{e.source} → {e.target}",
                e.strategy,
                e.result,
                freeze,
                size,
                took,
                where,
                cause,
            )
        )
    return rows


def history_filter(entries: list[journal.JournalEntry], args: argparse.Namespace):
    out = entries
    if getattr(args, "container", None):
        out = [e for e in out if e.container == args.container]
    if getattr(args, "host", None):
        out = [e for e in out if args.host in (e.source, e.target)]
    if getattr(args, "result", None):
        out = [e for e in out if e.result == args.result]
    n = getattr(args, "n", None)
    if n is not None:
        out = out[: max(0, n)]  # the newest first: load_all sorts them so
    return out


def history(args: argparse.Namespace) -> None:
    entries = journal.load_all()
    shown = history_filter(entries, args)
    if args.json:
        print(json.dumps([e.to_dict() for e in shown], indent=1))
        return
    if not entries:
        print(f"no migrations yet (journal: {journal.journal_dir()})")
        return
    if not shown:
        print(f"no migration matches ({len(entries)} in {journal.journal_dir()})")
        return
    rows = history_rows(shown)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HISTORY_COLUMNS)]
    right = {"FREEZE", "MOVED", "TOOK"}

    def line(cells: tuple[str, ...]) -> str:
        out = []
        for i, (h, c) in enumerate(zip(HISTORY_COLUMNS, cells, strict=True)):
            if i == len(cells) - 1:
                out.append(c)  # the cause, last: not padded
            else:
                out.append(c.rjust(widths[i]) if h in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    print(line(HISTORY_COLUMNS))
    for r in rows:
        print(line(r))


def doctor(args: argparse.Namespace) -> None:
    from core import doctor as d

    try:
        with open(args.log, errors="replace") as f:
            text = f.read()
    except OSError as e:
        _die(f"doctor: cannot read {args.log}: {e.strerror}")
    diags = d.diagnose(text)
    if args.json:
        print(
            json.dumps(
                {
                    "log": args.log,
                    "kind": d.detect_kind(text),
                    "diagnoses": [x.to_dict() for x in diags],
                },
                indent=1,
            )
        )
    else:
        print(d.render_text(diags) if diags else f"{args.log}: no CRIU error found")


def restore_runtime(args: argparse.Namespace) -> None:
    from core.engine import restore_runtime as rr

    if args.what == "wrapper":
        sys.stdout.write(rr.wrapper_script())
        return
    try:
        sys.stdout.write(rr.daemon_json_with_runtime(sys.stdin.read()))
    except rr.RouteError as e:
        _die(f"restore-runtime daemon-json: {e}")
