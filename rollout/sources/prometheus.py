"""Ask a Prometheus server, which scrapes every gateway and replica, with PromQL instant queries.

The same series as the scrape source, per instance (the controller sums them, and tells a
restarted process by its own counters going down): how a deployment with many gateways is
judged as one.

Prometheus's newest samples are up to a scrape interval old, and each target is scraped at its
own moment, so a reading taken just after routing.yaml changed still counts, on some targets,
traffic routed before the change. Every reading therefore says when each target was scraped
(``timestamp(up)``), and ``took_effect`` says from when a reading counts only the new routing:
the newest scrape at which every gateway reported the revision settled
(``gateway_config_settled_info``: loaded, and no request routed by an earlier one in flight).
Both are Prometheus's own sample times, so the controller's clock never has to agree with
Prometheus's. ``up`` rather than ``/api/v1/targets``'s ``lastScrape``: ``up`` is committed
in the same write as the scrape's samples, so a query that sees it sees them, while
``lastScrape`` is set when the scrape returns, before its samples can be queried.
"""

from __future__ import annotations

from typing import Any

import httpx

from rollout.counts import Snapshot
from rollout.sources.base import (
    FALLBACKS,
    LATENCY,
    PROBABILITY,
    REQUESTS,
    SERVED_BINS,
    SHADOW_BINS,
    SHADOW_ROWS,
    UPSTREAM_ERRORS,
    NotYet,
    Sample,
    SourceError,
)
from rollout.sources.reduce import snapshot_from_samples
from vocabulary import metric_names

__all__ = ["QUERIES", "SCRAPED", "SETTLED", "PrometheusSource"]

SETTLED = (  # {instance, revision}: when last scraped
    f"timestamp({metric_names.GATEWAY_CONFIG_SETTLED_INFO.name})"
)
SCRAPED = "timestamp(up)"  # {instance}: when each target was last scraped, failed or not

# Kept per instance: a process that restarted is told apart from the others (base.py).
QUERIES = {
    REQUESTS: f"sum by (instance, version, reason, status) ({REQUESTS})",
    FALLBACKS: f"sum by (instance, from_version) ({FALLBACKS})",
    UPSTREAM_ERRORS: f"sum by (instance, version) ({UPSTREAM_ERRORS})",
    LATENCY: f"sum by (instance, version, le) ({LATENCY})",
    PROBABILITY: f"sum by (instance, version, shadow, le) ({PROBABILITY})",
    SERVED_BINS: f"sum by (instance, version, bin) ({SERVED_BINS})",
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
        # The scrape times first: the counts asked after them are of those scrapes or newer,
        # never older, so a reading is never taken as newer than it is.
        scraped: dict[str, float] = {}
        for series in self._query(SCRAPED):
            instance = str(series["metric"].get("instance", ""))
            at = float(series["value"][1])
            scraped[instance] = min(at, scraped.get(instance, at))
        samples: list[Sample] = []
        for name, promql in QUERIES.items():
            for series in self._query(promql):
                samples.append(Sample(name, series["metric"], float(series["value"][1])))
        return snapshot_from_samples(samples, scraped)

    def took_effect(self, revision: str) -> float:
        seen = self._query(SETTLED)
        if not seen:
            name = metric_names.GATEWAY_CONFIG_SETTLED_INFO.name
            raise NotYet(f"{self.url} has no {name}: it scrapes no gateway yet")
        behind = sorted(
            f"{series['metric'].get('instance', '?')} at {series['metric'].get('revision', '?')}"
            for series in seen
            if series["metric"].get("revision") != revision
        )
        if behind:
            raise NotYet(
                f"gateways not yet scraped with revision {revision} settled: {', '.join(behind)}"
            )
        # Each gateway counted only the revision's routing from the scrape that reported it.
        return max(float(series["value"][1]) for series in seen)

    def _query(self, promql: str) -> list[dict[str, Any]]:
        """The query's instant vector as Prometheus's JSON gives it: {"metric": labels, "value":
        [time, "number"]} per series."""
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": promql})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SourceError(f"{self.url}: {promql}: {exc}") from exc
        if body.get("status") != "success":
            raise SourceError(f"{self.url}: {promql}: {body.get('error', body)}")
        return list(body["data"]["result"])
