"""GET /health, /ready and /metadata: the replica's version, whether it serves, its artifact."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from model_server.schemas import HealthResponse


def not_ready() -> JSONResponse:
    return JSONResponse({"error": "not_ready", "detail": "model is still loading"}, status_code=503)


def serve_status(app: FastAPI, version: str) -> None:
    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, str]:
        """Alive, and which version this replica is pinned to."""
        return {"status": "healthy", "model_version": version}

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        """200 once the model is loaded and warmed; 503 before."""
        if request.app.state.predictor is None:
            return not_ready()
        return JSONResponse({"status": "ready", "model_version": version})

    @app.get("/metadata")
    async def get_metadata(request: Request) -> dict[str, Any]:
        """The artifact's metadata: version, sha256, training data, metrics."""
        metadata: dict[str, Any] = request.app.state.metadata
        return metadata
