"""GET /quality: model quality on real outcomes, per version, and the candidate against stable.

The report itself is ``outcomes.quality.report.build_report`` over the labelled predictions
made in a window (``outcomes.quality_input``); both run in a thread, off the event loop (a
million labelled predictions: about 1 s end to end, ``make bench-quality``).

Query parameters, all optional:

- ``window``: the span of prediction times, ending at ``until``: seconds, or a whole number
  with a unit (``90s``, ``30m``, ``24h``, ``7d``); from 1 minute to 366 days; default
  ``GATEWAY_QUALITY_WINDOW_DAYS`` (30 days);
- ``since``, ``until``: the window's bounds in Unix seconds (``since`` wins over ``window``;
  ``until`` defaults to now);
- ``stable``, ``candidate``: the versions compared; default the routing's stable, and as
  candidate the rollout plan's, else the shadow version, else the version with the largest
  canary weight besides stable (none: per-version numbers only).

Off (404, ``"error": "prediction_log_off"``) when the prediction log is; 400 names a bad
parameter; 503 when the store cannot be read.

The quality gauges on /metrics (AUC, Brier, labelled predictions per configured version) come
from the default window's report, recomputed in a thread at most every
``GATEWAY_QUALITY_METRICS_INTERVAL_S``: a scrape reads the last one and never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.prediction_log import PredictionLog
from gateway.settings import GatewaySettings
from gateway.state import GatewayState
from outcomes.quality.report import build_report
from outcomes.store import StoreError
from vocabulary import metric_names

__all__ = ["QualityCollector", "QualityReports", "parse_window", "serve_quality"]

log = logging.getLogger("gateway.quality")

DAY_S = 86400.0
MIN_WINDOW_S = 60.0
MAX_WINDOW_S = 366 * DAY_S
MAX_VERSION_CHARS = 200
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)?")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY_S}


class BadQuery(ValueError):
    """A query parameter GET /quality cannot use (the message names it)."""


def parse_window(text: str) -> float:
    """'90s', '30m', '24h', '7d' or plain seconds, within [1 minute, 366 days]."""
    match = _WINDOW.fullmatch(text.strip())
    if not match:
        raise BadQuery(f"window: {text!r} is not a duration like 30m, 24h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise BadQuery("window: from 1 minute (60s) to 366 days (366d)")
    return seconds


def _unix(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadQuery(f"{name}: {text!r} is not a Unix time in seconds") from None
    if not 0 <= value < 1e11:
        raise BadQuery(f"{name}: {text!r} is not a Unix time in seconds")
    return value


def _version(name: str, text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_VERSION_CHARS:
        raise BadQuery(f"{name}: a version name of 1 to {MAX_VERSION_CHARS} characters")
    return text


class QualityReports:
    """Builds reports for GET /quality and keeps the default window's for the gauges."""

    def __init__(
        self, state: GatewayState, prediction_log: PredictionLog, settings: GatewaySettings
    ) -> None:
        self.state = state
        self.log = prediction_log
        self.default_window_s = settings.quality_window_days * DAY_S
        self.metrics_interval_s = settings.quality_metrics_interval_s
        self._latest: dict[str, Any] | None = None
        self._latest_at = -float("inf")
        self._refreshing = False
        self._lock = threading.Lock()

    def versions(self) -> tuple[str, str | None]:
        """The routing's stable, and its candidate (see the module docstring)."""
        config = self.state.snapshot.loaded.config
        stable = config.stable
        if config.rollout is not None and config.rollout.candidate != stable:
            return stable, config.rollout.candidate
        if config.shadow is not None and config.shadow.version != stable:
            return stable, config.shadow.version
        weighted = [(w, v) for v, w in config.weights().items() if v != stable and w > 0]
        return stable, max(weighted)[1] if weighted else None

    def build(
        self,
        *,
        start: float,
        end: float,
        stable: str | None = None,
        candidate: str | None = None,
    ) -> dict[str, Any]:
        """Blocking: the report over predictions made in [start, end)."""
        default_stable, default_candidate = self.versions()
        stable = stable or default_stable
        if candidate is None:
            candidate = default_candidate
        if candidate == stable:
            candidate = None
        began = time.perf_counter()
        data = self.log.quality_input(start=start, end=end, stable=stable, candidate=candidate)
        report = build_report(data)
        report["window"] = {"start": start, "end": end, "seconds": end - start}
        report["configured_versions"] = list(self.state.snapshot.loaded.config.versions)
        report["computed_in_s"] = round(time.perf_counter() - began, 4)
        return report

    def query(self, params: dict[str, str]) -> dict[str, Any]:
        """The report's arguments from GET /quality's query parameters (raises BadQuery)."""
        now = time.time()
        end = _unix("until", params["until"]) if "until" in params else now
        if "since" in params:
            start = _unix("since", params["since"])
            if not start < end:
                raise BadQuery("since: must be before until")
            if end - start > MAX_WINDOW_S:
                raise BadQuery("since: the window is at most 366 days")
        else:
            window = parse_window(params["window"]) if "window" in params else None
            start = end - (window if window is not None else self.default_window_s)
        return {
            "start": start,
            "end": end,
            "stable": _version("stable", params.get("stable")),
            "candidate": _version("candidate", params.get("candidate")),
        }

    def for_metrics(self) -> dict[str, Any] | None:
        """The last default-window report (None before the first); starts a refresh in a
        thread of its own when it is older than the interval. Never blocks a scrape."""
        with self._lock:
            stale = time.monotonic() - self._latest_at >= self.metrics_interval_s
            if stale and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="quality-gauges", daemon=True).start()
            return self._latest

    def _refresh(self) -> None:
        try:
            now = time.time()
            report = self.build(start=now - self.default_window_s, end=now)
        except Exception as exc:  # a failed store: keep the last numbers, say why once
            log.warning("quality gauges: could not read the prediction log: %s", exc)
            report = None
        with self._lock:
            if report is not None:
                self._latest = report
            self._latest_at = time.monotonic()
            self._refreshing = False


