"""The lab's network: one bridge in the root namespace, a namespace and veth per host."""

from __future__ import annotations

from lab.layout import BRIDGE, BRIDGE_ADDR, LabHost
from lab.shell import in_ns, ok, run

FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


def bridge_up() -> None:
    if not ok(["ip", "link", "show", BRIDGE]):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    if BRIDGE_ADDR not in run(["ip", "-4", "addr", "show", BRIDGE]).stdout.decode():
        run(["ip", "addr", "add", f"{BRIDGE_ADDR}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    # Once any dockerd has run, bridged traffic meets FORWARD's DROP policy.
    if not ok(["iptables", "-C", *FORWARD_RULE]):
        run(["iptables", "-I", *FORWARD_RULE])


def bridge_down() -> None:
    while ok(["iptables", "-C", *FORWARD_RULE]):
        run(["iptables", "-D", *FORWARD_RULE])
    if ok(["ip", "link", "show", BRIDGE]):
        run(["ip", "link", "del", BRIDGE])


def host_up(h: LabHost) -> None:
    if not ok(["ip", "netns", "pids", h.netns]):
        run(["ip", "netns", "add", h.netns])
    if not ok(["ip", "link", "show", h.veth_host]):
        run(["ip", "link", "add", h.veth_host, "type", "veth", "peer", "name", h.veth_ns])
        run(["ip", "link", "set", h.veth_ns, "netns", h.netns])
    run(["ip", "link", "set", h.veth_host, "master", BRIDGE, "up"])
    ns = lambda *a: in_ns(h.netns, ["ip", *a])  # noqa: E731
    if h.address not in run(ns("-4", "addr", "show", h.veth_ns)).stdout.decode():
        run(ns("addr", "add", f"{h.address}/24", "dev", h.veth_ns))
    run(ns("link", "set", h.veth_ns, "up"))
    run(ns("link", "set", "lo", "up"))
    if "default" not in run(ns("route")).stdout.decode():
        run(ns("route", "add", "default", "via", BRIDGE_ADDR))


def host_down(h: LabHost) -> None:
    if ok(["ip", "link", "show", h.veth_host]):
        run(["ip", "link", "del", h.veth_host])
    if ok(["ip", "netns", "pids", h.netns]):
        run(["ip", "netns", "del", h.netns])
