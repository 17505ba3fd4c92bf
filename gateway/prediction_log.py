"""The gateway's side of the prediction log: the writer it feeds, the store outcomes are posted
to, and their counters as Prometheus series.

The request path calls only ``PredictionLog.record`` (through ``Proxy.record``) with the raw
answer, after the answer is ready and before it is written: building the record is a few
attribute copies, queuing it an append under a lock (outcomes/writer.py). Parsing, the store
and its failures all happen in the writer's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.settings import GatewaySettings
from outcomes.quality.report import QualityInput
from outcomes.quality_input import quality_input
from outcomes.records import Outcome, OutcomeTally
from outcomes.store import PredictionStore, describe, open_store
from outcomes.writer import DROP_CAUSES, PredictionWriter, WriterLimits
from vocabulary import metric_names

log = logging.getLogger("gateway.prediction_log")

DAY_S = 86400.0

T = TypeVar("T")


class PredictionLog:
    """One process's writer, plus a store of its own for outcomes posted to it."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.url = settings.prediction_log_url
        self.where = describe(self.url, settings.data_dir)
        self.window_s = settings.outcomes_window_days * DAY_S
        self.log_features = settings.prediction_log_features
        max_age = settings.prediction_log_max_age_days
        max_rows = settings.prediction_log_max_rows
        self.writer = PredictionWriter(
            self._open,
            WriterLimits(
                max_queue=settings.prediction_log_queue,
                flush_interval_s=settings.prediction_log_flush_s,
                max_age_s=max_age * DAY_S if max_age else None,
                max_rows=max_rows or None,
            ),
        )
        self.record = self.writer.offer  # the request path's one call
        self.labelled = 0
        self.unmatched = 0
        self._outcomes_store: PredictionStore | None = None
        self._outcomes_lock = threading.Lock()

    def _open(self) -> PredictionStore:
        return open_store(self.url, self.settings.data_dir)

    def start(self) -> None:
        log.info("prediction log: recording every answer to %s", self.where)
        self.writer.start()

    def close(self) -> None:
        self.writer.close()
        with self._outcomes_lock:
            if self._outcomes_store is not None:
                self._outcomes_store.close()
                self._outcomes_store = None

    def _with_store(self, call: Callable[[PredictionStore], T]) -> T:
        """``call`` on this process's own store (opened on first use, reopened after a
        failure), one caller at a time: outcomes posted and quality read share it."""
        with self._outcomes_lock:
            if self._outcomes_store is None:
                self._outcomes_store = self._open()
            try:
                return call(self._outcomes_store)
            except Exception:
                self._outcomes_store.close()
                self._outcomes_store = None  # reopened on the next call
                raise

    def quality_input(
        self, *, start: float, end: float, stable: str, candidate: str | None
    ) -> QualityInput:
        """Blocking (run it in a thread): the labelled predictions made in [start, end), as the
        quality report reads them. Raises StoreError when the store cannot be read."""
        return self._with_store(
            lambda store: quality_input(
                store, start=start, end=end, stable=stable, candidate=candidate
            )
        )

    def write_outcomes(self, outcomes: list[Outcome]) -> OutcomeTally:
        """Blocking (run it in a thread): this process's queued answers first, so an outcome
        for an answer just given finds it, then the outcomes and their labels. Raises
        StoreError when the store cannot take them."""
        self.writer.flush(timeout_s=self.settings.prediction_log_flush_s * 5 + 1)
        tally = self._with_store(
            lambda store: store.write_outcomes(outcomes, window_s=self.window_s)
        )
        self.labelled += tally.labelled
        self.unmatched += tally.new_unmatched
        return tally


def open_prediction_log(settings: GatewaySettings) -> PredictionLog | None:
    return PredictionLog(settings) if settings.prediction_log else None


class PredictionLogCollector(Collector):
    """Counters only, so several workers' sum (gateway/metrics_share.py) is exact. Labels come
    from a fixed set (the drop causes): a request can never add a series."""

    def __init__(self, prediction_log: PredictionLog) -> None:
        self.log = prediction_log

    def collect(self) -> Iterator[Metric]:
        writer = self.log.writer
        rows = CounterMetricFamily(
            metric_names.GATEWAY_PREDICTION_LOG_ANSWERS.name,
            "Answers written to the prediction log (a batch answer is one).",
            value=writer.written,
        )
        dropped = CounterMetricFamily(
            metric_names.GATEWAY_PREDICTION_LOG_DROPPED.name,
            "Answers not logged: the writer's queue was full, or the store failed their batch.",
            labels=list(metric_names.GATEWAY_PREDICTION_LOG_DROPPED.labels),
        )
        for cause in DROP_CAUSES:
            dropped.add_metric([cause], writer.dropped[cause])
        labelled = CounterMetricFamily(
            metric_names.GATEWAY_OUTCOMES_LABELLED.name,
            "Predictions labelled by outcomes posted to this gateway.",
            value=self.log.labelled,
        )
        unmatched = CounterMetricFamily(
            metric_names.GATEWAY_OUTCOMES_UNMATCHED.name,
            "Outcomes posted to this gateway that matched no recorded prediction.",
            value=self.log.unmatched,
        )
        yield from (rows, dropped, labelled, unmatched)
