"""The pure parts of moves onto and off Docker >= 28: routes, the frozen source, versions,
preflight's verdicts, the lab's choices. Shell pieces run against fake tools."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from core import versions
from core.engine import checkpoint, criu_conf, postcopy, restore
from core.engine import restore_runtime as rr
from core.engine.facts import Facts
from core.models import HostFacts
from core.preflight import HostReport, pair_checks, restore_route_check, runc_check

CID = "cd" * 32


# --- routes -----------------------------------------------------------------------------


def test_each_engine_gets_its_route():
    assert rr.route("20.10.24+dfsg1", "1.41") == rr.ROUTE_RUNC_CONF
    assert rr.route("24.0.7", "1.43") == rr.ROUTE_ANNOTATION
    assert rr.route("27.5.1", "1.47") == rr.ROUTE_ANNOTATION
    assert rr.route("28.5.2+dfsg4", "1.51") == rr.ROUTE_RUNTIME
    assert rr.route("29.7.2", "1.52") == rr.ROUTE_RUNTIME
    assert rr.route("20.10.24", "") == rr.ROUTE_RUNC_CONF


def test_twin_for_each_route():
    body = {"Image": "i", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}}
    plain, conf = rr.twin_for_route(body, rr.ROUTE_RUNC_CONF, "m-1")
    assert plain == body and conf == ""
    ann, conf = rr.twin_for_route(body, rr.ROUTE_ANNOTATION, "m-1")
    assert conf == f"{rr.CRIU_CONF_DIR}/m-1.conf"
    assert ann["HostConfig"]["Annotations"] == {rr.CRIU_CONFIG_ANNOTATION: conf}
    assert "Runtime" not in ann["HostConfig"]
    rt, conf = rr.twin_for_route(body, rr.ROUTE_RUNTIME, "m-1")
    assert rt["HostConfig"]["Runtime"] == rr.RUNTIME
    assert rt["HostConfig"]["Annotations"] == {rr.CRIU_CONFIG_ANNOTATION: conf}
    # A container that arrived on a 28 host by the runtime route, moving to a 20.10 host:
    # neither the runtime nor our annotation follows it there.
    arrived = rr.twin_body(body, rr.criu_conf_path("old"))
    back, conf = rr.twin_for_route(arrived, rr.ROUTE_RUNC_CONF, "m-2")
    assert back == body and conf == ""
    # ... and onto another 28 host it gets a file of this migration, not the old one.
    again, conf = rr.twin_for_route(arrived, rr.ROUTE_RUNTIME, "m-2")
    assert again["HostConfig"]["Annotations"][rr.CRIU_CONFIG_ANNOTATION] == conf
    assert conf.endswith("/m-2.conf")
    assert "Runtime" not in body["HostConfig"]  # the input is untouched


def test_which_criu_file_runc_reads_for_a_container():
    assert rr.container_criu_conf({"HostConfig": {}}) == restore.CONF
    own = {"HostConfig": {"Annotations": {rr.CRIU_CONFIG_ANNOTATION: "/run/ferryman/criu/a.conf"}}}
    assert rr.container_criu_conf(own) == "/run/ferryman/criu/a.conf"
    assert rr.is_ours("/run/ferryman/criu/a.conf")
    assert not rr.is_ours("/etc/criu/mine.conf") and not rr.is_ours("/run/ferryman/criu/../x")


def test_the_restore_script_removes_the_twin_file_and_marker(tmp_path):
    conf = rr.criu_conf_path("m-1")
    s = rr.restore_script(
        docker_socket=None, container_id=CID, images_dir="/i", work_dir="/w", criu_conf_file=conf
    )
    assert f"rm -f {rr.MARKERS}/{CID} {rr.MARKERS}/{CID}.restored {conf}" in s
    assert rr.disarm_cmd(CID, conf) == ["rm", "-f", f"{rr.MARKERS}/{CID}", f"{rr.MARKERS}/{CID}.restored", conf]  # fmt: skip
    assert len(rr.wrapper_digest()) == 64


def test_the_annotation_route_writes_the_twins_file_without_the_host_lock(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    seen = tmp_path / "seen"
    conf = tmp_path / "criu" / "m-1.conf"
    (fake_bin / "docker").write_text(
        f"#!/bin/sh\necho \"$*\" > {shlex.quote(str(seen))}\ncat {shlex.quote(str(conf))} >> {shlex.quote(str(seen))}\n"
    )
    (fake_bin / "docker").chmod(0o755)
    img = tmp_path / "img"
    img.mkdir()
    (img / "descriptors.json").write_text("[]")
    script = restore.restore_script(
        docker_socket="/run/d.sock",
        data_root=str(tmp_path / "root"),
        container_id=CID,
        name="fm-x",
        images_dir=str(img),
        work_dir=str(tmp_path / "work"),
        criu_conf_file=str(conf),
    )
    assert restore.LOCK not in script.split("&&", 3)[-1]  # no flock on the host's file
    p = subprocess.run(["bash", "-c", script], env={"PATH": f"{fake_bin}:/usr/bin:/bin"})
    assert p.returncode == 0
    said = seen.read_text().splitlines()
    assert said[0] == f"-H unix:///run/d.sock start --checkpoint fm-x {CID}"
    assert f"images-dir {img}" in said and "log-file restore.log" in said
    assert not conf.exists()  # removed when the restore ended
    assert (tmp_path / "root" / "containers" / CID / "checkpoints" / "fm-x" / "descriptors.json").exists()


def test_own_file_is_removed_even_when_the_command_fails(tmp_path):
    conf = tmp_path / "c" / "x.conf"
    s = criu_conf.own_file("a\n", str(conf), f"cat {shlex.quote(str(conf))}; exit 7")
    p = subprocess.run(["bash", "-c", s], capture_output=True, text=True)
    assert p.returncode == 7 and p.stdout == "a\n" and not conf.exists()


def test_a_lazy_dump_of_an_annotated_source_writes_its_own_file():
    s = postcopy.lazy_dump_script(
        runc_root="/r", container_id=CID, image_path="/i", work_path="/w", port=1234,
        conf_file="/run/ferryman/criu/old.conf",
    )  # fmt: skip
    assert "/run/ferryman/criu/old.conf" in s and criu_conf.SAVED not in s
    assert subprocess.run(["bash", "-n", "-c", s]).returncode == 0
    plain = postcopy.lazy_dump_script(
        runc_root="/r", container_id=CID, image_path="/i", work_path="/w", port=1234
    )
    assert criu_conf.SAVED in plain


# --- the frozen source (Docker >= 28) ---------------------------------------------------


def _fake_runc(tmp: Path, state: str) -> Path:
    """A runc that says `state` and records its calls; `resume` makes it `running`."""
    d = tmp / "bin"
    d.mkdir(exist_ok=True)
    st, calls = tmp / "state", tmp / "calls"
    st.write_text(state)
    (d / "runc").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'for a in "$@"; do case "$a" in state) printf \'{{"status": "%s"}}\' "$(cat {st})"; exit 0;; '
        f"resume) echo running > {st}; exit 0;; esac; done\nexit 0\n"
    )
    (d / "runc").chmod(0o755)
    return d


@pytest.mark.parametrize(
    ("state", "thaw", "said", "resumed"),
    [
        ("paused", True, "running", True),
        ("running", True, "running", False),
        ("stopped", True, "stopped", False),
        ("paused", False, "paused", False),
    ],
)
def test_thaw_resumes_only_a_frozen_container(tmp_path, state, thaw, said, resumed):
    d = _fake_runc(tmp_path, state)
    argv = checkpoint.thaw_cmd("/run/x/runtime-runc/moby", CID, thaw=thaw)
    p = subprocess.run(argv, capture_output=True, text=True, env={"PATH": f"{d}:/usr/bin:/bin"})
    assert checkpoint.thaw_status(p.stdout) == said
    calls = (tmp_path / "calls").read_text()
    assert ("resume" in calls) == resumed
    assert f"--root /run/x/runtime-runc/moby state {CID}" in calls


def test_thaw_of_a_gone_container_says_gone(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    (d / "runc").write_text("#!/bin/sh\necho 'container does not exist' >&2\nexit 1\n")
    (d / "runc").chmod(0o755)
    p = subprocess.run(checkpoint.thaw_cmd("/r", CID), capture_output=True, text=True,
                       env={"PATH": f"{d}:/usr/bin:/bin"})  # fmt: skip
    assert checkpoint.thaw_status(p.stdout) == "gone"
    assert checkpoint.thaw_status("") == "gone"


def test_the_pause_comes_after_the_lock_and_before_the_dump(tmp_path):
    lock, work, log = tmp_path / "l", tmp_path / "w", tmp_path / "order"
    # the work folder is made first (runc would make it only later: the stamps go there)
    pause = ["sh", "-c", f"echo pause >> {log}"]
    dump = ["sh", "-c", f"echo dump >> {log}; echo x > {work}/dump.log; exit 4"]
    assert not work.exists()
    # the lock is busy for a moment: neither runs before it is free
    holder = subprocess.Popen(["flock", str(lock), "sleep", "0.5"])
    import time

    time.sleep(0.1)
    p = subprocess.run(["bash", "-c", checkpoint.under_conf_lock(dump, str(work), str(lock), first=pause)])
    holder.wait()
    assert p.returncode == 4
    assert log.read_text().split() == ["pause", "dump"]
    stamps = (work / checkpoint.FROZEN_FROM).read_text() + (work / checkpoint.FROZEN_TO).read_text()
    frozen = checkpoint.frozen_seconds(stamps)
    assert frozen is not None and 0 <= frozen < 1  # from just before the pause, after the lock
    assert checkpoint.frozen_seconds("") is None and checkpoint.frozen_seconds("5 3") is None
    failed_pause = ["sh", "-c", "exit 9"]
    p = subprocess.run(["bash", "-c", checkpoint.under_conf_lock(dump, str(work), str(lock), first=failed_pause)])
    assert p.returncode == 9 and log.read_text().split() == ["pause", "dump"]  # no dump after it


def test_pause_and_checkpoint_words():
    assert checkpoint.pause_cmd("/r", CID) == ["runc", "--root", "/r", "pause", CID]
    assert checkpoint.pause_cmd("/r", CID, True)[1] == "--systemd-cgroup"
    argv = checkpoint.checkpoint_cmd(
        runc_root="/r", container_id=CID, image_path="/i", work_path="/w", leave_running=True
    )
    assert "--leave-running" in argv and argv[-1] == CID


def test_facts_keep_the_engines_and_routes():
    f = Facts(container_id="c", src_engine="28.5.2", dst_engine="20.10.24", src_paused=True,
              src_systemd=True, twin_route=rr.ROUTE_RUNTIME, twin_criu_conf="/run/ferryman/criu/m.conf")  # fmt: skip
    assert Facts.from_record(f.to_record()) == f
    old = Facts.from_record({"kind": "ctx", "container_id": "c"})
    assert not old.src_paused and old.twin_route == ""


# --- versions ---------------------------------------------------------------------------


def test_versions_from_what_the_engine_says():
    assert versions.version_word("runc version 1.3.6+ds1") == "1.3.6+ds1"
    assert versions.version_word("containerd github.com/containerd/containerd/v2 2.1.9+unknown ") == "2.1.9+unknown"  # fmt: skip
    assert versions.version_word("v1.2.5-0-g59923ef") == "1.2.5-0-g59923ef"
    assert versions.version_word("05044ec0a9a75232cad458027ca83437aae3f4da") == ""
    assert versions.version_word("") == ""
    v = versions.from_engine(
        {"ServerVersion": "28.5.2+dfsg4", "ContainerdCommit": {"ID": ""},
         "RuncCommit": {"ID": "1.3.6+ds1-1"}},
        {"ApiVersion": "1.51"},
        containerd_line="containerd github.com/containerd/containerd/v2 2.1.9+unknown",
    )  # fmt: skip
    assert (v.engine, v.api, v.containerd, v.runc) == ("28.5.2+dfsg4", "1.51", "2.1.9+unknown", "1.3.6+ds1-1")  # fmt: skip
    assert v.line() == "Docker 28.5.2 (API 1.51), containerd 2.1.9, runc 1.3.6"
    old = versions.from_engine(
        {"ServerVersion": "20.10.24+dfsg1", "ContainerdCommit": {"ID": "1.6.20~ds1-1+b1"},
         "RuncCommit": {"ID": "1.1.5+ds1-1+deb12u1"}}, {"ApiVersion": "1.41"})  # fmt: skip
    assert old.line() == "Docker 20.10.24 (API 1.41), containerd 1.6.20, runc 1.1.5"
    assert versions.EngineVersions().line() == ""


# --- preflight --------------------------------------------------------------------------

V28 = versions.EngineVersions("28.5.2+dfsg4", "1.51", "2.1.9", "1.3.6")
V20 = versions.EngineVersions("20.10.24+dfsg1", "1.41", "1.6.20", "1.1.5")
REGISTERED = {"Runtimes": {"runc": {"path": "runc"}, rr.RUNTIME: {"path": rr.WRAPPER}}}


def test_a_28_target_without_the_runtime_is_refused_with_the_reason_and_the_fix():
    chk, route, refusal, fix = restore_route_check("host3", "root@10.77.0.13", V28, {"Runtimes": {}}, "")
    assert chk.status.value == "warn" and route == rr.ROUTE_RUNTIME
    for words in ("Docker 28.5.2", "initializeCreatedTask", "containerd/containerd#12141",
                  "criu PR 2834", "bind-mount /proc/0/ns/net", rr.RUNTIME):  # fmt: skip
        assert words in refusal, words
    for words in ("ferryman restore-runtime wrapper", f"install -D -m 755 /dev/stdin {rr.WRAPPER}",
                  "ferryman restore-runtime daemon-json", "systemctl reload docker", "root@10.77.0.13"):  # fmt: skip
        assert words in fix, words
    src = HostReport("host1", facts=HostFacts(engine_version=V20.engine))
    dst = HostReport("host3", facts=HostFacts(engine_version=V28.engine, restore_refusal=refusal, restore_fix=fix))  # fmt: skip
    (c,) = [c for c in pair_checks(src, dst) if c.name == "restore"]
    assert c.status.value == "fail" and c.host == "host1→host3" and "12141" in c.reason and c.fix == fix
    # A 28 source needs nothing of the sort: moves off it are not refused.
    assert not [c for c in pair_checks(dst, src) if c.name == "restore"]


def test_a_28_target_with_a_stale_wrapper_is_refused_and_a_good_one_passes():
    _, _, refusal, _ = restore_route_check("h", "root@h", V28, REGISTERED, "0" * 64)
    assert "is not this ferryman's wrapper" in refusal
    _, _, refusal, _ = restore_route_check("h", "root@h", V28, REGISTERED, "")
    assert "cannot be read" in refusal
    chk, route, refusal, fix = restore_route_check("h", "root@h", V28, REGISTERED, rr.wrapper_digest())
    assert chk.status.value == "pass" and refusal == "" and fix == ""
    assert rr.RUNTIME in chk.reason and "org.criu.config" in chk.reason
    v29 = versions.EngineVersions("29.7.2", "1.52")
    chk, _, refusal, _ = restore_route_check("h", "root@h", v29, REGISTERED, rr.wrapper_digest())
    assert chk.status.value == "warn" and "untested" in chk.reason and refusal == ""


def test_older_engines_say_how_they_restore():
    chk, route, refusal, _ = restore_route_check("h", "root@h", V20, {}, "")
    assert chk.status.value == "pass" and route == rr.ROUTE_RUNC_CONF and not refusal
    assert "runc.conf" in chk.reason
    chk, route, _, _ = restore_route_check("h", "root@h", versions.EngineVersions("27.5.1", "1.47"), {}, "")
    assert route == rr.ROUTE_ANNOTATION and "org.criu.config" in chk.reason


def test_runc_on_the_path_must_be_the_engines():
    assert runc_check("h", "1.3.6+ds1", "1.3.6+ds1-1").status.value == "pass"
    bad = runc_check("h", "1.1.5+ds1", "1.3.6+ds1-1")
    assert bad.status.value == "warn" and "FERRYMAN_PATH_PREFIX" in bad.fix
    assert runc_check("h", "", "1.3.6").status.value == "fail"


# --- the lab ----------------------------------------------------------------------------


def test_lab_hosts_of_28_get_its_daemon_its_path_and_their_own_daemon_json(monkeypatch, tmp_path):
    import json

    from lab import engine, sshd
    from lab.layout import LabHost

    h = LabHost(7)
    monkeypatch.setattr(LabHost, "state", property(lambda self: tmp_path / self.name))
    monkeypatch.setattr(engine, "_engine28_path", lambda: "/usr/local/sbin:/E/usr/sbin:/E/usr/bin:/usr/bin")
    assert engine.kind(h) == "20.10"  # a host made before engines were recorded
    argv, path = engine.dockerd_argv(h)
    assert "--experimental" in argv and argv[argv.index("--experimental") - 1] == "dockerd"
    engine.record(h, "28")
    assert engine.kind(h) == "28"
    argv, path = engine.dockerd_argv(h)
    assert argv[argv.index("--config-file") - 1].endswith("/engine-28/usr/sbin/dockerd")
    assert "--experimental" not in argv  # it is in daemon.json (dockerd refuses both)
    assert path.startswith(f"{h.bin_dir}:/usr/local/sbin:/E/usr/sbin")
    conf = json.loads(engine.daemon_json(h))
    assert conf["experimental"] is True and conf["runtimes"][rr.RUNTIME] == {"path": rr.WRAPPER}
    assert engine.docker(h, "ps")[0].endswith("/engine-28/usr/bin/docker")
    text = sshd.config_text("t", address="a", host_key=Path("/k"), pidfile="/p", authorized_keys=Path("/a"),
                            docker_socket="/s", bin_dir=":".join([str(h.bin_dir), *engine.path_dirs("28")]),
                            name=h.name)  # fmt: skip
    assert f"FERRYMAN_PATH_PREFIX={h.bin_dir}:{engine.PREFIX_28}/usr/sbin:{engine.PREFIX_28}/usr/bin " in text
    with pytest.raises(Exception, match="--engine"):
        engine.record(h, "27")


def test_hosts_keep_their_engine_and_new_ones_get_the_asked_one(monkeypatch, tmp_path):
    from lab import control, engine
    from lab.layout import LabHost

    monkeypatch.setattr(LabHost, "state", property(lambda self: tmp_path / self.name))
    monkeypatch.setattr(control, "existing_hosts", lambda: [LabHost(1), LabHost(2)])
    said: list[str] = []
    hs = [LabHost(i) for i in (1, 2, 3, 4)]
    got = control.assign_engines(hs, "28", said.append)
    # host1 and host2 existed before engines were recorded: Debian's 20.10, kept
    assert got == {"host1": "20.10", "host2": "20.10", "host3": "28", "host4": "28"}
    assert [engine.kind(h) for h in hs] == ["20.10", "20.10", "28", "28"]
    assert any("host1 keeps Docker 20.10" in s for s in said)
    # asked again with the other engine: every host keeps what it was made with
    monkeypatch.setattr(control, "existing_hosts", lambda: hs)
    assert control.assign_engines(hs, "20.10", said.append) == got
    with pytest.raises(Exception, match="--engine"):
        control.assign_engines(hs, "27")


def test_the_wrapper_is_installed_once_and_removed_only_when_it_is_ours(tmp_path, monkeypatch):
    from lab import engine

    monkeypatch.setattr(rr, "MARKERS", str(tmp_path / "m"))
    monkeypatch.setattr(rr, "CRIU_CONF_DIR", str(tmp_path / "c"))
    path = tmp_path / "lib" / "runc-restore"
    engine.install_wrapper(str(path))
    assert path.read_text() == rr.wrapper_script() and path.stat().st_mode & 0o777 == 0o755
    engine.install_wrapper(str(path))  # again: unchanged
    engine.remove_wrapper(str(path))
    assert not path.exists() and not path.parent.exists()
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n# an admin's own\n")
    engine.remove_wrapper(str(path))
    assert path.exists()  # not ours: left alone
