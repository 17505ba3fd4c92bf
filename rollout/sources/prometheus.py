"""Ask a Prometheus server, which scrapes every gateway and replica, with PromQL instant queries.

The same series as the scrape source, per instance (the controller sums them, and tells a
restarted process by its own counters going down): how a deployment with many gateways is
judged as one.
"""

from __future__ import annotations

import httpx

from rollout.sources.base import (
    FALLBACKS,
    LATENCY,
    PROBABILITY,
    REQUESTS,
    SHADOW_BINS,
    SHADOW_ROWS,
    UPSTREAM_ERRORS,
    Sample,
    Snapshot,
    SourceError,
    snapshot_from_samples,
)

__all__ = ["QUERIES", "PrometheusSource"]

# Kept per instance: a process that restarted is told apart from the others (base.py).
QUERIES = {
    REQUESTS: f"sum by (instance, version, reason, status) ({REQUESTS})",
    FALLBACKS: f"sum by (instance, from_version) ({FALLBACKS})",
    UPSTREAM_ERRORS: f"sum by (instance, version) ({UPSTREAM_ERRORS})",
    LATENCY: f"sum by (instance, version, le) ({LATENCY})",
    PROBABILITY: f"sum by (instance, version, shadow, le) ({PROBABILITY})",
    SHADOW_ROWS: f"sum by (instance, shadow, primary_tier, shadow_tier) ({SHADOW_ROWS})",
    SHADOW_BINS: f"sum by (instance, shadow, side, bin) ({SHADOW_BINS})",
}


class PrometheusSource:
    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self.client = client

    def describe(self) -> str:
        return f"Prometheus at {self.url}"

    def read(self) -> Snapshot:
        samples: list[Sample] = []
        for name, promql in QUERIES.items():
            for series in self._query(promql):
                samples.append(Sample(name, series["metric"], float(series["value"][1])))
        return snapshot_from_samples(samples)

    def _query(self, promql: str) -> list[dict]:
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"{self.url}: {promql}: {exc}") from exc
        if body.get("status") != "success":
            raise SourceError(f"{self.url}: {promql}: {body.get('error', body)}")
        return list(body["data"]["result"])
