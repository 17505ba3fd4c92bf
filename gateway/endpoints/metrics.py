"""GET /metrics: the registry create_app exposes, in Prometheus text format."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def serve_metrics(app: FastAPI, exposed: CollectorRegistry) -> None:
    """``exposed``: this process's registry, or the one that sums every worker's counts."""

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)
