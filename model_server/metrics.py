"""Prometheus metrics of one model-server replica, on a registry the app factory builds."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from vocabulary import metric_names
from vocabulary.buckets import BATCH_SIZE_BUCKETS, MODEL_LATENCY_BUCKETS, PROBABILITY_BOUNDS

if TYPE_CHECKING:
    # Arrays come in from the predictor; numpy is not imported here, so processes that only
    # need the buckets (the rollout tests' stand-in replicas) stay as light as before.
    import numpy as np

    from model_server.schemas import Prediction

LATENCY_BUCKETS = MODEL_LATENCY_BUCKETS
BATCH_BUCKETS = BATCH_SIZE_BUCKETS
# The bins of the shadow comparison, so a rollout judges drift on the bins shadow uses.
PROBABILITY_BUCKETS = PROBABILITY_BOUNDS


class ModelMetrics:
    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self.registry = registry
        self.predictions = Counter(
            metric_names.MODEL_PREDICTIONS.name,
            "Customers scored, by endpoint, risk tier and whether a gateway's shadow copy asked.",
            list(metric_names.MODEL_PREDICTIONS.labels),
            registry=registry,
        )
        self.latency = Histogram(
            metric_names.MODEL_REQUEST_DURATION.name,
            "Time to predict and explain one request, by endpoint.",
            list(metric_names.MODEL_REQUEST_DURATION.labels),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            metric_names.MODEL_BATCH_SIZE.name,
            "Customers per /predict/batch request.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        # Labelled with the version so Prometheus can sum it across replicas without a join.
        self.probability = ProbabilityHistogram(version)
        registry.register(self.probability)
        self.version = version
        self.info = Gauge(
            metric_names.MODEL_INFO.name,
            "The model version this replica serves.",
            list(metric_names.MODEL_INFO.labels),
            registry=registry,
        )
        self.info.labels(version).set(1)
        # Labelled children, kept once made: ``labels()`` hashes and locks on every call. Made
        # on first use (not up front), so /metrics lists the same series as before; the keys
        # come from closed sets (two endpoints, three tiers, shadow or not).
        self._latency_of: dict[str, Histogram] = {}
        self._predictions_of: dict[tuple[str, str, bool], Counter] = {}

    def observe(
        self, endpoint: str, results: list[Prediction], seconds: float, *, shadow: bool = False
    ) -> None:
        """One request's answers, as the dicts sent."""
        if (
            len(results) == 1 and endpoint != "batch"
        ):  # the common case, without the tallies' lists and dicts
            result = results[0]
            self.observe_one(
                endpoint, result["risk_tier"], result["churn_probability"], seconds, shadow=shadow
            )
            return
        tiers: dict[str, int] = {}
        for result in results:
            tiers[result["risk_tier"]] = tiers.get(result["risk_tier"], 0) + 1
        self._observe(endpoint, tiers, len(results), seconds, shadow)
        self.probability.observe(shadow, [result["churn_probability"] for result in results])

    def observe_one(
        self, endpoint: str, tier: str, probability: float, seconds: float, *, shadow: bool
    ) -> None:
        """One request of one row (not a /predict/batch one)."""
        self._latency(endpoint).observe(seconds)
        self._predictions(endpoint, tier, shadow).inc()
        self.probability.observe_one(shadow, probability)

    def observe_batch(
        self,
        probabilities: np.ndarray,
        tiers: np.ndarray,
        tier_names: Sequence[str],
        seconds: float,
        *,
        shadow: bool = False,
        endpoint: str = "batch",
    ) -> None:
        """A request's answers as arrays: served probabilities, tier indexes into tier_names
        (``endpoint``: "batch", or "v2" for the Open Inference Protocol's infer)."""
        counts = [int((tiers == i).sum()) for i in range(len(tier_names))]
        by_name = {name: count for name, count in zip(tier_names, counts, strict=True) if count}
        self._observe(endpoint, by_name, len(probabilities), seconds, shadow)
        self.probability.observe_many(shadow, probabilities)

    def _observe(
        self, endpoint: str, tiers: dict[str, int], rows: int, seconds: float, shadow: bool
    ) -> None:
        self._latency(endpoint).observe(seconds)
        for tier, count in tiers.items():
            self._predictions(endpoint, tier, shadow).inc(count)
        if endpoint == "batch":
            self.batch_size.observe(rows)

    def _latency(self, endpoint: str) -> Histogram:
        child = self._latency_of.get(endpoint)
        if child is None:
            child = self._latency_of[endpoint] = self.latency.labels(endpoint)
        return child

    def _predictions(self, endpoint: str, tier: str, shadow: bool) -> Counter:
        key = (endpoint, tier, shadow)
        child = self._predictions_of.get(key)
        if child is None:
            child = self.predictions.labels(endpoint, tier, "true" if shadow else "false")
            self._predictions_of[key] = child
        return child