class QualityCollector(Collector):
    """AUC, Brier score and labelled predictions per version, only for versions in the
    routing (a closed set), from ``QualityReports.for_metrics``."""

    def __init__(self, reports: QualityReports) -> None:
        self.reports = reports

    def collect(self) -> Iterator[Metric]:
        auc = GaugeMetricFamily(
            metric_names.GATEWAY_QUALITY_AUC.name,
            "ROC AUC of each version on labelled outcomes (GET /quality's default window).",
            labels=list(metric_names.GATEWAY_QUALITY_AUC.labels),
        )
        brier = GaugeMetricFamily(
            metric_names.GATEWAY_QUALITY_BRIER.name,
            "Brier score of each version on labelled outcomes (GET /quality's default window).",
            labels=list(metric_names.GATEWAY_QUALITY_BRIER.labels),
        )
        labelled = GaugeMetricFamily(
            metric_names.GATEWAY_QUALITY_LABELLED.name,
            "Labelled predictions of each version in GET /quality's default window.",
            labels=list(metric_names.GATEWAY_QUALITY_LABELLED.labels),
        )
        report = self.reports.for_metrics()
        configured = self.reports.state.snapshot.loaded.config.versions
        if report is not None:
            for version, numbers in report["versions"].items():
                if version not in configured:
                    continue
                labelled.add_metric([version], numbers["labelled"])
                if numbers["auc"] is not None:
                    auc.add_metric([version], numbers["auc"]["value"])
                if numbers["brier"] is not None:
                    brier.add_metric([version], numbers["brier"])
        yield from (auc, brier, labelled)


def _error(status: int, name: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": name, "detail": detail}, status)


def serve_quality(app: FastAPI, reports: QualityReports | None) -> None:
    """``reports`` None: the prediction log is off, and so is GET /quality."""

    @app.get("/quality")
    async def quality(request: Request) -> JSONResponse:
        """Per version over a window of prediction times: labelled predictions, churn rate, ROC
        AUC with its 95% DeLong interval, Brier score, log loss, calibration, observed churn
        per risk tier; the candidate against stable, unpaired (canary split) and paired
        (shadow rows). Query: window (e.g. 24h, 7d), since, until, stable, candidate."""
        if reports is None:
            return _error(
                404,
                "prediction_log_off",
                "GET /quality needs the prediction log: set GATEWAY_PREDICTION_LOG=1",
            )
        try:
            arguments = reports.query(dict(request.query_params))
        except BadQuery as exc:
            return _error(400, "bad_query", str(exc))
        try:
            report = await asyncio.to_thread(reports.build, **arguments)
        except StoreError as exc:
            return _error(503, "store_unavailable", str(exc).splitlines()[0])
        return JSONResponse(report)
