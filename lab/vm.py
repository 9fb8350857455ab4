"""`ferryman lab up --vm`: lab hosts as QEMU guests running Debian's 6.1 kernel, which has
soft-dirty tracking (pre-copy) and working userfaultfd (post-copy), unlike this machine's.

Each guest boots lab/guest/init from a small initramfs (lab/vm_image.py), mounts this
machine's / read-only over 9p under a tmpfs overlay and runs lab/guest/stage2.sh: so it
runs this machine's own sshd, dockerd, runc and CRIU wrapper. It sits on its own bridge
(fmbr1, 10.78.0.0/24: never the namespace lab's), with a tap device and virtio-net, and
has a sparse scratch disk for Docker's data and the checkpoint images. The console reaches
it like any other host: SSH as root with the lab's key, host keys in the lab's
known_hosts; inside, the engine's socket, exec root and images folder are guest paths.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab import net, sshd, vm_image
from lab.control import CRIU, WorkloadSpec, parse_host_count, require_root, workload_run_args
from lab.image import IMPORT_ARGS, rootfs_tar
from lab.layout import IMAGE, WORKLOAD
from lab.shell import LabError, ok, run

KIND = "vm"
BRIDGE = "fmbr1"
SUBNET_PREFIX = "10.78.0"
BRIDGE_ADDR = f"{SUBNET_PREFIX}.1"
# Names chosen so that nothing here starts with the namespace lab's paths or link names
# (/var/lib/ferryman-lab, /run/fm, fmbr0, fmv*): each lab's `down` and tests leave the
# other alone.
STATE_DIR = Path(os.environ.get("FERRYMAN_VMLAB_DIR", "/var/lib/ferryman-vmlab"))
RUN_DIR = Path("/run/fvm")
KEY = STATE_DIR / "id_ed25519"
KNOWN_HOSTS = STATE_DIR / "known_hosts"
HOSTS_FILE = STATE_DIR / "hosts.yaml"
STATUS_FILE = STATE_DIR / "lab.json"
INITRD = STATE_DIR / "initrd.img"
STAGE2 = STATE_DIR / "stage2.sh"

MEM_MIB = int(os.environ.get("FERRYMAN_VM_MEM_MIB", "2048"))
CPUS = int(os.environ.get("FERRYMAN_VM_CPUS", "2"))
DISK_GIB = 16  # sparse: takes only what the guest writes
BOOT_TIMEOUT = float(os.environ.get("FERRYMAN_VM_BOOT_TIMEOUT", "480"))

# Paths inside every guest (what the hosts file hands the migration engine).
GUEST_DOCKER_SOCKET = "/run/docker.sock"
GUEST_EXEC_ROOT = "/run/docker"
GUEST_DATA_ROOT = "/srv/ferryman/docker"
GUEST_IMAGES_DIR = "/srv/ferryman/images"
GUEST_BIN_DIR = "/run/ferryman/bin"
GUEST_READY = "/run/ferryman/ready"
# Debian 12's own CRIU (lab/setup/install-criu-debian.sh 12), which guests may run instead
# of the lab's 4.2 (`ferryman lab up --vm --criu 3.17`).
CRIU_317 = "/opt/ferryman/criu-3.17/criu"
INSTALL_CRIU = Path(__file__).parent / "setup" / "install-criu-debian.sh"
CRIU_CHOICES = ("4.2", "3.17")


@dataclass(frozen=True)
class VmHost:
    index: int

    @property
    def name(self) -> str:
        return f"host{self.index}"

    @property
    def address(self) -> str:
        return f"{SUBNET_PREFIX}.{10 + self.index}"

    @property
    def tap(self) -> str:
        return f"fmt{self.index}"

    @property
    def mac(self) -> str:
        return f"52:54:00:4e:00:{10 + self.index:02x}"

    @property
    def state(self) -> Path:
        return STATE_DIR / self.name

    @property
    def pidfile(self) -> Path:
        return RUN_DIR / f"{self.name}.qemu.pid"

    @property
    def console_log(self) -> Path:
        return self.state / "console.log"

    @property
    def disk(self) -> Path:
        return self.state / "scratch.img"

    @property
    def host_key(self) -> Path:
        return self.state / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.state / "sshd_config"


def hosts(n: int) -> list[VmHost]:
    return [VmHost(i) for i in range(1, n + 1)]


def existing_hosts() -> list[VmHost]:
    found: set[int] = set()
    if STATE_DIR.is_dir():
        for p in STATE_DIR.glob("host*"):
            if m := re.fullmatch(r"host(\d+)", p.name):
                found.add(int(m.group(1)))
    if RUN_DIR.is_dir():
        for p in RUN_DIR.glob("host*.qemu.pid"):
            if m := re.fullmatch(r"host(\d+)\.qemu\.pid", p.name):
                found.add(int(m.group(1)))
    for ln in run(["ip", "-o", "link"], check=False).stdout.decode().splitlines():
        if m := re.match(r"\d+: fmt(\d+)[:@]", ln):
            found.add(int(m.group(1)))
    return [VmHost(i) for i in sorted(found)]


def present() -> bool:
    """Anything of the VM lab on this machine (to take down or report)."""
    return bool(existing_hosts()) or STATE_DIR.exists() or ok(["ip", "link", "show", BRIDGE])


# --- SSH to a guest ------------------------------------------------------------------


def ssh_argv(h: VmHost, command: str, connect_timeout: int = 5) -> list[str]:
    return [
        "ssh",
        "-i",
        str(KEY),
        "-o",
        f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        f"root@{h.address}",
        command,
    ]


def ssh(
    h: VmHost,
    argv: list[str] | str,
    *,
    check: bool = True,
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command in the guest (argv is quoted once here; a str is a shell line)."""
    command = argv if isinstance(argv, str) else shlex.join(argv)
    return run(ssh_argv(h, command), check=check, input=input, timeout=timeout)


