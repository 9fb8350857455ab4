from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from core.engine import restore_runtime as rr

CID = "ab" * 32


def test_which_engines_need_the_route():
    assert not rr.needs_restore_runtime("20.10.24+dfsg1")
    assert not rr.needs_restore_runtime("27.5.1")
    assert rr.needs_restore_runtime("28.5.2+dfsg4")
    assert rr.needs_restore_runtime("29.7.2")
    assert rr.annotations_supported("1.51") and rr.annotations_supported("1.43")
    assert not rr.annotations_supported("1.41")
    with pytest.raises(rr.RouteError):
        rr.needs_restore_runtime("")


def test_runtime_registered_from_docker_info():
    info = {"Runtimes": {"runc": {"path": "runc"}, rr.RUNTIME: {"path": rr.WRAPPER}}}
    assert rr.runtime_registered(info) and rr.runtime_path(info) == rr.WRAPPER
    assert not rr.runtime_registered({"Runtimes": {"runc": {"path": "runc"}}})
    assert not rr.runtime_registered({})


def test_daemon_json_keeps_the_rest():
    text = '{"experimental": true, "runtimes": {"gvisor": {"path": "/usr/bin/runsc"}}}'
    out = json.loads(rr.daemon_json_with_runtime(text))
    assert out["experimental"] is True
    assert out["runtimes"]["gvisor"] == {"path": "/usr/bin/runsc"}
    assert out["runtimes"][rr.RUNTIME] == {"path": rr.WRAPPER}
    assert json.loads(rr.daemon_json_with_runtime(""))["runtimes"][rr.RUNTIME]
    with pytest.raises(rr.RouteError):
        rr.daemon_json_with_runtime("{not json")
    with pytest.raises(rr.RouteError):
        rr.daemon_json_with_runtime('{"runtimes": []}')


