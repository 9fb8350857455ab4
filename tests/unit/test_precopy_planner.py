"""The pre-copy planner: switchover by downtime budget, convergence, caps, strategy choice.

Most scenarios use a 100 MB/s link (1e8 bytes/s) and 4 KiB pages, with a workload that
dirties a fixed number of pages per second; each round's transfer takes
pages × 4096 / 1e8 seconds, and its duration equals its transfer time unless a test says
otherwise. The expected figures below were worked out by hand from the estimator in the
module docstring.
"""

from __future__ import annotations

import math

import pytest

from core.engine.planner import (
    Decision,
    PlannerSettings,
    PrecopyPlanner,
    RoundStats,
    choose_strategy,
    throttle_schedule,
)

BW = 1e8  # bytes per second
PAGE = 4096


def rnd(
    index: int,
    written: int,
    *,
    bandwidth: float = BW,
    transfer_s: float | None = None,
    duration_s: float | None = None,
    frozen_s: float = 0.0,
    gap_s: float = 0.0,
    scanned: int = 30_000,
    transfer_bytes: int | None = None,
) -> RoundStats:
    moved = written * PAGE if transfer_bytes is None else transfer_bytes
    t = moved / bandwidth if transfer_s is None else transfer_s
    return RoundStats(
        index=index,
        pages_scanned=scanned,
        pages_skipped_parent=max(0, scanned - written),
        pages_written=written,
        duration_s=t if duration_s is None else duration_s,
        transfer_s=t,
        transfer_bytes=moved,
        frozen_time_s=frozen_s,
        since_previous_s=gap_s,
    )


def run(planner: PrecopyPlanner, *rounds: RoundStats) -> list[Decision]:
    return [planner.observe(r) for r in rounds]


# --- RoundStats --------------------------------------------------------------------------


def test_round_stats_derived_values() -> None:
    r = RoundStats(
        index=2,
        pages_scanned=10_000,
        pages_skipped_parent=7_500,
        pages_written=2_500,
        duration_s=0.5,
        transfer_s=0.25,
        transfer_bytes=10_240_000,
        frozen_time_s=0.02,
        since_previous_s=0.1,
        dirty_window_s=0.8,
    )
    assert r.bytes_written == 2_500 * 4096 == 10_240_000
    assert r.throughput_bps == pytest.approx(40_960_000.0)
    assert r.dirty_rate_bps == pytest.approx(10_240_000 / 0.8)
    assert r.after_snapshot_s == pytest.approx(0.48)


def test_round_one_has_no_dirty_rate() -> None:
    r = rnd(1, 25_000)
    assert r.dirty_rate_bps is None  # it copied everything: no rate to read from it
    assert r.throughput_bps == pytest.approx(BW)


def test_zero_transfer_time_has_no_throughput() -> None:
    assert rnd(1, 0, transfer_s=0.0).throughput_bps is None


def test_round_stats_validation() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        rnd(0, 10)
    with pytest.raises(ValueError, match="negative"):
        rnd(1, -1)


def test_planner_fills_the_dirty_window_from_the_previous_round() -> None:
    p = PrecopyPlanner()
    run(
        p,
        rnd(1, 25_000, duration_s=1.2, frozen_s=0.05),
        rnd(2, 6_000, gap_s=0.1, frozen_s=0.01),
    )
    second = p.history[1]
    # previous round after its snapshot (1.2 - 0.05) plus the gap before this one
    assert second.dirty_window_s == pytest.approx(1.25)
    assert second.dirty_rate_bps == pytest.approx(6_000 * 4096 / 1.25)


# --- converging --------------------------------------------------------------------------


