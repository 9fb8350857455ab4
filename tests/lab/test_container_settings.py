"""The settings real containers carry, moved on the lab (real dockerd, runc, CRIU).

Each test starts a container of its own on host1 with one setting, moves it to host2 with
the defaults a user has, and checks, independently of ferryman's journal:
- exactly one copy at every moment: dockerd's own event log on host1 shows no `start` of
  the container after the move began (a restart policy must not bring a second copy up);
- the state went on (the heartbeat counter continues, never restarted from 0);
- the data came along, and nothing is left behind on the source.
"""

from __future__ import annotations

import time

import pytest

from lab.layout import IMAGE
from tests.lab.conftest import docker, events, exists, ferryman, heartbeats, running

NAME = "settingsprobe"


def _cleanup(hosts, name=NAME, volumes=()):
    for h in hosts:
        docker(h, "rm", "-f", name, check=False)
        for v in volumes:
            docker(h, "volume", "rm", "-f", v, check=False)


def _start(h, *run_args: str, name: str = NAME, cmd: tuple[str, ...] = ()) -> None:
    docker(h, "run", "-d", "--name", name, *run_args, IMAGE,
           *(cmd or ("/workload", "16", "1", "10")))
    deadline = time.time() + 10
    while len(heartbeats(h, name)) < 5 and time.time() < deadline:
        time.sleep(0.1)


def _starts_since(h, name: str, since: float) -> int:
    """How many times dockerd on `h` started `name` since `since` (its own event log)."""
    out = docker(
        h, "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", f"container={name}", "--filter", "event=start", "--format", "{{.Action}}",
    )
    return len([ln for ln in out.splitlines() if ln.strip()])


def _move(name: str, src="host1", dst="host2", *extra: str):
    return ferryman("migrate", name, "--from", src, "--to", dst,
                    "--strategy", "stop-and-copy", "--json", *extra)


