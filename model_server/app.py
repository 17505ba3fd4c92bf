"""FastAPI app factory for one pinned model version.

uvicorn --factory model_server.app:create_app --http model_server.server:ReplicaProtocol
        (settings from MODEL_VERSION, MODEL_PATH, MODEL_NAME; the protocol answers plain
        predictions and V2 inference requests itself)
"""

from __future__ import annotations

import logging
import sys

import anyio
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from apidocs import serve_docs
from httpserver.limits import ClientLimits
from model_server.artifact import ArtifactError, verify_artifact
from model_server.endpoints.errors import handle_errors
from model_server.endpoints.metrics import serve_metrics
from model_server.endpoints.predict import Predictions
from model_server.endpoints.status import serve_status
from model_server.endpoints.v2 import serve_v2
from model_server.fast_path import PredictFastPath
from model_server.lifespan import Lifespan
from model_server.metrics import ModelMetrics
from model_server.server import ReplicaService
from model_server.settings import ModelSettings
from model_server.v2_model import V2Model
from model_server.version_headers import VersionHeaders


def create_app(settings: ModelSettings | None = None) -> FastAPI:
    """Build the app; refuse (ArtifactError) when the artifact is the wrong version or tampered."""
    if settings is None:
        configure_logging()
        settings = ModelSettings()
        try:
            metadata = verify_artifact(settings.path, settings.version)
        except ArtifactError as exc:
            # Started by uvicorn from the environment: a one-line reason, not a traceback.
            sys.exit(f"model server refused to start: {exc}")
    else:
        metadata = verify_artifact(settings.path, settings.version)

    limiter = anyio.CapacityLimiter(settings.workers)
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry, settings.version)
    predictions = Predictions(metrics, limiter)
    v2_model = V2Model(settings.name, settings.version, metrics, limiter)

    app = FastAPI(
        title="StreamFlow Churn Predictor",
        description="Predicts 30-day churn probability for StreamFlow subscribers.",
        version=settings.version,
        lifespan=Lifespan(settings),
        docs_url=None,  # FastAPI's pages load from a CDN: serve_docs serves ours
        redoc_url=None,
    )
    serve_docs(app)
    app.state.predictor = None  # set by the lifespan once the model is loaded and warmed
    app.state.metadata = metadata
    # What model_server.server:ReplicaProtocol answers itself, past the app (served under
    # plain uvicorn, the app answers everything, the fast path below its predictions).
    app.state.short_cut = ReplicaService(
        app.state, predictions, settings.version, ClientLimits(), v2_model
    )
    serve_status(app, settings.version)
    predictions.serve(app)
    serve_v2(app, v2_model)
    serve_metrics(app, registry)
    handle_errors(app)
    # Added first, so it runs inside VersionHeaders: the fast path's answers get the same headers.
    app.add_middleware(
        PredictFastPath, endpoint=predictions.predict, batch_endpoint=predictions.answer_batch
    )
    app.add_middleware(VersionHeaders, version=settings.version)
    return app


def configure_logging() -> None:
    """uvicorn configures only its own loggers; give ours the same INFO lines on stderr."""
    logger = logging.getLogger("model_server")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
