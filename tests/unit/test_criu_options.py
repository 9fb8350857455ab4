from __future__ import annotations

import pytest

from core.engine import criu_options as co
from core.engine.checkpoint import checkpoint_cmd
from core.engine.restore import criu_conf


def test_known_options_go_to_the_dump_and_the_restore_config():
    opts = ("--tcp-established", "--ext-mount-map auto", "--manage-cgroups=ignore")
    assert co.dump_flags(opts) == ["--tcp-established"]
    assert co.config_lines(opts) == ("tcp-established", "ext-mount-map auto", "manage-cgroups ignore")
    argv = checkpoint_cmd(runc_root="/r", container_id="c", image_path="/i", work_path="/w",
                          extra_flags=tuple(co.dump_flags(opts)))
    assert argv.count("--tcp-established") == 1 and argv[-1] == "c"
    conf = criu_conf("/img", "/work", co.config_lines(opts))
    assert conf.splitlines()[-3:] == ["tcp-established", "ext-mount-map auto", "manage-cgroups ignore"]


@pytest.mark.parametrize("bad", [
    "tcp-established",                    # no dashes
    "--exec-cmd",                         # not a known option
    "--ext-mount-map auto\nexec-cmd x",   # a newline would smuggle a second option
    "--ext-mount-map $(id)",              # shell syntax
    "--ghost-limit 1M; rm -rf /",
])
def test_other_options_are_refused(bad):
    with pytest.raises(co.OptionError):
        co.validate((bad,))


def test_the_doctor_retry_adds_a_criu_option_once():
    from core.models import MigrationRequest
    from tui.screens.doctor import apply_option

    req = MigrationRequest("web", "h1", "h2")
    again, meaning = apply_option(req, "--tcp-established")
    assert again.criu_options == ("--tcp-established",) and "CRIU option" in meaning
    same, meaning = apply_option(again, "--tcp-established")
    assert same.criu_options == ("--tcp-established",) and "already" in meaning
