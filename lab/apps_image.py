"""The real-application lab image: PostgreSQL, Redis, nginx, a JVM service and a threaded
python service, from Debian's packages only (no registry is reachable).

Built with `debootstrap --variant=minbase bookworm` into a folder, the packages installed
there with apt (lab/setup/build-apps-rootfs.sh), the lab's own pieces added (lab/apps/:
the Java counter compiled here with `javac`, only its .class shipped; the python service;
the clients; nginx's configuration; PostgreSQL's start script), trimmed (docs, man pages,
translations, apt lists), and kept as a tar in /var/cache/ferryman/apps-<version>.tar.
The version is a hash of the package list and of every file the build reads, so a change
to any of them makes a new image and an unchanged build is never repeated. The lab's
hosts get it with `install` (`tar | docker import` into the first, `docker save | docker
load` into the others, so the image has one id everywhere).

Measured on the 2-core lab machine: a cold build took 2 min 50 s (5 min 34 s while the
machine was loaded by other work); the tar is 432 MiB. A warm call returns the cached tar
at once. `bash lab/setup/apps-smoke.sh TAR` checks each application starts from the tar,
without any lab (chroot in its own mount, PID and network namespaces).

Who runs as whom, inside the container. This machine's root lacks CAP_SYS_RESOURCE, so
CRIU on the namespace lab cannot dump a task that runs as another user (`Error
(criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted`): every application
that allows it runs as root.

    app       PID 1 (start command: COMMANDS)                    runs as     namespace lab
    redis     redis-server --save '' (data set loaded after)     root        yes
    nginx     nginx -g 'daemon off;' (`user root;`: workers too) root        yes
    jvm       java ... Counter 8080 (counter over HTTP + stdout) root        yes
    python    python3 counter_service.py 8000 4 (4 threads)      root        yes
    postgres  pg-start.sh: initdb once, then exec setpriv ->     postgres    no: VM lab only
              postgres -D /var/lib/postgresql/data

PostgreSQL cannot run as root in any supported way: the server checks geteuid() at start
and exits with '"root" execution of the PostgreSQL server is not permitted.' (there is
no option to allow it, by design), so its container runs the postmaster and its backends
as the postgres user, which only the VM lab (whose kernel gives root every capability)
can checkpoint.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = "ferryman-lab/apps"
CACHE_DIR = Path(os.environ.get("FERRYMAN_CACHE_DIR", "/var/cache/ferryman"))
MIRROR = os.environ.get("FERRYMAN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HERE = Path(__file__).parent
BUILD_SCRIPT = HERE / "setup" / "build-apps-rootfs.sh"
APPS_DIR = HERE / "apps"
# What the rootfs holds besides debootstrap's minbase (and their dependencies, no
# recommends). The python service and clients need only python3's standard library.
PACKAGES = (
    "postgresql-15",
    "postgresql-client-15",
    "redis-server",
    "nginx",
    "openjdk-17-jre-headless",
    "python3",
    "busybox",
    "curl",
)
# The lab's own files, copied into /opt/ferryman (nginx.conf to /etc/nginx). The build
# compiles the .java ones; the source does not ship.
APP_FILES = ("Counter.java", "counter_service.py", "client.py", "nginx.conf", "pg-start.sh")
OPT = "/opt/ferryman"
IMPORT_CHANGES = ('CMD ["/bin/sh"]', "ENV LANG=C.UTF-8")


@dataclass(frozen=True)
class App:
    name: str
    command: tuple[str, ...]
    port: int  # inside the container
    user: str  # who the application's processes run as, inside the container
    data_dir: str | None = None  # where it keeps data (a named volume in the tests)
    namespace_lab: bool = True  # whether CRIU on the namespace lab can dump it

    def run_args(
        self,
        image: str,
        name: str,
        host_port: int,
        *,
        volume: str | None = None,
        restart: str = "unless-stopped",
        extra: Sequence[str] = (),
    ) -> list[str]:
        """`docker run` arguments with the defaults a user has: detached, a restart
        policy, the port published, a named volume where the application keeps data."""
        args = ["run", "-d", "--name", name, "--restart", restart, "-p", f"{host_port}:{self.port}"]
        if self.data_dir:
            args += ["-v", f"{volume or name + '-data'}:{self.data_dir}"]
        return [*args, *extra, image, *self.command]


APPS: dict[str, App] = {
    a.name: a
    for a in (
        App(
            "redis",
            ("redis-server", "--save", "", "--appendonly", "no", "--bind", "0.0.0.0",
             "--protected-mode", "no", "--port", "6379", "--dir", "/data"),
            6379, "root", "/data",
        ),
        App("nginx", ("nginx", "-g", "daemon off;"), 80, "root", "/usr/share/nginx/html"),
        App("jvm", ("java", "-Xmx64m", "-cp", OPT, "Counter", "8080"), 8080, "root"),
        App("python", ("python3", f"{OPT}/counter_service.py", "8000", "4"), 8000, "root"),
        App(
            "postgres", (f"{OPT}/pg-start.sh",), 5432, "postgres",
            "/var/lib/postgresql/data", namespace_lab=False,
        ),
    )
}
POSTGRES_ROOT_REFUSAL = '"root" execution of the PostgreSQL server is not permitted.'
CAP_SYS_RESOURCE_REASON = (
    "PostgreSQL runs as the postgres user (it refuses root by design) and this machine's "
    "root lacks CAP_SYS_RESOURCE, so CRIU on the namespace lab cannot dump it (Error "
    "(criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted): VM lab only "
    "(tests/lab_vm/test_real_apps_vm.py)"
)


def client_command(kind: str, *args: str) -> list[str]:
    """The command of a client container (or `docker exec`) from the image."""
    return ["python3", f"{OPT}/client.py", kind, *args]


def version(
    packages: Sequence[str] = PACKAGES,
    files: Sequence[Path] | None = None,
) -> str:
    """A hash of the package list, of every file the build reads and of the code that adds
    the lab's files (12 hex digits)."""
    h = hashlib.sha256()
    h.update(b"packages\0" + "\0".join(sorted(packages)).encode() + b"\0")
    paths = files if files is not None else [BUILD_SCRIPT, *(APPS_DIR / f for f in APP_FILES)]
    for p in paths:
        h.update(b"file\0" + p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    if files is None:  # what this module adds to the rootfs, and how the image is imported
        h.update(inspect.getsource(add_lab_files).encode() + repr(IMPORT_CHANGES).encode())
    return h.hexdigest()[:12]


def image_ref(v: str | None = None) -> str:
    return f"{REPO}:{v or version()}"


def cache_path(v: str | None = None, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"apps-{v or version()}.tar"


def import_args(image: str) -> list[str]:
    args = ["import"]
    for c in IMPORT_CHANGES:
        args += ["--change", c]
    return [*args, "-", image]


def _need(tool: str, package: str) -> None:
    if shutil.which(tool):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                   check=True, env=env, capture_output=True)


def add_lab_files(root: Path) -> None:
    """The lab's own pieces into a built rootfs: the Java counter compiled here (only the
    .class ships), the python service and clients, PostgreSQL's start script, nginx's
    configuration and a page."""
    opt = root / OPT.lstrip("/")
    opt.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)  # redis-server --dir /data, with or without a volume
    subprocess.run(["javac", "--release", "17", "-d", str(opt), str(APPS_DIR / "Counter.java")],
                   check=True, capture_output=True)
    for f in ("counter_service.py", "client.py"):
        shutil.copy(APPS_DIR / f, opt / f)
    shutil.copy(APPS_DIR / "pg-start.sh", opt / "pg-start.sh")
    (opt / "pg-start.sh").chmod(0o755)
    shutil.copy(APPS_DIR / "nginx.conf", root / "etc/nginx/nginx.conf")
    html = root / "usr/share/nginx/html"
    html.mkdir(parents=True, exist_ok=True)
    for old in html.glob("*"):
        old.unlink()
    (html / "index.html").write_text("ferryman-lab nginx\n")
    # A page big enough to take a few packets (a client reads it whole).
    (html / "big.txt").write_text("".join(f"line {i:06d} of the lab's big page\n"
                                          for i in range(20000)))


