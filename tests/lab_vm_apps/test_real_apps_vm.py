"""PostgreSQL moved on the VM lab, under a writer, with the defaults a user has.

PostgreSQL refuses to run as root (by design: '"root" execution of the PostgreSQL server
is not permitted.'), so its postmaster and backends run as the postgres user, and CRIU on
the namespace lab cannot dump them (this machine's root lacks CAP_SYS_RESOURCE: `Can't
get rlimit 0: Operation not permitted`). The VM lab's guests give root every capability.

The container (lab/apps_image.py's image, imported into both guests if missing) runs on
host1 with `--restart unless-stopped`, its port published and its data in a named volume;
a table of rows is loaded; a writer in a second container on host1 inserts a row per
short psql connection, trying host1's published port and then host2's. After
`ferryman migrate fm-pg --to host2 --strategy stop-and-copy --json`:
- exactly one copy: dockerd's own events on host1 show no `start` of it after the move
  began; it runs on host2 only;
- the data: the loaded rows' count and checksum as before; every insert the writer saw
  acknowledged is there; the same postmaster (pg_postmaster_start_time unchanged);
- the writer went on, answered by host2;
- nothing left on host1: no container, no volume.
"""

from __future__ import annotations

import time

import pytest

from lab import apps_image, vm
from lab.apps.client import parse_lines
from tests.lab_vm.conftest import ferryman, gssh

pytestmark = pytest.mark.vmlab

NAME, CLIENT, VOL, PORT = "fm-pg", "fm-pg-writer", "fm-pg-data", 15432
ROWS = 100_000
PSQL = ("psql", "-h", "/run/postgresql", "-U", "postgres", "-d", "postgres", "-Atq",
        "-v", "ON_ERROR_STOP=1", "-c")


def d(h: vm.VmHost, *args: str, check: bool = True, timeout: float = 120) -> str:
    """A docker command in a guest; its standard output."""
    p = vm.docker(h, *args, check=False, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{h.name}: docker {' '.join(args)}: "
                             f"{p.stderr.decode(errors='replace').strip()}")
    return p.stdout.decode().strip()


def sql(h: vm.VmHost, query: str) -> str:
    return d(h, "exec", NAME, *PSQL, query)


@pytest.fixture(scope="module")
def apps_image_ref(vm_hosts) -> str:
    """The apps image in both guests, one image id in both (built here first if the cache
    lacks it; the import through SSH into a TCG guest takes minutes)."""
    prefix = f"docker -H unix://{vm.GUEST_DOCKER_SOCKET}"
    return apps_image.install([vm.ssh_argv(h, prefix) for h in vm_hosts], remote_shell=True,
                              timeout=1800, log=lambda _m: None)


def _cleanup(hosts):
    for h in hosts:
        d(h, "rm", "-f", NAME, CLIENT, check=False)
        d(h, "volume", "rm", "-f", VOL, check=False)


def _wait(what: str, pred, timeout: float = 120, every: float = 1.0):
    deadline = time.time() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def vm_clock(h: vm.VmHost) -> float:
    """The guest's own clock (dockerd's events are stamped by it)."""
    return float(gssh(h, "date +%s.%N"))


def _oks(h) -> list[tuple[str, str, int]]:
    return [(v, e, int(t)) for v, e, t in parse_lines(d(h, "logs", CLIENT))]


def _state(h) -> tuple[str, str, str]:
    """(rows, their checksum, the postmaster's start time)."""
    out = sql(h, "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)), "
                 "pg_postmaster_start_time() FROM rows")
    n, checksum, started = out.split("|")
    return n, checksum, started


def test_postgres_moves_with_its_rows_and_its_writer(vm_hosts, apps_image_ref):
    h1, h2 = vm_hosts
    app = apps_image.APPS["postgres"]
    _cleanup(vm_hosts)
    try:
        d(h1, *app.run_args(apps_image_ref, NAME, PORT, volume=VOL))
        _wait("postgres answers",
              lambda: d(h1, "exec", NAME, *PSQL, "SELECT 1", check=False) == "1", timeout=300)
        users = d(h1, "exec", NAME, "busybox", "ps", "-o", "user,args").splitlines()[1:]
        pg = [ln for ln in users if "postgres" in ln.split(None, 1)[1]]
        assert pg and all(ln.split()[0] == "postgres" for ln in pg), users
        sql(h1, "CREATE TABLE writes (seq int NOT NULL, at timestamptz DEFAULT now())")
        sql(h1, f"CREATE TABLE rows AS SELECT g AS id, md5(g::text) AS v "
                f"FROM generate_series(1, {ROWS}) g")
        d(h1, "run", "-d", "--name", CLIENT, "--network", "host", apps_image_ref,
          *apps_image.client_command("pg-writer", "0.2", f"{h1.address}:{PORT}",
                                     f"{h2.address}:{PORT}"))
        _wait("the writer inserts", lambda: len(_oks(h1)) >= 5)
        rows0 = _state(h1)
        assert rows0[0] == str(ROWS)

        t0 = vm_clock(h1)
        p = ferryman("--hosts", str(vm.HOSTS_FILE), "migrate", NAME, "--from", "host1",
                      "--to", "host2", "--strategy", "stop-and-copy", "--json", timeout=1200)
        assert p.returncode == 0, p.stderr + p.stdout[-3000:]

        starts = d(h1, "events", "--since", f"{t0:.3f}", "--until", f"{vm_clock(h1):.3f}",
                   "--filter", f"container={NAME}", "--filter", "event=start",
                   "--format", "{{.Action}}")
        assert starts == "", "dockerd on host1 started the container during the move"
        assert vm.docker(h1, "inspect", NAME, check=False).returncode != 0
        assert d(h2, "inspect", "-f", "{{.State.Running}}", NAME) == "true"
        assert vm.docker(h1, "volume", "inspect", VOL, check=False).returncode != 0
        assert vm.docker(h2, "volume", "inspect", VOL, check=False).returncode == 0

        # Nothing answered on host2 before the move: answers from there are the moved copy's.
        target = f"{h2.address}:{PORT}"
        _wait("the writer is answered by host2",
              lambda: len([o for o in _oks(h1) if o[1] == target]) >= 5, timeout=60)
        assert _state(h2) == rows0  # the same rows, the same postmaster
        acked = max(int(v) for v, _, _ in _oks(h1))
        got = sql(h2, f"SELECT count(DISTINCT seq) FROM writes WHERE seq <= {acked}")
        assert got == str(acked), f"{acked} inserts acknowledged, {got} there"
    finally:
        _cleanup(vm_hosts)

