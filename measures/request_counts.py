"""What a version's request counters mean: one definition for the status page, the judge and
the CLI.

A client request is counted against the version routing sent it to. When that version failed
it (connect error, timeout, 5xx on every replica tried) and stable answered instead, the client
saw no error, but the version did fail it: the request is the routed version's, and it is one
of its errors ("saved by fallback"), not one of stable's requests. So:

- ``requests``: client requests routed to the version (answered by it, or failed by it and
  saved by fallback);
- ``errors``: ``answered_5xx`` (a 5xx the version answered, which the client got) plus
  ``saved_by_fallback``;
- ``error_rate``: ``errors / requests``.

The counts come from the gateway's own series (``gateway_requests_total`` without the answers
stable gave on another version's behalf, and ``gateway_fallbacks_total`` by the version that
failed), read as plain (name, labels, value) samples, so it does not matter whether they were
read from a registry, a scrape or Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from vocabulary.metric_names import GATEWAY_FALLBACKS, GATEWAY_REQUESTS

__all__ = ["UNROUTED", "MetricSample", "RequestCounts", "request_counts"]

UNROUTED = "none"  # the version label of an error before any version was chosen (a bad pin)


class MetricSample(Protocol):
    """A sample as prometheus_client and the rollout sources give it."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def value(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """One version's request counters at one instant (monotonic totals)."""

    requests: float = 0.0
    answered_5xx: float = 0.0
    saved_by_fallback: float = 0.0

    @property
    def errors(self) -> float:
        return self.answered_5xx + self.saved_by_fallback

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None

    def minus(self, earlier: RequestCounts) -> RequestCounts:
        """What happened since ``earlier``, never below 0 (a worker whose counters vanished
        from a sum takes nothing away from a window)."""
        return RequestCounts(
            max(0.0, self.requests - earlier.requests),
            max(0.0, self.answered_5xx - earlier.answered_5xx),
            max(0.0, self.saved_by_fallback - earlier.saved_by_fallback),
        )


def request_counts(samples: Iterable[MetricSample]) -> dict[str, RequestCounts]:
    """Per version counts from the gateway's request and fallback samples; others are ignored."""
    answered: dict[str, float] = {}
    answered_5xx: dict[str, float] = {}
    saved: dict[str, float] = {}
    for sample in samples:
        labels = sample.labels
        if sample.name == GATEWAY_REQUESTS.total:
            if labels.get("reason") == "fallback":
                # Stable's answer on another version's behalf: counted where it was routed,
                # through gateway_fallbacks_total, not as stable's own.
                continue
            version = labels.get("version", UNROUTED)
            answered[version] = answered.get(version, 0.0) + sample.value
            if labels.get("status", "").startswith("5"):
                answered_5xx[version] = answered_5xx.get(version, 0.0) + sample.value
        elif sample.name == GATEWAY_FALLBACKS.total:
            version = labels.get("from_version", UNROUTED)
            saved[version] = saved.get(version, 0.0) + sample.value
    return {
        version: RequestCounts(
            requests=answered.get(version, 0.0) + saved.get(version, 0.0),
            answered_5xx=answered_5xx.get(version, 0.0),
            saved_by_fallback=saved.get(version, 0.0),
        )
        for version in {*answered, *saved}
    }
