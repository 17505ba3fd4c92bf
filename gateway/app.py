"""App factory of one gateway process.

uvicorn --factory gateway.app:create_app     (settings from GATEWAY_* variables)
python -m gateway serve                       (the same, with workers, sane defaults, and the
                                               server protocol of gateway/server.py)
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from starlette.types import Receive, Scope, Send

from apidocs import serve_docs
from gateway.admission import Admission
from gateway.client_limits import client_limits_for_process
from gateway.dns import HostTable, Resolver, hosts_to_look_up, resolve_with_loop
from gateway.endpoints.errors import handle_errors
from gateway.endpoints.health import serve_health
from gateway.endpoints.metrics import serve_metrics
from gateway.endpoints.outcomes import outcomes_router
from gateway.endpoints.quality import QualityCollector, QualityReports, serve_quality
from gateway.endpoints.routing import serve_routing
from gateway.endpoints.shadow import serve_shadow, shadow_report
from gateway.endpoints.stats import serve_stats
from gateway.endpoints.v2 import serve_v2
from gateway.lifespan import Lifespan
from gateway.listeners import NOT_FOUND, refused
from gateway.metrics import ClientTally, GatewayMetrics
from gateway.metrics_share import SharedCounters, merge
from gateway.openapi import document_predictions
from gateway.openapi_v2 import document_infer
from gateway.pool import PoolLimits
from gateway.prediction_log import PredictionLogCollector, open_prediction_log
from gateway.proxy import Proxy
from gateway.settings import GatewaySettings, load_settings
from gateway.shadow.ledger import ShadowLedger
from gateway.shadow.metrics import ShadowCollector
from gateway.state import GatewayState, Snapshot
from gateway.stats import StatsSampler
from gateway.ui import serve_ui
from gateway.upstream import Upstream, open_upstream
from gateway.v2_door import is_infer_path
from httpserver.limits import ClientLimits
from routing_config import ConfigError
from routing_config.store import load_routing

PREDICT_PATHS = frozenset({"/predict", "/predict/batch"})


class GatewayApp(FastAPI):
    """FastAPI for the status endpoints; POST /predict and /predict/batch go straight to the proxy.

    Intercepting in ``__call__``, before Starlette's middleware stack and router, keeps the
    framework's per-request cost off this path while the app stays a FastAPI instance. Under
    ``gateway serve`` most prediction requests do not even get here: the server protocol hands
    them to the proxy itself (gateway/server.py).
    """

    proxy: Proxy | None = None  # set by the lifespan once the upstream client is open
    # What the server protocol allows a client connection (httpserver/ enforces it).
    client_limits: ClientLimits = ClientLimits()
    client_tally: ClientTally | None = None  # counted by the server protocol
    # When set, the operators' endpoints answer only on this port (gateway/listeners.py).
    admin_port: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PREDICT_PATHS:
            if scope["method"] != "POST":
                await send_json(send, 405, {"error": "method_not_allowed", "detail": "use POST"})
            elif self.proxy is None:
                await send_json(send, 503, {"error": "not_ready", "detail": "gateway starting"})
            else:
                await self.proxy(scope, receive, send)
            return
        if scope["type"] == "http" and is_infer_path(scope["path"]):
            # The Open Inference Protocol's infer (gateway/v2_door.py): its errors in its form.
            if scope["method"] != "POST":
                await send_json(send, 405, {"error": "use POST"})
            elif self.proxy is None:
                await send_json(send, 503, {"error": "the gateway is starting"})
            else:
                await self.proxy.v2(scope, receive, send)
            return
        if self.admin_port and scope["type"] == "http" and refused(scope, self.admin_port):
            await send_json(send, 404, NOT_FOUND)
            return
        await super().__call__(scope, receive, send)


async def send_json(send: Send, status: int, payload: dict[str, str]) -> None:
    body = JSONResponse(payload).body
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    settings: GatewaySettings | None = None,
    *,
    upstream: Callable[[], Upstream] | None = None,
    health_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> GatewayApp:
    """Build one gateway. ``upstream`` makes the forwarding client (called in the lifespan, in
    the running loop; default: the one ``settings.transport`` names), ``health_transport`` is
    for health checks: tests fake the replicas with them, or run the production client;
    ``resolver`` looks replica hosts up (gateway/dns.py; default: the loop's getaddrinfo)."""
    if settings is None:
        configure_logging()
        settings = load_settings()
        try:
            loaded = load_routing(str(settings.routing_file))
        except ConfigError as exc:
            # Started from the environment: one clear reason, not a traceback.
            sys.exit(f"gateway refused to start: {exc}")
    else:
        loaded = load_routing(str(settings.routing_file))

    limits = PoolLimits(
        eject_after_failures=settings.eject_after_failures,
        eject_cooldown_s=settings.eject_cooldown_s,
        max_inflight_per_replica=settings.max_inflight_per_replica,
    )
    hosts: HostTable | None = None
    if settings.dns_refresh_s > 0:
        hosts = HostTable(
            lambda: hosts_to_look_up(state.snapshot.loaded.config, settings.resolve),
            resolver=resolver or resolve_with_loop,
            min_gap_s=settings.dns_min_gap_s,
        )
    build = functools.partial(Snapshot.build, resolve=settings.resolve, limits=limits, hosts=hosts)
    state = GatewayState(snapshot=build(loaded), hosts=hosts)
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    ledger = ShadowLedger()
    shadow_counts = ShadowCollector(lambda: ledger)
    registry.register(shadow_counts)  # counts first, then gauges, as a summed /metrics has them
    prediction_log = open_prediction_log(settings)
    counted = [*metrics.counted(), shadow_counts]
    if prediction_log is not None:
        counted.append(PredictionLogCollector(prediction_log))
        registry.register(counted[-1])
    gauges = metrics.watch(lambda: state)
    exposed = registry  # what /metrics reports
    shared: SharedCounters | None = None
    if settings.metrics_dir is not None:
        # Several workers on one port: counts summed over every worker's snapshot file, then
        # this worker's own view of the replicas (gauges, which do not add up).
        try:
            shared = SharedCounters(
                settings.metrics_dir,
                counted,
                {"shadow": ledger.to_json},
            )
        except OSError as exc:
            sys.exit(f"gateway refused to start: GATEWAY_METRICS_DIR: {exc}")
        exposed = CollectorRegistry()
        exposed.register(shared)
        exposed.register(gauges)
    reports = None
    if prediction_log is not None:
        reports = QualityReports(state, prediction_log, settings)
        exposed.register(QualityCollector(reports))  # gauges, recomputed every so often
    stats = StatsSampler(functools.partial(request_counts, metrics, shared))
    admission = Admission(settings.queue_timeout_s)
    metrics.clients.queued = admission.queued
    lifespan = Lifespan(
        settings=settings,
        state=state,
        build=build,
        metrics=metrics,
        ledger=ledger,
        stats=stats,
        admission=admission,
        shared=shared,
        open_upstream=(
            upstream if upstream is not None else functools.partial(open_upstream, settings)
        ),
        health_transport=health_transport,
        prediction_log=prediction_log,
    )

    app = GatewayApp(
        title="StreamFlow model gateway",
        description="One URL for every StreamFlow churn model version: canary, blue/green, pins.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: serve_docs serves ours
        redoc_url=None,
    )
    app.client_limits = client_limits_for_process(settings)
    app.client_tally = metrics.clients
    app.admin_port = settings.admin_port
    serve_docs(app)
    serve_ui(app)
    document_predictions(app)
    document_infer(app, model=loaded.config.model, version=loaded.config.stable)
    app.include_router(outcomes_router(settings, prediction_log))
    app.state.gateway = state
    app.state.metrics = metrics
    serve_health(app, state)
    serve_v2(app, state)
    serve_routing(app, state)
    serve_shadow(app, state, ledger, shared)
    serve_stats(
        app,
        state,
        stats,
        settings.routing_file,
        prediction_log is not None,
        functools.partial(shadow_report, state, ledger, shared),
    )
    serve_quality(app, reports)
    serve_metrics(app, exposed)
    handle_errors(app)
    return app


def request_counts(metrics: GatewayMetrics, shared: SharedCounters | None) -> list[Metric]:
    """The request and fallback counters /stats samples: this process's, or every worker's sum."""
    own = [*metrics.answered.collect(), *metrics.fallbacks.collect()]
    return own if shared is None else merge(own, shared.read_all())


def configure_logging() -> None:
    """uvicorn configures only its own loggers; give ours the same INFO lines on stderr."""
    logger = logging.getLogger("gateway")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