def build(
    cache_dir: Path = CACHE_DIR, mirror: str = MIRROR, log: Callable[[str], None] = print
) -> Path:
    """The rootfs tar, built unless the cache has this version's (then returned as is)."""
    v = version()
    tar = cache_path(v, cache_dir)
    if tar.exists():
        return tar
    if os.geteuid() != 0:
        raise PermissionError("building the apps image needs root (debootstrap, chroot)")
    _need("debootstrap", "debootstrap")
    _need("javac", "openjdk-17-jdk-headless")
    cache_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="apps-build-", dir=cache_dir) as d:
        root = Path(d) / "root"
        log(f"apps image {v}: debootstrap + {len(PACKAGES)} packages into {root}")
        subprocess.run(["nice", "-n", "10", "bash", str(BUILD_SCRIPT), str(root), mirror,
                        *PACKAGES], check=True)
        add_lab_files(root)
        part = tar.with_suffix(".tar.part")
        with open(part, "wb") as f:
            subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                           stdout=f, check=True)
        part.rename(tar)
    log(f"apps image {v}: {tar} ({tar.stat().st_size / 2**20:.0f} MiB) "
        f"in {time.monotonic() - t0:.0f} s")
    return tar


def _argv(prefix: Sequence[str], args: Sequence[str], remote_shell: bool) -> list[str]:
    # An ssh prefix hands its words to a remote shell: the arguments go quoted, as one.
    return [*prefix, shlex.join(args)] if remote_shell else [*prefix, *args]