def _counter_continues(h, name: str, before: int) -> bool:
    deadline = time.time() + 10
    while time.time() < deadline:
        beats = [c for c, _ in heartbeats(h, name)]
        if len(beats) >= 5:
            return beats[0] > before and beats == list(range(beats[0], beats[0] + len(beats)))
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("policy", ["unless-stopped", "always", "on-failure:3"])
def test_a_restart_policy_never_gives_two_copies_and_the_twin_keeps_it(lab_hosts, policy):
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1, "--restart", policy)
        before = heartbeats(h1, NAME)[-1][0]
        t0 = time.time()
        p = _move(NAME)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr
        evs = events(p.stdout)
        assert evs[-1]["kind"] == "succeeded"
        assert not [e for e in evs if e["kind"] == "warning" and "did not continue" in e["text"]]
        assert evs[-1]["app_gap_s"] is None or evs[-1]["app_gap_s"] > 0
        # dockerd on host1 never started it again while it moved.
        assert _starts_since(h1, NAME, t0) == 0
        assert not exists(h1, NAME) and running(h2, NAME)
        assert _counter_continues(h2, NAME, before)
        # The twin carries the policy the container had.
        name, _, count = policy.partition(":")
        assert docker(h2, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", NAME) == name
        if count:
            got = docker(h2, "inspect", "-f", "{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
                         NAME)
            assert got == count
    finally:
        _cleanup(lab_hosts)


def test_a_failed_move_puts_the_restart_policy_back(lab_hosts):
    """A restore that fails (a broken criu on host2) rolls back: the source runs, with its
    own restart policy again, and was never started by dockerd in between."""
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    fake = h2.bin_dir / "criu"
    try:
        _start(h1, "--restart", "always")
        before = heartbeats(h1, NAME)[-1][0]
        fake.write_text("#!/bin/sh\necho 'criu: broken on purpose' >&2\nexit 1\n")
        fake.chmod(0o755)
        t0 = time.time()
        p = _move(NAME)
        assert p.returncode == 1, p.stdout[-3000:] + p.stderr
        assert events(p.stdout)[-1]["kind"] == "failed"
        assert running(h1, NAME) and not exists(h2, NAME)
        assert _starts_since(h1, NAME, t0) == 0  # resumed from its checkpoint, not restarted
        assert docker(h1, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", NAME) == "always"
        beats = [c for c, _ in heartbeats(h1, NAME)]
        assert before in beats and beats[-1] > before
    finally:
        fake.unlink(missing_ok=True)
        _cleanup(lab_hosts)


def test_auto_remove_is_refused_before_anything_changes(lab_hosts):
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1, "--rm")
        p = _move(NAME)
        assert p.returncode == 1
        failed = events(p.stdout)[-1]
        assert failed["kind"] == "failed" and failed["phase"] == "preflight"
        assert "--rm" in failed["cause"] and NAME in failed["cause"]
        assert running(h1, NAME) and not exists(h2, NAME)
        # `check` says the same before any move, and exits 1
        c = ferryman("check", "--container", NAME, "--to", "host2")
        assert c.returncode == 1, c.stdout + c.stderr
        assert f"FAIL  host1        container      {NAME}: started with --rm" in c.stdout
        assert c.stdout.rstrip().endswith("the move would be refused (1 failed check(s))")
    finally:
        _cleanup(lab_hosts)


def test_a_named_volume_moves_there_and_back(lab_hosts):
    """host1 → host2 → host1 with a named volume: the data travels both ways, deleted files
    stay deleted, and the volume is not left behind on the host the container left."""
    h1, h2 = lab_hosts
    vol = "settingsvol"
    _cleanup(lab_hosts, volumes=[vol])
    script = (
        "[ -f /data/first ] || { echo one > /data/first; echo gone > /data/deleted; }; "
        "rm -f /data/deleted; exec /workload 16 1 10"
    )
    try:
        _start(h1, "-v", f"{vol}:/data", cmd=("sh", "-c", script))
        for src, dst, hs, hd in (("host1", "host2", h1, h2), ("host2", "host1", h2, h1)):
            before = heartbeats(hs, NAME)[-1][0]
            p = _move(NAME, src, dst)
            assert p.returncode == 0, f"{src} → {dst}: " + p.stdout[-3000:] + p.stderr
            assert running(hd, NAME) and not exists(hs, NAME)
            assert _counter_continues(hd, NAME, before)
            assert docker(hd, "exec", NAME, "cat", "/data/first") == "one"
            assert docker(hd, "exec", NAME, "ls", "/data") == "first"
            assert docker(hs, "volume", "ls", "-q", "--filter", f"name={vol}") == ""
    finally:
        _cleanup(lab_hosts, volumes=[vol])


def test_an_anonymous_volume_keeps_its_data(lab_hosts):
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1, "-v", "/scratch",
               cmd=("sh", "-c", "echo kept > /scratch/f; exec /workload 16 1 10"))
        p = _move(NAME)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr
        assert docker(h2, "exec", NAME, "cat", "/scratch/f") == "kept"
        mounts = docker(h2, "inspect", "-f",
                        "{{range .Mounts}}{{.Type}} {{.Destination}};{{end}}", NAME)
        assert mounts == "volume /scratch;"
    finally:
        _cleanup(lab_hosts)


def test_a_process_started_by_docker_exec_is_named_and_the_move_refused(lab_hosts):
    """CRIU cannot take a `docker exec` process along: it would be lost in silence."""
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1)
        docker(h1, "exec", "-d", NAME, "sleep", "1000")
        p = _move(NAME)
        assert p.returncode == 1
        failed = events(p.stdout)[-1]
        assert failed["phase"] == "preflight" and "docker exec" in failed["cause"]
        assert "sleep 1000" in failed["cause"]
        assert running(h1, NAME) and not exists(h2, NAME)
    finally:
        _cleanup(lab_hosts)


def test_init_and_a_published_port_move_and_a_taken_port_is_refused(lab_hosts):
    h1, h2 = lab_hosts
    _cleanup(lab_hosts, name="portholder")
    _cleanup(lab_hosts)
    try:
        _start(h1, "--init", "-p", "18080:8080")
        docker(h2, "run", "-d", "--name", "portholder", "-p", "18080:80", IMAGE, "sleep", "600")
        p = _move(NAME)
        assert p.returncode == 1
        failed = events(p.stdout)[-1]
        assert failed["phase"] == "preflight" and "18080/tcp" in failed["cause"]
        assert "portholder" in failed["cause"]
        docker(h2, "rm", "-f", "portholder")
        before = heartbeats(h1, NAME)[-1][0]
        p = _move(NAME)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr
        assert _counter_continues(h2, NAME, before)
        assert docker(h2, "port", NAME, "8080/tcp").startswith("0.0.0.0:18080")
        assert docker(h2, "inspect", "-f", "{{.HostConfig.Init}}", NAME) == "true"
    finally:
        _cleanup(lab_hosts, name="portholder")
        _cleanup(lab_hosts)