def docker(h: VmHost, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return ssh(h, ["docker", "-H", f"unix://{GUEST_DOCKER_SOCKET}", *args], **kw)


# --- this machine's side: preflight, key, bridge, taps, QEMU ---------------------------


def preflight_tools() -> vm_image.Kernel:
    missing = [
        t
        for t in ("qemu-system-x86_64", "dockerd", "runc", "/usr/sbin/sshd", "ssh", "gcc")
        if not shutil.which(t)
    ]
    if not os.access(CRIU, os.X_OK):
        missing.append("criu 4.2")
    if missing:
        raise LabError(f"missing {', '.join(missing)}: run `bash lab/setup/install-deps.sh` first")
    k = vm_image.kernel()
    for opt in ("CONFIG_MEM_SOFT_DIRTY", "CONFIG_USERFAULTFD"):
        if not k.has(opt):
            raise LabError(f"the guest kernel {k.version} lacks {opt}")
    return k


def client_key() -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ferryman-vmlab", "-f", str(KEY)])


def write_sshd_config(h: VmHost) -> None:
    """The guest's sshd reads these through the 9p root, at the same paths."""
    h.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not h.host_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(h.host_key)])
    auth = h.state / "authorized_keys"
    auth.write_text(Path(f"{KEY}.pub").read_text())
    auth.chmod(0o600)
    h.sshd_config.write_text(
        sshd.config_text(
            f"VM lab guest {h.name} (written by `ferryman lab up --vm`)",
            address=h.address,
            host_key=h.host_key,
            pidfile="/run/sshd.pid",
            authorized_keys=auth,
            docker_socket=GUEST_DOCKER_SOCKET,
            bin_dir=GUEST_BIN_DIR,
            name=h.name,
        )
    )


def write_known_hosts(hs: list[VmHost]) -> None:
    lines = []
    for h in hs:
        kind, key = Path(f"{h.host_key}.pub").read_text().split()[:2]
        lines.append(f"{h.address} {kind} {key}\n")
    KNOWN_HOSTS.write_text("".join(lines))


def bridge_up() -> None:
    net.bridge_up(BRIDGE, BRIDGE_ADDR)


def bridge_down() -> None:
    net.bridge_down(BRIDGE)


def tap_up(h: VmHost) -> None:
    if not ok(["ip", "link", "show", h.tap]):
        run(["ip", "tuntap", "add", "dev", h.tap, "mode", "tap"])
    run(["ip", "link", "set", h.tap, "master", BRIDGE, "up"])


def tap_down(h: VmHost) -> None:
    if ok(["ip", "link", "show", h.tap]):
        run(["ip", "link", "del", h.tap])


