"""The real-application lab image's pure parts: its version, command lines, clients."""

from __future__ import annotations

import io
import shlex
import sys

from lab import apps_image
from lab.apps import client


def test_version_is_a_stable_hash_of_the_packages_and_files(tmp_path):
    a, b = tmp_path / "a.sh", tmp_path / "b.py"
    a.write_text("echo one\n")
    b.write_text("print(1)\n")
    v = apps_image.version(["redis-server", "nginx"], [a, b])
    assert len(v) == 12 and int(v, 16) >= 0
    assert v == apps_image.version(["nginx", "redis-server"], [a, b])  # the set, not its order
    assert v != apps_image.version(["nginx"], [a, b])
    assert v != apps_image.version(["redis-server", "nginx", "curl"], [a, b])
    b.write_text("print(2)\n")
    assert v != apps_image.version(["redis-server", "nginx"], [a, b])


def test_the_default_version_covers_the_build_script_and_the_lab_files():
    v = apps_image.version()
    assert v == apps_image.version()
    assert apps_image.image_ref(v) == f"ferryman-lab/apps:{v}"
    assert str(apps_image.cache_path(v)) == f"/var/cache/ferryman/apps-{v}.tar"
    for f in apps_image.APP_FILES:
        assert (apps_image.APPS_DIR / f).is_file()
    assert apps_image.BUILD_SCRIPT.is_file()


def test_the_package_list():
    p = set(apps_image.PACKAGES)
    assert {"postgresql-15", "postgresql-client-15", "redis-server", "nginx",
            "openjdk-17-jre-headless", "python3", "busybox", "curl"} <= p
    assert not any(x.startswith("openjdk-17-jdk") for x in p)  # javac runs here, not there


def test_import_arguments_read_the_tar_from_stdin():
    args = apps_image.import_args("ferryman-lab/apps:abc")
    assert args[0] == "import" and args[-2:] == ["-", "ferryman-lab/apps:abc"]
    changes = [args[i + 1] for i, a in enumerate(args) if a == "--change"]
    assert 'CMD ["/bin/sh"]' in changes


def test_an_ssh_prefix_gets_the_arguments_quoted_once():
    args = apps_image.import_args("ferryman-lab/apps:abc")
    argv = apps_image._argv(["ssh", "root@h", "docker -H unix:///run/docker.sock"], args, True)
    assert argv[:3] == ["ssh", "root@h", "docker -H unix:///run/docker.sock"]
    assert shlex.split(argv[3]) == args
    assert apps_image._argv(["docker", "-H", "unix:///s"], args, False) == [
        "docker", "-H", "unix:///s", *args]


def test_start_commands_are_pid_1_commands_and_run_as_root_where_the_app_allows():
    apps = apps_image.APPS
    assert set(apps) == {"redis", "nginx", "jvm", "python", "postgres"}
    redis = apps["redis"].command
    assert redis[0] == "redis-server" and redis[redis.index("--save") + 1] == ""
    assert redis[redis.index("--dir") + 1] == apps["redis"].data_dir == "/data"
    assert apps["nginx"].command == ("nginx", "-g", "daemon off;")
    assert apps["jvm"].command[0] == "java" and apps["jvm"].command[-2:] == ("Counter", "8080")
    assert apps["python"].command[:2] == ("python3", "/opt/ferryman/counter_service.py")
    assert apps["postgres"].command == ("/opt/ferryman/pg-start.sh",)
    assert {n for n, a in apps.items() if a.user == "root"} == {"redis", "nginx", "jvm", "python"}
    assert apps["postgres"].user == "postgres" and not apps["postgres"].namespace_lab
    assert all(a.namespace_lab for n, a in apps.items() if n != "postgres")
    assert "CAP_SYS_RESOURCE" in apps_image.CAP_SYS_RESOURCE_REASON