def test_converging_workload_switches_with_the_numbers() -> None:
    # 15 000 pages/s dirtied (61 MB/s) on a 100 MB/s link: rounds shrink by ~0.6 each time.
    p = PrecopyPlanner()
    d1, d2, d3 = run(p, rnd(1, 25_000), rnd(2, 15_360), rnd(3, 9_438))

    # Round 1: worst case, everything again: 25 000 pages = 1.024 s.
    assert d1.action == "continue"
    assert d1.final_pages == 25_000
    assert d1.predicted_freeze_s == pytest.approx(1.024)
    assert d1.reason == "continuing: predicted 1.0 s > budget 300 ms"

    # Round 2: ceil(15 360 × 0.6291456 / 1.024) = ceil(9437.184) = 9438 pages.
    assert d2.action == "continue"
    assert d2.final_pages == 9_438
    assert d2.predicted_freeze_s == pytest.approx(9_438 * 4096 / BW)
    assert d2.reason == "continuing: predicted 387 ms > budget 300 ms"

    # Round 3: ceil(9438 × 0.38658048 / 0.6291456) = ceil(5799.2) = 5800 pages = 238 ms.
    assert d3.action == "switch"
    assert d3.final_pages == 5_800
    assert d3.predicted_freeze_s == pytest.approx(0.237568)
    assert (
        d3.reason == "switching: predicted 238 ms ≤ budget 300 ms (5800 pages left at 100.0 MB/s)"
    )
    assert d3.final and d3.budget_s == 0.3 and d3.throttle_percent == 0

    # Conservative: the true dirtying over the final window is 15 000 × 0.38658 = 5798.7.
    assert d3.final_pages >= math.ceil(15_000 * 9_438 * 4096 / BW)

    # Predictions fall as the rounds shrink.
    assert d1.predicted_freeze_s > d2.predicted_freeze_s > d3.predicted_freeze_s  # type: ignore[operator]


def test_no_rounds_after_the_switch() -> None:
    p = PrecopyPlanner()
    run(p, rnd(1, 25_000), rnd(2, 15_360), rnd(3, 9_438))
    with pytest.raises(RuntimeError, match="already ended"):
        p.observe(rnd(4, 100))


def test_rounds_must_come_in_order() -> None:
    p = PrecopyPlanner()
    with pytest.raises(ValueError, match="expected round 1, got round 2"):
        p.observe(rnd(2, 100))


def test_budget_met_at_round_one_counts_fixed_costs() -> None:
    # 2000 pages in 0.12 s (68.3 MB/s): a second full copy plus fixed costs fits 300 ms.
    settings = PlannerSettings(final_dump_overhead_s=0.05, restore_s=0.1)
    d = PrecopyPlanner(settings).observe(rnd(1, 2_000, transfer_s=0.12, scanned=2_100))
    assert d.action == "switch"
    assert d.final_pages == 2_000
    assert d.predicted_freeze_s == pytest.approx(0.12 + 0.05 + 0.1)
    assert d.reason.startswith("switching: predicted 270 ms ≤ budget 300 ms")

    # A slower restore on the target tips it over the budget.
    slower = PlannerSettings(final_dump_overhead_s=0.05, restore_s=0.2)
    d = PrecopyPlanner(slower).observe(rnd(1, 2_000, transfer_s=0.12, scanned=2_100))
    assert d.action == "continue"
    assert d.predicted_freeze_s == pytest.approx(0.37)
    assert d.reason == "continuing: predicted 370 ms > budget 300 ms"


def test_estimate_never_zero_and_never_above_the_mapped_pages() -> None:
    p = PrecopyPlanner()
    run(p, rnd(1, 25_000), rnd(2, 0, transfer_s=0.0, duration_s=0.2))
    assert p.estimate_final_pages() == 1  # an idle round still leaves one page, not zero

    p = PrecopyPlanner(PlannerSettings(downtime_budget_s=0.01, max_rounds=20))
    # A tiny window with many dirty pages would extrapolate past the mapped size:
    # ceil(900 × 5.0 / 0.01) = 450 000 pages, but only 1000 are mapped.
    run(p, rnd(1, 1_000, scanned=1_000, duration_s=0.01, transfer_s=0.2))
    p.observe(rnd(2, 900, scanned=1_000, duration_s=5.0, transfer_s=0.2))
    assert p.estimate_final_pages() == 1_000


# --- non-convergence -----------------------------------------------------------------------


