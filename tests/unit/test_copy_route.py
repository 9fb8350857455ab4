"""The copy route: restores on hosts whose CRIU (< 4.2) cannot read the image folder in
place (core/engine/restore.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core.engine import restore


@pytest.mark.parametrize(
    ("version", "in_place"),
    [
        ("4.2.1", True),
        ("4.2", True),
        ("5.0", True),
        ("4.1.1", False),
        ("3.17.1", False),
        ("3.17", False),
        ("", True),
    ],
)
def test_which_criu_reads_the_images_in_place(version, in_place):
    assert restore.reads_in_place(version) is in_place


def test_the_copy_route_file_names_no_images_folder():
    on = restore.criu_conf("/img", "/work", ("cgroup-root /docker/x",))
    off = restore.criu_conf("/img", "/work", ("cgroup-root /docker/x",), in_place=False)
    assert "images-dir /img\n" in on
    assert "images-dir" not in off
    assert off.splitlines()[0] == "work-dir /work"
    assert "cgroup-root /docker/x" in off.splitlines()


def test_the_restore_script_copies_the_image_only_on_the_copy_route():
    kw = dict(
        docker_socket="/run/d.sock",
        data_root="/var/lib/docker",
        container_id="abc",
        name="fm-1",
        images_dir="/srv/m/img",
        work_dir="/srv/m/work",
    )
    tiny = restore.restore_script(**kw)
    whole = restore.restore_script(**kw, copy_images=True)
    assert "descriptors.json" in tiny and "copy_image" not in tiny
    assert "copy_image" in whole and "images-dir /srv/m/img" not in whole
    assert "images-dir /srv/m/img" in tiny
    subprocess.run(["bash", "-n", "-c", whole], check=True)


def _tree(root):
    out = {}
    for d, _dirs, files in os.walk(root):
        for f in files + [x for x in _dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)
            islink = os.path.islink(p)
            out[rel] = ("->" + os.readlink(p)) if islink else Path(p).read_text()
    return out


def test_a_pre_copy_chain_lands_inside_the_folder_with_its_links_working(tmp_path):
    mig = tmp_path / "mig"
    for n in (1, 2):
        r = mig / f"pre{n}"
        r.mkdir(parents=True)
        (r / "pages-1.img").write_text(f"round {n}")
        if n > 1:
            (r / "parent").symlink_to(f"../pre{n - 1}")
    (mig / "prework1").mkdir()  # a round's work folder: not part of the image
    (mig / "prework1" / "dump.log").write_text("log")
    img = mig / "img"
    img.mkdir()
    (img / "pages-1.img").write_text("final")
    (img / "descriptors.json").write_text("[]")
    (img / "parent").symlink_to("../pre2")
    folder = tmp_path / "docker" / "checkpoints" / "fm-1"
    folder.mkdir(parents=True)
    subprocess.run(restore.copy_image_cmd(str(img), str(folder)), check=True)
    t = _tree(folder)
    assert t["pages-1.img"] == "final" and t["descriptors.json"] == "[]"
    assert t["parent"] == "->pre/pre2"
    assert t["pre/pre2/parent"] == "->../pre1"
    assert not any("prework" in k for k in t)
    # Docker copies the folder as a tar: the links must resolve inside it
    copy = tmp_path / "copy"
    copy.mkdir()
    subprocess.run(
        f"tar -C {folder} -c . | tar -C {copy} -x", shell=True, check=True
    )
    assert (copy / "parent" / "pages-1.img").read_text() == "round 2"
    assert (copy / "parent" / "parent" / "pages-1.img").read_text() == "round 1"
    # the originals are untouched
    assert os.readlink(img / "parent") == "../pre2"


def test_a_plain_image_is_copied_without_a_pre_folder(tmp_path):
    img = tmp_path / "img"
    img.mkdir()
    (img / "core-1.img").write_text("c")
    folder = tmp_path / "f"
    folder.mkdir()
    subprocess.run(restore.copy_image_cmd(str(img), str(folder)), check=True)
    assert _tree(folder) == {"core-1.img": "c"}


def test_the_copy_costs_what_dockers_copy_was_measured_at():
    assert restore.copy_cost_s(64 * 2**20) == pytest.approx(1.6)
    assert restore.copy_cost_s(0) == 0
