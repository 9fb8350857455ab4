"""The lab's network: one bridge in the root namespace, a namespace and veth per host."""

from __future__ import annotations

from lab.layout import BRIDGE, BRIDGE_ADDR, LabHost
from lab.shell import in_ns, ok, run


def forward_rule(bridge: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def bridge_up(bridge: str = BRIDGE, address: str = BRIDGE_ADDR) -> None:
    if not ok(["ip", "link", "show", bridge]):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    if address not in run(["ip", "-4", "addr", "show", bridge]).stdout.decode():
        run(["ip", "addr", "add", f"{address}/24", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    # Once any dockerd has run, bridged traffic meets FORWARD's DROP policy.
    rule = forward_rule(bridge)
    if not ok(["iptables", "-C", *rule]):
        run(["iptables", "-I", *rule])


def bridge_down(bridge: str = BRIDGE) -> None:
    rule = forward_rule(bridge)
    while ok(["iptables", "-C", *rule]):
        run(["iptables", "-D", *rule])
    if ok(["ip", "link", "show", bridge]):
        run(["ip", "link", "del", bridge])


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
