"""Prometheus metrics of one gateway, on a registry the app factory builds, not the global one.

No label value comes from a client or a replica unchecked, so neither can create series: versions
are configured ones (or ``none`` for an error before any version was chosen, such as a bad pin),
replicas are configured URLs, reasons and causes are fixed words, and a status is its code when
it is a registered HTTP status and its class (``2xx`` ... ``5xx``, else ``other``) when not.
"""

from __future__ import annotations

import bisect
import http
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway.pool import ReplicaState
from gateway.state import GatewayState
from httpserver.tally import ConnectionTally
from vocabulary import metric_names
from vocabulary.buckets import GATEWAY_LATENCY_BUCKETS, PROBABILITY_BIN_LABELS, PROBABILITY_BOUNDS


def _status_labels() -> dict[int, str]:
    """The status label of every status a parser can give (three digits): a closed set."""
    registered = {status.value for status in http.HTTPStatus}
    labels = {}
    for code in range(1000):
        if code in registered:
            labels[code] = str(code)
        elif 100 <= code < 600:
            labels[code] = f"{code // 100}xx"
        else:
            labels[code] = "other"
    return labels


STATUS_LABELS = _status_labels()
# Up to this many rows, an answer's bins are found one by one (bisect): cheaper than numpy's
# call overhead for /predict's one row; above it, at once.
SMALL_ANSWER = 16


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.answered = AnsweredRequests(GATEWAY_LATENCY_BUCKETS)
        registry.register(self.answered)
        self.clients = ClientTally()
        registry.register(self.clients)
        self.served = ServedProbabilities()
        registry.register(self.served)
        self.upstream_errors = Counter(
            metric_names.GATEWAY_UPSTREAM_ERRORS.name,
            "Failed tries against a replica, by version, replica and cause.",
            list(metric_names.GATEWAY_UPSTREAM_ERRORS.labels),
            registry=registry,
        )
        self.fallbacks = Counter(
            metric_names.GATEWAY_FALLBACKS.name,
            "Requests served by stable instead of the version routing chose.",
            list(metric_names.GATEWAY_FALLBACKS.labels),
            registry=registry,
        )
        self.ejections = Counter(
            metric_names.GATEWAY_REPLICA_EJECTIONS.name,
            "Replicas ejected after consecutive failed requests.",
            list(metric_names.GATEWAY_REPLICA_EJECTIONS.labels),
            registry=registry,
        )
        self.reloads = Counter(
            metric_names.GATEWAY_CONFIG_RELOADS.name,
            "routing.yaml reloads that took effect.",
            registry=registry,
        )
        self.reload_failures = Counter(
            metric_names.GATEWAY_CONFIG_RELOAD_FAILURES.name,
            "routing.yaml changes rejected as invalid (the last good config kept serving).",
            registry=registry,
        )

    def counted(self) -> list[Collector]:
        """The collectors of counts, which add up across worker processes (gauges do not)."""
        return [
            self.answered,
            self.clients,
            self.served,
            self.upstream_errors,
            self.fallbacks,
            self.ejections,
            self.reloads,
            self.reload_failures,
        ]

    def watch(self, state: Callable[[], GatewayState | None]) -> Collector:
        """Expose replica health, weights and revision, read from the live state at scrape, and
        the open client connections: this process's gauges."""
        collector = _StateCollector(state, self.clients)
        self.registry.register(collector)
        return collector


