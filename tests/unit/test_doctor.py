"""The restore doctor on real CRIU logs (see tests/data/criu-logs/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.doctor import (
    Diagnosis,
    Evidence,
    detect_kind,
    diagnose,
    error_lines,
    is_noise,
    load_log,
    render_text,
)

LOGS = Path(__file__).resolve().parent.parent / "data" / "criu-logs"


def log(name: str) -> str:
    return load_log(LOGS / name)


def line(name: str, no: int) -> str:
    return log(name).split("\n")[no - 1]


# (file, first diagnosis id, evidence line numbers, retry option, words the cause must name)
CASES = [
    ("restore-missing-file.log", "missing-file", [238, 239], "", ["/tmp/doctor/data/f.txt"]),
    ("restore-pid-in-use.log", "pid-in-use", [112], "", ["PID 8817"]),
    ("dump-rlimit-other-user.log", "rlimit-caps", [111], "", ["another user", "CAP_SYS_RESOURCE"]),
    ("restore-init-binary-changed.log", "file-changed", [111], "", ["/sbin/docker-init", "--init"]),
    ("issue-2383-pid-in-use-console.log", "pid-in-use", [2], "", ["PID 12"]),
    ("issue-113-thread-pid-mismatch.log", "pid-in-use", [1], "", ["PID 30", "31"]),
    ("restore-address-in-use.log", "address-in-use", [333, 334], "", ["127.0.0.1:47322"]),
    (
        "dump-tcp-established.log",
        "tcp-established",
        [111],
        "--tcp-established",
        ["established TCP connection"],
    ),
    ("cpuinfo-check-caps.log", "cpu-mismatch", [65], "--cpu-cap=fpu", ["CPU"]),
    ("cpuinfo-check-xsave.log", "cpu-mismatch", [65], "", ["2440/2432"]),
    ("restore-bad-magic.log", "criu-version", [110], "", ["core-8817.img"]),
    ("restore-image-version.log", "criu-version", [65], "", ["images version 9"]),
    ("issue-352-cgroup.log", "cgroup", [5], "--manage-cgroups=ignore", ["bad cgroup path"]),
    ("issue-24-cgroup-cpuset.log", "cgroup", [7, 8], "--manage-cgroups=ignore", ["cpuset"]),
    ("issue-111-seccomp.log", "seccomp", [7], "", ["sys_seccomp() returned -22"]),
    ("issue-25-seccomp-filter.log", "seccomp", [1], "", ["SECCOMP_MODE_FILTER"]),
    ("dump-no-space.log", "no-space", [111, 112, 127, 128, 129], "", ["No space left"]),
    ("page-server-no-space.log", "no-space", [74, 75], "", ["on the target"]),
    ("pre-dump-no-soft-dirty.log", "no-soft-dirty", [14, 111], "", ["soft-dirty"]),
    ("dump-track-mem.log", "no-soft-dirty", [14, 64], "", ["soft-dirty"]),
    ("check-all.log", "no-soft-dirty", [1], "", ["pre-copy"]),
    ("dump-lazy-pages-splice.log", "lazy-pages-broken", [111, 114], "", ["Bad file descriptor"]),
    ("restore-lazy-pages.log", "lazy-pages-broken", [111], "", ["lazy-pages daemon"]),
    ("issue-1172-check-tun-uffd.log", "no-uffd", [3], "", ["userfaultfd"]),
    ("dump-ptrace-busy.log", "ptrace", [147], "", ["PID 12136"]),
    ("issue-2724-restore-ptrace.log", "ptrace", [4], "", ["PID 507010"]),
    ("dump-external-unix.log", "external-unix", [110, 111], "", ["/tmp/doctor/u.sock"]),
    ("dump-unsupported-fd.log", "unsupported-file", [111], "", ["anon_inode:[perf_event]"]),
    ("dump-ghost-limit.log", "ghost-limit", [111], "--ghost-limit=4M", ["/tmp/doctor/ghost.bin"]),
    (
        "issue-172-proper-root-mount.log",
        "mount-root",
        [1],
        "--ext-mount-map auto",
        ["name=systemd"],
    ),
    ("issue-1511-proper-root-mount.log", "mount-root", [1], "--ext-mount-map auto", ["/etc/hosts"]),
    ("dump-page-server-broken-pipe.log", "page-server-lost", [111, 125], "", ["page server"]),
    ("lazy-pages-daemon.log", "page-server-lost", [78, 80], "", ["lazy-pages daemon"]),
]


@pytest.mark.parametrize(("name", "diag_id", "lines", "retry", "words"), CASES)
def test_pattern_recognized_on_real_log(name, diag_id, lines, retry, words):
    diags = diagnose(log(name))
    assert diags, name
    first = diags[0]
    assert first.id == diag_id
    assert [e.line_no for e in first.evidence] == lines
    assert first.retry_option == retry
    for word in words:
        assert word in first.cause
    assert first.title and first.fix
    # Evidence is the log line itself, nothing invented.
    for e in first.evidence:
        assert e.text == line(name, e.line_no)


def test_each_real_failure_gives_exactly_one_finding():
    # None of these logs has a second, unrelated problem: follow-up lines such as
    # "Restoring FAILED." or "Unable to open fd=3" must not add findings.
    for name, diag_id, *_ in CASES:
        assert [d.id for d in diagnose(log(name))] == [diag_id], name


def test_evidence_quotes_the_error_not_the_follow_up():
    diag = diagnose(log("restore-missing-file.log"))[0]
    assert "Can't open file tmp/doctor/data/f.txt on restore" in diag.evidence[0].text
    assert all("Restoring FAILED" not in e.text for e in diag.evidence)
    assert all("Unable to open fd" not in e.text for e in diag.evidence)


def test_address_in_use_names_port_in_fix():
    diag = diagnose(log("restore-address-in-use.log"))[0]
    assert "sport = :47322" in diag.fix
    assert diag.evidence[0].text.endswith("port 47322 state TCP_LISTEN       src_addr 127.0.0.1")


def test_stream_unix_socket_is_not_sent_to_ext_unix_sk():
    # The peer is a stream socket: --ext-unix-sk would only fail later with
    # "Can't dump half of stream unix connection", so no retry option is offered.
    diag = diagnose(log("dump-external-unix.log"))[0]
    assert "Runaway socket" in diag.evidence[0].text
    assert "type    1" in diag.evidence[0].text
    assert diag.retry_option == ""
    assert "--ext-unix-sk" in diag.fix


def test_bug_at_mem_c_is_explained_with_dirty_tracking_line():
    diag = diagnose(log("pre-dump-no-soft-dirty.log"))[0]
    texts = [e.text for e in diag.evidence]
    assert texts[0].endswith("Dirty tracking support is OFF")
    assert texts[1].endswith("BUG at criu/mem.c:46")
    assert diag.evidence[1].severity == "bug"
    assert "stop-and-copy" in diag.fix


# ----------------------------------------------------------------------------- noise


def test_rlimit_noise_is_an_error_line_but_never_the_cause():
    text = log("restore-pid-in-use.log")
    rlimit = line("restore-pid-in-use.log", 64)
    assert "rlimit: Can't setup RLIMIT_NOFILE for self" in rlimit
    assert 64 in [e.line_no for e in error_lines(text)]
    assert is_noise(rlimit)
    for d in diagnose(text):
        assert 64 not in [e.line_no for e in d.evidence]
        assert "RLIMIT" not in d.cause


def test_successful_dump_with_noise_has_no_findings():
    text = log("dump-ok.log")
    marked = error_lines(text)
    assert [e.line_no for e in marked] == [67]  # only the rlimit line
    assert diagnose(text) == []


def test_tun_and_kdat_noise_in_check_output_are_not_causes():
    text = log("issue-1172-check-tun-uffd.log")
    diags = diagnose(text)
    assert [d.id for d in diags] == ["no-uffd"]
    quoted = {e.line_no for d in diags for e in d.evidence}
    assert 2 not in quoted  # tun: Unable to create tun
    assert 4 not in quoted  # Can't keep kdat cache on non-tempfs
    assert is_noise(line("issue-1172-check-tun-uffd.log", 2))
    assert is_noise(line("issue-1172-check-tun-uffd.log", 4))


def test_kdat_warning_on_the_terminal_is_noise():
    name = "issue-2383-pid-in-use-console.log"
    text = log(name)
    warn = [e for e in error_lines(text) if e.severity == "warning"]
    assert [e.line_no for e in warn] == [1]
    assert is_noise(warn[0].text)
    (diag,) = diagnose(text)
    assert [e.line_no for e in diag.evidence] == [2]


def test_clean_check_output_has_no_findings():
    assert diagnose(log("check.log")) == []


# ----------------------------------------------------------------------------- unknown / empty


def test_unknown_error_gives_generic_diagnosis():
    text = log("lazy-pages-daemon-short-read.log")
    diags = diagnose(text)
    assert len(diags) == 1
    generic = diags[0]
    assert generic.id == "unknown"
    assert [e.line_no for e in generic.evidence] == [70]
    assert "uffd: PID recv: short read" in generic.cause
    assert "line 70" in generic.fix
    assert generic.retry_option == ""


def test_generic_diagnosis_prefers_a_real_error_over_follow_ups():
    text = "\n".join(
        [
            "(00.000001) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
            "Operation not permitted",
            "(00.000002) Error (criu/cr-restore.c:2331): Restoring FAILED.",
        ]
    )
    # Only noise and a follow-up line: the follow-up is quoted, the noise never.
    (generic,) = diagnose(text)
    assert generic.id == "unknown"
    assert [e.line_no for e in generic.evidence] == [2]


def test_empty_log_gives_nothing():
    assert diagnose("") == []
    assert error_lines("") == []
    assert detect_kind("") == "unknown"


def test_warnings_alone_are_not_a_failure():
    # "Can't keep kdat cache" is a Warn CRIU prints on healthy hosts.
    warn_only = line("issue-1172-check-tun-uffd.log", 4) + "\n"
    assert [e.severity for e in error_lines(warn_only)] == ["warning"]
    assert diagnose(warn_only) == []


# ----------------------------------------------------------------------------- escapes


def test_escape_sequences_are_rendered_inert():
    name = "restore-missing-file-escape.log"
    raw = line(name, 314)
    assert "\x1b[2J" in raw and "\x07" in raw  # the real log carries them
    diag = diagnose(log(name))[0]
    assert diag.id == "missing-file"
    ev = diag.evidence[0]
    assert ev.line_no == 314
    assert "\x1b" not in ev.text and "\x07" not in ev.text
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07name.txt" in ev.text
    assert "\x1b" not in diag.cause and "\\x1b[2J" in diag.cause
    out = render_text([diag])
    assert "\x1b" not in out and "\x07" not in out
    assert all(ch == "\n" or ch == "\t" or ord(ch) >= 0x20 for ch in out)
    for e in error_lines(log(name)):
        assert "\x1b" not in e.text


def test_tabs_survive_and_other_controls_do_not():
    text = "(00.1) Error (criu/x.c:1): a\tb\x00c\x9bd\r\n"
    (ev,) = error_lines(text)
    assert ev.text == "(00.1) Error (criu/x.c:1): a\tb\\x00c\\x9bd"


def test_line_numbers_count_only_newlines():
    # \x1c and \u2028 are line breaks for str.splitlines(), not for CRIU or an editor.
    text = "a\x1cb\u2028c\n(00.1) Error (criu/x.c:1): boom\n"
    (ev,) = error_lines(text)
    assert ev.line_no == 2


# ----------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("dump-tcp-established.log", "dump"),
        ("dump-lazy-pages-splice.log", "dump"),
        ("dump-ok.log", "dump"),
        ("pre-dump-no-soft-dirty.log", "pre-dump"),
        ("restore-missing-file.log", "restore"),
        ("restore-lazy-pages.log", "restore"),
        ("issue-2383-pid-in-use-console.log", "restore"),
        ("page-server-no-space.log", "page-server"),
        ("lazy-pages-daemon.log", "lazy-pages"),
        ("lazy-pages-daemon-short-read.log", "lazy-pages"),
        ("check.log", "check"),
        ("check-all.log", "check"),
        ("issue-1172-check-tun-uffd.log", "check"),
        ("issue-352-cgroup.log", "unknown"),
    ],
)
def test_detect_kind(name, kind):
    assert detect_kind(log(name)) == kind


def test_kind_changes_the_wording():
    # The same ENOSPC reads differently on the page server (target) and in a local dump.
    ps = diagnose(log("page-server-no-space.log"))[0]
    local = diagnose(log("dump-no-space.log"))[0]
    assert "on the target" in ps.cause
    assert "on the target" not in local.cause


# ----------------------------------------------------------------------------- API


def test_error_lines_severity_and_order():
    marked = error_lines(log("dump-ptrace-busy.log"))
    assert [(e.line_no, e.severity) for e in marked] == [
        (67, "error"),
        (147, "warning"),
        (151, "error"),
        (152, "error"),
    ]
    assert isinstance(marked[0], Evidence)
    assert marked[0] == Evidence(67, line("dump-ptrace-busy.log", 67), "error")
    bug = error_lines(log("pre-dump-no-soft-dirty.log"))[-1]
    assert (bug.line_no, bug.severity) == (111, "bug")


def test_to_dict_is_json_ready():
    diag = diagnose(log("dump-tcp-established.log"))[0]
    data = json.loads(json.dumps(diag.to_dict()))
    assert data["id"] == "tcp-established"
    assert data["retry_option"] == "--tcp-established"
    assert data["evidence"] == [
        {"line_no": 111, "text": line("dump-tcp-established.log", 111), "severity": "error"}
    ]
    assert set(data) == {"id", "title", "cause", "fix", "retry_option", "evidence"}


def test_diagnosis_is_frozen():
    diag = diagnose(log("restore-pid-in-use.log"))[0]
    assert isinstance(diag, Diagnosis)
    with pytest.raises(AttributeError):
        diag.id = "x"  # type: ignore[misc]


def test_render_text():
    diags = diagnose(log("dump-tcp-established.log"))
    out = render_text(diags)
    assert out.startswith("1 finding, most likely cause first.")
    assert "1. The container has established TCP connections  [tcp-established]" in out
    assert "Retry with: --tcp-established" in out
    assert "line 111: (00.058953) Error (criu/sk-inet.c:200)" in out
    assert "Cause:" in out and "Fix:" in out
    assert "No known CRIU failure" in render_text([])


def test_render_text_numbers_several_findings_in_order():
    two = diagnose(log("restore-pid-in-use.log")) + diagnose(log("restore-missing-file.log"))
    out = render_text(two)
    assert out.startswith("2 findings")
    assert out.index("1. A PID") < out.index("2. A file the container had open")


def test_core_does_not_import_textual():
    source = (Path(__file__).resolve().parents[2] / "core" / "doctor.py").read_text()
    assert "import textual" not in source and "from textual" not in source


def test_a_single_file_bind_mount_under_mount_v2_is_named():
    """A real restore log: a container started with --init (docker-init bind-mounted)."""
    found = diagnose(log("restore-init-file-mount.log"))
    assert found[0].title == "CRIU's mount engine could not restore a bind mount of a single file"
    assert "mntns-compat-mode" in found[0].fix