def test_throttle_schedule_is_qemu_auto_converge() -> None:
    assert [throttle_schedule(s) for s in range(0, 12)] == [
        0, 20, 30, 40, 50, 60, 70, 80, 90, 99, 99, 99,
    ]  # fmt: skip
    assert throttle_schedule(3, initial=5, increment=5, maximum=12) == 12
    with pytest.raises(ValueError):
        throttle_schedule(-1)


def test_non_converging_workload_throttles_20_30_40_up_to_99() -> None:
    # 25 000 pages/s dirtied = 102 MB/s on a 100 MB/s link: every round writes 25 000 pages.
    p = PrecopyPlanner(PlannerSettings(max_rounds=20, max_total_s=1_000))
    decisions = run(p, *(rnd(i, 25_000) for i in range(1, 14)))
    actions = [d.action for d in decisions]
    percents = [d.throttle_percent for d in decisions]

    assert actions[:2] == ["continue", "continue"]  # one bad round is not enough
    assert "dirty rate 100.0 MB/s ≥ 90 % of throughput 100.0 MB/s" in decisions[1].reason
    assert actions[2:11] == ["throttle"] * 9
    assert percents == [0, 0, 20, 30, 40, 50, 60, 70, 80, 90, 99, 99, 99]
    assert decisions[2].reason == (
        "throttling the container to 20 %: not converging for 2 rounds "
        "(dirty rate 100.0 MB/s ≥ 90 % of throughput 100.0 MB/s); "
        "predicted 1.0 s > budget 300 ms"
    )
    # At the cap there is nothing left to raise: continue, holding 99 %.
    assert actions[11:] == ["continue", "continue"]
    assert "already at its 99 % cap" in decisions[11].reason
    assert p.throttle_percent == 99


def test_pages_not_shrinking_counts_as_non_converging() -> None:
    # Dirty rate well below the link (slow rounds), but the written set keeps growing.
    p = PrecopyPlanner(PlannerSettings(max_rounds=20))
    d = run(
        p,
        rnd(1, 20_000, duration_s=2.0),
        rnd(2, 21_000, duration_s=2.0),
        rnd(3, 21_500, duration_s=2.0),
    )
    assert d[1].action == "continue"
    assert "pages written did not shrink (20000 → 21000)" in d[1].reason
    assert d[2].action == "throttle"
    assert d[2].throttle_percent == 20
    assert "(21000 → 21500)" in d[2].reason


def test_a_converging_round_resets_the_streak_but_keeps_the_throttle() -> None:
    p = PrecopyPlanner(PlannerSettings(max_rounds=20))
    d = run(
        p,
        rnd(1, 25_000),
        rnd(2, 25_000),
        rnd(3, 25_000),
        rnd(4, 12_000, duration_s=1.024),  # 48 MB/s dirty: converging again
    )
    assert [x.action for x in d] == ["continue", "continue", "throttle", "continue"]
    assert d[3].throttle_percent == 20  # the engine keeps the throttle it set
    # The next bad round alone does not raise the throttle: it needs two in a row again.
    d5 = p.observe(rnd(5, 12_500, duration_s=1.024))
    assert d5.action == "continue"
    assert d5.throttle_percent == 20
    assert "pages written did not shrink (12000 → 12500)" in d5.reason


def test_switch_policy_switches_anyway_and_says_so() -> None:
    p = PrecopyPlanner(PlannerSettings(converge_policy="switch"))
    d = run(p, rnd(1, 25_000), rnd(2, 25_000), rnd(3, 25_000))
    assert [x.action for x in d] == ["continue", "continue", "switch"]
    assert d[2].reason == (
        "switching anyway: not converging for 2 rounds "
        "(dirty rate 100.0 MB/s ≥ 90 % of throughput 100.0 MB/s); "
        "predicted 1.0 s > budget 300 ms, so the freeze will exceed the budget"
    )
    assert d[2].predicted_freeze_s == pytest.approx(1.024)


def test_postcopy_policy_when_allowed() -> None:
    p = PrecopyPlanner(PlannerSettings(converge_policy="postcopy", postcopy_allowed=True))
    d = run(p, rnd(1, 25_000), rnd(2, 25_000), rnd(3, 25_000))
    assert d[2].action == "postcopy"
    assert d[2].reason.startswith("switching to post-copy: not converging for 2 rounds")
    assert "stop-and-copy freeze would be 1.0 s > budget 300 ms" in d[2].reason


