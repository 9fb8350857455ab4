"""`ferryman`: the console, and the same engine without it (ps, check, migrate, ...)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

from ferryman.hostsfile import die as _die
from ferryman.hostsfile import load_inventory


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (examples: 300ms, 0.5s)")
    value = float(m.group(1))
    return value / 1000 if m.group(2) == "ms" or (m.group(2) is None and value >= 10) else value


def main(argv: list[str] | None = None) -> None:
    """Every command; output cut short by its reader (`ferryman history | head`) ends
    quietly, as with other Unix tools, not in a traceback."""
    try:
        _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would try to flush stdout again on the way out and complain: point it at
        # /dev/null first. 141 = 128 + SIGPIPE, what a shell reports for such a writer.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141) from None


def _main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="ferryman", description="Move running Docker containers between hosts, live."
    )
    ap.add_argument(
        "--hosts",
        metavar="FILE",
        help="hosts file (else $FERRYMAN_HOSTS, else ~/.config/ferryman/hosts.yaml)",
    )
    ap.add_argument(
        "--replay",
        metavar="RECORDING",
        help="console only: replay a recorded migration (no hosts needed)",
    )
    sub = ap.add_subparsers(dest="cmd")

    lab = sub.add_parser("lab", help="the local lab: hosts in network namespaces on this machine")
    lsub = lab.add_subparsers(dest="lab_cmd", required=True)
    up = lsub.add_parser("up", help="start the lab (idempotent)")
    up.add_argument("--hosts", dest="n", default="2", help="number of hosts, 1-8 (default 2)")
    up.add_argument("--workload-mib", type=int, default=64, help="memory the workload holds (MiB)")
    up.add_argument(
        "--dirty-mib", type=float, default=4.0, help="MiB the workload rewrites per second"
    )
    up.add_argument(
        "--engine",
        choices=["20.10", "28"],
        default="20.10",
        help="the Docker engine of hosts this call adds: Debian 12's 20.10 (default) or 28.5.2 "
        "(lab/setup/install-engine28.sh); hosts that exist keep theirs",
    )
    up.add_argument(
        "--criu",
        choices=["4.2", "3.17"],
        default=None,
        help="with --vm: the CRIU the guests run, the lab's 4.2.1 (default) or Debian 12's own "
        "3.17.1 (lab/setup/install-criu-debian.sh 12); guests already up switch",
    )
    vm_help = "the VM lab: QEMU guests with Debian's kernel (soft-dirty, lazy pages)"
    up.add_argument("--vm", action="store_true", help=vm_help)
    k8s_help = "the Kubernetes lab: etcd, kube-apiserver, two kubelet nodes (lab/k8s)"
    up.add_argument("--k8s", action="store_true", help=k8s_help)
    dn = lsub.add_parser("down", help="remove everything the lab made (both kinds)")
    dn.add_argument("--vm", action="store_true", help="only the VM lab")
    dn.add_argument("--k8s", action="store_true", help="only the Kubernetes lab")
    st = lsub.add_parser("status", help="what runs")
    st.add_argument("--json", action="store_true")
    st.add_argument("--vm", action="store_true", help="only the VM lab")
    st.add_argument("--k8s", action="store_true", help="only the Kubernetes lab")

    hosts_opt = argparse.ArgumentParser(add_help=False)
    hosts_opt.add_argument("--hosts", metavar="FILE", default=argparse.SUPPRESS, help="hosts file")
    ps = sub.add_parser("ps", help="containers on every host", parents=[hosts_opt])
    ps.add_argument("--json", action="store_true")
    ck = sub.add_parser("check", help="preflight checks of hosts", parents=[hosts_opt])
    ck.add_argument("host", nargs="*")
    ck.add_argument(
        "--container",
        help="also what moving this container needs and gets (with --to): its settings, "
        "as the move's preflight checks them",
    )
    ck.add_argument("--to", dest="target", help="the target host, with --container")
    ck.add_argument("--from", dest="source", help="the container's host (default: found)")
    ck.add_argument(
        "--direct",
        action="store_true",
        help="also whether the source reaches the target's sshd for a direct move "
        "(with --container and --to)",
    )
    ck.add_argument("--json", action="store_true")
    mg = sub.add_parser("migrate", help="move a container (no console)", parents=[hosts_opt])
    mg.add_argument("container", help="a container, or a pod (of a cluster the hosts file names)")
    mg.add_argument("--to", required=True, dest="target", help="a host, or a Kubernetes node")
    mg.add_argument(
        "-n",
        "--namespace",
        help="a pod's namespace (default: default); a pod move when the target is a node of "
        "a cluster in the hosts file, or with -n/--cluster",
    )
    mg.add_argument("--cluster", help="the cluster of the hosts file (when it names several)")
    mg.add_argument("--from", dest="source")
    mg.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "stop-and-copy", "pre-copy", "post-copy", "hybrid"],
    )
    mg.add_argument("--downtime-budget", type=parse_duration, default=0.3, metavar="300ms")
    mg.add_argument(
        "--keep-images", action="store_true", help="keep checkpoint images on both hosts"
    )
    mg.add_argument(
        "--direct",
        action="store_true",
        help="stream host to host (the source's ssh to the target's sshd, a one-time key "
        "removed afterwards) instead of relaying through this console",
    )
    mg.add_argument(
        "--criu-opt",
        action="append",
        default=[],
        metavar="OPTION",
        help="an extra CRIU option, e.g. --criu-opt=--tcp-established (repeatable)",
    )
    mg.add_argument(
        "--accept-risk",
        action="store_true",
        help="let auto pick post-copy when stop-and-copy's freeze would be over the budget "
        "(until its lazy phase ends, losing either host or the link loses the container)",
    )
    mg.add_argument(
        "--watch",
        metavar="CLIENT[@HOST]",
        default="",
        help="a client container (a line on stdout per answer it gets; the host defaults to "
        "the source): the longest wait between its answers during the move is reported",
    )
    mg.add_argument("--json", action="store_true", help="one JSON event per line")
    hi = sub.add_parser("history", help="past migrations, the newest first")
    hi.add_argument("--json", action="store_true")
    hi.add_argument("-n", type=int, metavar="N", help="only the newest N (after the filters)")
    hi.add_argument("--container", metavar="NAME", help="only migrations of this container")
    hi.add_argument("--host", metavar="HOST", help="only migrations from or to this host")
    hi.add_argument(
        "--result",
        choices=[
            "succeeded",
            "failed",
            "rolled back",
            "in doubt",
            "incomplete",
            "running",
            "recovered",
        ],
        help="only migrations that ended so",
    )
    rc = sub.add_parser(
        "recover", help="finish or roll back migrations whose console died", parents=[hosts_opt]
    )
    rc.add_argument("--yes", action="store_true", help="do it without asking")
    rr = sub.add_parser(
        "restore-runtime",
        help="what a Docker >= 28 host needs for moves onto it: the wrapper, daemon.json",
    )
    rr.add_argument(
        "what",
        choices=["wrapper", "daemon-json"],
        help="wrapper: print the runc wrapper (install it at "
        "/usr/local/lib/ferryman/runc-restore, mode 755); daemon-json: read daemon.json on "
        "stdin (empty: none) and print it with the runtime registered",
    )
    dr = sub.add_parser("doctor", help="explain a CRIU log")
    dr.add_argument("log")
    dr.add_argument("--json", action="store_true")

    args = ap.parse_args(argv)
    from ferryman import commands

    if args.cmd is None:
        commands.console(args)
    elif args.cmd == "lab":
        commands.lab(args)
    elif args.cmd == "doctor":
        commands.doctor(args)
    elif args.cmd == "restore-runtime":
        commands.restore_runtime(args)
    elif args.cmd == "history":
        commands.history(args)
    else:
        inv = load_inventory(args.hosts)
        try:
            asyncio.run(getattr(commands, args.cmd)(inv, args))
        except (KeyboardInterrupt, asyncio.CancelledError):
            _die("interrupted: `ferryman history` says how the move ended", 130)


if __name__ == "__main__":
    main()
