from __future__ import annotations

from core.engine import heartbeat, twin
from core.events import FreezeEnded, MigrationStarted, RoundFinished, event_from_json
from core.journal import JournalEntry, load_all, new_entry


def test_gap_and_continuity():
    src = "workload: holding\nhb 10 1000000000000000000 ab\nhb 11 1000000000010000000 cd\n"
    dst = "hb 12 1000000001510000000 ef\nhb 13 1000000001520000000 01\n"
    g = heartbeat.gap(src, dst)
    assert g is not None and g.continued
    assert abs(g.seconds - 1.5) < 1e-9
    restarted = heartbeat.gap(src, "hb 0 1000000001510000000 00\n")
    assert restarted is not None and not restarted.continued
    assert heartbeat.gap("no beats", dst) is None


def test_twin_body_keeps_configuration_and_networks():
    ins = {
        "Name": "/web",
        "Image": "sha256:abc",
        "Config": {
            "Image": "nginx:1",
            "Cmd": ["nginx"],
            "Env": ["A=1"],
            "Labels": {"x": "y"},
            "WorkingDir": "/srv",
            "User": "www",
            "Hostname": "abc123",
        },
        "HostConfig": {
            "Binds": ["/data:/data"],
            "RestartPolicy": {"Name": "always"},
            "Memory": 1 << 28,
            "ContainerIDFile": "/tmp/cid",
            "NetworkMode": "appnet",
        },
        "NetworkSettings": {
            "Networks": {"appnet": {"Aliases": ["web"], "IPAMConfig": None}, "bridge": {}}
        },
        "Mounts": [
            {"Type": "volume", "Name": "v1", "Source": "/var/lib/docker/volumes/v1/_data"},
            {"Type": "bind", "Source": "/data"},
        ],
    }
    body = twin.create_body(ins)
    assert body["Image"] == "nginx:1" and body["Cmd"] == ["nginx"] and body["Env"] == ["A=1"]
    assert body["Hostname"] == "abc123" and body["User"] == "www" and body["WorkingDir"] == "/srv"
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "always"}
    assert body["HostConfig"]["Memory"] == 1 << 28
    assert "ContainerIDFile" not in body["HostConfig"]
    assert body["NetworkingConfig"]["EndpointsConfig"] == {
        "appnet": {"Aliases": ["web"], "IPAMConfig": None}
    }
    assert [v["Name"] for v in twin.named_volumes(ins)] == ["v1"]
    assert ins["HostConfig"]["ContainerIDFile"] == "/tmp/cid"  # the inspect is not modified


def test_events_round_trip_through_json():
    r = RoundFinished(
        round=2,
        pages_scanned=10,
        pages_skipped=4,
        pages_written=6,
        bytes_sent=24576,
        duration_s=0.2,
        frozen_s=0.01,
        throughput_bps=1e8,
        dirty_rate_bps=1e6,
        predicted_freeze_s=0.21,
    )
    assert event_from_json(r.to_json()) == r


def test_journal_records_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    start = MigrationStarted(
        migration_id="m1",
        container="c",
        source="a",
        target="b",
        strategy="stop-and-copy",
        downtime_budget_s=0.3,
    )
    j = new_entry(start)
    j.record(start)
    j.record(FreezeEnded(total_s=1.0, dump_s=0.2, transfer_s=0.5, restore_s=0.3))
    j.save()
    (loaded,) = load_all()
    assert isinstance(loaded, JournalEntry)
    assert loaded.freeze == {"total_s": 1.0, "dump_s": 0.2, "transfer_s": 0.5, "restore_s": 0.3}
    assert [type(e).__name__ for e in loaded.typed_events()] == ["MigrationStarted", "FreezeEnded"]
    assert oct((tmp_path / "migrations").stat().st_mode & 0o777) == "0o700"


