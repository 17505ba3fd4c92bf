"""Prometheus metrics of one gateway, on a registry the app factory builds, not the global one.

No label value comes from a client or a replica unchecked, so neither can create series: versions
are configured ones (or ``none`` for an error before any version was chosen, such as a bad pin),
replicas are configured URLs, reasons and causes are fixed words, and a status is its code when
it is a registered HTTP status and its class (``2xx`` ... ``5xx``, else ``other``) when not.
"""

from __future__ import annotations

import bisect
import http
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway.client_limits import PHASES
from gateway.pool import ReplicaState
from gateway.quantile import LATENCY_BUCKETS
from gateway.state import GatewayState


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


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.answered = AnsweredRequests(LATENCY_BUCKETS)
        registry.register(self.answered)
        self.clients = ClientTally()
        registry.register(self.clients)
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed tries against a replica, by version, replica and cause.",
            ["version", "replica", "cause"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "gateway_fallbacks",
            "Requests served by stable instead of the version routing chose.",
            ["from_version", "to_version", "cause"],
            registry=registry,
        )
        self.ejections = Counter(
            "gateway_replica_ejections",
            "Replicas ejected after consecutive failed requests.",
            ["version", "replica"],
            registry=registry,
        )
        self.reloads = Counter(
            "gateway_config_reloads", "routing.yaml reloads that took effect.", registry=registry
        )
        self.reload_failures = Counter(
            "gateway_config_reload_failures",
            "routing.yaml changes rejected as invalid (the last good config kept serving).",
            registry=registry,
        )

    def counted(self) -> list[Collector]:
        """The collectors of counts, which add up across worker processes (gauges do not)."""
        return [
            self.answered,
            self.clients,
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
            "gateway_requests",
            "Client requests answered, by serving version, route reason and status.",
            labels=["version", "reason", "status"],
        )
        for (version, reason, status), count in sorted(self.counts.items()):
            requests.add_metric([version, reason, status], count)
        yield requests
        latency = HistogramMetricFamily(
            "gateway_request_duration_seconds",
            "Time from request to response, by serving version.",
            labels=["version"],
        )
        names = [_bound(b) for b in self.bounds] + ["+Inf"]
        for version, tally in sorted(self.latency.items()):
            cumulative, buckets = 0.0, []
            for name, count in zip(names, tally[:-1], strict=True):
                cumulative += count
                buckets.append((name, cumulative))
            latency.add_metric([version], buckets, sum_value=tally[-1])
        yield latency


class ClientTally(Collector):
    """What the client limits did (gateway/client_limits.py), tallied as plain numbers: the
    server protocol counts every connection and the proxy every shed request, so a flood of
    either costs an addition each, not a labelled counter's lock.

    Labels come from closed sets: a timeout's phase, a configured version."""

    def __init__(self) -> None:
        self.open = 0  # client connections open now (a gauge: reported with the state's)
        self.refused = 0
        self.heads_too_large = 0
        self.timeouts = dict.fromkeys(PHASES, 0)
        self.shed: dict[str, int] = {}  # version -> requests answered 503 at the in-flight cap
        self.queued: Callable[[], int] = _none  # requests waiting for room now (a gauge)

    def count_shed(self, version: str) -> None:
        self.shed[version] = self.shed.get(version, 0) + 1

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "gateway_connections_refused",
            "Client connections answered 503 and closed at once: over GATEWAY_MAX_CONNECTIONS.",
            value=self.refused,
        )
        yield CounterMetricFamily(
            "gateway_request_heads_too_large",
            "Requests answered 431 and their connection closed: a head over "
            "GATEWAY_MAX_HEAD_BYTES.",
            value=self.heads_too_large,
        )
        timeouts = CounterMetricFamily(
            "gateway_client_timeouts",
            "Client connections closed because a request did not arrive in time, by phase "
            "(idle: a new connection sent nothing; head, body: answered 408; send: the client "
            "did not read its answers, dropped).",
            labels=["phase"],
        )
        for phase, count in self.timeouts.items():
            timeouts.add_metric([phase], count)
        yield timeouts
        shed = CounterMetricFamily(
            "gateway_shed_requests",
            "Requests answered 503 because every replica of their version stayed at its "
            "in-flight cap for GATEWAY_QUEUE_TIMEOUT_S.",
            labels=["version"],
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
            "gateway_open_connections",
            "Client connections this gateway process holds open now.",
            value=self.clients.open,
        )
        yield GaugeMetricFamily(
            "gateway_queued_requests",
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
            "gateway_replica_healthy",
            "1 if the replica is routable, by version, replica and health state.",
            labels=["version", "replica", "state"],
        )
        for replica in snap.pool.replicas():
            value = 1.0 if replica.state is ReplicaState.HEALTHY else 0.0
            healthy.add_metric([replica.version, replica.url, replica.state.value], value)
        yield healthy
        weights = GaugeMetricFamily(
            "gateway_route_weight_percent",
            "Share of new traffic each version gets under the active config.",
            labels=["version"],
        )
        live = snap.table.live
        for version, weight in config.weights().items():
            if live is not None:
                weight = 100 if version == live else 0
            weights.add_metric([version], float(weight))
        yield weights
        info = GaugeMetricFamily(
            "gateway_config_info",
            "The active routing.yaml: revision and mode.",
            labels=["revision", "mode", "stable"],
        )
        info.add_metric([snap.loaded.revision, config.mode, config.stable], 1.0)
        yield info
        yield GaugeMetricFamily(
            "gateway_config_last_reload_failed",
            "1 while the newest routing.yaml on disk is invalid and not in effect.",
            value=1.0 if state.last_reload_error else 0.0,
        )
