"""The judge on counts built by hand: each verdict and the statistics behind it."""

from __future__ import annotations

import pytest

from rollout.checks.latency import quantile_from_buckets
from rollout.counts import LATENCY_BOUNDS, VersionCounts
from rollout.judge import judge
from rollout.verdict import Status
from routing_config import RolloutThresholds

DEFAULTS = RolloutThresholds()
EVEN = (10.0,) * 10  # ten probability bins, even


def latency_at(seconds: float, n: float) -> tuple[float, ...]:
    """n answers, every one taking ``seconds`` (cumulative buckets, +Inf last)."""
    return tuple(n if bound >= seconds else 0.0 for bound in LATENCY_BOUNDS) + (n,)


def counts(
    n: float,
    errors: float = 0,
    saved: float = 0,
    seconds: float = 0.004,
    bins: tuple[float, ...] = EVEN,
) -> VersionCounts:
    scale = n / sum(bins)
    return VersionCounts(
        requests=n,
        errors=errors,
        saved_by_fallback=saved,
        latency=latency_at(seconds, n - saved),
        probability=tuple(b * scale for b in bins),
    )


def test_too_few_requests_waits_and_says_how_many() -> None:
    verdict = judge(counts(299), counts(5000), DEFAULTS, 300)
    assert verdict.status is Status.WAITING_FOR_SAMPLES
    assert verdict.checks == ()
    assert "candidate 299" in verdict.reason and "300 each" in verdict.reason
    assert judge(counts(5000), counts(10), DEFAULTS, 300).status is Status.WAITING_FOR_SAMPLES


def test_a_healthy_candidate_passes_every_check() -> None:
    verdict = judge(counts(400, errors=1), counts(4000, errors=8), DEFAULTS, 300)
    assert verdict.status is Status.PASS
    assert [c.name for c in verdict.checks] == ["error_rate", "latency_p99", "psi", "tier_mix"]
    assert all(c.status is Status.PASS for c in verdict.checks)


def test_errors_saved_by_fallback_fail_the_candidate() -> None:
    # 20% failed, every one saved by fallback: no client saw it, the judge does.
    verdict = judge(counts(100, errors=20, saved=20), counts(1000), DEFAULTS, 100)
    assert verdict.status is Status.FAIL
    (check,) = [c for c in verdict.checks if c.status is Status.FAIL]
    assert check.name == "error_rate" and check.value == pytest.approx(0.2)
    assert "20 saved by fallback" in verdict.reason and "worse than stable" in verdict.reason


def test_one_early_error_above_the_ceiling_is_inconclusive_not_fail() -> None:
    # 2/150 = 1.3% > 1% ceiling, but neither significantly worse than stable's 0.5%
    # nor provably above the ceiling.
    verdict = judge(counts(150, errors=2), counts(2000, errors=10), DEFAULTS, 100)
    assert verdict.status is Status.INCONCLUSIVE
    assert "not yet significantly" in verdict.reason


def test_the_ceiling_fails_even_when_stable_is_as_bad() -> None:
    verdict = judge(counts(2000, errors=200), counts(20000, errors=2000), DEFAULTS, 300)
    assert verdict.status is Status.FAIL
    assert "above the ceiling" in verdict.reason


def test_latency_ratio_needs_the_tolerance_too() -> None:
    slow = judge(counts(400, seconds=0.06), counts(4000, seconds=0.008), DEFAULTS, 300)
    assert slow.status is Status.FAIL and "latency_p99" in slow.reason
    # 2 ms against 4 ms is x2, but within bucket width and noise: not a failure.
    jitter = judge(counts(400, seconds=0.004), counts(4000, seconds=0.002), DEFAULTS, 300)
    assert jitter.status is Status.PASS


def test_latency_ceiling() -> None:
    both_slow = judge(counts(400, seconds=2.0), counts(4000, seconds=2.0), DEFAULTS, 300)
    assert both_slow.status is Status.FAIL and "over 1000 ms" in both_slow.reason


def test_p99_is_interpolated_within_its_bucket() -> None:
    cumulative = [0, 0, 0, 10, 100] + [100] * 9  # 90 answers between 10 and 25 ms
    assert quantile_from_buckets(0.99, cumulative) == pytest.approx(0.01 + 0.015 * 89 / 90)
    assert quantile_from_buckets(0.5, [0.0] * 14) is None
    assert quantile_from_buckets(0.99, [0.0] * 13 + [5.0]) == LATENCY_BOUNDS[-1]


SHIFTED = (1, 1, 2, 3, 5, 8, 13, 20, 22, 25)


def test_drifted_predictions_fail_on_psi() -> None:
    verdict = judge(counts(400, bins=SHIFTED), counts(4000), DEFAULTS, 300)
    assert verdict.status is Status.FAIL
    check = verdict.checks[2]
    assert check.name == "psi" and check.value is not None and check.value > 0.2


