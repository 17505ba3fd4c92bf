import json
import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.shadow.compare import Row, compare_row
from gateway.shadow.ledger import ShadowLedger, merge_reports, section_key
from gateway.shadow.metrics import ShadowCollector
from gateway.shadow.report import bucket_quantile, build_report
from gateway.shadow.tally import LARGEST, SAMPLE_SIZE, PairTally
from measures.psi import psi


def tier(p: float) -> str:
    return "low" if p < 0.3 else "medium" if p < 0.6 else "high"


def comparisons(pairs):
    return [
        compare_row(Row(a, tier(a), ("x", "y", "z")), Row(b, tier(b), ("y", "x", "w")))
        for a, b in pairs
    ]


def test_tally_counts_confusion_bins_and_agreement():
    tally = PairTally()
    tally.add(
        comparisons([(0.1, 0.2), (0.5, 0.7), (0.9, 0.95)]),
        "r1",
        {"primary": 0.002, "shadow": 0.004},
    )
    tally.count("timeout")
    tally.count("dropped")
    assert tally.rows == 3
    assert tally.outcomes["compared"] == 1
    assert tally.mirrored == 2  # compared + timeout; a drop was never sent
    assert tally.failed == 1
    assert tally.confusion[0][0] == 1  # low -> low
    assert tally.confusion[1][2] == 1  # medium -> high
    assert tally.confusion[2][2] == 1
    assert tally.bins["primary"][0] == 1 and tally.bins["shadow"][1] == 1
    assert tally.same_top == 0 and tally.overlap == [0, 0, 3, 0]
    assert tally.delta_max == pytest.approx(0.2)


def test_report_numbers():
    tally = PairTally()
    pairs = [(0.1, 0.2), (0.5, 0.7), (0.9, 0.95), (0.35, 0.3)]
    tally.add(comparisons(pairs), "req-a", {"primary": 0.002, "shadow": 0.004})
    report = build_report(
        {"version": "v2.4.0", "percent": 100}, "2026-01-01T00:00:00+00:00", {"v2.3.1": tally}
    )
    assert report["active"]
    pair = report["pairs"][0]
    assert pair["primary"] == "v2.3.1" and pair["shadow"] == "v2.4.0"
    assert pair["rows"] == 4
    assert pair["tier_agreement"]["agreeing_rows"] == 3
    assert pair["tier_agreement"]["percent"] == 75.0
    assert pair["tier_agreement"]["confusion"]["medium"]["high"] == 1
    deltas = sorted(abs(b - a) for a, b in pairs)
    assert pair["abs_delta"]["mean"] == pytest.approx(sum(deltas) / 4, abs=1e-12)
    assert pair["abs_delta"]["max"] == pytest.approx(max(deltas))
    assert pair["abs_delta"]["p50"] == pytest.approx((deltas[1] + deltas[2]) / 2, abs=1e-12)
    assert pair["psi"]["value"] == pytest.approx(psi(tally.bins["primary"], tally.bins["shadow"]))
    top = pair["largest_disagreements"][0]
    assert top["request_id"] == "req-a" and top["row"] == 1
    assert top["primary"] == {"probability": 0.5, "tier": "medium"}
    assert pair["latency_ms"]["shadow"]["p50"] is not None


def test_empty_report_has_no_division_by_zero():
    tally = PairTally()
    tally.count("connect_error")
    pair = build_report({"version": "v2", "percent": 5}, None, {"v1": tally})["pairs"][0]
    assert pair["tier_agreement"]["percent"] is None
    assert pair["abs_delta"]["mean"] is None
    assert pair["psi"]["value"] is None and pair["psi"]["reading"] == "no data"
    assert pair["failed_by_cause"]["connect_error"] == 1
    off = build_report(None, None, {})
    assert off == {"active": False, "shadow": None, "since": None, "pairs": []}


def test_a_shadow_at_zero_percent_is_not_active():
    """As /routing and `streamflow status` say: configured at 0%, nothing is mirrored."""
    zero = build_report({"version": "v2", "percent": 0}, None, {})
    assert zero["active"] is False and zero["shadow"] == {"version": "v2", "percent": 0}
    assert build_report({"version": "v2", "percent": 0.5}, None, {})["active"] is True


def test_largest_and_sample_are_bounded():
    tally = PairTally()
    rng = random.Random(7)
    deltas = []
    for i in range(SAMPLE_SIZE + 500):
        a, b = rng.random(), rng.random()
        deltas.append(abs(b - a))
        tally.add(comparisons([(a, b)]), f"r{i}", {})
    assert len(tally.sample) == SAMPLE_SIZE
    assert len(tally.largest) == LARGEST
    kept = sorted((d.abs_delta for d in tally.largest), reverse=True)
    assert kept == pytest.approx(sorted(deltas, reverse=True)[:LARGEST])


def test_tallies_round_trip_and_merge_like_one():
    rng = random.Random(1)
    pairs = [(rng.random(), rng.random()) for _ in range(300)]
    whole, left, right = PairTally(), PairTally(), PairTally()
    for i, pair in enumerate(pairs):
        whole.add(comparisons([pair]), f"r{i}", {"primary": 0.003, "shadow": 0.02})
        (left if i % 2 else right).add(
            comparisons([pair]), f"r{i}", {"primary": 0.003, "shadow": 0.02}
        )
    left.count("timeout")
    whole.count("timeout")
    restored = [PairTally.from_json(json.loads(json.dumps(t.to_json()))) for t in (left, right)]
    merged = PairTally.merged(restored)
    a = build_report({"version": "s", "percent": 1}, None, {"p": merged})
    b = build_report({"version": "s", "percent": 1}, None, {"p": whole})
    assert a == b


