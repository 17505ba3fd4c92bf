"""GET /health and GET /ready: is the process alive, and can it serve the live route."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from gateway.errors import GatewayError
from gateway.state import GatewayState


class NotReady(GatewayError):
    status = 503
    error = "not_ready"


def serve_health(app: FastAPI, state: GatewayState) -> None:
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
