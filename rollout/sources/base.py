"""The one interface of a metric source: what it must read, what it returns, how it fails.

Both sources (a scrape of every /metrics, the Prometheus HTTP API) hand over the same few
series as plain samples; ``rollout/sources/reduce.py`` turns them into counts per version, so
the two cannot disagree on what an error is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rollout.counts import Snapshot
from vocabulary import metric_names

__all__ = [
    "FALLBACKS",
    "LATENCY",
    "PROBABILITY",
    "REQUESTS",
    "SHADOW_BINS",
    "SERVED_BINS",
    "SHADOW_ROWS",
    "UPSTREAM_ERRORS",
    "NotYet",
    "Sample",
    "Source",
    "SourceError",
]

# The series a source must provide (names as exposed, with the _total / _bucket suffix).
REQUESTS = metric_names.GATEWAY_REQUESTS.total
FALLBACKS = metric_names.GATEWAY_FALLBACKS.total
UPSTREAM_ERRORS = metric_names.GATEWAY_UPSTREAM_ERRORS.total
LATENCY = metric_names.GATEWAY_REQUEST_DURATION.bucket
PROBABILITY = metric_names.MODEL_CHURN_PROBABILITY.bucket
# The gateway's count of the probabilities a version served clients, kept for a version whose
# answers it reads (protocol: v2, any V2 server): that version's histogram when its replicas
# export none (VersionCounts.judged_probability).
SERVED_BINS = metric_names.GATEWAY_SERVED_PROBABILITY_ROWS.total
# The gateway's shadow comparison (gateway/shadow/metrics.py), counted for the shadow version.
SHADOW_ROWS = metric_names.GATEWAY_SHADOW_ROWS.total
SHADOW_BINS = metric_names.GATEWAY_SHADOW_PROBABILITY_ROWS.total


class SourceError(Exception):
    """The metrics could not be read; the controller logs it and tries again next check."""


class NotYet(Exception):
    """A routing.yaml revision has not yet taken effect everywhere the source looks: says
    what is still behind."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


class Source(Protocol):
    def read(self) -> Snapshot:
        """The cumulative counts now, summed over every gateway and replica; SourceError
        when they cannot be read."""
        ...

    def took_effect(self, revision: str) -> float:
        """Once every gateway serves routing.yaml ``revision`` with nothing routed by an earlier
        one still in flight (``gateway_config_settled_info``), a moment on the clock of
        ``Snapshot.scraped`` after which every sample counts only traffic routed by it: a
        window's baseline is a reading with nothing taken before it.
        NotYet while some gateway is behind; SourceError when it cannot be asked."""
        ...

    def describe(self) -> str:
        """Where the numbers come from, for the log."""
        ...
