"""What a watched client saw: the longest wait between its answers (core/client_view.py)."""

from __future__ import annotations

from core.client_view import epoch, parse_target, view

T0 = epoch("2026-12-01T19:00:00.000000000Z")
assert T0 is not None


def stamp(dt: float) -> str:
    import datetime as d

    t = d.datetime.fromtimestamp(T0 + dt, tz=d.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}123Z"


def log(*lines: tuple[float, str]) -> str:
    return "\n".join(f"{stamp(dt)} {text}" for dt, text in lines) + "\n"


def test_dockerds_nanosecond_times_are_read():
    assert epoch("2026-12-01T19:00:01.500000000Z") == T0 + 1.5
    assert epoch("not a time") is None


def test_the_longest_wait_spans_the_freeze_and_failures_are_not_answers():
    text = log(
        (-2.0, "ok 1 host1:80 1"),
        (0.5, "ok 2 host1:80 2"),
        (1.0, "ok 3 host1:80 3"),
        (2.0, "fail host1:80,host2:80 connection refused"),
        (3.2, "ok 4 host2:80 4"),
        (3.4, "ok 5 host2:80 5"),
    )
    v = view("writer", "host1", text, T0, T0 + 4.0)
    assert v is not None
    assert round(v.longest_wait_s, 3) == 2.2  # from the answer at 1.0 to the one at 3.2
    assert (round(v.wait_from - T0, 3), round(v.wait_to - T0, 3)) == (1.0, 3.2)
    assert (v.answers, v.failures) == (4, 1)
    assert v.last_failure.startswith("fail host1:80")
    assert "waited at most 2.20 s" in v.text() and "1 failure(s)" in v.text()


def test_a_client_answered_no_more_waits_until_the_end_of_the_move():
    v = view("c", "h", log((-1.0, "ok"), (0.2, "ok")), T0, T0 + 5.0)
    assert v is not None and round(v.longest_wait_s, 3) == 4.8
    silent = view("c", "h", log((-1.0, "ok")), T0, T0 + 5.0)
    assert silent is not None and silent.answers == 0 and "no answer since" in silent.text()
    assert view("c", "h", "", T0, T0 + 5.0) is None


def test_the_watched_host_defaults_to_the_source():
    assert parse_target("writer", "host1") == ("writer", "host1")
    assert parse_target("writer@host3", "host1") == ("writer", "host3")