class AnsweredRequests(Collector):
    """gateway_requests_total and gateway_request_duration_seconds, tallied as plain numbers.

    prometheus_client's Counter and Histogram validate labels and take a lock on every call; the
    event loop is one thread, so per request this is two dict lookups and three additions, and
    the families are built when Prometheus scrapes.
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        self.counts: dict[tuple[str, str, str], int] = {}
        # version -> [count per bucket (the last is +Inf), sum of seconds]
        self.latency: dict[str, list[float]] = {}

    def record(self, version: str, reason: str, status: int, seconds: float) -> None:
        """One answer. ``version`` and ``reason`` must come from closed sets (the caller's
        job); ``status`` is mapped to one here."""
        key = (version, reason, STATUS_LABELS.get(status, "other"))
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        tally = self.latency.get(version)
        if tally is None:
            tally = self.latency[version] = [0.0] * (len(self.bounds) + 2)
        tally[bisect.bisect_left(self.bounds, seconds)] += 1  # le: a bound is inclusive
        tally[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            metric_names.GATEWAY_REQUESTS.name,
            "Client requests answered, by serving version, route reason and status.",
            labels=list(metric_names.GATEWAY_REQUESTS.labels),
        )
        for (version, reason, status), count in sorted(self.counts.items()):
            requests.add_metric([version, reason, status], count)
        yield requests
        latency = HistogramMetricFamily(
            metric_names.GATEWAY_REQUEST_DURATION.name,
            "Time from request to response, by serving version.",
            labels=list(metric_names.GATEWAY_REQUEST_DURATION.labels),
        )
        names = [_bound(b) for b in self.bounds] + ["+Inf"]
        for version, tally in sorted(self.latency.items()):
            cumulative, buckets = 0.0, []
            for name, in_bucket in zip(names, tally[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((name, cumulative))
            latency.add_metric([version], buckets, sum_value=tally[-1])
        yield latency


class ServedProbabilities(Collector):
    """gateway_served_probability_rows_total: the probabilities clients got from a version whose
    answers the gateway reads anyway (a ``protocol: v2`` version, gateway/lanes.py), per bin of
    the shared probability bounds. Such a server exports no histogram of its predictions, as our
    replicas do (model_churn_probability), so the rollout judge's drift checks read this one for
    it. Only answers a client got are counted, never a shadow copy's (the replicas' histogram
    leaves those out too); our replicas' answers are never read for it, so /predict's hot path
    pays nothing.

    Labels: a configured version (the lane's), and a bin from the fixed set."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}  # version -> rows per bin

    def record(
        self, version: str, probabilities: Sequence[float] | npt.NDArray[np.float64]
    ) -> None:
        """The rows of one answer. ``version`` must be a configured one (the caller's job)."""
        tally = self.rows.get(version)
        if tally is None:
            tally = self.rows[version] = [0] * len(PROBABILITY_BOUNDS)
        last = len(PROBABILITY_BOUNDS) - 1
        if len(probabilities) <= SMALL_ANSWER:
            # "le" bins: a bound is inclusive; past 1.0 (the score readers refuse it) or not a
            # number would join the last bin.
            for p in probabilities:
                tally[min(bisect.bisect_left(PROBABILITY_BOUNDS, p), last)] += 1
            return
        bins = np.minimum(np.searchsorted(PROBABILITY_BOUNDS, probabilities, side="left"), last)
        for i, n in enumerate(np.bincount(bins, minlength=len(PROBABILITY_BOUNDS)).tolist()):
            tally[i] += n

    def collect(self) -> Iterator[Metric]:
        rows = CounterMetricFamily(
            metric_names.GATEWAY_SERVED_PROBABILITY_ROWS.name,
            "Rows clients got from a version whose answers the gateway reads (a protocol: v2 "
            "version), by churn-probability bin: its prediction histogram, for the drift checks.",
            labels=list(metric_names.GATEWAY_SERVED_PROBABILITY_ROWS.labels),
        )
        for version, tally in sorted(self.rows.items()):
            for label, count in zip(PROBABILITY_BIN_LABELS, tally, strict=True):
                rows.add_metric([version, label], count)
        yield rows


class ClientTally(ConnectionTally, Collector):
    """What the client limits did (gateway/client_limits.py), tallied as plain numbers: the
    server protocol counts every connection (httpserver/tally.py) and the proxy every shed
    request, so a flood of either costs an addition each, not a labelled counter's lock.

    Labels come from closed sets: a timeout's phase, a configured version."""

    def __init__(self) -> None:
        super().__init__()  # open (a gauge: reported with the state's), refused, timeouts, ...
        self.shed: dict[str, int] = {}  # version -> requests answered 503 at the in-flight cap
        self.queued: Callable[[], int] = _none  # requests waiting for room now (a gauge)

    def count_shed(self, version: str) -> None:
        self.shed[version] = self.shed.get(version, 0) + 1

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            metric_names.GATEWAY_CONNECTIONS_REFUSED.name,
            "Client connections answered 503 and closed at once: over GATEWAY_MAX_CONNECTIONS.",
            value=self.refused,
        )
        yield CounterMetricFamily(
            metric_names.GATEWAY_REQUEST_HEADS_TOO_LARGE.name,
            "Requests answered 431 and their connection closed: a head over "
            "GATEWAY_MAX_HEAD_BYTES.",
            value=self.heads_too_large,
        )
        timeouts = CounterMetricFamily(
            metric_names.GATEWAY_CLIENT_TIMEOUTS.name,
            "Client connections closed because a request did not arrive in time, by phase "
            "(idle: a new connection sent nothing; head, body: answered 408; send: the client "
            "did not read its answers, dropped).",
            labels=list(metric_names.GATEWAY_CLIENT_TIMEOUTS.labels),
        )
        for phase, count in self.timeouts.items():
            timeouts.add_metric([phase], count)
        yield timeouts
        shed = CounterMetricFamily(
            metric_names.GATEWAY_SHED_REQUESTS.name,
            "Requests answered 503 because every replica of their version stayed at its "
            "in-flight cap for GATEWAY_QUEUE_TIMEOUT_S.",
            labels=list(metric_names.GATEWAY_SHED_REQUESTS.labels),
        )
        for version, count in sorted(self.shed.items()):
            shed.add_metric([version], count)
        yield shed