def test_twin_body_and_strip_route():
    body = {
        "Image": "nginx:1",
        "HostConfig": {"NetworkMode": "appnet", "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}},
    }
    conf = rr.criu_conf_path("m-1")
    t = rr.twin_body(body, conf)
    assert t["HostConfig"]["Runtime"] == rr.RUNTIME
    assert t["HostConfig"]["Annotations"] == {rr.CRIU_CONFIG_ANNOTATION: conf}
    assert t["HostConfig"]["PortBindings"] == body["HostConfig"]["PortBindings"]
    assert "Runtime" not in body["HostConfig"]  # the input is not changed
    back = rr.strip_route(t)
    assert back == body
    own = {"HostConfig": {"Runtime": "runsc", "Annotations": {"org.criu.config": "/etc/x.conf"}}}
    assert rr.strip_route(own) == own


def test_marker_and_conf_refuse_what_could_break_the_script():
    m = rr.marker_text("/var/lib/f/img", "/var/lib/f/work", ("--tcp-established",))
    assert m.splitlines() == [
        "images=/var/lib/f/img",
        "work=/var/lib/f/work",
        "flags=--tcp-established",
        "cont=1",
    ]
    assert "flags=--manage-cgroups-mode=soft" in rr.marker_text(
        "/a", "/b", ("--manage-cgroups-mode=soft",)
    )
    for bad in ("rel/path", "/a b", "/a\nflags=--x", "/a;rm"):
        with pytest.raises(rr.RouteError):
            rr.marker_text(bad, "/w")
    with pytest.raises(rr.RouteError):
        rr.marker_text("/a", "/b", ("--image-path=/etc",))
    with pytest.raises(rr.RouteError):
        rr.marker_path("abc")
    with pytest.raises(rr.RouteError):
        rr.criu_conf_path("../x")
    assert rr.criu_conf(("link-remap",)) == "leave-stopped\nlink-remap\n"
    assert rr.criu_conf(leave_stopped=False) == ""
    with pytest.raises(rr.RouteError):
        rr.criu_conf(("a\nimages-dir /x",))


# --- the wrapper itself, against a fake runc that records its arguments -------------------


def _fake_runc(tmp: Path) -> Path:
    log = tmp / "calls"
    fake = tmp / "runc"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\nexit ${{FAKE_RC:-0}}\n')
    fake.chmod(0o755)
    return log


def _wrapper(tmp: Path) -> Path:
    w = tmp / "wrapper"
    w.write_text(rr.wrapper_script(real_runc=str(tmp / "runc"), markers=str(tmp / "m")))
    w.chmod(0o755)
    (tmp / "m").mkdir()
    return w


def _run(w: Path, *args: str, rc: int = 0) -> int:
    env = dict(os.environ, FAKE_RC=str(rc))
    return subprocess.run([str(w), *args], env=env).returncode


SHIM_CREATE = (
    "--root", "/run/d/runtime-runc/moby", "--log", "/run/t/log.json", "--log-format", "json",
    "create", "--bundle", "/run/t", "--pid-file", "/run/t/init.pid", "--no-new-keyring",
    "--preserve-fds", "2", CID,
)  # fmt: skip
SHIM_START = ("--root", "/run/d/runtime-runc/moby", "--log", "/run/t/log.json", "--log-format", "json", "start", CID)  # fmt: skip


def test_wrapper_without_marker_is_runc(tmp_path):
    log = _fake_runc(tmp_path)
    w = _wrapper(tmp_path)
    assert _run(w, *SHIM_CREATE) == 0
    assert _run(w, *SHIM_START) == 0
    assert _run(w, "--root", "/r", "state", CID) == 0
    assert log.read_text().splitlines() == [
        " ".join(SHIM_CREATE),
        " ".join(SHIM_START),
        f"--root /r state {CID}",
    ]


def test_wrapper_restores_on_create_and_lets_run_on_start(tmp_path):
    log = _fake_runc(tmp_path)
    w = _wrapper(tmp_path)
    marker = tmp_path / "m" / CID
    marker.write_text(rr.marker_text("/img", "/work", ("--tcp-established",)))
    assert _run(w, *SHIM_CREATE) == 0
    assert not marker.exists() and (tmp_path / "m" / f"{CID}.restored").exists()
    assert _run(w, *SHIM_START) == 0
    assert not (tmp_path / "m" / f"{CID}.restored").exists()
    restore, cont = log.read_text().splitlines()
    assert restore == (
        "--root /run/d/runtime-runc/moby --log /run/t/log.json --log-format json restore --detach "
        "--no-subreaper --bundle /run/t --pid-file /run/t/init.pid --tcp-established "
        f"--image-path /img --work-path /work {CID}"
    )
    assert (
        cont
        == f"--root /run/d/runtime-runc/moby --log /run/t/log.json --log-format json kill --all {CID} CONT"
    )
    # the next start of the same container is an ordinary one
    assert _run(w, *SHIM_CREATE) == 0
    assert log.read_text().splitlines()[-1] == " ".join(SHIM_CREATE)


def test_wrapper_keeps_the_marker_when_the_restore_fails(tmp_path):
    _fake_runc(tmp_path)
    w = _wrapper(tmp_path)
    marker = tmp_path / "m" / CID
    marker.write_text(rr.marker_text("/img", "/work", leave_stopped=False))
    assert _run(w, *SHIM_CREATE, rc=1) == 1
    assert marker.exists() and not (tmp_path / "m" / f"{CID}.restored").exists()


def test_wrapper_without_leave_stopped_sends_nothing_at_start(tmp_path):
    log = _fake_runc(tmp_path)
    w = _wrapper(tmp_path)
    (tmp_path / "m" / CID).write_text(rr.marker_text("/img", "/work", leave_stopped=False))
    assert _run(w, *SHIM_CREATE) == 0 and _run(w, *SHIM_START) == 0
    assert len(log.read_text().splitlines()) == 1


def test_restore_script_always_disarms(tmp_path):
    conf = rr.criu_conf_path("m-1")
    s = rr.restore_script(
        docker_socket="/run/d.sock",
        container_id=CID,
        images_dir="/img",
        work_dir="/work",
        criu_conf_file=conf,
    )
    assert "trap disarm EXIT" in s
    assert s.rstrip().endswith(f"docker -H unix:///run/d.sock start {CID}")
    assert f"rm -f {rr.MARKERS}/{CID} {rr.MARKERS}/{CID}.restored" in s
    assert subprocess.run(["bash", "-n", "-c", s]).returncode == 0
    d = rr.disarm_cmd(CID, conf)
    assert d == ["rm", "-f", f"{rr.MARKERS}/{CID}", f"{rr.MARKERS}/{CID}.restored", conf]