def test_nginx_runs_its_workers_as_root_and_stays_in_the_foreground_by_its_command():
    conf = (apps_image.APPS_DIR / "nginx.conf").read_text()
    lines = [ln.strip() for ln in conf.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert "user root;" in lines
    assert not [ln for ln in lines if ln.startswith("daemon")]  # -g 'daemon off;' says it


def test_postgres_start_script_drops_to_the_postgres_user():
    script = (apps_image.APPS_DIR / "pg-start.sh").read_text()
    last = [ln for ln in script.splitlines() if ln.startswith("exec ")][-1]
    assert last.startswith("exec setpriv --reuid=postgres --regid=postgres --init-groups")
    assert '"$BIN/postgres" -D "$PGDATA"' in last


def test_run_arguments_have_a_users_defaults():
    image = "ferryman-lab/apps:abc"
    args = apps_image.APPS["redis"].run_args(image, "r", 16379, volume="rv")
    assert args[:4] == ["run", "-d", "--name", "r"]
    assert args[args.index("--restart") + 1] == "unless-stopped"
    assert args[args.index("-p") + 1] == "16379:6379"
    assert args[args.index("-v") + 1] == "rv:/data"
    i = args.index(image)
    assert tuple(args[i + 1:]) == apps_image.APPS["redis"].command
    jvm = apps_image.APPS["jvm"].run_args(image, "j", 18081)
    assert "-v" not in jvm and jvm[jvm.index("-p") + 1] == "18081:8080"
    named = apps_image.APPS["nginx"].run_args(image, "n", 1, extra=["--label", "x=y"])
    assert named[named.index("-v") + 1] == "n-data:/usr/share/nginx/html"
    assert named.index("--label") < named.index(image)


def test_client_command():
    assert apps_image.client_command("http", "0.2", "http://a/") == [
        "python3", "/opt/ferryman/client.py", "http", "0.2", "http://a/"]


def test_import_image_imports_the_cached_tar_only_when_the_engine_lacks_it(tmp_path):
    v = apps_image.version()
    apps_image.cache_path(v, tmp_path).write_bytes(b"not really a tar")
    record = tmp_path / "calls"
    fake = tmp_path / "fake_docker.py"
    fake.write_text(
        "import os, sys\n"
        f"rec = open({str(record)!r}, 'a')\n"
        "args = sys.argv[1:]\n"
        "data = sys.stdin.buffer.read() if args[0] == 'import' else b''\n"
        "rec.write(repr((args, data)) + '\\n')\n"
        f"have = os.path.exists({str(tmp_path / 'have')!r})\n"
        "if have: print('sha256:1')\n"
        "sys.exit(0 if args[0] == 'import' or have else 1)\n"
    )
    prefix = [sys.executable, str(fake)]
    ref = apps_image.import_image(prefix, cache_dir=tmp_path, log=lambda _m: None)
    assert ref == apps_image.image_ref(v)
    calls = [eval(ln) for ln in record.read_text().splitlines()]  # noqa: S307 - our own file
    assert calls[0][0] == ["image", "inspect", "-f", "{{.Id}}", ref]
    assert calls[1] == (apps_image.import_args(ref), b"not really a tar")
    assert len(calls) == 2
    (tmp_path / "have").touch()
    record.unlink()
    apps_image.import_image(prefix, cache_dir=tmp_path, log=lambda _m: None)
    assert [eval(ln)[0][0] for ln in record.read_text().splitlines()] == ["image"]  # noqa: S307


def test_redis_values_are_deterministic_and_sized():
    assert client.redis_value(7, 256) == client.redis_value(7, 256)
    assert len(client.redis_value(7, 256)) == 256 and len(client.redis_value(7, 10)) == 10
    assert client.redis_value(7, 64) != client.redis_value(8, 64)


def test_resp_encoding_and_replies():
    assert client.resp("SET", "k", "v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert client.resp("SET", "k", "") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    r = io.BytesIO(b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n:1\r\n$1\r\nx\r\n-ERR no\r\n")
    assert client.read_reply(r) == "OK"
    assert client.read_reply(r) == 42
    assert client.read_reply(r) == "hello"
    assert client.read_reply(r) is None
    assert client.read_reply(r) == [1, "x"]
    try:
        client.read_reply(r)
    except client.RespError as e:
        assert str(e) == "ERR no"
    else:
        raise AssertionError("an error reply raises")


def test_redis_load_writes_one_set_per_key(capsysbinary):
    client.redis_load(3, 8)
    out = capsysbinary.readouterr().out
    r = io.BytesIO(out)
    cmds = []
    while r.tell() < len(out):
        args = []
        for _ in range(int(r.readline()[1:-2])):  # *<count>
            r.readline()  # $<length>
            args.append(r.readline()[:-2].decode())
        cmds.append(args)
    assert cmds == [["SET", f"key:{i}", client.redis_value(i, 8)] for i in range(3)]


def test_writer_output_lines():
    text = ("ok 12 10.77.0.11:16379 1700000000000000000\n"
            "fail 10.77.0.11:16379,10.77.0.12:16379 a:ConnectionRefusedError\n"
            "ok 13 10.77.0.12:16379 1700000000500000000\n")
    assert client.parse_lines(text) == [
        ("12", "10.77.0.11:16379", "1700000000000000000"),
        ("13", "10.77.0.12:16379", "1700000000500000000"),
    ]


def test_the_writer_tries_the_next_endpoint(capsys, monkeypatch):
    seen = []

    def once(e):
        seen.append(e)
        if e == "down":
            raise ConnectionRefusedError
        return 5

    monkeypatch.setattr(client.time, "sleep", lambda _s: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        client.loop(0.1, ["down", "up"], once)
    except KeyboardInterrupt:
        pass
    assert seen == ["down", "up"]
    line = capsys.readouterr().out.split()
    assert line[:3] == ["ok", "5", "up"]


FAKE_ENGINE = """\
import os, sys, uuid
state, args = sys.argv[1], sys.argv[2:]
path = os.path.join(state, "id")
have = open(path).read() if os.path.exists(path) else None
open(os.path.join(state, "calls"), "a").write(" ".join(args[:2]) + "\\n")
if args[:2] == ["image", "inspect"]:
    if have is None:
        sys.exit(1)
    print(have)
elif args[0] == "import":
    sys.stdin.buffer.read()
    open(path, "w").write("sha256:" + uuid.uuid4().hex)  # a new id each import
elif args[0] == "save":
    sys.stdout.write(have)
elif args[0] == "load":
    open(path, "w").write(sys.stdin.read())
"""


def test_install_gives_every_engine_the_same_image_id(tmp_path):
    apps_image.cache_path(apps_image.version(), tmp_path).write_bytes(b"tar")
    fake = tmp_path / "engine.py"
    fake.write_text(FAKE_ENGINE)
    engines = []
    for n in ("h1", "h2", "h3"):
        (tmp_path / n).mkdir()
        engines.append([sys.executable, str(fake), str(tmp_path / n)])
    (tmp_path / "h3" / "id").write_text("sha256:stale")  # another import's id: replaced
    ref = apps_image.install(engines, cache_dir=tmp_path, log=lambda _m: None)
    assert ref == apps_image.image_ref()
    ids = {(tmp_path / n / "id").read_text() for n in ("h1", "h2", "h3")}
    assert len(ids) == 1 and ids != {"sha256:stale"}
    calls = lambda n: (tmp_path / n / "calls").read_text().split("\n")  # noqa: E731
    assert any(c.startswith("import") for c in calls("h1"))
    assert not any(c.startswith("import") for c in calls("h2") + calls("h3"))
    assert any(c.startswith("load") for c in calls("h2")) and any(
        c.startswith("load") for c in calls("h3"))
    # A second time: everything is there, nothing is imported or copied.
    for n in ("h1", "h2", "h3"):
        (tmp_path / n / "calls").unlink()
    apps_image.install(engines, cache_dir=tmp_path, log=lambda _m: None)
    for n in ("h1", "h2", "h3"):
        assert {c for c in calls(n) if c} == {"image inspect"}