def test_psi_over_the_line_on_few_samples_is_inconclusive() -> None:
    mild = (7, 8, 9, 10, 10, 10, 11, 11, 12, 12)
    few = judge(counts(30, bins=mild), counts(30), DEFAULTS, 30)
    assert few.checks[2].value is not None and few.checks[2].value > 0.02
    thresholds = RolloutThresholds(psi=0.02)
    assert judge(counts(30, bins=mild), counts(30), thresholds, 30).status is Status.INCONCLUSIVE
    many = judge(counts(20000, bins=mild), counts(20000), thresholds, 30)
    assert many.status is Status.FAIL


def test_no_probability_series_is_inconclusive_unless_psi_is_off() -> None:
    none = VersionCounts(requests=400, latency=latency_at(0.004, 400))
    verdict = judge(none, none, DEFAULTS, 300)
    assert verdict.status is Status.INCONCLUSIVE and "thresholds.psi: null" in verdict.reason
    off = RolloutThresholds(psi=None, tier_shift=None)
    assert judge(none, none, off, 300).status is Status.PASS
    tiers = judge(none, none, RolloutThresholds(psi=None), 300)
    assert tiers.status is Status.INCONCLUSIVE and "thresholds.tier_shift: null" in tiers.reason


def shadow(compared: float, agreed: float, shifted: bool = False) -> VersionCounts:
    client = (compared / 10,) * 10
    theirs = tuple(compared * w for w in (0.02,) * 5 + (0.18,) * 5) if shifted else client
    return VersionCounts(
        shadow_tiers=(agreed, compared - agreed, 0, 0, 0, 0, 0, 0, 0),
        shadow_bins=theirs,
        shadow_client_bins=client,
    )


def test_the_shadow_bake_waits_then_judges_agreement_and_psi() -> None:
    from rollout.judge import judge_shadow
    from routing_config import ShadowBakeSpec

    bake = ShadowBakeSpec(percent=10, duration="1m", min_comparisons=300)
    assert judge_shadow(shadow(299, 299), bake, 0.01).status is Status.WAITING_FOR_SAMPLES
    assert judge_shadow(shadow(1000, 980), bake, 0.01).status is Status.PASS
    low = judge_shadow(shadow(1000, 800), bake, 0.01)
    assert low.status is Status.FAIL and "tier_agreement" in low.reason
    # 88% of 300 is under 90%, but not provably: hold, say so.
    close = judge_shadow(shadow(300, 264), bake, 0.01)
    assert close.status is Status.INCONCLUSIVE and "not provably" in close.reason
    drift = judge_shadow(shadow(1000, 1000, shifted=True), bake, 0.01)
    assert drift.status is Status.FAIL and "shadow_psi" in drift.reason


def test_the_tier_mix_fails_on_customers_moved_across_a_tier_bound() -> None:
    from rollout.checks.tiers import tier_mix

    assert tier_mix(EVEN) == (30, 30, 40)
    # The same low share, some medium customers pushed over 0.6, into the next bin: 8% of
    # customers in another tier is under the line.
    moved = (10, 10, 10, 10, 10, 2, 18, 10, 10, 10)
    plain = DEFAULTS.model_copy(update={"psi": None})
    stable, candidate = counts(2000), counts(2000, bins=moved)
    verdict = judge(candidate, stable, plain, 300)
    check = next(c for c in verdict.checks if c.name == "tier_mix")
    assert verdict.status is Status.PASS
    assert check.value == pytest.approx(0.08)
    moved_more = (10, 10, 5, 10, 10, 0, 25, 10, 10, 10)  # 15% in another tier
    # Provably over 10% once the confidence sequence is narrow enough: not yet at 2000 a side
    # (7.9% to 22.1%), at 5000 (10.4% to 19.6%).
    verdict = judge(counts(2000, bins=moved_more), stable, plain, 300)
    assert verdict.status is Status.INCONCLUSIVE and "not provably" in verdict.reason
    verdict = judge(counts(5000, bins=moved_more), counts(5000), plain, 300)
    assert verdict.status is Status.FAIL and "tier_mix" in verdict.reason
    # 22 points more low customers on 100 a side: a real difference (chi-square), but not
    # provably more than 10 points; a point estimate over the line would fail it.
    wider = (21, 16, 15, 8, 8, 8, 6, 6, 6, 6)  # 52/24/24 against 30/30/40
    verdict = judge(counts(100, bins=wider), counts(100), plain, 100)
    assert verdict.status is Status.INCONCLUSIVE and "not provably" in verdict.reason
    # The same shift on few customers is not yet proof either.
    small = judge(counts(40, bins=moved_more), counts(40), plain, 30)
    assert small.status is Status.INCONCLUSIVE and "not provably" in small.reason
    # Off when asked.
    off = DEFAULTS.model_copy(update={"psi": None, "tier_shift": None})
    assert judge(counts(2000, bins=moved_more), stable, off, 300).status is Status.PASS