def test_postcopy_policy_falls_back_to_switch_when_not_allowed() -> None:
    p = PrecopyPlanner(PlannerSettings(converge_policy="postcopy", postcopy_allowed=False))
    d = run(p, rnd(1, 25_000), rnd(2, 25_000), rnd(3, 25_000))
    assert d[2].action == "switch"
    assert d[2].reason.startswith("switching anyway (post-copy is not allowed)")
    assert "so the freeze will exceed the budget" in d[2].reason


def test_forced_switch_aborts_above_the_freeze_limit() -> None:
    p = PrecopyPlanner(PlannerSettings(converge_policy="switch", max_freeze_s=0.5))
    d = run(p, rnd(1, 25_000), rnd(2, 25_000), rnd(3, 25_000))
    assert d[2].action == "abort"
    assert "a freeze of 1.0 s exceeds the 500 ms limit" in d[2].reason
    assert "keeps running on the source" in d[2].reason


# --- bandwidth -----------------------------------------------------------------------------


def test_bandwidth_drop_mid_way_raises_the_prediction_and_changes_the_decision() -> None:
    steady = PrecopyPlanner()
    dropped = PrecopyPlanner()
    run(steady, rnd(1, 25_000), rnd(2, 15_360))
    run(dropped, rnd(1, 25_000), rnd(2, 15_360))

    same_round = 9_438
    d_steady = steady.observe(rnd(3, same_round))
    d_dropped = dropped.observe(rnd(3, same_round, bandwidth=5e7))  # link halves

    assert dropped.measured_throughput_bps == pytest.approx(5e7)
    assert d_steady.action == "switch"
    assert d_dropped.action == "continue"
    # Half the throughput, and a longer round during which more gets dirtied:
    # ceil(9438 × 0.77316096 / 0.6291456) = 11 599 pages at 50 MB/s = 950 ms.
    assert d_dropped.final_pages == 11_599
    assert d_dropped.predicted_freeze_s == pytest.approx(11_599 * 4096 / 5e7)
    assert d_dropped.predicted_freeze_s > 2 * d_steady.predicted_freeze_s  # type: ignore[operator]
    assert d_dropped.reason.startswith("continuing: predicted 950 ms > budget 300 ms")
    # The dirty rate (61.4 MB/s) is now above 90 % of the link (45 MB/s).
    assert "dirty rate 61.4 MB/s ≥ 90 % of throughput 50.0 MB/s" in d_dropped.reason


def test_short_transfer_windows_are_ignored() -> None:
    p = PrecopyPlanner(PlannerSettings(max_rounds=20))
    run(p, rnd(1, 25_000))
    assert p.measured_throughput_bps == pytest.approx(BW)
    # 50 ms at an apparent 1 GB/s: mostly socket buffering, not the link.
    p.observe(rnd(2, 12_207, transfer_s=0.05, duration_s=1.0))
    assert p.history[1].throughput_bps == pytest.approx(12_207 * 4096 / 0.05)
    assert p.measured_throughput_bps == pytest.approx(BW)  # kept
    # 100 ms exactly is long enough.
    p.observe(rnd(3, 1_000, transfer_s=0.1, duration_s=0.1))
    assert p.measured_throughput_bps == pytest.approx(1_000 * 4096 / 0.1)


def test_without_any_throughput_there_is_no_prediction_until_the_cap() -> None:
    p = PrecopyPlanner(PlannerSettings(max_rounds=2))
    d1 = p.observe(rnd(1, 500, transfer_s=0.02, duration_s=0.05))
    assert d1.action == "continue"
    assert d1.predicted_freeze_s is None
    assert d1.reason == (
        "continuing: predicted freeze unknown (no throughput measured yet), budget 300 ms"
    )
    d2 = p.observe(rnd(2, 100, transfer_s=0.01, duration_s=0.05))
    assert d2.action == "switch"
    assert d2.reason.startswith("round cap 2 reached: predicted freeze unknown")


