"""Commands are data: hostile names stay single words, whatever they contain."""

from __future__ import annotations

import subprocess

import pytest

from core import remote
from core.engine import restore

HOSTILE = [
    "a b",
    "it's",
    '"q"',
    "$(touch /tmp/pwned)",
    "`id`",
    "x\ny",
    "semi;colon",
    "-rf",
    "*",
    "$HOME",
]


def run_sh(script: str) -> list[str]:
    """What a POSIX shell makes of `script` when it prints each word on its own line."""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    return out.split("\0")[:-1]


@pytest.mark.parametrize("word", HOSTILE)
def test_quote_keeps_each_word_intact(word, tmp_path):
    argv = ["printf", "%s\\0", word, "second"]
    assert run_sh(remote.quote(argv)) == [word, "second"]
    assert not (tmp_path / "pwned").exists()


def test_quote_refuses_non_strings_and_nul():
    with pytest.raises(TypeError):
        remote.quote(["echo", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        remote.quote(["echo", "a\0b"])


def test_pipe_fails_when_a_stage_fails():
    r = subprocess.run(["bash", "-c", remote.pipe(["false"], ["cat"])])
    assert r.returncode != 0


def test_lock_and_memory_commands_pass_arguments_as_words(tmp_path):
    path = str(tmp_path / "locks" / "it's $(x)")
    subprocess.run(remote.take_lock(path, "owner `id`"), check=True)
    assert (tmp_path / "locks" / "it's $(x)" / "owner").read_text() == "owner `id`"
    assert subprocess.run(remote.take_lock(path, "again")).returncode != 0  # taken


def test_paths_exist_lists_the_missing(tmp_path):
    (tmp_path / "a b").mkdir()
    out = subprocess.run(
        remote.paths_exist([str(tmp_path / "a b"), str(tmp_path / "c;d")]),
        capture_output=True,
        text=True,
    ).stdout
    assert out.splitlines() == [str(tmp_path / "c;d")]


def test_restore_script_quotes_hostile_paths():
    s = restore.restore_script(
        docker_socket="/run/d d.sock",
        data_root="/var/lib/$(x)",
        container_id="abc",
        name="fm-1",
        images_dir="/img/it's",
        work_dir="/w`id`",
    )
    # bash can parse it, and the hostile parts only ever appear quoted
    subprocess.run(["bash", "-n", "-c", s], check=True)
    assert "$(x)" not in s.replace("'/var/lib/$(x)", "").replace("/var/lib/$(x)/containers", "")


def test_checkpoint_command_words():
    from core.engine.checkpoint import checkpoint_cmd

    argv = checkpoint_cmd(
        runc_root="/run/r",
        container_id="c1",
        image_path="/i",
        work_path="/w",
        systemd_cgroup=True,
        parent_path="../p1",
        pre_dump=True,
    )
    assert argv[:4] == ["runc", "--systemd-cgroup", "--root", "/run/r"]
    assert (
        argv[-1] == "c1"
        and "--pre-dump" in argv
        and argv[argv.index("--parent-path") + 1] == "../p1"
    )


def test_private_folders_are_private_with_their_parents(tmp_path):
    import os
    import subprocess

    from core import remote

    deep = tmp_path / "images" / "m-1 $(x)" / "img"
    subprocess.run(remote.quote(remote.mkdir_private(str(deep), str(tmp_path / "images" / "m-1 $(x)" / "work"))),
                   shell=True, check=True)
    for d in (tmp_path / "images", deep.parent, deep, deep.parent / "work"):
        assert os.stat(d).st_mode & 0o777 == 0o700, d


def test_tar_extract_missing_adds_only_missing_files_and_never_half_written_ones(tmp_path):
    """The rollback's copy-back: the source's own files win, missing ones come in whole;
    a stream cut off (a full disk) leaves nothing half-written in the folder."""
    import subprocess

    from core import remote

    src, dst = tmp_path / "target-img", tmp_path / "img"
    src.mkdir()
    dst.mkdir()
    (src / "core.img").write_text("target's copy")
    (src / "pages-1.img").write_bytes(b"p" * 300_000)
    (dst / "core.img").write_text("source's own")
    stream = subprocess.run(["tar", "-C", str(src), "-cf", "-", "."], capture_output=True).stdout

    cut = subprocess.run(remote.tar_extract_missing(str(dst)), input=stream[:150_000])
    assert cut.returncode != 0
    assert sorted(p.name for p in dst.iterdir()) == ["core.img"]  # no half pages file

    whole = subprocess.run(remote.tar_extract_missing(str(dst)), input=stream)
    assert whole.returncode == 0
    assert (dst / "core.img").read_text() == "source's own"
    assert (dst / "pages-1.img").read_bytes() == b"p" * 300_000
    assert not (tmp_path / "img.back").exists()
