"""The simulator's A/A batch: the bound on false rollbacks cannot silently regress."""

from __future__ import annotations

import time

from rollout.simulate import HALTED, PROMOTED, ROLLED_BACK, Scenario, simulate


def test_a_good_candidate_checked_every_second_is_rarely_rolled_back() -> None:
    # 400 A/A rollouts of the README's plan with a check every second (240 looks each, the
    # case the old rule rolled back 19% of): at significance 0.01, 4 expected at most; more
    # than 8 would be p < 0.03 for a rule that keeps its bound.
    started = time.monotonic()
    scenario = Scenario("A/A, check_every 1s", check_every=1.0, rollouts=400)
    result = simulate(scenario, "new", seed=20)
    assert (result.outcome == ROLLED_BACK).sum() <= 8
    assert (result.outcome == PROMOTED).mean() >= 0.95
    # Every rollout ended: promoted, rolled back or halted at a horizon.
    assert set(result.outcome.tolist()) <= {PROMOTED, ROLLED_BACK, HALTED}
    assert time.monotonic() - started < 30


def test_a_bad_candidate_is_stopped_early() -> None:
    bad = Scenario("10x errors", base_error=0.005, error_ratio=10, rollouts=300)
    result = simulate(bad, "new", seed=21)
    assert (result.outcome == ROLLED_BACK).all()
    assert result.requests_at(ROLLED_BACK)[0] <= 250
    old = simulate(bad, "old", seed=21)
    assert old.requests_at(ROLLED_BACK)[0] >= 300  # min_requests first