def test_a_p99_resting_on_two_answers_in_a_wide_bucket_is_not_proof() -> None:
    def answers(n: float, slow: float, upper: float = 0.1) -> VersionCounts:
        """n answers at 20 ms but ``slow`` of them in the bucket below ``upper``."""
        latency = tuple(
            0.0 if b < 0.025 else n - slow if b < upper else n for b in LATENCY_BOUNDS
        ) + (n,)
        return VersionCounts(requests=n, latency=latency)

    plain = DEFAULTS.model_copy(update={"psi": None, "tier_shift": None, "p99_ratio": 1.25,
                                        "p99_tolerance_ms": 25})  # fmt: skip
    # Three of 170 against one of 180: the candidate's p99 in the 50-100 ms bucket, stable's
    # under 50 ms, as a busy machine gives two equal versions in two windows.
    verdict = judge(answers(170, 3), answers(180, 1), plain, 100)
    check = next(c for c in verdict.checks if c.name == "latency_p99")
    assert check.value is not None and check.value > 0.05
    assert verdict.status is Status.INCONCLUSIVE and "not provably" in verdict.reason
    # A fifth of the answers in the 100-250 ms bucket is, once stable's p99 is provably at
    # most 77 ms (10 of 2000 answers between 50 and 100 ms): the line is then 102 ms.
    slow = judge(answers(170, 34, upper=0.25), answers(2000, 10), plain, 100)
    assert slow.status is Status.FAIL
    # The same fifth in the 50-100 ms bucket is not proof: stable's own tail reaches it.
    within = judge(answers(170, 34), answers(2000, 10), plain, 100)
    assert within.status is Status.INCONCLUSIVE


def test_quantiles_of_a_batch_match_the_gateway_s_histogram_quantile() -> None:
    import numpy as np

    from measures.quantile import histogram_quantile
    from rollout.checks.latency import quantiles

    rng = np.random.default_rng(3)
    rows = np.cumsum(rng.integers(0, 20, size=(50, len(LATENCY_BOUNDS) + 1)), axis=1)
    rows[0] = 0
    for q in (0.5, 0.99):
        batch = quantiles(q, rows.astype(float))
        for row, value in zip(rows, batch, strict=True):
            expected = histogram_quantile(q, LATENCY_BOUNDS, row.tolist())
            assert (expected is None and np.isnan(value)) or value == pytest.approx(expected)


def test_a_constant_slowdown_fails_on_the_median_when_a_busy_stable_tail_hides_it() -> None:
    # Stable: 300 answers at 4 ms and 10 a busy machine delayed to 75 ms, so its p99 is in the
    # 50-100 ms bucket; the candidate: every answer 50 ms slower, in that same bucket.
    tail = tuple(0.0 if b < 0.005 else 300.0 if b < 0.1 else 310.0 for b in LATENCY_BOUNDS) + (
        310.0,
    )
    stable = VersionCounts(requests=310, latency=tail)
    slow = VersionCounts(requests=310, latency=latency_at(0.055, 310))
    plain = DEFAULTS.model_copy(update={"psi": None, "tier_shift": None})
    check = next(c for c in judge(slow, stable, plain, 100).checks if c.name == "latency_p99")
    assert check.status is Status.FAIL and "p50" in check.detail
    # The same tail on both sides, or a candidate a few ms slower, is no failure.
    same = VersionCounts(requests=310, latency=tail)
    assert judge(same, stable, plain, 100).status is Status.PASS
    assert judge(counts(310, seconds=0.009), stable, plain, 100).status is Status.PASS


def test_a_v2_servers_version_is_judged_on_the_gateways_count_of_what_it_served() -> None:
    """An MLServer candidate: no histogram of its replicas, the gateway's count of what it
    served instead; PSI and the tier mix judge it as they judge ours."""
    stable = counts(4000)

    def served(bins: tuple[float, ...]) -> VersionCounts:
        c = counts(400, bins=bins)
        return VersionCounts(
            requests=c.requests, latency=c.latency, served_probability=c.probability
        )

    verdict = judge(served(EVEN), stable, DEFAULTS, 300)
    assert verdict.status is Status.PASS
    assert [c.status for c in verdict.checks] == [Status.PASS] * 4
    drifted = judge(served(SHIFTED), stable, DEFAULTS, 300)
    assert drifted.status is Status.FAIL
    psi = drifted.checks[2]
    assert psi.name == "psi" and psi.status is Status.FAIL and psi.value is not None
    assert psi.value > 0.2
