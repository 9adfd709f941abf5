"""Each stopping rule of the AL `decide` step, on iteration documents built by hand (no fits)."""

from __future__ import annotations

import pytest

from mlipflow.flows.active_learning import stop_rule
from mlipflow.schemas.active_learning import LoopConfig
from mlipflow.schemas.potentials import ALIterationDoc, ErrorMetrics, StopReason, TrustRatios, UncertaintyStats


def _doc(iteration=1, above=5, new=0.20, prev=0.25, accurate=None) -> ALIterationDoc:
    return ALIterationDoc(iteration=iteration, gamma_stats=UncertaintyStats(n_above_lo=above, max=10.0),
                          test_metrics=ErrorMetrics(force_rmse=new),
                          previous_test_metrics=None if prev is None else ErrorMetrics(force_rmse=prev),
                          trust_ratios=None if accurate is None else TrustRatios(accurate=accurate))


def test_continues_while_no_rule_holds():
    assert stop_rule(_doc(), LoopConfig(max_iterations=3), 2.5) == (None, None)


def test_no_uncertain_frames_stops_first():
    reason, msg = stop_rule(_doc(iteration=3, above=0), LoopConfig(max_iterations=3), 2.5)
    assert reason == StopReason.no_uncertain_frames and "2.5" in msg  # before the iteration limit


def test_iteration_limit():
    reason, msg = stop_rule(_doc(iteration=3), LoopConfig(max_iterations=3), 2.5)
    assert reason == StopReason.iteration_limit and "(3)" in msg
    assert stop_rule(_doc(iteration=2), LoopConfig(max_iterations=3), 2.5)[0] is None


@pytest.mark.parametrize("new,prev,threshold,stops", [
    (0.24, 0.25, 0.10, True),    # 4 % better, 10 % asked
    (0.20, 0.25, 0.10, False),   # 20 % better
    (0.26, 0.25, 0.0, True),     # worse than the exploring potential on the same set
    (0.25, 0.25, 0.0, False),    # equal is not worse when 0 % improvement is asked
    (0.30, 0.25, -100.0, False),  # the tiny test campaign's setting: never stops for this
    (0.30, None, 0.10, False),   # no previous errors (first iteration of a cold start): not applicable
])
def test_min_relative_improvement(new, prev, threshold, stops):
    reason, msg = stop_rule(_doc(new=new, prev=prev), LoopConfig(max_iterations=5, min_relative_improvement=threshold),
                            2.5)
    assert (reason == StopReason.no_improvement) is stops
    if stops:
        assert f"{new:.4f}" in msg and f"{prev:.4f}" in msg


def test_accurate_ratio_for_dp():
    loop = LoopConfig(max_iterations=5, accurate_ratio=0.95)
    assert stop_rule(_doc(accurate=0.97), loop, 0.1)[0] == StopReason.accurate_ratio_reached
    assert stop_rule(_doc(accurate=0.90), loop, 0.1)[0] is None
    assert stop_rule(_doc(accurate=0.99), LoopConfig(max_iterations=5), 0.1)[0] is None  # not asked for
