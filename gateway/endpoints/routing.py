"""GET /routing: what the gateway routes by right now."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.state import GatewayState


def serve_routing(app: FastAPI, state: GatewayState) -> None:
    @app.get("/routing")
    async def routing() -> dict[str, object]:
        """Active config, revision, last reload error and every replica's address and health."""
        return state.describe()
