"""The shadow comparison as Prometheus series: counters and histograms only.

Counts add up, so several workers (gateway/metrics_share.py) and several gateways (Prometheus's
sum) aggregate exactly, and agreement and PSI can be recomputed from the sums (README, "Shadow
traffic"). Every label value comes from routing.yaml (versions) or a fixed set (outcomes, tiers,
sides, bins); no request can add a series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.shadow.ledger import ShadowLedger
from gateway.shadow.tally import DELTA_BOUNDS, LATENCY_BOUNDS, OUTCOMES, SIDES, PairTally
from vocabulary import metric_names
from vocabulary.buckets import PROBABILITY_BIN_LABELS as BIN_LABELS
from vocabulary.tiers import RISK_TIERS as TIERS


class ShadowCollector(Collector):
    def __init__(self, ledger: Callable[[], ShadowLedger]) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        pairs = sorted(self.ledger().cumulative.items())
        requests = CounterMetricFamily(
            metric_names.GATEWAY_SHADOW_REQUESTS.name,
            "Mirrored requests by outcome (compared, dropped at the in-flight cap, or why not).",
            labels=list(metric_names.GATEWAY_SHADOW_REQUESTS.labels),
        )
        rows = CounterMetricFamily(
            metric_names.GATEWAY_SHADOW_ROWS.name,
            "Compared rows by the tier the client got and the tier the shadow gave.",
            labels=list(metric_names.GATEWAY_SHADOW_ROWS.labels),
        )
        probability = CounterMetricFamily(
            metric_names.GATEWAY_SHADOW_PROBABILITY_ROWS.name,
            "Compared rows by side and churn-probability bin (for PSI).",
            labels=list(metric_names.GATEWAY_SHADOW_PROBABILITY_ROWS.labels),
        )
        same_top = CounterMetricFamily(
            metric_names.GATEWAY_SHADOW_SAME_TOP_REASON_ROWS.name,
            "Compared rows whose first top reason is the same feature on both sides.",
            labels=list(metric_names.GATEWAY_SHADOW_SAME_TOP_REASON_ROWS.labels),
        )
        overlap = CounterMetricFamily(
            metric_names.GATEWAY_SHADOW_REASON_OVERLAP_ROWS.name,
            "Compared rows by how many top-3 reason features both sides share (0-3).",
            labels=list(metric_names.GATEWAY_SHADOW_REASON_OVERLAP_ROWS.labels),
        )
        delta = HistogramMetricFamily(
            metric_names.GATEWAY_SHADOW_ABS_DELTA.name,
            "|shadow churn_probability - client churn_probability| per compared row.",
            labels=list(metric_names.GATEWAY_SHADOW_ABS_DELTA.labels),
        )
        latency = HistogramMetricFamily(
            metric_names.GATEWAY_SHADOW_LATENCY.name,
            "Latency of each side of a compared request (the client's whole answer; the mirror).",
            labels=list(metric_names.GATEWAY_SHADOW_LATENCY.labels),
        )
        for (primary, shadow), tally in pairs:
            names = [primary, shadow]
            for outcome in OUTCOMES:
                requests.add_metric([*names, outcome], tally.outcomes[outcome])
            for i, client_tier in enumerate(TIERS):
                for j, shadow_tier in enumerate(TIERS):
                    rows.add_metric([*names, client_tier, shadow_tier], tally.confusion[i][j])
            for side in SIDES:
                for label, count in zip(BIN_LABELS, tally.bins[side], strict=True):
                    probability.add_metric([*names, side, label], count)
                latency.add_metric(
                    [*names, side],
                    _buckets(LATENCY_BOUNDS, tally.latency[side]),
                    sum_value=tally.latency_sum[side],
                )
            same_top.add_metric(names, tally.same_top)
            for n, count in enumerate(tally.overlap):
                overlap.add_metric([*names, str(n)], count)
            delta.add_metric(
                names, _buckets(DELTA_BOUNDS, _with_inf(tally)), sum_value=tally.delta_sum
            )
        yield from (requests, rows, probability, same_top, overlap, delta, latency)


def _with_inf(tally: PairTally) -> list[int]:
    return [*tally.delta_bins, 0]  # |Δp| never exceeds 1.0, the last finite bound


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last is +Inf) as cumulative (le, count) pairs."""
    names = [repr(float(b)) for b in bounds] + ["+Inf"]
    cumulative, out = 0, []
    for name, count in zip(names, counts, strict=True):
        cumulative += count
        out.append((name, float(cumulative)))
    return out