def test_bandwidth_override_replaces_the_estimate() -> None:
    # Same short round as above, but the user says the link does 1 GB/s.
    p = PrecopyPlanner(PlannerSettings(bandwidth_override_bps=1e9))
    d = p.observe(rnd(1, 500, transfer_s=0.02, duration_s=0.05))
    assert d.action == "switch"
    assert d.predicted_freeze_s == pytest.approx(500 * 4096 / 1e9)
    assert d.reason == "switching: predicted 2 ms ≤ budget 300 ms (500 pages left at 1.00 GB/s)"

    # An override also wins over a measurement (here a too-pessimistic 10 MB/s one).
    p = PrecopyPlanner(PlannerSettings(bandwidth_override_bps=1e8))
    d = p.observe(rnd(1, 5_000, bandwidth=1e7))
    assert p.measured_throughput_bps == pytest.approx(1e7)
    assert p.throughput_bps == 1e8
    assert d.predicted_freeze_s == pytest.approx(5_000 * 4096 / 1e8)
    assert d.action == "switch"


# --- caps --------------------------------------------------------------------------------


def test_round_cap_switches_with_the_reason() -> None:
    p = PrecopyPlanner()  # max_rounds 8
    decisions = run(p, *(rnd(i, 25_000) for i in range(1, 9)))
    assert [d.action for d in decisions[:7]] == ["continue"] * 2 + ["throttle"] * 5
    last = decisions[7]
    assert last.action == "switch"
    assert last.reason == "round cap 8 reached: predicted 1.0 s > budget 300 ms"
    assert last.throttle_percent == 60  # rounds 3-7 set 20, 30, 40, 50, 60


def test_time_cap_switches_with_the_reason() -> None:
    p = PrecopyPlanner(PlannerSettings(max_total_s=2.5, converge_policy="switch"))
    d = run(
        p,
        rnd(1, 25_000, gap_s=0.1),  # elapsed 1.124 s
        rnd(2, 20_000, gap_s=0.1, duration_s=1.024),  # 2.248 s
        rnd(3, 19_000, gap_s=0.1, duration_s=1.024),  # 3.372 s
    )
    assert [x.action for x in d] == ["continue", "continue", "switch"]
    assert p.elapsed_s == pytest.approx(3.372)
    assert d[2].reason.startswith("time cap 2.5 s reached after 3 rounds (3.4 s): predicted ")
    assert d[2].reason.endswith("> budget 300 ms")


def test_caps_come_before_the_converge_policy() -> None:
    p = PrecopyPlanner(
        PlannerSettings(max_rounds=3, converge_policy="postcopy", postcopy_allowed=True)
    )
    d = run(p, rnd(1, 25_000), rnd(2, 25_000), rnd(3, 25_000))
    assert d[2].action == "switch"
    assert d[2].reason == "round cap 3 reached: predicted 1.0 s > budget 300 ms"


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="converge policy"):
        PlannerSettings(converge_policy="pray")
    with pytest.raises(ValueError, match="budget"):
        PlannerSettings(downtime_budget_s=0)
    with pytest.raises(ValueError, match="max_rounds"):
        PlannerSettings(max_rounds=0)
    defaults = PlannerSettings()
    assert (defaults.downtime_budget_s, defaults.max_rounds, defaults.max_total_s) == (
        0.3,
        8,
        120.0,
    )
    assert defaults.converge_policy == "throttle"
    assert defaults.bandwidth_override_bps is None


# --- choose_strategy ---------------------------------------------------------------------


def test_auto_picks_precopy_when_the_source_tracks_dirty_memory() -> None:
    strategy, reason = choose_strategy("auto", True, True, True, True)
    assert strategy == "pre-copy"
    assert "soft-dirty" in reason
    assert "post-copy fallback available" in reason


def test_auto_falls_back_to_stop_and_copy_naming_what_is_missing() -> None:
    strategy, reason = choose_strategy("auto", False, True, True, True)
    assert strategy == "stop-and-copy"
    assert "source kernel has no soft-dirty" in reason

    strategy, reason = choose_strategy("auto", None, True, None, None)
    assert strategy == "stop-and-copy"
    assert "could not tell whether the source tracks dirty memory" in reason