def image_id(docker_prefix: Sequence[str], image: str, *, remote_shell: bool = False) -> str | None:
    """The image's id on the engine `docker_prefix` reaches, or None if it lacks it."""
    p = subprocess.run(
        _argv(docker_prefix, ["image", "inspect", "-f", "{{.Id}}", image], remote_shell),
        capture_output=True, timeout=60,
    )
    if p.returncode != 0:
        return None
    return p.stdout.decode().strip() or None


def import_image(
    docker_prefix: Sequence[str],
    *,
    remote_shell: bool = False,
    cache_dir: Path = CACHE_DIR,
    log: Callable[[str], None] = print,
    timeout: float = 900,
) -> str:
    """Make sure the engine that `docker_prefix` reaches has the apps image; returns its
    reference (ferryman-lab/apps:<version>). Builds the tar first if the cache lacks it.
    Each import makes its own image id (the import time is part of it): to give several
    engines the same image, use `install`."""
    image = image_ref()
    if image_id(docker_prefix, image, remote_shell=remote_shell):
        return image
    tar = build(cache_dir, log=log)
    with open(tar, "rb") as f:
        p = subprocess.run(_argv(docker_prefix, import_args(image), remote_shell), stdin=f,
                           capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"docker import {image}: {p.stderr.decode(errors='replace').strip()}")
    return image


def copy_image(
    src_prefix: Sequence[str],
    dst_prefix: Sequence[str],
    image: str,
    *,
    remote_shell: bool = False,
    timeout: float = 900,
) -> None:
    """`docker save IMAGE | docker load` from one engine to another: the same image id."""
    save = subprocess.Popen(_argv(src_prefix, ["save", image], remote_shell),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        load = subprocess.run(_argv(dst_prefix, ["load", "-q"], remote_shell), stdin=save.stdout,
                              capture_output=True, timeout=timeout)
    finally:
        assert save.stdout is not None
        save.stdout.close()
        save_err = save.communicate(timeout=60)[1]
    if save.returncode != 0 or load.returncode != 0:
        err = (save_err if save.returncode != 0 else load.stderr).decode(errors="replace")
        raise RuntimeError(f"docker save {image} | docker load: {err.strip()}")


def install(
    docker_prefixes: Sequence[Sequence[str]],
    *,
    remote_shell: bool = False,
    cache_dir: Path = CACHE_DIR,
    log: Callable[[str], None] = print,
    timeout: float = 900,
) -> str:
    """The apps image on every engine, with one image id: imported into the first (built
    first if the cache lacks it), then `docker save | docker load` into each other engine
    that lacks that id (ferryman's prepare then finds it there and streams nothing).
    Returns the image's reference.

    The namespace lab: `install([lab.engine.docker(h) for h in hosts])`. The VM lab,
    through SSH: `install([vm.ssh_argv(h, f"docker -H unix://{vm.GUEST_DOCKER_SOCKET}")
    for h in hosts], remote_shell=True)`.
    """
    first, *others = docker_prefixes
    image = import_image(first, remote_shell=remote_shell, cache_dir=cache_dir, log=log,
                         timeout=timeout)
    want = image_id(first, image, remote_shell=remote_shell)
    for prefix in others:
        if image_id(prefix, image, remote_shell=remote_shell) != want:
            log(f"apps image {image}: copying to {' '.join(prefix[-3:])}")
            copy_image(first, prefix, image, remote_shell=remote_shell, timeout=timeout)
        if image_id(prefix, image, remote_shell=remote_shell) != want:
            raise RuntimeError(f"{image} did not arrive with id {want}")
    return image


if __name__ == "__main__":
    print(build())