def test_a_user_network_with_an_alias_and_a_static_address_moves(lab_hosts):
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    for h in lab_hosts:
        docker(h, "network", "rm", "settingsnet", check=False)
        docker(h, "network", "create", "--subnet", "172.31.77.0/24", "settingsnet")
    try:
        _start(h1, "--network", "settingsnet", "--network-alias", "probe-alias",
               "--ip", "172.31.77.20", "--memory", "256m", "--cpus", "1",
               "--ulimit", "nofile=2048:4096", "--read-only", "--tmpfs", "/run")
        before = heartbeats(h1, NAME)[-1][0]
        p = _move(NAME)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr
        assert _counter_continues(h2, NAME, before)
        fmt = ("{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} "
               "{{join $v.Aliases \",\"}}{{end}}")
        net = docker(h2, "inspect", "-f", fmt, NAME)
        assert net.startswith("settingsnet 172.31.77.20 ") and "probe-alias" in net
        limits = docker(h2, "inspect", "-f",
                        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} "
                        "{{.HostConfig.ReadonlyRootfs}} {{range .HostConfig.Ulimits}}{{.Name}}="
                        "{{.Soft}}:{{.Hard}}{{end}}", NAME)
        assert limits == f"{256 * 2**20} {10**9} true nofile=2048:4096"
    finally:
        _cleanup(lab_hosts)
        for h in lab_hosts:
            docker(h, "network", "rm", "settingsnet", check=False)


def test_check_says_what_each_setting_gets_and_verify_waits_for_the_health_check(lab_hosts):
    """A Compose service's container with a restart policy and a health check: `ferryman
    check --container` names what happens to each setting; the move waits for the twin's
    first health verdict (the first probe comes 2 s after the restore: a verify that did not
    wait would end while the twin is still "starting"), and the labels come along."""
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1, "--restart", "unless-stopped", "--label", "com.docker.compose.project=shop",
               "--label", "com.docker.compose.service=probe", "--health-cmd", "test -d /proc/1",
               "--health-interval", "2s", "--health-timeout", "2s", "--health-retries", "2")
        deadline = time.time() + 20
        while time.time() < deadline and docker(
            h1, "inspect", "-f", "{{.State.Health.Status}}", NAME
        ) != "healthy":
            time.sleep(0.3)
        c = ferryman("check", "--container", NAME, "--to", "host2")
        assert c.returncode == 0, c.stdout + c.stderr
        lines = {ln.split()[2]: ln for ln in c.stdout.splitlines() if ln.startswith("PASS  host1 ")}
        assert "restart policy unless-stopped: suspended on host1" in lines["restart"]
        assert "verify waits up to 18 s for the twin's first verdict" in lines["health"]
        assert "Compose project shop: its labels are kept" in lines["compose"]
        assert c.stdout.rstrip().endswith(f"{NAME} host1 → host2: nothing refuses the move")
        before = heartbeats(h1, NAME)[-1][0]
        t0 = time.time()
        p = _move(NAME)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr
        evs = events(p.stdout)
        assert any(e["kind"] == "log" and f"{NAME} runs on host2 (healthy)" in e["text"]
                   for e in evs), [e.get("text") for e in evs if e["kind"] == "log"][-10:]
        assert docker(h2, "inspect", "-f", "{{.State.Health.Status}}", NAME) == "healthy"
        assert _starts_since(h1, NAME, t0) == 0 and not exists(h1, NAME)
        assert _counter_continues(h2, NAME, before)
        labels = docker(h2, "inspect", "-f",
                        '{{index .Config.Labels "com.docker.compose.project"}} '
                        '{{index .Config.Labels "com.docker.compose.service"}}', NAME)
        assert labels == "shop probe"
        assert docker(h2, "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", NAME) == (
            "unless-stopped"
        )
    finally:
        _cleanup(lab_hosts)


