"""GET /stats: the gateway's request counters turned into rates, shares and latencies.

A background sampler reads the request counters once a second (the same families /metrics
exposes: summed over every worker under ``serve --workers N``) into a ring of the last ten
minutes. The numbers of the status page come from differences between two samples, as
Prometheus's ``rate()`` and ``histogram_quantile()`` would compute them from two scrapes, so a
scrape and the page agree. A version's requests and error rate are the rollout judge's
(measures/request_counts.py): requests routed to it, and its errors as 5xx it answered plus
requests it failed that stable saved by fallback, both shown; its share of requests is the
share routing sent it, comparable with the configured weight. Memory is bounded: the ring has
a fixed length, and every version in it is a configured one (or ``none``), the closed set the
counters' labels already are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from prometheus_client.metrics_core import Metric

from measures.quantile import histogram_quantile
from measures.request_counts import UNROUTED, RequestCounts, request_counts
from vocabulary.decision_log import DECISION_CHECK_FIELDS, DECISION_FIELDS, decision_log_path
from vocabulary.metric_names import GATEWAY_REQUEST_DURATION

log = logging.getLogger("gateway")

SAMPLE_INTERVAL_S = 1.0
RING_SIZE = 600  # ten minutes of one sample a second
WINDOW_S = 60.0  # the table's numbers cover the last minute
DURATION_BUCKET = GATEWAY_REQUEST_DURATION.bucket


@dataclass(frozen=True)
class VersionCounts:
    """One version's counters at one instant (monotonic totals, never rates): its requests and
    errors as the rollout judge counts them (measures/request_counts.py), and its latency."""

    requests: RequestCounts = RequestCounts()
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), +Inf last


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the epoch
    versions: Mapping[str, VersionCounts]


class VersionRow(TypedDict):
    """One version's line of the status page: its numbers over the window (None without one)."""

    version: str
    configured_percent: int | None
    served_percent: float | None
    requests: float | None
    rps: float | None
    errors: float | None
    error_rate: float | None
    answered_5xx: float | None
    saved_by_fallback: float | None
    p50_ms: float | None
    p99_ms: float | None


class Series(TypedDict):
    times: list[float]  # the sampled instants, seconds since the epoch
    rps: dict[str, list[float]]  # requests/s per version at each instant


class StatsDocument(TypedDict):
    """GET /stats without the rollout log the endpoint adds."""

    sampled_at: float | None
    window_s: float
    sample_interval_s: float
    versions: list[VersionRow]
    series: Series


def read_counts(families: Iterable[Metric]) -> dict[str, VersionCounts]:
    """Per version totals from the gateway's metric families (its own, or the summed ones)."""
    samples = [sample for family in families for sample in family.samples]
    requests = request_counts(samples)
    buckets: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        if sample.name == DURATION_BUCKET:
            bound = float(sample.labels.get("le", "+Inf"))
            version = sample.labels.get("version", UNROUTED)
            buckets.setdefault(version, []).append((bound, sample.value))
    return {
        version: VersionCounts(
            requests=requests.get(version, RequestCounts()),
            buckets=tuple(sorted(buckets.get(version, []))),
        )
        for version in {*requests, *buckets}
    }


def bucket_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """A quantile from cumulative (upper bound, count) buckets, +Inf last."""
    finite = [bound for bound, _ in buckets if not math.isinf(bound)]
    return histogram_quantile(q, finite, [count for _, count in buckets])


