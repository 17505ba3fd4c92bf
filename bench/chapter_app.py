"""The source chapter's service, batch endpoint only, as the baseline's HTTP counterpart.

    uvicorn --factory bench.chapter_app:create_app      (MODEL_VERSION, MODEL_PATH)

As in the chapter: a sync endpoint (FastAPI runs it in its thread pool) with
``response_model=BatchPredictionResponse``, so FastAPI validates and serialises the answer.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from bench.batch import ChapterBatch
from model_server.artifact import load_artifact
from model_server.schemas import BatchPredictionRequest, BatchPredictionResponse


def create_app() -> FastAPI:
    version = os.environ.get("MODEL_VERSION", "v2.3.1")
    path = Path(os.environ.get("MODEL_PATH", f"artifacts/{version}/model.joblib"))
    chapter = ChapterBatch(load_artifact(path, version).model, version)
    app = FastAPI(title="StreamFlow Churn Predictor (chapter baseline)")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "healthy", "model_version": version}

    @app.post("/predict/batch", response_model=BatchPredictionResponse)
    def predict_batch(request: BatchPredictionRequest) -> BatchPredictionResponse:
        return chapter.predict_batch(request)

    return app
