from __future__ import annotations

import pytest

from core.config import ConfigError, load


def write(tmp_path, text: str):
    p = tmp_path / "hosts.yaml"
    p.write_text(text)
    return p


def err(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, text))
    return str(e.value)


def test_a_good_file_loads_with_defaults(tmp_path):
    inv = load(
        write(
            tmp_path,
            "hosts:\n  - name: a\n    address: 10.0.0.1\n    key: ~/k\n"
            "  - name: b\n    address: b.example\n    port: 2222\n    labels: {rack: 3}\n",
        )
    )
    a, b = inv.hosts
    assert a.port is None and a.docker_socket == "/var/run/docker.sock"
    assert a.runc_root == "/var/run/docker/runtime-runc/moby"
    assert not a.key.startswith("~")
    assert b.port == 2222 and b.labels == {"rack": "3"}
    assert inv.get("b") is b
    with pytest.raises(ConfigError, match="hosts: a, b"):
        inv.get("c")


def test_unknown_key_names_line_and_suggests(tmp_path):
    m = err(tmp_path, "hosts:\n  - name: a\n    address: x\n    prot: 22\n")
    assert ":4: unknown key 'prot'" in m and "did you mean 'port'" in m


def test_wrong_type_names_line_and_key(tmp_path):
    m = err(tmp_path, "hosts:\n  - name: a\n    address: x\n    port: twenty\n")
    assert ":4: 'port' must be int" in m


def test_boolean_is_not_a_port(tmp_path):
    assert "'port' must be int" in err(
        tmp_path, "hosts:\n  - name: a\n    address: x\n    port: yes\n"
    )


def test_duplicate_names_and_keys(tmp_path):
    m = err(tmp_path, "hosts:\n  - name: a\n    address: x\n  - name: a\n    address: y\n")
    assert ":4: host name 'a' used twice (first at line 2)" in m
    m = err(tmp_path, "hosts:\n  - name: a\n    address: x\n    address: y\n")
    assert ":4:" in m and "'address' given twice" in m


def test_missing_required_key(tmp_path):
    assert "missing 'address'" in err(tmp_path, "hosts:\n  - name: a\n")


def test_yaml_aliases_are_refused(tmp_path):
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nhosts: *b\n"
    assert "aliases" in err(tmp_path, bomb)


def test_python_tags_do_not_run(tmp_path):
    m = err(
        tmp_path,
        "hosts:\n  - name: !!python/object/apply:os.system ['echo pwned']\n    address: x\n",
    )
    assert "hosts.yaml:2: 'name'" in m and "could not determine a constructor" in m


def test_huge_file_is_refused_before_parsing(tmp_path):
    p = tmp_path / "hosts.yaml"
    p.write_text("# " + "x" * (2 << 20))
    with pytest.raises(ConfigError, match="too big"):
        load(p)


def test_relative_socket_path_and_bad_port_and_bad_name(tmp_path):
    assert "absolute path" in err(
        tmp_path, "hosts:\n  - name: a\n    address: x\n    docker_socket: run/d.sock\n"
    )
    assert "not a TCP port" in err(
        tmp_path, "hosts:\n  - name: a\n    address: x\n    port: 70000\n"
    )
    assert "letters, digits" in err(tmp_path, "hosts:\n  - name: 'a b;rm'\n    address: x\n")


def test_not_yaml_and_empty(tmp_path):
    assert "not valid YAML" in err(tmp_path, "hosts: [\n")
    assert "empty" in err(tmp_path, "")
    assert "unknown key 'host'" in err(tmp_path, "host:\n  - name: a\n")


def test_the_example_file_loads():
    from pathlib import Path

    inv = load(Path(__file__).parents[2] / "hosts.example.yaml")
    assert [h.name for h in inv.hosts] == ["web1", "web2"]


def test_a_value_with_a_line_break_is_refused(tmp_path):
    """A newline in images_dir would become extra lines of CRIU's config (an
    action-script runs as root)."""
    p = tmp_path / "hosts.yaml"
    p.write_text(
        'hosts:\n- name: a\n  address: 10.0.0.1\n  images_dir: "/srv/img\\naction-script /tmp/x"\n'
    )
    with pytest.raises(ConfigError, match=r"hosts.yaml:4: 'images_dir' holds a line break"):
        load(p)


def test_hosts_given_twice_is_refused(tmp_path):
    p = tmp_path / "hosts.yaml"
    p.write_text("hosts:\n- name: a\n  address: 10.0.0.1\nhosts:\n- name: b\n  address: 10.0.0.2\n")
    with pytest.raises(ConfigError, match=r"hosts.yaml:4: `hosts:` given twice"):
        load(p)


def test_a_hashed_known_hosts_line_is_recognised(tmp_path):
    """Debian hashes known_hosts: a host found only there has a key on file, so a new key
    is a CHANGED key, not an unknown one."""
    import base64
    import hashlib
    import hmac

    from core.ssh import _known_hosts_has

    salt = b"0123456789abcdefghij"
    mac = hmac.new(salt, b"[10.77.0.11]:2222", hashlib.sha1).digest()
    line = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()} ssh-ed25519 AAAA\n"
    kh = tmp_path / "known_hosts"
    kh.write_text("# comment\n" + line)
    assert _known_hosts_has(str(kh), "10.77.0.11", 2222)
    assert not _known_hosts_has(str(kh), "10.77.0.12", 2222)
    assert not _known_hosts_has(str(kh), "10.77.0.11", 22)


def test_connect_timeout_is_seconds_within_bounds(tmp_path):
    inv = load(write(tmp_path, "hosts:\n  - name: a\n    address: x\n    connect_timeout: 30\n"
                                "  - name: b\n    address: y\n"))  # fmt: skip
    assert [h.connect_timeout for h in inv.hosts] == [30, 5.0]
    for bad in ("0", "-1", "301"):
        m = err(tmp_path, f"hosts:\n  - name: a\n    address: x\n    connect_timeout: {bad}\n")
        assert ":2: connect_timeout" in m and "at most 300" in m, m
    assert "'connect_timeout' must be int or float" in err(
        tmp_path, "hosts:\n  - name: a\n    address: x\n    connect_timeout: soon\n"
    )


async def test_a_host_that_never_logs_in_is_unreachable_after_its_connect_timeout(tmp_path):
    """A TCP port that accepts and never speaks SSH (a host too busy to answer looks so):
    asyncssh gives up after the host's connect_timeout, and the error says which to raise."""
    import asyncio
    import time

    from core.models import HostState
    from core.ssh import HostConnection, HostError

    held = []

    async def silent(reader, writer):
        held.append(writer)  # keep it open, say nothing

    (tmp_path / "kh").write_text("")
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inv = load(write(tmp_path, f"hosts:\n  - name: slow\n    address: 127.0.0.1\n    port: {port}\n"
                                f"    known_hosts: {tmp_path}/kh\n    connect_timeout: 1\n"))  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(HostError) as e:
        await HostConnection(inv.hosts[0]).connect()
    took = time.monotonic() - t0
    server.close()
    assert e.value.state == HostState.UNREACHABLE
    assert "within 1 s" in str(e.value) and "connect_timeout" in str(e.value)
    assert 0.9 < took < 4, took