def test_restore_estimate_is_the_median_of_recent_restores_to_that_target(tmp_path, monkeypatch):
    from core.journal import restore_estimate

    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    assert restore_estimate("h2", 0.4) == 0.4
    for i, (target, restore_s, result) in enumerate(
        [("h2", 1.0, "succeeded"), ("h2", 3.0, "succeeded"), ("h2", 2.0, "succeeded"),
         ("h1", 9.0, "succeeded"), ("h2", 7.0, "rolled back")]
    ):
        j = JournalEntry(migration_id=f"m{i}", container="c", source="x", target=target,
                         strategy="pre-copy", started=float(i), result=result)
        j.freeze = {"total_s": restore_s, "dump_s": 0.0, "transfer_s": 0.0, "restore_s": restore_s}
        j.save()
    assert restore_estimate("h2", 0.4) == 2.0
    assert restore_estimate("h1", 0.4) == 9.0


def test_a_dump_holds_the_runc_conf_lock_only_until_criu_logs(tmp_path):
    import subprocess
    import time

    from core.engine.checkpoint import under_conf_lock

    lock, work = tmp_path / "conf.lock", tmp_path / "work"
    work.mkdir()
    # A stand-in for runc: logs at once, then runs on for a while, then fails with 3.
    fake = ["sh", "-c", f"sleep 0.3; echo started > {work}/dump.log; sleep 1.5; exit 3"]
    p = subprocess.Popen(["bash", "-c", under_conf_lock(fake, str(work), str(lock))])
    time.sleep(0.1)
    held = subprocess.run(["flock", "-n", str(lock), "true"]).returncode
    time.sleep(0.6)
    free = subprocess.run(["flock", "-n", str(lock), "true"]).returncode
    assert held != 0 and free == 0  # held while CRIU starts, released once it logs
    assert p.wait(timeout=5) == 3  # runc's own status comes through


def test_journal_saves_durably_and_reports_unreadable_entries(tmp_path, monkeypatch):
    from core import journal

    monkeypatch.setenv("FERRYMAN_STATE_DIR", str(tmp_path))
    e = new_entry(
        MigrationStarted(
            migration_id="m1", container="c", source="a", target="b", strategy="stop-and-copy",
            downtime_budget_s=0.3,
        )
    )
    e.save()
    e.save()
    d = journal.journal_dir()
    # no temporary file left (the reserve of an unfinished entry: core/journal.py)
    assert sorted(p.name for p in d.iterdir() if p.name != ".m1.reserve") == ["m1.json"]
    (d / "m2.json").write_text('{"migration_id": "m2", "cont')  # cut short by a crash
    entries, broken = journal.load()
    assert [x.migration_id for x in entries] == ["m1"]
    assert len(broken) == 1 and "m2.json" in broken[0]


def test_states_allow_only_their_transitions():
    import pytest

    from core.engine.states import State, TransitionError, transition

    assert transition(State.NEW, State.PREFLIGHT) is State.PREFLIGHT
    assert transition(State.COMMIT, State.COMMITTED) is State.COMMITTED
    with pytest.raises(TransitionError):
        transition(State.COMMITTED, State.ROLLING_BACK)  # past the commit point: no rollback
    with pytest.raises(TransitionError):
        transition(State.ROLLED_BACK, State.PREFLIGHT)
    for s in State:
        if s not in (State.SUCCEEDED, State.INCOMPLETE, State.ROLLED_BACK, State.IN_DOUBT,
                     State.INTERRUPTED):
            assert transition(s, State.INTERRUPTED) is State.INTERRUPTED


def test_health_wait_covers_the_first_probe_and_anonymous_volumes_keep_their_name():
    from core.engine.finish import health_wait_s

    assert health_wait_s({"Config": {}}) == 30.0
    hc = {"Test": ["CMD", "true"], "Interval": 30 * 10**9, "Retries": 3, "StartPeriod": 60 * 10**9}
    assert health_wait_s({"Config": {"Healthcheck": hc}}) > 60 + 30 * 3
    ins = {
        "Name": "/a", "Image": "sha256:x", "Config": {"Image": "i"},
        "HostConfig": {"Binds": ["named:/n"]},
        "Mounts": [
            {"Type": "volume", "Name": "named", "Destination": "/n"},
            {"Type": "volume", "Name": "f00", "Destination": "/scratch"},
        ],
    }
    assert [m["Name"] for m in twin.anonymous_volumes(ins)] == ["f00"]
    assert twin.create_body(ins)["HostConfig"]["Binds"] == ["named:/n", "f00:/scratch"]