def _none() -> int:
    return 0


def _bound(value: float) -> str:
    """A bucket bound as prometheus_client writes it (0.001, 1.0, 10.0)."""
    return repr(float(value))


class _StateCollector(Collector):
    def __init__(self, state: Callable[[], GatewayState | None], clients: ClientTally) -> None:
        self.state = state
        self.clients = clients

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            metric_names.GATEWAY_OPEN_CONNECTIONS.name,
            "Client connections this gateway process holds open now.",
            value=self.clients.open,
        )
        yield GaugeMetricFamily(
            metric_names.GATEWAY_QUEUED_REQUESTS.name,
            "Requests waiting for room on a replica of their version now (every one at its "
            "in-flight cap).",
            value=self.clients.queued(),
        )
        state = self.state()
        if state is None:
            return
        snap = state.snapshot
        config = snap.loaded.config
        healthy = GaugeMetricFamily(
            metric_names.GATEWAY_REPLICA_HEALTHY.name,
            "1 if the replica is routable, by version, replica and health state (an entry "
            "whose host has many addresses: how many of them are).",
            labels=list(metric_names.GATEWAY_REPLICA_HEALTHY.labels),
        )
        # Labelled by routing.yaml's entry, never by address: an entry whose host has many
        # addresses (gateway/dns.py) reports, per state, how many of them are routable.
        seen: dict[tuple[str, str, str], float] = {}
        for replica in snap.pool.replicas():
            key = (replica.version, replica.url, replica.state.value)
            routable = 1.0 if replica.state is ReplicaState.HEALTHY else 0.0
            seen[key] = seen.get(key, 0.0) + routable
        for labels, value in seen.items():
            healthy.add_metric(list(labels), value)
        yield healthy
        weights = GaugeMetricFamily(
            metric_names.GATEWAY_ROUTE_WEIGHT.name,
            "Share of new traffic each version gets under the active config.",
            labels=list(metric_names.GATEWAY_ROUTE_WEIGHT.labels),
        )
        live = snap.table.live
        for version, weight in config.weights().items():
            if live is not None:
                weight = 100 if version == live else 0
            weights.add_metric([version], float(weight))
        yield weights
        info = GaugeMetricFamily(
            metric_names.GATEWAY_CONFIG_INFO.name,
            "The active routing.yaml: revision and mode.",
            labels=list(metric_names.GATEWAY_CONFIG_INFO.labels),
        )
        info.add_metric([snap.loaded.revision, config.mode, config.stable], 1.0)
        yield info
        settled = GaugeMetricFamily(
            metric_names.GATEWAY_CONFIG_SETTLED_INFO.name,
            "The oldest routing.yaml revision a request still in flight was routed by (the "
            "active one when none is): every count after it reports a revision is of that "
            "revision's routing.",
            labels=list(metric_names.GATEWAY_CONFIG_SETTLED_INFO.labels),
        )
        settled.add_metric([snap.settled_revision], 1.0)
        yield settled
        yield GaugeMetricFamily(
            metric_names.GATEWAY_CONFIG_LAST_RELOAD_FAILED.name,
            "1 while the newest routing.yaml on disk is invalid and not in effect.",
            value=1.0 if state.last_reload_error else 0.0,
        )