def test_an_engine_remapping_user_namespaces_is_refused_as_a_target(lab_hosts):
    """host2's dockerd restarted with `--userns-remap default` (a real engine in that
    mode: dockerd makes its dockremap user and subordinate ranges): `check` names the
    mode, and a move there is refused in preflight with the container left running."""
    import shutil
    import subprocess
    from pathlib import Path

    from lab import engine

    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    # The remapped root must be able to walk down to its own data root.
    dirs = [h2.data_root, h2.data_root.parent, h2.data_root.parent.parent]
    modes = {d: d.stat().st_mode & 0o7777 for d in dirs}
    had_user = "dockremap:" in Path("/etc/passwd").read_text()
    try:
        _start(h1)
        engine.stop(h2)
        for d in dirs:
            d.chmod(modes[d] | 0o001)
        engine.start(h2, extra=("--userns-remap", "default"))
        info = docker(h2, "info", "-f", "{{json .SecurityOptions}}")
        assert "name=userns" in info, info
        c = ferryman("check", "host2")
        mode = [ln for ln in c.stdout.splitlines() if " engine-mode " in ln]
        assert mode and mode[0].startswith("FAIL  host2") and "userns-remap" in mode[0], c.stdout
        t0 = time.time()
        p = _move(NAME)
        assert p.returncode == 1
        failed = events(p.stdout)[-1]
        assert failed["phase"] == "preflight" and "remaps user namespaces" in failed["cause"]
        assert running(h1, NAME) and _starts_since(h1, NAME, t0) == 0
    finally:
        engine.stop(h2)
        for d in dirs:
            d.chmod(modes[d])
        for remapped in h2.data_root.glob("*.*"):  # dockerd's <uid>.<gid> data root
            if remapped.is_dir() and remapped.name.replace(".", "").isdigit():
                shutil.rmtree(remapped, ignore_errors=True)
        if not had_user:
            subprocess.run(["userdel", "dockremap"], capture_output=True)
        engine.start(h2)
        _cleanup(lab_hosts)


def _root_has_cap_sys_resource() -> bool:
    from pathlib import Path

    bnd = next(ln for ln in Path("/proc/self/status").read_text().splitlines()
               if ln.startswith("CapBnd:"))  # fmt: skip
    return bool(int(bnd.split()[1], 16) & (1 << 24))


def test_a_process_of_another_user_is_refused_where_root_lacks_cap_sys_resource(lab_hosts):
    """CRIU reads each task's rlimits; for another user's task that needs CAP_SYS_RESOURCE.
    Where root lacks it (this machine), preflight refuses the move before the freeze;
    where root has it, the container moves."""
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1, "--user", "1000")
        before = heartbeats(h1, NAME)[-1][0]
        p = _move(NAME)
        if _root_has_cap_sys_resource():
            assert p.returncode == 0, p.stdout[-3000:]
            assert _counter_continues(h2, NAME, before)
        else:
            assert p.returncode == 1
            failed = events(p.stdout)[-1]
            assert failed["phase"] == "preflight", failed
            assert "uid 1000" in failed["cause"] and "CAP_SYS_RESOURCE" in failed["cause"]
            assert running(h1, NAME) and not exists(h2, NAME)
    finally:
        _cleanup(lab_hosts)


@pytest.mark.parametrize(
    ("run_args", "said"),
    [
        (("--network", "host"), "--network host"),
        (("--pid", "host"), "--pid host"),
        (("--ipc", "host"), "--ipc host"),
        (("--device", "/dev/null:/dev/xnull"), "host devices (/dev/null)"),
        (("-t",), "terminal"),
    ],
)
def test_settings_that_cannot_move_are_refused_in_preflight_with_the_reason(
    lab_hosts, run_args, said
):
    h1, h2 = lab_hosts
    _cleanup(lab_hosts)
    try:
        _start(h1, *run_args)
        p = _move(NAME)
        assert p.returncode == 1, p.stdout[-2000:]
        failed = events(p.stdout)[-1]
        assert failed["phase"] == "preflight" and said in failed["cause"], failed["cause"]
        assert running(h1, NAME) and not exists(h2, NAME)
    finally:
        _cleanup(lab_hosts)