def qemu_pid(h: VmHost) -> int | None:
    try:
        p = int(h.pidfile.read_text().strip())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def qemu_argv(h: VmHost, k: vm_image.Kernel) -> list[str]:
    append = " ".join(
        [
            "console=ttyS0",
            "panic=-1",
            "quiet",
            "loglevel=4",
            # Under TCG: a TSC clock (HPET reads are emulated MMIO, and no vDSO), and no
            # page-table isolation (each syscall would flush the emulated TLB).
            "tsc=reliable",
            "mitigations=off",
            "rdinit=/init",
            f"fm.host={h.name}",
            f"fm.addr={h.address}/24",
            f"fm.gw={BRIDGE_ADDR}",
            f"fm.state={h.state}",
            f"fm.kdir={vm_image.VMKERNEL}",
            f"fm.stage2={STAGE2}",
        ]
    )
    return [
        "qemu-system-x86_64",
        "-name",
        f"ferryman-vmlab-{h.name}",
        "-accel",
        "tcg",  # /dev/kvm here is PVM-only: a stock kernel hangs under it
        "-cpu",
        "max",
        "-smp",
        str(CPUS),
        "-m",
        str(MEM_MIB),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{h.console_log}",
        "-monitor",
        "none",
        "-kernel",
        str(k.vmlinuz),
        "-initrd",
        str(INITRD),
        "-append",
        append,
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap",
        "-netdev",
        f"tap,id=n0,ifname={h.tap},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={h.mac}",
        "-drive",
        f"file={h.disk},format=raw,if=virtio,cache=unsafe,discard=unmap",
        "-daemonize",
        "-pidfile",
        str(h.pidfile),
    ]


def boot(h: VmHost, k: vm_image.Kernel) -> None:
    if qemu_pid(h):
        return
    RUN_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    h.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    h.disk.unlink(missing_ok=True)  # a fresh scratch disk each boot (the guest formats it)
    with open(h.disk, "wb") as f:
        f.truncate(DISK_GIB << 30)
    h.console_log.unlink(missing_ok=True)
    run(qemu_argv(h, k), timeout=60)


def guest_ready(h: VmHost, timeout: int = 5) -> bool:
    p = run(
        ssh_argv(
            h,
            f"test -e {GUEST_READY} && docker -H unix://{GUEST_DOCKER_SOCKET} version "
            "--format '{{.Server.Version}}'",
            connect_timeout=timeout,
        ),
        check=False,
        timeout=timeout + 20,
    )
    return p.returncode == 0


_CLOCK_PEER = """
import sys, time
for line in sys.stdin:
    if line.startswith("set "):
        time.clock_settime(time.CLOCK_REALTIME, time.time() + float(line.split()[1]))
        print("ok", flush=True)
        break
    print(repr(time.time()), flush=True)
"""


