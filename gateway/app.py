"""App factory of one gateway process.

uvicorn --factory gateway.app:create_app     (settings from GATEWAY_* variables)
python -m gateway serve                       (the same, with workers, sane defaults, and the
                                               server protocol of gateway/server.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from apidocs import serve_docs
from gateway.admission import Admission
from gateway.client_limits import ClientLimits, client_limits_for_process
from gateway.errors import GatewayError
from gateway.health import HealthChecker
from gateway.metrics import ClientTally, GatewayMetrics
from gateway.metrics_share import SharedCounters, merge
from gateway.openapi import document_predictions
from gateway.outcomes_endpoint import outcomes_router
from gateway.pool import PoolLimits
from gateway.prediction_log import PredictionLogCollector, open_prediction_log
from gateway.proxy import Proxy
from gateway.reload import Reloader
from gateway.settings import GatewaySettings, load_settings
from gateway.shadow.ledger import ShadowLedger, merge_reports
from gateway.shadow.metrics import ShadowCollector
from gateway.shadow.mirror import Mirror
from gateway.shadow.report import build_report
from gateway.state import GatewayState, Snapshot, shadow_note
from gateway.stats import StatsSampler, read_rollout_log
from gateway.ui import serve_ui
from gateway.upstream import Upstream, open_upstream
from routing_config import ConfigError, load_config

log = logging.getLogger("gateway")

PREDICT_PATHS = frozenset({"/predict", "/predict/batch"})


class NotReady(GatewayError):
    status = 503
    error = "not_ready"


class GatewayApp(FastAPI):
    """FastAPI for the status endpoints; POST /predict and /predict/batch go straight to the proxy.

    Intercepting in ``__call__``, before Starlette's middleware stack and router, keeps the
    framework's per-request cost off this path while the app stays a FastAPI instance. Under
    ``gateway serve`` most prediction requests do not even get here: the server protocol hands
    them to the proxy itself (gateway/server.py).
    """

    proxy: Proxy | None = None  # set by the lifespan once the upstream client is open
    # What the server protocol allows a client connection (gateway/server.py enforces it).
    client_limits: ClientLimits = ClientLimits()
    client_tally: ClientTally | None = None  # counted by the server protocol

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in PREDICT_PATHS:
            if scope["method"] != "POST":
                await send_json(send, 405, {"error": "method_not_allowed", "detail": "use POST"})
            elif self.proxy is None:
                await send_json(send, 503, {"error": "not_ready", "detail": "gateway starting"})
            else:
                await self.proxy(scope, receive, send)
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
) -> GatewayApp:
    """Build one gateway. ``upstream`` makes the forwarding client (called in the lifespan, in
    the running loop; default: the one ``settings.transport`` names), ``health_transport`` is
    for health checks: tests fake the replicas with them, or run the production client."""
    if settings is None:
        configure_logging()
        settings = load_settings()
        try:
            loaded = load_config(settings.routing_file)
        except ConfigError as exc:
            # Started from the environment: one clear reason, not a traceback.
            sys.exit(f"gateway refused to start: {exc}")
    else:
        loaded = load_config(settings.routing_file)

    limits = PoolLimits(
        eject_after_failures=settings.eject_after_failures,
        eject_cooldown_s=settings.eject_cooldown_s,
        max_inflight_per_replica=settings.max_inflight_per_replica,
    )
    build = functools.partial(Snapshot.build, resolve=settings.resolve, limits=limits)
    state = GatewayState(snapshot=build(loaded))
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
    stats = StatsSampler(functools.partial(request_counts, metrics, shared))
    admission = Admission(settings.queue_timeout_s)
    metrics.clients.queued = admission.queued

    @asynccontextmanager
    async def lifespan(app: GatewayApp) -> AsyncIterator[None]:
        forwarder = upstream() if upstream is not None else open_upstream(settings)
        health_client = httpx.AsyncClient(transport=health_transport)
        checker = HealthChecker(lambda: state, health_client, settings.health_timeout_s)
        background: set[asyncio.Task[None]] = set()

        def after_reload() -> None:
            metrics.reloads.inc()
            log_shadow(state)
            # New replicas are "unknown" until checked: check now rather than next interval.
            task = asyncio.create_task(checker.check_all())
            background.add(task)
            task.add_done_callback(background.discard)

        reloader = Reloader(
            settings.routing_file,
            state,
            build,
            on_success=after_reload,
            on_failure=metrics.reload_failures.inc,
        )
        log_shadow(state)
        await checker.check_all()  # serve from a known health picture, not an empty one
        mirror = Mirror(
            forwarder,
            ledger,
            max_inflight=settings.shadow_max_inflight,
            timeout_s=settings.shadow_timeout_s,
        )
        app.proxy = Proxy(
            state,
            forwarder,
            metrics,
            max_body_bytes=settings.max_body_bytes,
            request_budget_s=settings.request_budget_s,
            mirror=mirror,
            admission=admission,
        )
        if prediction_log is not None:
            prediction_log.start()
            app.proxy.record = mirror.record = prediction_log.record
            app.proxy.log_features = prediction_log.log_features
        loops = [
            asyncio.create_task(checker.run(settings.health_interval_s)),
            asyncio.create_task(reloader.run(settings.reload_interval_s)),
            asyncio.create_task(stats.run()),
        ]
        if shared is not None:
            shared.write()  # this worker is in the sum from the start
            loops.append(asyncio.create_task(shared.run()))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, reloader.request)
        try:
            yield
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)
            for task in [*loops, *background]:
                task.cancel()
            await asyncio.gather(*loops, *background, return_exceptions=True)
            if shared is not None:
                # uvicorn has finished the in-flight requests by now: the file gets them all.
                shared.write()
            app.proxy = None
            await mirror.aclose()
            await forwarder.aclose()
            await health_client.aclose()
            if prediction_log is not None:
                await asyncio.to_thread(prediction_log.close)  # writes what is queued

    app = GatewayApp(
        title="StreamFlow model gateway",
        description="One URL for every StreamFlow churn model version: canary, blue/green, pins.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: serve_docs serves ours
        redoc_url=None,
    )
    app.client_limits = client_limits_for_process(settings)
    app.client_tally = metrics.clients
    serve_docs(app)
    serve_ui(app)
    document_predictions(app)
    app.include_router(outcomes_router(settings, prediction_log))
    app.state.gateway = state
    app.state.metrics = metrics

    @app.get("/health")
    async def health() -> dict[str, str]:
        """The gateway process is alive."""
        return {"status": "healthy"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """200 when a healthy replica of the live route exists, else 503."""
        if state.is_ready():
            return JSONResponse({"status": "ready", "revision": state.snapshot.loaded.revision})
        error = NotReady("no healthy replica for the live route or for stable")
        return JSONResponse({"error": error.error, "detail": error.detail}, status_code=503)

    @app.get("/routing")
    async def routing() -> dict[str, object]:
        """Active config, revision, last reload error and every replica's address and health."""
        return state.describe()

    @app.get("/shadow")
    async def shadow() -> dict[str, object]:
        """How the shadow version's answers differ from the clients', since the shadow section
        of routing.yaml last changed (summed over workers under ``serve --workers N``)."""
        plan = state.snapshot.shadow
        ledger.follow(plan.section if plan else "")
        if shared is not None:
            since, pairs = merge_reports(ledger.section, shared.read_documents("shadow"))
        else:
            since, pairs = ledger.since, ledger.pairs
        return build_report(plan.spec if plan else None, since, pairs)

    @app.get("/stats")
    async def request_stats() -> JSONResponse:
        """Per version over the last minute: configured and served share, requests/s, error
        rate, p50/p99, fallbacks; requests/s per second over ten minutes (the status page's
        numbers, summed over workers under ``serve --workers N``)."""
        numbers = stats.describe(state.snapshot.loaded.config.weights())
        # A JSONResponse as it is: FastAPI's encoder would cost ten times more for the series.
        return JSONResponse({**numbers, "rollout_log": read_rollout_log(settings.routing_file)})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse({"error": name, "detail": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": "internal_error", "detail": type(exc).__name__}, 500)

    return app


def request_counts(metrics: GatewayMetrics, shared: SharedCounters | None) -> list[Metric]:
    """The request and fallback counters /stats samples: this process's, or every worker's sum."""
    own = [*metrics.answered.collect(), *metrics.fallbacks.collect()]
    return own if shared is None else merge(own, shared.read_all())


def log_shadow(state: GatewayState) -> None:
    if state.snapshot.shadow is not None:
        log.info("shadow: %s", shadow_note(state.snapshot.shadow))


def configure_logging() -> None:
    """uvicorn configures only its own loggers; give ours the same INFO lines on stderr."""
    logger = logging.getLogger("gateway")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