def test_from_json_refuses_garbage():
    for bad in ({}, {"outcomes": 3}, {**PairTally().to_json(), "confusion": [[1, 2]]}):
        with pytest.raises(ValueError):
            PairTally.from_json(bad)
    bad_count = PairTally().to_json()
    bad_count["delta_bins"][0] = -1
    with pytest.raises(ValueError):
        PairTally.from_json(bad_count)


def test_ledger_resets_the_report_on_a_new_section_but_not_the_counters():
    ledger = ShadowLedger()
    ten = section_key({"version": "v2.4.0", "percent": 10})
    fifty = section_key({"version": "v2.4.0", "percent": 50})
    assert ten != fifty and ten
    ledger.follow(ten)
    ledger.add(ten, "v2.3.1", "v2.4.0", comparisons([(0.1, 0.2)]), "r", {})
    ledger.follow(ten)
    assert ledger.pairs["v2.3.1"].rows == 1
    ledger.follow(fifty)
    assert ledger.pairs == {}
    # A mirror sent under the old section and answered after the change: counters only.
    ledger.add(ten, "v2.3.1", "v2.4.0", comparisons([(0.1, 0.2)]), "r", {})
    assert ledger.pairs == {}
    assert ledger.cumulative[("v2.3.1", "v2.4.0")].rows == 2
    ledger.follow(section_key(None))
    assert ledger.since is None and ledger.section == ""


def test_merge_reports_keeps_only_the_current_section():
    one, two = ShadowLedger(), ShadowLedger()
    a, b = (
        section_key({"version": "v2", "percent": 10}),
        section_key({"version": "v2", "percent": 20}),
    )
    one.follow(a)
    two.follow(b)
    one.add(a, "v1", "v2", comparisons([(0.1, 0.2)]), "r", {})
    two.add(b, "v1", "v2", comparisons([(0.1, 0.9)]), "r", {})
    since, pairs = merge_reports(a, [one.to_json(), two.to_json(), "garbage", {}])
    assert since == one.since
    assert pairs["v1"].rows == 1


def test_prometheus_series_are_counts_from_closed_sets():
    ledger = ShadowLedger()
    key = section_key({"version": "v2", "percent": 10})
    ledger.follow(key)
    ledger.add(
        key,
        "v1",
        "v2",
        comparisons([(0.1, 0.2), (0.5, 0.7)]),
        "r",
        {"primary": 0.01, "shadow": 0.02},
    )
    ledger.count(key, "v1", "v2", "dropped")
    registry = CollectorRegistry()
    registry.register(ShadowCollector(lambda: ledger))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    rows = {
        (s.labels["primary_tier"], s.labels["shadow_tier"]): s.value
        for s in families["gateway_shadow_rows"].samples
        if s.name.endswith("_total")
    }
    assert rows[("low", "low")] == 1 and rows[("medium", "high")] == 1 and len(rows) == 9
    outcomes = {
        s.labels["outcome"]: s.value
        for s in families["gateway_shadow_requests"].samples
        if s.name.endswith("_total")
    }
    assert outcomes["compared"] == 1 and outcomes["dropped"] == 1
    bins = [
        s for s in families["gateway_shadow_probability_rows"].samples if s.name.endswith("_total")
    ]
    assert {s.labels["bin"] for s in bins} == {
        f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)
    }
    delta = families["gateway_shadow_abs_delta"]
    count = next(s.value for s in delta.samples if s.name.endswith("_count"))
    assert count == 2


def test_bucket_quantile_interpolates_like_prometheus():
    # 10 observations in the (0.001, 0.0025] bucket: the median sits halfway through it.
    counts = [0, 10] + [0] * 12
    assert bucket_quantile(counts, 0.5) == pytest.approx(0.00175)
    assert bucket_quantile([0] * 14, 0.5) is None
    assert bucket_quantile([0] * 13 + [4], 0.99) == 10.0


def test_the_report_counts_since_the_section_took_effect_not_since_the_first_copy():
    """``since`` is when routing.yaml's shadow section was applied (the plan's), kept across a
    reload that leaves the section alone, new when the section changes."""
    from gateway.shadow.plan import ShadowPlan

    spec = {"version": "v2.4.0", "percent": 10}
    first = ShadowPlan.from_spec(spec, since="2026-01-01T00:00:00+00:00")
    assert first is not None
    reloaded = ShadowPlan.from_spec(dict(spec), since="2026-01-01T01:00:00+00:00", previous=first)
    assert reloaded is not None and reloaded.since == "2026-01-01T00:00:00+00:00"
    changed = ShadowPlan.from_spec(
        {**spec, "percent": 20}, since="2026-01-01T02:00:00+00:00", previous=reloaded
    )
    assert changed is not None and changed.since == "2026-01-01T02:00:00+00:00"
    ledger = ShadowLedger()
    ledger.follow(reloaded.section, reloaded.since)  # the first copy, an hour after the load
    assert ledger.since == "2026-01-01T00:00:00+00:00"
    ledger.follow(changed.section, changed.since)
    assert ledger.since == "2026-01-01T02:00:00+00:00"
