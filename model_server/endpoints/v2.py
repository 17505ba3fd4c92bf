"""The Open Inference Protocol ("V2") beside the model API: health, server and model metadata,
readiness and inference of the one model this replica serves (``MODEL_NAME``, default churn, at
its ``MODEL_VERSION``). The answers are built by ``model_server.v2_model``, which the protocol's
short-cut (model_server/server.py) uses too; errors are the protocol's ``{"error": ...}``.
"""

from __future__ import annotations

from importlib import metadata as package_metadata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from model_server.v2_model import V2Answer, V2Model
from protocols.v2.codec import INFERENCE_HEADER
from vocabulary.headers import SHADOW_OF

TAG = "Open Inference Protocol (V2)"
EXTENSIONS = ["binary_tensor_data"]

# What /docs shows of an inference request; the body is read as bytes (JSON, or JSON then
# binary tensors under Triton's extension), so FastAPI validates nothing of it.
_TENSOR = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array", "items": {}},
        "parameters": {"type": "object"},
    },
}
_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "parameters": {"type": "object"},
                                },
                            },
                        },
                    },
                },
                "example": {
                    "id": "42",
                    "inputs": [
                        {"name": "tenure", "datatype": "INT64", "shape": [1], "data": [14]},
                        {
                            "name": "monthly_charges",
                            "datatype": "FP64",
                            "shape": [1],
                            "data": [89.5],
                        },
                        {
                            "name": "total_charges",
                            "datatype": "FP64",
                            "shape": [1],
                            "data": [1253.0],
                        },
                        {
                            "name": "contract_type",
                            "datatype": "BYTES",
                            "shape": [1],
                            "data": ["month-to-month"],
                        },
                        {
                            "name": "payment_method",
                            "datatype": "BYTES",
                            "shape": [1],
                            "data": ["electronic_check"],
                        },
                        {
                            "name": "num_support_tickets",
                            "datatype": "INT64",
                            "shape": [1],
                            "data": [3],
                        },
                        {
                            "name": "internet_service",
                            "datatype": "BYTES",
                            "shape": [1],
                            "data": ["fiber_optic"],
                        },
                        {
                            "name": "streaming_services",
                            "datatype": "INT64",
                            "shape": [1],
                            "data": [2],
                        },
                        {
                            "name": "paperless_billing",
                            "datatype": "BOOL",
                            "shape": [1],
                            "data": [True],
                        },
                        {
                            "name": "senior_citizen",
                            "datatype": "BOOL",
                            "shape": [1],
                            "data": [False],
                        },
                    ],
                    "outputs": [{"name": "churn_probability"}, {"name": "risk_tier"}],
                },
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
            },
        },
    }
}


def respond(answer: V2Answer) -> Response:
    """The answer as a response; a binary one names its JSON part's length."""
    headers = None
    if answer.header_length is not None:
        headers = {INFERENCE_HEADER: str(answer.header_length)}
    return Response(answer.body, answer.status, headers=headers, media_type=answer.media_type)


def server_version() -> str:
    try:
        return package_metadata.version("streamflow-gateway")
    except package_metadata.PackageNotFoundError:
        return "0"


def serve_v2(app: FastAPI, model: V2Model) -> None:
    server = {
        "name": "streamflow-model-server",
        "version": server_version(),
        "extensions": EXTENSIONS,
    }

    def ready_answer(request: Request) -> Response | None:
        return respond(model.not_ready()) if request.app.state.predictor is None else None

    @app.get("/v2/health/live", tags=[TAG])
    async def live() -> dict[str, bool]:
        """The server is alive."""
        return {"live": True}

    @app.get("/v2/health/ready", tags=[TAG], responses={503: {"description": "still loading"}})
    async def ready(request: Request) -> Response:
        """200 once the model is loaded and warmed; 503 before."""
        return ready_answer(request) or JSONResponse({"ready": True})

    @app.get("/v2", tags=[TAG])
    async def server_metadata() -> dict[str, Any]:
        """The server's name, version and protocol extensions (binary tensors)."""
        return server

    @app.get("/v2/models/{model_name}", tags=[TAG], responses={404: {"description": "unknown"}})
    async def model_metadata(model_name: str) -> Response:
        """The model's versions, inputs and outputs with their datatypes and shapes."""
        unknown = model.unknown(model_name)
        return respond(unknown) if unknown else JSONResponse(model.metadata())

    @app.get(
        "/v2/models/{model_name}/versions/{model_version}",
        tags=[TAG],
        responses={404: {"description": "unknown model or version"}},
    )
    async def version_metadata(model_name: str, model_version: str) -> Response:
        """The metadata of the model at this version (the one this replica serves)."""
        unknown = model.unknown(model_name, model_version)
        return respond(unknown) if unknown else JSONResponse(model.metadata())

    @app.get("/v2/models/{model_name}/ready", tags=[TAG])
    async def model_ready(model_name: str, request: Request) -> Response:
        """200 when the model is loaded; 404 for another model, 503 while loading."""
        unknown = model.unknown(model_name)
        if unknown:
            return respond(unknown)
        return ready_answer(request) or JSONResponse({"name": model.name, "ready": True})

    @app.get("/v2/models/{model_name}/versions/{model_version}/ready", tags=[TAG])
    async def version_ready(model_name: str, model_version: str, request: Request) -> Response:
        """Readiness of the model at this version."""
        unknown = model.unknown(model_name, model_version)
        if unknown:
            return respond(unknown)
        return ready_answer(request) or JSONResponse({"name": model.name, "ready": True})

    @app.post("/v2/models/{model_name}/infer", tags=[TAG], openapi_extra=_INFER_BODY)
    async def infer(model_name: str, request: Request) -> Response:
        """Score rows given as one tensor per model-API field; outputs churn_probability,
        risk_tier and top_reasons (SHAP is computed only when top_reasons is asked for)."""
        return await _infer(model.unknown(model_name), request)

    @app.post(
        "/v2/models/{model_name}/versions/{model_version}/infer",
        tags=[TAG],
        openapi_extra=_INFER_BODY,
    )
    async def infer_version(model_name: str, model_version: str, request: Request) -> Response:
        """Inference on the model at this version (the one this replica serves)."""
        return await _infer(model.unknown(model_name, model_version), request)

    async def _infer(unknown: V2Answer | None, request: Request) -> Response:
        if unknown is not None:
            return respond(unknown)
        body = await request.body()
        answer = await model.infer(
            request.app.state.predictor,
            body,
            request.headers.raw,
            SHADOW_OF in request.headers,
        )
        return respond(answer)
