"""Prometheus metrics of one model-server replica, on a registry the app factory builds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
# The ten bins of gateway/shadow/compare.py, so a rollout judges drift on the bins shadow uses.
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ModelMetrics:
    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self.registry = registry
        self.predictions = Counter(
            "model_predictions",
            "Customers scored, by endpoint, risk tier and whether a gateway's shadow copy asked.",
            ["endpoint", "risk_tier", "shadow"],
            registry=registry,
        )
        self.latency = Histogram(
            "model_request_duration_seconds",
            "Time to predict and explain one request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "model_batch_size",
            "Customers per /predict/batch request.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        # Labelled with the version so Prometheus can sum it across replicas without a join.
        self.probability = Histogram(
            "model_churn_probability",
            "Churn probabilities predicted, by version and whether a shadow copy asked.",
            ["version", "shadow"],
            buckets=PROBABILITY_BUCKETS,
            registry=registry,
        )
        self.version = version
        self.info = Gauge(
            "model_info", "The model version this replica serves.", ["version"], registry=registry
        )
        self.info.labels(version).set(1)

    def observe(
        self, endpoint: str, results: list[dict], seconds: float, *, shadow: bool = False
    ) -> None:
        self.latency.labels(endpoint).observe(seconds)
        tiers: dict[str, int] = {}
        for result in results:
            tiers[result["risk_tier"]] = tiers.get(result["risk_tier"], 0) + 1
        for tier, count in tiers.items():
            self.predictions.labels(endpoint, tier, "true" if shadow else "false").inc(count)
        probability = self.probability.labels(self.version, "true" if shadow else "false")
        for result in results:
            probability.observe(result["churn_probability"])
        if endpoint == "batch":
            self.batch_size.observe(len(results))
