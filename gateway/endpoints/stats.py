"""GET /stats: the status page's numbers, with the rollout controller's last decisions."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from gateway.state import GatewayState
from gateway.stats import StatsSampler, read_rollout_log


def serve_stats(
    app: FastAPI,
    state: GatewayState,
    stats: StatsSampler,
    routing_file: Path,
    prediction_log: bool = False,
) -> None:
    """``prediction_log``: whether GET /quality has anything to say (the page asks it only then)."""

    @app.get("/stats")
    async def request_stats() -> JSONResponse:
        """Per version over the last minute: configured and served share, requests/s, error
        rate, p50/p99, fallbacks; requests/s per second over ten minutes (the status page's
        numbers, summed over workers under ``serve --workers N``)."""
        numbers = stats.describe(state.snapshot.loaded.config.weights())
        # A JSONResponse as it is: FastAPI's encoder would cost ten times more for the series.
        return JSONResponse(
            {
                **numbers,
                "rollout_log": read_rollout_log(routing_file),
                "prediction_log": prediction_log,
            }
        )
