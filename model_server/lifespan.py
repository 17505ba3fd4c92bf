"""A replica's lifespan: load the model off the event loop, warm it, then serve.

``app.state.predictor`` stays None until the model is loaded and warmed: /ready answers 503 and
the prediction endpoints their "not_ready" until then.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from fastapi import FastAPI

from model_server.jit_cache import seed_numba_cache
from model_server.loader import load_predictor
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest
from model_server.settings import ModelSettings

log = logging.getLogger("model_server")


@dataclass(frozen=True, eq=False)
class Lifespan:
    settings: ModelSettings

    @asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        if settings.numba_cache_seed is not None:
            await anyio.to_thread.run_sync(seed_numba_cache, settings.numba_cache_seed)
        # Reads the SHAP tables from their cache or builds them from the unpickled artifact, and
        # compiles (or loads from numba's cache) their kernels: off the loop.
        predictor, served_metadata = await anyio.to_thread.run_sync(
            load_predictor, settings.path, settings.version
        )
        # Warm up so the first real request does not pay for lazy SHAP/sklearn set-up.
        warm = ChurnPredictionRequest.model_validate(EXAMPLE_CUSTOMER)
        await anyio.to_thread.run_sync(predictor.predict, [warm])
        app.state.predictor = predictor
        app.state.metadata = served_metadata
        log.info("model %s loaded from %s", settings.version, settings.path)
        yield
        app.state.predictor = None
