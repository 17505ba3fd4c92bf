"""The Open Inference Protocol's health and metadata endpoints (infer is the V2 door's).

GET /v2/health/live, /v2/health/ready, /v2 (server metadata), /v2/models/{model} and
/v2/models/{model}/versions/{version} (model metadata), and the ``/ready`` form of both. Errors
are the protocol's error object, ``{"error": "..."}``: 404 for a model or version the gateway
does not serve (naming the ones it does), 503 while not ready or no replica's metadata is known.
The answers come from gateway/v2_models.py over the current snapshot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.state import GatewayState
from gateway.v2_models import (
    V2Error,
    check_model,
    check_version_ready,
    model_metadata,
    server_metadata,
)

TAG = "Open Inference Protocol (V2)"


class ErrorAnswer(BaseModel):
    error: str = Field(description="What went wrong, for a person.")


class LiveAnswer(BaseModel):
    live: bool


class ReadyAnswer(BaseModel):
    ready: bool


class ModelReadyAnswer(BaseModel):
    name: str
    ready: bool


class ServerMetadataAnswer(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(description="binary_tensor_data: Triton's binary tensors.")


class TensorMetadataAnswer(BaseModel):
    name: str
    datatype: str = Field(description="BOOL, UINT8..UINT64, INT8..INT64, FP16..FP64, BYTES")
    shape: list[int] = Field(description="-1 for a dimension of any size.")


class ModelMetadataAnswer(BaseModel):
    name: str
    versions: list[str] = Field(description="routing.yaml's versions, or the one asked for.")
    platform: str
    inputs: list[TensorMetadataAnswer]
    outputs: list[TensorMetadataAnswer]


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    said = {404: "Unknown model or version (the message names the known ones).", 503: "Not ready."}
    return {s: {"model": ErrorAnswer, "description": said[s]} for s in statuses}


ModelName = Annotated[str, Path(description="The model's name: routing.yaml's `model`.")]
VersionName = Annotated[str, Path(description="One of routing.yaml's versions.")]


def answer_error(exc: V2Error) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def serve_v2(app: FastAPI, state: GatewayState) -> None:
    @app.get("/v2/health/live", tags=[TAG], response_model=LiveAnswer)
    async def live() -> dict[str, bool]:
        """The gateway process is alive."""
        return {"live": True}

    @app.get("/v2/health/ready", tags=[TAG], response_model=ReadyAnswer, responses=errors(503))
    async def ready() -> JSONResponse:
        """200 when a healthy replica of the live route exists (as GET /ready), else 503."""
        if state.is_ready():
            return JSONResponse({"ready": True})
        return JSONResponse(
            {"error": "not ready: no healthy replica for the live route or for stable"}, 503
        )

    @app.get("/v2", tags=[TAG], response_model=ServerMetadataAnswer)
    async def server() -> dict[str, object]:
        """Server metadata: the gateway's name, version and the protocol extensions it takes."""
        return server_metadata()

    @app.get(
        "/v2/models/{model}",
        tags=[TAG],
        response_model=ModelMetadataAnswer,
        responses=errors(404, 503),
    )
    async def model(model: ModelName) -> JSONResponse:
        """The model's metadata: routing.yaml's versions; platform, inputs and outputs as the
        stable version's replicas state them (every version takes the same inputs)."""
        snap = state.snapshot
        try:
            return JSONResponse(model_metadata(snap.loaded.config, snap.pool, model))
        except V2Error as exc:
            return answer_error(exc)

    @app.get(
        "/v2/models/{model}/versions/{version}",
        tags=[TAG],
        response_model=ModelMetadataAnswer,
        responses=errors(404, 503),
    )
    async def model_version(model: ModelName, version: VersionName) -> JSONResponse:
        """One version's metadata, as its replicas state it."""
        snap = state.snapshot
        try:
            return JSONResponse(model_metadata(snap.loaded.config, snap.pool, model, version))
        except V2Error as exc:
            return answer_error(exc)

    @app.get(
        "/v2/models/{model}/ready",
        tags=[TAG],
        response_model=ModelReadyAnswer,
        responses=errors(404, 503),
    )
    async def model_ready(model: ModelName) -> JSONResponse:
        """200 when an unversioned infer can be served (a healthy replica of the live route or
        of stable), else 503."""
        config = state.snapshot.loaded.config
        try:
            check_model(config, model)
        except V2Error as exc:
            return answer_error(exc)
        if state.is_ready():
            return JSONResponse({"name": config.model, "ready": True})
        return JSONResponse(
            {
                "error": f"model {config.model!r} is not ready: no healthy replica for the live "
                "route or for stable"
            },
            503,
        )

    @app.get(
        "/v2/models/{model}/versions/{version}/ready",
        tags=[TAG],
        response_model=ModelReadyAnswer,
        responses=errors(404, 503),
    )
    async def model_version_ready(model: ModelName, version: VersionName) -> JSONResponse:
        """200 when a replica of the version can take a request (a pinned infer), else 503
        with the reasons (its input contract differing among them)."""
        snap = state.snapshot
        config = snap.loaded.config
        try:
            check_model(config, model, version)
            check_version_ready(config, snap.pool, version)
        except V2Error as exc:
            return answer_error(exc)
        return JSONResponse({"name": config.model, "ready": True})