def sync_clock(h: VmHost, samples: int = 8, *, adjust: bool = True) -> float:
    """Set the guest's clock to this machine's, to a few ms, so heartbeat gaps measured
    across guests are right (a guest boots with the RTC's whole seconds). Returns the
    offset found (guest minus this machine, seconds); adjust=False only measures it."""
    p = subprocess.Popen(
        ssh_argv(h, "exec python3 -c " + shlex.quote(_CLOCK_PEER)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdin and p.stdout
    best: tuple[float, float] | None = None  # (round trip, offset)
    try:
        for _ in range(samples):
            t0 = time.time()
            p.stdin.write("t\n")
            p.stdin.flush()
            g = float(p.stdout.readline())
            t1 = time.time()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, g - (t0 + t1) / 2)
        assert best is not None
        if adjust:
            p.stdin.write(f"set {-best[1]!r}\n")
            p.stdin.flush()
            p.stdout.readline()
    except (ValueError, OSError) as e:
        raise LabError(f"{h.name}: could not set the guest's clock: {e}") from None
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    return best[1]


def wait_ready(hs: list[VmHost], timeout: float = BOOT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hs)
    while pending:
        for h in pending:
            if not qemu_pid(h):
                raise LabError(f"{h.name}: QEMU exited while booting; see {h.console_log}")
        with ThreadPoolExecutor(len(pending)) as pool:
            ready = list(pool.map(guest_ready, pending))
        pending = [h for h, r in zip(pending, ready, strict=True) if not r]
        if pending:
            if time.monotonic() > deadline:
                names = ", ".join(h.name for h in pending)
                raise LabError(
                    f"{names}: no sshd + dockerd within {timeout:.0f} s; see "
                    f"{pending[0].console_log}"
                )
            time.sleep(1)


# --- hosts file, image, workload ------------------------------------------------------


def write_hosts_file(hs: list[VmHost]) -> None:
    doc = {
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "port": 22,
                "user": "root",
                "key": str(KEY),
                "known_hosts": str(KNOWN_HOSTS),
                "docker_socket": GUEST_DOCKER_SOCKET,
                "exec_root": GUEST_EXEC_ROOT,
                "images_dir": GUEST_IMAGES_DIR,
                "labels": {"lab": KIND},
                # emulated guests: a login takes 1-3 s idle, over 5 s under load
                "connect_timeout": 30,
            }
            for h in hs
        ]
    }
    HOSTS_FILE.write_text(
        "# Written by `ferryman lab up --vm`: the VM lab's hosts (QEMU guests).\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def import_image(h: VmHost, image: str = IMAGE) -> None:
    if docker(h, "image", "inspect", image, check=False).returncode == 0:
        return
    docker(h, *IMPORT_ARGS, image, input=rootfs_tar(STATE_DIR))


def start_workload(h: VmHost, spec: WorkloadSpec, name: str = WORKLOAD) -> None:
    p = docker(h, "inspect", "-f", "{{.State.Running}}", name, check=False)
    if p.returncode == 0:
        if p.stdout.decode().strip() == "true":
            return
        docker(h, "rm", "-f", name)
    docker(h, *workload_run_args(spec, name))


# --- up / down / status ---------------------------------------------------------------


def use_criu(hs: list[VmHost], which: str, log=print) -> None:
    """Which CRIU the guests' dockerd (so runc) and ferryman's commands run: the lab's 4.2
    or Debian 12's own 3.17.1. A link in the guest's /run/ferryman/bin, first on both
    PATHs, in the guest's RAM: this machine's files are not touched, a reboot forgets it."""
    if which not in CRIU_CHOICES:
        raise LabError(f"--criu {which}: choose one of {', '.join(CRIU_CHOICES)}")
    if which == "3.17":
        if run(["bash", str(INSTALL_CRIU), "12", "--check"], check=False).returncode != 0:
            raise LabError(
                f"Debian 12's CRIU 3.17.1 is not in {CRIU_317}: run "
                f"`bash {INSTALL_CRIU} 12` (or lab/setup/install-deps.sh) first"
            )
        line = f"ln -sfn {shlex.quote(CRIU_317)} {GUEST_BIN_DIR}/criu"
    else:
        line = f"rm -f {GUEST_BIN_DIR}/criu"
    for h in hs:
        ssh(h, f"{line} && PATH={GUEST_BIN_DIR}:$PATH criu --version | head -1")
        log(f"lab: {h.name} runs CRIU {which}")


def up(
    n: int = 2, spec: WorkloadSpec | None = None, log=print, criu: str = "4.2"
) -> dict[str, Any]:
    require_root()
    n = parse_host_count(n)
    if criu not in CRIU_CHOICES:
        raise LabError(f"--criu {criu}: choose one of {', '.join(CRIU_CHOICES)}")
    k = preflight_tools()
    spec = spec or WorkloadSpec()
    hs = hosts(n)
    t0 = time.monotonic()
    client_key()
    bridge_up()
    to_boot = [h for h in hs if not qemu_pid(h)]
    if to_boot:
        vm_image.build_initramfs(INITRD, k)
        shutil.copy(vm_image.GUEST_DIR / "stage2.sh", STAGE2)
    for h in hs:
        write_sshd_config(h)
        tap_up(h)
    write_known_hosts(hs)
    for h in to_boot:
        log(f"lab: {h.name} at {h.address}: booting a QEMU guest (kernel {k.version}, TCG)")
        boot(h, k)
    wait_ready(hs)
    log(f"lab: {n} guests answer SSH and Docker ({time.monotonic() - t0:.1f} s)")
    with ThreadPoolExecutor(n) as pool:
        offsets = list(pool.map(sync_clock, hs))
    log("lab: guest clocks set (were off by " + ", ".join(f"{o:+.3f}" for o in offsets) + " s)")
    use_criu(hs, criu, log)
    write_hosts_file(hs)
    import_image(hs[0])
    start_workload(hs[0], spec)
    STATUS_FILE.write_text(
        json.dumps({"workload": spec.__dict__, "kernel": k.version, "mem_mib": MEM_MIB}, indent=1)
    )
    st = status()
    log(f"lab: up, {n} VM hosts in {time.monotonic() - t0:.1f} s; hosts file {HOSTS_FILE}")
    return st


def _vm_pids() -> list[int]:
    """Processes of the VM lab: QEMU, and SSH clients using its key."""
    pids = []
    marks = (str(STATE_DIR) + "/", str(RUN_DIR) + "/")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            comm = (d / "comm").read_text().strip()
            cmd = (d / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if comm in ("qemu-system-x86", "ssh") and any(m in cmd for m in marks):
            pids.append(int(d.name))
    return [p for p in pids if p != os.getpid()]


def _mounts_under(prefixes: list[Path]) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == str(p) or mp.startswith(str(p) + "/") for p in prefixes):
            out.append(mp)
    return sorted(set(out), key=len, reverse=True)


def down(log=print) -> None:
    require_root()
    hs = existing_hosts()
    for h in hs:
        if p := qemu_pid(h):
            log(f"lab: stopping {h.name} (QEMU pid {p})")
            os.kill(p, signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 5
        while (pids := _vm_pids()) and time.monotonic() < deadline:
            for p in pids:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            time.sleep(0.2)
    for mp in _mounts_under([STATE_DIR, RUN_DIR]):
        run(["umount", "-l", mp], check=False)
    for h in hs:
        tap_down(h)
    bridge_down()
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    log("lab: VM lab down")


def _guest_status(h: VmHost) -> tuple[bool, bool, list[dict[str, str]], str]:
    """(sshd answers, dockerd answers, containers, CRIU version) in one SSH login."""
    p = run(
        ssh_argv(
            h,
            f"test -e {GUEST_READY} || echo not-ready; "
            f"PATH={GUEST_BIN_DIR}:$PATH criu --version 2>/dev/null | sed -n 's/^Version: /criu=/p'; "
            f"docker -H unix://{GUEST_DOCKER_SOCKET} ps -a --format '{{{{.Names}}}}\t{{{{.State}}}}'"
            " || echo docker-down",
        ),
        check=False,
        timeout=30,
    )
    if p.returncode == 255:
        return False, False, [], ""
    lines = p.stdout.decode().splitlines()
    dockerd_up = "docker-down" not in lines and "not-ready" not in lines
    cs = [dict(zip(("name", "state"), ln.split("\t"), strict=False)) for ln in lines if "\t" in ln]
    criu = next((ln.removeprefix("criu=") for ln in lines if ln.startswith("criu=")), "")
    return True, dockerd_up, cs, criu


def status() -> dict[str, Any]:
    hs = existing_hosts()

    def probe(h: VmHost) -> tuple[bool, bool, list[dict[str, str]], str]:
        up = qemu_pid(h) and KNOWN_HOSTS.exists()
        return _guest_status(h) if up else (False, False, [], "")

    with ThreadPoolExecutor(max(1, len(hs))) as pool:
        probes = list(pool.map(probe, hs))
    out_hosts = []
    for h, (sshd_up, dockerd_up, containers, criu) in zip(hs, probes, strict=True):
        pid = qemu_pid(h)
        out_hosts.append(
            {
                "name": h.name,
                "address": h.address,
                "ssh_port": 22,
                "user": "root",
                "key_file": str(KEY),
                "known_hosts_file": str(KNOWN_HOSTS),
                "docker_socket": GUEST_DOCKER_SOCKET,
                "exec_root": GUEST_EXEC_ROOT,
                "images_dir": GUEST_IMAGES_DIR,
                "tap": h.tap,
                "qemu_pid": pid,
                "console_log": str(h.console_log),
                "sshd": sshd_up,
                "dockerd": dockerd_up,
                "criu": criu,
                "containers": containers,
            }
        )
    extra = json.loads(STATUS_FILE.read_text()) if STATUS_FILE.exists() else {}
    return {
        "kind": KIND,
        "up": bool(hs) and all(h["sshd"] and h["dockerd"] for h in out_hosts),
        "bridge": BRIDGE if ok(["ip", "link", "show", BRIDGE]) else None,
        "hosts_file": str(HOSTS_FILE) if HOSTS_FILE.exists() else None,
        "image": IMAGE,
        "hosts": out_hosts,
        **extra,
    }


def render_status(st: dict[str, Any]) -> str:
    if not st["hosts"]:
        return "VM lab: down (nothing running). Start it with `ferryman lab up --vm`."
    lines = [f"VM lab: {'up' if st['up'] else 'partly up'}; hosts file {st['hosts_file']}"]
    for h in st["hosts"]:
        cs = ", ".join(f"{c['name']} ({c['state']})" for c in h["containers"]) or "no containers"
        lines.append(
            f"  {h['name']:6} {h['address']:12} qemu {'up' if h['qemu_pid'] else 'DOWN'}, "
            f"sshd {'up' if h['sshd'] else 'DOWN'}, "
            f"dockerd {'up' if h['dockerd'] else 'DOWN'}: {cs}"
        )
    return "\n".join(lines)
