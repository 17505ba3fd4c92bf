"""Read /metrics of every gateway given and of every replica their /routing lists."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

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

__all__ = ["ScrapeSource", "instance_of", "parse_exposition"]

WANTED = {
    REQUESTS,
    FALLBACKS,
    UPSTREAM_ERRORS,
    LATENCY,
    PROBABILITY,
    SERVED_BINS,
    SHADOW_ROWS,
    SHADOW_BINS,
}


def parse_exposition(text: str, instance: str | None = None) -> list[Sample]:
    """The samples of the series a snapshot needs, from a Prometheus text exposition; with
    ``instance``, labelled with it as Prometheus labels what it scrapes."""
    extra = {} if instance is None else {"instance": instance}
    return [
        Sample(sample.name, {**sample.labels, **extra}, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in WANTED
    ]


def instance_of(url: str) -> str:
    """host:port, as Prometheus names a target in its ``instance`` label."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


class ScrapeSource:
    def __init__(self, gateways: Sequence[str], client: httpx.Client) -> None:
        self.gateways = [url.rstrip("/") for url in gateways]
        self.client = client

    def describe(self) -> str:
        return f"scrape of {', '.join(self.gateways)} and their replicas"

    def read(self) -> Snapshot:
        samples: list[Sample] = []
        replicas: set[str] = set()
        for gateway in self.gateways:
            routing = self._get(f"{gateway}/routing").json()
            replicas.update(str(r["address"]) for r in routing.get("replicas", []))
            samples += parse_exposition(self._get(f"{gateway}/metrics").text, instance_of(gateway))
        samples += self._replica_samples(sorted(replicas))
        return snapshot_from_samples(samples)

    def took_effect(self, revision: str) -> float:
        """Readings are live: one begun once every gateway reports the revision settled counts
        only what it routes. (A gateway of several workers reports the revision of the worker
        that answered; its counts of the others are up to a second old:
        gateway/metrics_share.py.)"""
        behind = []
        for gateway in self.gateways:
            text = self._get(f"{gateway}/metrics").text
            running = [
                sample.labels.get("revision")
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == metric_names.GATEWAY_CONFIG_SETTLED_INFO.name
            ]
            if running != [revision]:
                behind.append(f"{gateway} at {', '.join(map(str, running)) or 'no revision'}")
        if behind:
            raise NotYet(f"gateways not yet settled at revision {revision}: {', '.join(behind)}")
        return time.time()

    def _replica_samples(self, replicas: Iterable[str]) -> list[Sample]:
        samples: list[Sample] = []
        for replica in replicas:
            # A replica that is down has no probabilities to give; the gateways' counts, which
            # decide errors and latency, do not depend on it.
            try:
                text = self._get(f"{replica}/metrics").text
                samples += parse_exposition(text, instance_of(replica))
            except SourceError:
                continue
        return samples

    def _get(self, url: str) -> httpx.Response:
        try:
            response = self.client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SourceError(f"{url}: {exc}") from exc
        return response