def test_processes_outside_the_main_tree_are_named():
    from core.preflight import outside_init

    procs = [
        (100, 90, "/sbin/docker-init -- app"),  # --init: tini-like init, the app below it
        (101, 100, "app"),
        (102, 101, "app worker"),
        (200, 91, "sh -c sleep 1000"),  # docker exec -d: its parent is the shim
        (201, 200, "sleep 1000"),
    ]
    assert outside_init(100, procs) == [(200, "sh -c sleep 1000"), (201, "sleep 1000")]
    assert outside_init(100, procs[:3]) == []


async def test_undo_stack_runs_newest_first_and_post_copy_swaps_its_rescue():
    from core.engine.undo import Step, UndoStack

    ran: list[str] = []

    def step(name: str):
        async def run() -> None:
            ran.append(name)

        return run

    u = UndoStack()
    u.push("remove the twin", step("remove twin"))
    u.push("resume the source", step("resume"), decisive=True, kind="resume")
    u.push("rescue from the frozen copy", step("rescue"), decisive=True, kind="rescue")
    u.push("stop the twin", step("stop twin"), decisive=True)
    # The lazy phase ended: no frozen copy to rescue, and resuming means restarting.
    u.drop("rescue")
    u.replace("resume", Step("resume the source", step("restart"), True, "resume"))
    assert u.labels() == ["stop the twin", "resume the source", "remove the twin"]
    while u:
        s = u.pop()
        await s.run()
    assert ran == ["stop twin", "restart", "remove twin"]


def test_facts_round_trip_through_the_journal_record():
    from core.engine.facts import Facts

    f = Facts(container_id="c1", twin_id="t1", dump_fired=True, committed=True,
              restart_policy={"Name": "always", "MaximumRetryCount": 0}, moved_volumes=["v"])
    rec = f.to_record()
    assert rec["kind"] == "ctx"
    assert Facts.from_record(rec) == f
    # A record from before dump_fired was kept: a finished dump implies it.
    assert Facts.from_record({"kind": "ctx", "dump_done": True}).dump_fired


def test_an_engine_that_remaps_user_namespaces_or_runs_rootless_is_refused_by_name():
    from core.preflight import engine_mode_check

    plain = {"SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin"]}
    assert engine_mode_check("host1", plain) is None
    assert engine_mode_check("host1", {}) is None
    remap = engine_mode_check("host2", {"SecurityOptions": ["name=seccomp", "name=userns"]})
    assert remap is not None and remap.status.value == "fail" and remap.host == "host2"
    assert "dockerd on host2 remaps user namespaces (userns-remap)" in remap.reason
    assert "userns-remap" in remap.fix and "daemon.json" in remap.fix
    rootless = engine_mode_check("host3", {"SecurityOptions": ["name=rootless", "name=cgroupns"]})
    assert rootless is not None and "is rootless" in rootless.reason


def test_settings_lines_say_what_each_setting_gets():
    from core.container_settings import settings_lines

    ins = {
        "Name": "/web",
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                       "Binds": ["data:/data"]},
        "Config": {"Labels": {"com.docker.compose.project": "shop"},
                   "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5 * 10**9,
                                   "Timeout": 10**9, "Retries": 2}},
        "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data"},
                   {"Type": "volume", "Name": "abc123", "Destination": "/cache"},
                   {"Type": "bind", "Source": "/etc/x", "Destination": "/x"}],
    }  # fmt: skip
    got = settings_lines(ins, "h1", "h2")
    assert [(c.host, c.name, c.status.value) for c in got] == [
        ("h1", n, "pass") for n in ("restart", "health", "volumes", "volumes", "compose")
    ]
    text = "\n".join(c.reason for c in got)
    assert "web: restart policy on-failure:3: suspended on h1" in text
    assert "verify waits up to 22 s" in text
    assert "web: volume data: created on h2" in text
    assert "web: anonymous volume abc123:" in text
    assert "Compose project shop" in text
    assert settings_lines({"Name": "/plain", "HostConfig": {}, "Config": {}}, "h1", "h2") == []