class ProbabilityHistogram:
    """``model_churn_probability{version, shadow}``: a histogram that takes a batch in one call.

    prometheus_client's Histogram takes one value per call, each through a lock: 1,000 calls
    cost a 1,000-row batch about 2.5 ms, more than its encoding. Exported as the same family
    (buckets, count, sum) from counts kept here.
    """

    def __init__(self, version: str) -> None:
        self.version = version
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # per shadow label, one count a bucket, +Inf last
        self._sums: dict[str, float] = {}

    def observe(self, shadow: bool, probabilities: Sequence[float]) -> None:
        counts = [0] * (len(PROBABILITY_BUCKETS) + 1)
        for probability in probabilities:
            counts[bisect.bisect_left(PROBABILITY_BUCKETS, probability)] += 1
        self._add(shadow, counts, float(sum(probabilities)))

    def observe_one(self, shadow: bool, probability: float) -> None:
        index = bisect.bisect_left(PROBABILITY_BUCKETS, probability)
        label = "true" if shadow else "false"
        with self._lock:
            mine = self._counts.get(label)
            if mine is None:
                mine = self._counts[label] = [0] * (len(PROBABILITY_BUCKETS) + 1)
                self._sums[label] = 0.0
            mine[index] += 1
            self._sums[label] += probability

    def observe_many(self, shadow: bool, probabilities: np.ndarray) -> None:
        ordered = probabilities.copy()
        ordered.sort()
        # side="right": a value equal to a bound counts in that bucket (le), as in
        # prometheus_client; differences of the cumulative counts give each bucket's own.
        at_most = [int(ordered.searchsorted(bound, side="right")) for bound in PROBABILITY_BUCKETS]
        at_most.append(len(ordered))
        counts = [at_most[0]] + [high - low for low, high in itertools.pairwise(at_most)]
        self._add(shadow, counts, float(probabilities.sum()))

    def _add(self, shadow: bool, counts: list[int], total: float) -> None:
        label = "true" if shadow else "false"
        with self._lock:
            mine = self._counts.setdefault(label, [0] * (len(PROBABILITY_BUCKETS) + 1))
            for i, count in enumerate(counts):
                mine[i] += count
            self._sums[label] = self._sums.get(label, 0.0) + total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            metric_names.MODEL_CHURN_PROBABILITY.name,
            "Churn probabilities predicted, by version and whether a shadow copy asked.",
            labels=list(metric_names.MODEL_CHURN_PROBABILITY.labels),
        )
        with self._lock:
            snapshot = {label: (list(c), self._sums[label]) for label, c in self._counts.items()}
        # prometheus_client leaves floatToGoString unannotated; it takes a float, returns a str.
        bounds = [*(floatToGoString(b) for b in PROBABILITY_BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]
        for label, (counts, total) in snapshot.items():
            cumulative = list(itertools.accumulate(counts))
            family.add_metric(
                [self.version, label], list(zip(bounds, cumulative, strict=True)), total
            )
        yield family
