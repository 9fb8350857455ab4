"""Real applications moved on the lab, under load, with the defaults a user has.

Each test starts one application from the apps image (lab/apps_image.py: Debian's
packages, imported into host1 and host2 if missing) on host1 as a user would: detached,
`--restart unless-stopped`, its port published, a named volume where it keeps data. A
client in a second container on host1 (`--network host`, one short connection per
operation, trying host1's published port and then host2's) writes or asks all through
the move; then `ferryman migrate NAME --to host2 --strategy stop-and-copy --json`.
Checked independently of ferryman's journal:
- exactly one copy: dockerd's own event log on host1 shows no `start` of the container
  after the move began, and it exists on host2 only;
- the data itself: Redis's keys (the data set's size and sampled values, every write the
  client saw acknowledged, the same run_id), nginx's pages (one written into its volume
  at run time), the JVM's and python's counters and start times (continued, not from 0);
- the client went on: it got answers from host2 after the move;
- nothing left on host1: no container, no volume.

PostgreSQL runs as the postgres user (it refuses root by design); this machine's root
lacks CAP_SYS_RESOURCE, so CRIU on the namespace lab cannot dump it: its test is skipped
here, with the reason, and runs on the VM lab (tests/lab_vm/test_real_apps_vm.py).

The client's connections are short (connect, ask, close) and a few a second: CRIU refuses
to dump a container holding an established TCP connection unless told to
(--tcp-established), so a client that keeps connections open makes a default move fail
at checkpoint (and roll back).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

import pytest

from lab import apps_image, engine
from lab.apps.client import COUNT_SCRIPT, parse_lines, redis_value
from tests.lab.conftest import docker, events, exists, ferryman, heartbeats, running

REDIS_KEYS = int(os.environ.get("FERRYMAN_REDIS_KEYS", "200000"))
REDIS_VALUE_SIZE = 256
CLIENT_INTERVAL = "0.2"  # seconds between a client's operations
MOVE_TIMEOUT = 600


@pytest.fixture(scope="module")
def apps_image_ref(lab_hosts) -> str:
    """The apps image on host1 and host2, one image id on both (built first if the cache
    lacks it: minutes)."""
    return apps_image.install([engine.docker(h) for h in lab_hosts], log=lambda _m: None)


# --- helpers -------------------------------------------------------------------------


def _cleanup(hosts, names, volumes=()):
    for h in hosts:
        for n in names:
            docker(h, "rm", "-f", n, check=False)
        for v in volumes:
            docker(h, "volume", "rm", "-f", v, check=False)


def _wait(what: str, pred, timeout: float = 60, every: float = 0.5):
    deadline = time.time() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def _starts_since(h, name: str, since: float) -> int:
    """How many times dockerd on `h` started `name` since `since` (its own event log)."""
    out = docker(
        h, "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", f"container={name}", "--filter", "event=start", "--format", "{{.Action}}",
    )
    return len([ln for ln in out.splitlines() if ln.strip()])


def _volume_exists(h, vol: str) -> bool:
    return subprocess.run(engine.docker(h, "volume", "inspect", vol),
                          capture_output=True).returncode == 0


def _start_client(h, image: str, name: str, kind: str, *targets: str) -> None:
    docker(h, "run", "-d", "--name", name, "--network", "host", image,
           *apps_image.client_command(kind, CLIENT_INTERVAL, *targets))


def _client_oks(h, name: str) -> list[tuple[str, str, int]]:
    return [(v, e, int(t)) for v, e, t in parse_lines(docker(h, "logs", name))]


def _move(name: str, *extra: str) -> tuple[list[dict], float]:
    """Move `name` host1 → host2 with the defaults; (its events, when it began)."""
    t0 = time.time()
    p = ferryman("migrate", name, "--from", "host1", "--to", "host2",
                 "--strategy", "stop-and-copy", "--json", *extra, timeout=MOVE_TIMEOUT)
    evs = events(p.stdout)
    if p.returncode != 0 and ("Connected TCP socket" in p.stdout or "In-flight" in p.stdout):
        raise AssertionError(
            f"{name}: a client connection was open when CRIU froze the container, and a "
            "default move refuses it (--tcp-established): " + p.stdout[-3000:])
    assert p.returncode == 0, p.stderr + p.stdout[-3000:]
    assert evs[-1]["kind"] == "succeeded", evs[-1]
    return evs, t0


def _one_copy_and_nothing_left(h1, h2, name: str, t0: float, volumes=()) -> None:
    assert _starts_since(h1, name, t0) == 0, f"dockerd on host1 started {name} during the move"
    assert not exists(h1, name) and running(h2, name)
    for v in volumes:
        assert not _volume_exists(h1, v), f"volume {v} left on host1"
        assert _volume_exists(h2, v)


def _client_went_on(h1, client: str, h2, port: int, n: int = 5):
    """The client's answers from host2 (at least n of them): nothing answered there before
    the move (the test's cleanup made sure), so they come from the moved copy."""
    target = f"{h2.address}:{port}"

    def after():
        oks = [o for o in _client_oks(h1, client) if target in o[1]]
        return oks if len(oks) >= n else None

    try:
        return _wait(f"{client} answered by host2", after, timeout=30)
    except AssertionError:
        tail = docker(h1, "logs", "--tail", "5", client, check=False)
        raise AssertionError(
            f"{client} got no answers from {target} after the move: {tail}") from None


def _client_gap(h1, client: str, t0: float) -> float:
    """The longest wait between two of the client's answers since the move began."""
    ts = [t / 1e9 for _, _, t in _client_oks(h1, client) if t / 1e9 > t0 - 5]
    return max((b - a for a, b in zip(ts, ts[1:], strict=False)), default=0.0)


def _no_discontinuity(evs: list[dict]) -> None:
    assert not [e for e in evs if e["kind"] == "warning" and "did not continue" in e["text"]]


# --- Redis: a large data set in memory only, a writer ----------------------------------


def _redis(h, name: str, *args: str) -> list[str]:
    return docker(h, "exec", name, "redis-cli", *args).splitlines()


def _redis_state(h, name: str) -> tuple[int, int, str]:
    """(DBSIZE, writer:seq, run_id), the first two read atomically."""
    size, seq = _redis(h, name, "EVAL",
                       "return {redis.call('DBSIZE'), redis.call('GET', 'writer:seq') or '0'}",
                       "0")
    run_id = next(ln.split(":", 1)[1].strip() for ln in _redis(h, name, "INFO", "server")
                  if ln.startswith("run_id:"))
    return int(size), int(seq), run_id


def test_redis_moves_with_its_data_set_and_its_writer(lab_hosts, apps_image_ref):
    h1, h2 = lab_hosts
    name, client, vol, port = "fm-redis", "fm-redis-writer", "fm-redis-data", 16379
    app = apps_image.APPS["redis"]
    _cleanup(lab_hosts, [name, client], [vol])
    try:
        docker(h1, *app.run_args(apps_image_ref, name, port, volume=vol))
        _wait("redis answers", lambda: _redis(h1, name, "PING") == ["PONG"])
        load = docker(h1, "exec", name, "sh", "-c",
                      " ".join(apps_image.client_command("redis-load", str(REDIS_KEYS),
                                                         str(REDIS_VALUE_SIZE)))
                      + " | redis-cli --pipe")
        assert "errors: 0" in load and f"replies: {REDIS_KEYS}" in load, load
        _start_client(h1, apps_image_ref, client, "redis-writer",
                      f"{h1.address}:{port}", f"{h2.address}:{port}")
        _wait("the writer writes", lambda: len(_client_oks(h1, client)) >= 5)
        size0, seq0, run_id0 = _redis_state(h1, name)
        assert size0 - seq0 - 1 == REDIS_KEYS
        sample = sorted(random.Random(15).sample(range(REDIS_KEYS), 20))
        before = _redis(h1, name, "MGET", *(f"key:{i}" for i in sample))

        evs, t0 = _move(name)

        _one_copy_and_nothing_left(h1, h2, name, t0, [vol])
        _client_went_on(h1, client, h2, port)
        size1, seq1, run_id1 = _redis_state(h2, name)
        assert run_id1 == run_id0, "another redis-server answers (restarted, not moved)"
        assert size1 - seq1 - 1 == REDIS_KEYS, "the data set's size changed"
        assert seq1 > seq0
        after = _redis(h2, name, "MGET", *(f"key:{i}" for i in sample))
        assert after == before == [redis_value(i, REDIS_VALUE_SIZE) for i in sample]
        # Every write the writer saw acknowledged, before, during and after the move.
        acked = max(int(v) for v, _, _ in _client_oks(h1, client))
        assert _redis(h2, name, "EVAL", COUNT_SCRIPT, "0", str(acked)) == [str(acked)]
        print(f"\nredis: {REDIS_KEYS} keys, freeze {evs[-1]['freeze_s']:.2f} s, "
              f"moved {evs[-1]['bytes_moved'] / 2**20:.0f} MiB, writer's longest wait "
              f"{_client_gap(h1, client, t0):.2f} s, {acked} writes acknowledged")
    finally:
        _cleanup(lab_hosts, [name, client], [vol])


# --- nginx: pages in a volume, a client loop -------------------------------------------


def _nginx_requests(h, name: str) -> int:
    """The requests nginx has handled since its master started (stub_status)."""
    status = docker(h, "exec", name, "curl", "-sf", "http://127.0.0.1/status").splitlines()
    return int(status[2].split()[2])  # " accepts handled requests" / " 12 12 40"


def test_nginx_serves_its_pages_on_host2_and_the_client_goes_on(lab_hosts, apps_image_ref):
    h1, h2 = lab_hosts
    name, client, vol, port = "fm-nginx", "fm-nginx-client", "fm-nginx-html", 18080
    app = apps_image.APPS["nginx"]
    _cleanup(lab_hosts, [name, client], [vol])
    token = f"moved-{random.Random().getrandbits(48):012x}"
    try:
        docker(h1, *app.run_args(apps_image_ref, name, port, volume=vol))
        _wait("nginx answers",
              lambda: docker(h1, "exec", name, "curl", "-sf", "http://127.0.0.1/",
                             check=False) == "ferryman-lab nginx")
        # A page written at run time, into the volume.
        docker(h1, "exec", name, "sh", "-c", f"echo {token} > {app.data_dir}/runtime.html")
        # A thousand requests first: a restarted nginx could not count as many by the end.
        docker(h1, "exec", name, "python3", "-c",
               "import urllib.request as u\n"
               "for _ in range(1000): u.urlopen('http://127.0.0.1/').read()")
        requests0 = _nginx_requests(h1, name)
        assert requests0 > 1000
        users = docker(h1, "exec", name, "busybox", "ps", "-o", "user,args")
        assert "nginx: worker process" in users
        assert all(ln.split()[0] == "root" for ln in users.splitlines()[1:] if "nginx" in ln)
        big0 = docker(h1, "exec", name, "sh", "-c", "curl -sf http://127.0.0.1/big.txt | md5sum")
        _start_client(h1, apps_image_ref, client, "http",
                      f"http://{h1.address}:{port}/runtime.html",
                      f"http://{h2.address}:{port}/runtime.html")
        _wait("the client is answered", lambda: len(_client_oks(h1, client)) >= 5)

        evs, t0 = _move(name, "--watch", client)

        _one_copy_and_nothing_left(h1, h2, name, t0, [vol])
        answers = _client_went_on(h1, client, h2, port)
        assert {v for v, _, _ in answers} == {token}
        # What ferryman says the client saw (dockerd's times of its lines) is what the
        # client's own clock says, within the time its output takes to reach dockerd.
        done = evs[-1]
        assert done["client"] == f"{client}@host1" and done["client_wait_s"] is not None
        own = _client_gap(h1, client, t0)
        assert done["client_wait_s"] >= done["freeze_s"] * 0.5, done
        assert abs(done["client_wait_s"] - own) < 1.0, (done["client_wait_s"], own)
        # nginx's own counters (shared memory since the master started) went on: the same
        # master and workers, not a restart (which starts them from 0).
        requests1 = _nginx_requests(h2, name)
        assert requests1 > requests0 + len(answers), (requests0, requests1)
        big1 = docker(h2, "exec", name, "sh", "-c", "curl -sf http://127.0.0.1/big.txt | md5sum")
        assert big1 == big0
        print(f"\nnginx: freeze {evs[-1]['freeze_s']:.2f} s, client's longest wait "
              f"{_client_gap(h1, client, t0):.2f} s")
    finally:
        _cleanup(lab_hosts, [name, client], [vol])


# --- the JVM and the threaded python service: counters over HTTP and on stdout ----------


def _doc(h, name: str, port: int) -> dict:
    return json.loads(docker(h, "exec", name, "curl", "-sf", f"http://127.0.0.1:{port}/"))


def _beats_continue(h, name: str, before: int) -> bool:
    """The twin's heartbeat lines go up by one from past `before` (never from 0)."""
    def ok():
        beats = [c for c, _ in heartbeats(h, name)]
        return beats if len(beats) >= 5 else None

    beats = _wait(f"{name} beats on {h.name}", ok, timeout=20)
    return beats[0] > before and beats == list(range(beats[0], beats[0] + len(beats)))


@pytest.mark.parametrize("kind,port", [("jvm", 18081), ("python", 18082)])
def test_a_counter_service_continues_on_host2(lab_hosts, apps_image_ref, kind, port):
    h1, h2 = lab_hosts
    name, client = f"fm-{kind}", f"fm-{kind}-client"
    app = apps_image.APPS[kind]
    _cleanup(lab_hosts, [name, client])
    try:
        docker(h1, *app.run_args(apps_image_ref, name, port))
        _wait(f"{kind} answers", lambda: docker(h1, "exec", name, "curl", "-sf",
                                                 f"http://127.0.0.1:{app.port}/", check=False),
              timeout=120)
        users = docker(h1, "exec", name, "busybox", "ps", "-o", "user,args").splitlines()[1:]
        assert users and all(ln.split()[0] == "root" for ln in users), users
        _start_client(h1, apps_image_ref, client, "http",
                      f"http://{h1.address}:{port}/", f"http://{h2.address}:{port}/")
        _wait("the client is answered", lambda: len(_client_oks(h1, client)) >= 5)
        _wait(f"{kind} beats", lambda: len(heartbeats(h1, name)) >= 10)
        doc0 = _doc(h1, name, app.port)
        beat0 = heartbeats(h1, name)[-1][0]

        evs, t0 = _move(name)

        _one_copy_and_nothing_left(h1, h2, name, t0)
        _no_discontinuity(evs)
        assert evs[-1]["app_gap_s"] is not None and evs[-1]["app_gap_s"] > 0
        assert _beats_continue(h2, name, beat0)
        doc1 = _doc(h2, name, app.port)
        assert doc1["started_ns"] == doc0["started_ns"], "another process answers (restarted)"
        assert doc1["counter"] > doc0["counter"]
        if "per_thread" in doc0:  # every thread came along and goes on
            assert len(doc1["per_thread"]) == len(doc0["per_thread"])
            assert all(b > a for a, b in zip(doc0["per_thread"], doc1["per_thread"], strict=True))
        answers = [json.loads(v) for v, _, _ in _client_went_on(h1, client, h2, port)]
        assert {a["started_ns"] for a in answers} == {doc0["started_ns"]}
        counters = [a["counter"] for a in answers]
        assert counters[0] > doc0["counter"] and counters == sorted(counters)
        print(f"\n{kind}: freeze {evs[-1]['freeze_s']:.2f} s, app gap "
              f"{evs[-1]['app_gap_s']:.2f} s, client's longest wait "
              f"{_client_gap(h1, client, t0):.2f} s")
    finally:
        _cleanup(lab_hosts, [name, client])


# --- PostgreSQL: VM lab only ----------------------------------------------------------


@pytest.mark.skip(reason=apps_image.CAP_SYS_RESOURCE_REASON)
def test_postgres_moves_with_its_rows_and_its_writer(lab_hosts, apps_image_ref):
    """On the VM lab: tests/lab_vm/test_real_apps_vm.py (same checks)."""
