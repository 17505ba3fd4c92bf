"""GET /metrics: the replica's registry in Prometheus text format."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def serve_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text format: predictions, latency, batch sizes."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
