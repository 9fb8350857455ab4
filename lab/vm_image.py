"""What a VM lab guest boots: Debian's 6.1 kernel (unpacked by lab/setup/install-deps.sh
into a private prefix, never installed as this machine's kernel) and a small initramfs
made here: busybox, the virtio / 9p / overlay modules and lab/guest/init."""

from __future__ import annotations

import lzma
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from lab.shell import LabError

VMKERNEL = Path(os.environ.get("FERRYMAN_VMKERNEL_PREFIX", "/opt/ferryman/vmkernel"))
BUSYBOX = Path("/bin/busybox")
GUEST_DIR = Path(__file__).parent / "guest"
# What stage 1 needs to mount this machine's / over 9p under an overlay; their
# dependencies come from modules.dep and are loaded first.
INITRAMFS_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"]


@dataclass(frozen=True)
class Kernel:
    version: str
    vmlinuz: Path
    modules: Path  # lib/modules/<version>
    config: Path

    def has(self, option: str) -> bool:
        return f"\n{option}=y\n" in "\n" + self.config.read_text() + "\n"


def kernel(prefix: Path = VMKERNEL) -> Kernel:
    found = sorted((prefix / "boot").glob("vmlinuz-*")) if (prefix / "boot").is_dir() else []
    if not found:
        raise LabError(
            f"no guest kernel in {prefix}: run `bash lab/setup/install-deps.sh` (it unpacks "
            "Debian's linux-image-6.1.0-*-amd64 there)"
        )
    vmlinuz = found[-1]
    version = vmlinuz.name.removeprefix("vmlinuz-")
    mods = prefix / "lib" / "modules" / version
    if not (mods / "modules.dep").exists():
        raise LabError(f"{mods}/modules.dep is missing: run `depmod -b {prefix} {version}`")
    return Kernel(version, vmlinuz, mods, prefix / "boot" / f"config-{version}")


def _module_deps(k: Kernel) -> dict[str, tuple[str, list[str]]]:
    """module name -> (its path below lib/modules/<v>, its dependencies' names)."""
    out: dict[str, tuple[str, list[str]]] = {}

    def name(path: str) -> str:
        return Path(path).name.split(".ko")[0].replace("-", "_")

    for line in (k.modules / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        out[name(path)] = (path, [name(d) for d in deps.split()])
    return out


def load_order(k: Kernel, wanted: list[str] = INITRAMFS_MODULES) -> list[tuple[str, str]]:
    """(name, path) of the wanted modules and their dependencies, dependencies first."""
    deps = _module_deps(k)
    order: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(m: str) -> None:
        if m in seen:
            return
        seen.add(m)
        if m not in deps:
            if k.has(f"CONFIG_{m.upper()}"):
                return
            raise LabError(f"module {m} is not in {k.modules}")
        path, ds = deps[m]
        for d in ds:
            visit(d)
        order.append((m, path))

    for m in wanted:
        visit(m)
    return order


class _Cpio:
    """A newc ("070701") cpio archive, what the kernel unpacks as an initramfs."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        nm = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nm), 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields) + nm
        self.parts.append(hdr + b"\0" * (-len(hdr) % 4))
        self.parts.append(data + b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        out = b"".join(self.parts)
        return out + b"\0" * (-len(out) % 512)


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def build_initramfs(dest: Path, k: Kernel) -> Path:
    """Write the initramfs to dest (uncompressed: quicker to unpack under TCG)."""
    if not BUSYBOX.exists():
        raise LabError("busybox-static is missing: run lab/setup/install-deps.sh")
    a = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules"):
        a.dir(d)
    a.chardev("dev/console", 5, 1)
    a.chardev("dev/null", 1, 3)
    a.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    a.file("init", (GUEST_DIR / "init").read_bytes(), 0o755)
    order = load_order(k)
    for name, path in order:
        a.file(f"modules/{name}.ko", _module_bytes(k.modules / path))
    a.file("modules.order", "".join(f"{n}\n" for n, _ in order).encode())
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(a.bytes())
    tmp.replace(dest)
    return dest
