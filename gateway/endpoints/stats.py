"""GET /stats: the status page's numbers, with the rollout controller's last decisions."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from gateway.glance import glance
from gateway.state import GatewayState
from gateway.stats import StatsSampler, read_rollout_log


def serve_stats(
    app: FastAPI,
    state: GatewayState,
    stats: StatsSampler,
    routing_file: Path,
    prediction_log: bool = False,
    shadow_report: Callable[[], Mapping[str, Any]] | None = None,
) -> None:
    """``prediction_log``: whether GET /quality has anything to say (the page asks it only then);
    ``shadow_report``: GET /shadow's document, which the verdict line judges outside a rollout."""

    @app.get("/stats")
    async def request_stats() -> JSONResponse:
        """Per version over the last minute: configured and served share, requests/s, error
        rate, p50/p99, fallbacks; requests/s per second over ten minutes (the status page's
        numbers, summed over workers under ``serve --workers N``)."""
        config = state.snapshot.loaded.config
        numbers = stats.describe(config.weights())
        rollout_log = read_rollout_log(routing_file)
        shadow = shadow_report() if shadow_report is not None else None
        # A JSONResponse as it is: FastAPI's encoder would cost ten times more for the series.
        return JSONResponse(
            {
                "verdict": glance(config, rollout_log, shadow, time.time()),
                **numbers,
                "rollout_log": rollout_log,
                "prediction_log": prediction_log,
            }
        )