def _bucket_delta(
    new: Sequence[tuple[float, float]], old: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    before = dict(old)
    return [(bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in new]


class StatsSampler:
    """The ring of samples and what GET /stats reports from it."""

    def __init__(
        self,
        read: Callable[[], Iterable[Metric]],
        *,
        size: int = RING_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.read = read
        self.clock = clock
        self.ring: deque[Sample] = deque(maxlen=size)
        # Requests/s per version between each two consecutive samples, kept as the ring grows,
        # so a GET /stats does not recompute ten minutes of differences on the event loop.
        self.points: deque[tuple[float, dict[str, float]]] = deque(maxlen=max(1, size - 1))
        self._cached: tuple[tuple[object, ...], StatsDocument] | None = None

    def sample(self) -> None:
        self.add(Sample(self.clock(), read_counts(self.read())))

    def add(self, sample: Sample) -> None:
        previous = self.ring[-1] if self.ring else None
        self.ring.append(sample)
        if previous is not None and sample.at > previous.at:
            dt = sample.at - previous.at
            self.points.append(
                (
                    round(sample.at, 3),
                    {
                        version: round(
                            max(0.0, counts.requests.requests - _requests(previous, version)) / dt,
                            3,
                        )
                        for version, counts in sample.versions.items()
                    },
                )
            )

    async def run(self, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a bug here must not stop the page's numbers for good
                log.exception("stats sample failed")
            await asyncio.sleep(interval_s)

    def describe(self, configured: Mapping[str, int], window_s: float = WINDOW_S) -> StatsDocument:
        """Per version numbers over the last ``window_s`` and requests/s for the whole ring.

        ``configured`` is the active config's percent per version, in the config's order. The
        document is computed once per sample and config (every open page asks every second)."""
        key = (len(self.points), self.ring[-1].at if self.ring else None, *configured.items())
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        document = self._describe(configured, window_s)
        self._cached = (key, document)
        return document

    def _describe(self, configured: Mapping[str, int], window_s: float) -> StatsDocument:
        ring = list(self.ring)
        latest = ring[-1] if ring else None
        base = next((s for s in ring if latest and s.at >= latest.at - window_s), None)
        span = latest.at - base.at if latest and base else 0.0
        rows = [self._row(v, configured[v], latest, base, span) for v in configured]
        # A version no longer configured still shows while it served in the window.
        others = sorted({v for s in ring[-1:] for v in s.versions} - {UNROUTED, *configured})
        rows += [
            row
            for row in (self._row(v, None, latest, base, span) for v in others)
            if row["requests"]
        ]
        versions = [row["version"] for row in rows]
        total = sum(row["requests"] or 0 for row in rows)
        for row in rows:
            requests = row["requests"]  # None only without a window (span 0)
            row["served_percent"] = (
                round(100.0 * requests / total, 2)
                if span > 0 and total > 0 and requests is not None
                else None
            )
        return {
            "sampled_at": latest.at if latest else None,
            "window_s": round(span, 3),
            "sample_interval_s": SAMPLE_INTERVAL_S,
            "versions": rows,
            "series": {
                "times": [at for at, _ in self.points],
                "rps": {v: [rps.get(v, 0.0) for _, rps in self.points] for v in versions},
            },
        }

    @staticmethod
    def _row(
        version: str,
        configured: int | None,
        latest: Sample | None,
        base: Sample | None,
        span: float,
    ) -> VersionRow:
        row: VersionRow = {
            "version": version,
            "configured_percent": configured,
            "served_percent": None,
            "requests": None,
            "rps": None,
            "errors": None,
            "error_rate": None,
            "answered_5xx": None,
            "saved_by_fallback": None,
            "p50_ms": None,
            "p99_ms": None,
        }
        if latest is None or base is None or span <= 0:
            return row
        new = latest.versions.get(version, VersionCounts())
        old = base.versions.get(version, VersionCounts())
        counts = new.requests.minus(old.requests)
        buckets = _bucket_delta(new.buckets, old.buckets)
        rate = counts.error_rate
        row.update(
            {
                "requests": counts.requests,
                "rps": round(counts.requests / span, 3),
                "errors": counts.errors,
                "error_rate": None if rate is None else round(rate, 6),
                "answered_5xx": counts.answered_5xx,
                "saved_by_fallback": counts.saved_by_fallback,
                "p50_ms": _ms(bucket_quantile(buckets, 0.5)),
                "p99_ms": _ms(bucket_quantile(buckets, 0.99)),
            }
        )
        return row


def _requests(sample: Sample, version: str) -> float:
    counts = sample.versions.get(version)
    return counts.requests.requests if counts is not None else 0.0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


ROLLOUT_LOG_TAIL_BYTES = 256 * 1024  # the page shows the last few decisions; never the whole file
ROLLOUT_LOG_ENTRIES = 10


def read_rollout_log(routing_file: Path) -> list[dict[str, Any]] | None:
    """The rollout controller's last decisions, for the status page; None when it has no log.

    The controller appends one JSON line per check to the decision log next to routing.yaml
    (vocabulary/decision_log.py). Only the file's tail is read, and only the fields the page
    shows are kept, so a long rollout costs this endpoint nothing more."""
    path = decision_log_path(routing_file)
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - ROLLOUT_LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    if size > ROLLOUT_LOG_TAIL_BYTES:
        lines = lines[1:]  # the first may be cut
    entries: list[dict[str, Any]] = []  # JSON lines, as the controller wrote them
    for raw in lines[-ROLLOUT_LOG_ENTRIES:]:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            kept = {key: entry[key] for key in DECISION_FIELDS if key in entry}
            checks = entry.get("checks")
            if isinstance(checks, list):
                kept["checks"] = [
                    {key: c[key] for key in DECISION_CHECK_FIELDS if key in c}
                    for c in checks
                    if isinstance(c, dict)
                ]
            entries.append(kept)
    return entries