def test_auto_precopy_with_a_target_without_soft_dirty() -> None:
    # Restoring a pre-dump chain needs no dirty tracking on the target.
    strategy, reason = choose_strategy("auto", True, False, False, False)
    assert strategy == "pre-copy"
    assert "target has no soft-dirty tracking" in reason
    assert "post-copy" not in reason


def test_explicit_precopy_without_soft_dirty_raises() -> None:
    with pytest.raises(ValueError, match=r"pre-copy is not possible: the source kernel has no"):
        choose_strategy("pre-copy", False, True, True, True)


def test_explicit_precopy_with_unknown_support_is_allowed_but_flagged() -> None:
    strategy, reason = choose_strategy("precopy", None, None, None, None)
    assert strategy == "pre-copy"
    assert reason == "pre-copy, as requested (not verified: soft-dirty on the source)"


def test_explicit_postcopy_needs_userfaultfd_on_the_target() -> None:
    with pytest.raises(ValueError, match="post-copy is not possible: the target has no usable"):
        choose_strategy("post-copy", True, True, True, False)
    # The source's userfaultfd does not matter.
    assert choose_strategy("postcopy", False, False, False, True) == (
        "post-copy",
        "post-copy, as requested",
    )


def test_hybrid_names_every_missing_piece_and_the_alternative() -> None:
    with pytest.raises(ValueError) as err:
        choose_strategy("hybrid", False, True, True, False)
    message = str(err.value)
    assert "soft-dirty" in message and "userfaultfd" in message
    assert message.endswith("Use stop-and-copy.")

    with pytest.raises(ValueError, match=r"Use pre-copy or stop-and-copy\.$"):
        choose_strategy("hybrid", True, True, True, False)


def test_stop_and_copy_always_works_and_unknown_names_raise() -> None:
    assert choose_strategy("stop-and-copy", False, False, False, False)[0] == "stop-and-copy"
    with pytest.raises(ValueError, match="unknown migration strategy 'warp'"):
        choose_strategy("warp", True, True, True, True)


def test_auto_picks_post_copy_only_when_its_risk_is_accepted():
    # No soft-dirty, lazy pages work on the target, stop-and-copy's freeze over budget.
    s, why = choose_strategy("auto", False, False, True, True, predicted_stop_copy_s=2.5,
                             budget_s=0.3)
    assert s == "stop-and-copy" and "2.5 s" in why and "--accept-risk" in why
    s, why = choose_strategy("auto", False, False, True, True, predicted_stop_copy_s=2.5,
                             budget_s=0.3, accept_risk=True)
    assert s == "post-copy" and "losing either host" in why and "accepted" in why
    # Within budget, or lazy pages not known to work: never post-copy.
    assert choose_strategy("auto", False, False, True, True, predicted_stop_copy_s=0.2,
                           accept_risk=True)[0] == "stop-and-copy"
    assert choose_strategy("auto", False, False, None, None, predicted_stop_copy_s=9.0,
                           accept_risk=True)[0] == "stop-and-copy"
    # Soft-dirty on the source: pre-copy, as before.
    assert choose_strategy("auto", True, True, True, True, predicted_stop_copy_s=9.0,
                           accept_risk=True)[0] == "pre-copy"


def test_the_copy_route_counts_dockers_copy_of_every_round_in_the_freeze() -> None:
    # Target CRIU < 4.2: Docker copies the rounds (2000 pages) and the final (2000) first.
    rate = 64 * 2**20
    settings = PlannerSettings(copy_bytes_per_s=rate, downtime_budget_s=10)
    d = PrecopyPlanner(settings).observe(rnd(1, 2_000, transfer_s=0.12, scanned=2_100))
    assert d.predicted_freeze_s == pytest.approx(0.12 + 4_000 * PAGE / rate)
    plain = PrecopyPlanner(PlannerSettings(downtime_budget_s=10)).observe(
        rnd(1, 2_000, transfer_s=0.12, scanned=2_100)
    )
    assert plain.predicted_freeze_s == pytest.approx(0.12)
    with pytest.raises(ValueError):
        PlannerSettings(copy_bytes_per_s=0)
