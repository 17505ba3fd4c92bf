"""The Open Inference Protocol's infer endpoints in the gateway's OpenAPI document.

Like /predict, ``POST /v2/models/{model}[/versions/{version}]/infer`` is answered before
FastAPI's router (the V2 door), so it is described here by hand, per the protocol: the inference
request and answer documents, the protocol's error object, and Triton's binary tensor data
extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then each binary
tensor's raw little-endian bytes, a BYTES element as a 4-byte length and its bytes). The health
and metadata endpoints are FastAPI routes (gateway/endpoints/v2.py) and document themselves.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from fastapi import FastAPI

from gateway.openapi import EXAMPLE_CUSTOMER, ROUTING_HEADERS, headers
from protocols.v2.codec import DATATYPES
from protocols.v2.translate import predict_to_v2

TAG = "Open Inference Protocol (V2)"

BINARY_NOTE = (
    "Triton's binary tensor data extension: send `Content-Type: application/octet-stream` and "
    "the header `Inference-Header-Content-Length: N`; the body's first N bytes are the JSON "
    "request, in which a binary input has `parameters.binary_data_size` instead of `data`; its "
    "raw bytes follow the JSON in the order the inputs appear (little-endian; a BYTES element "
    "is a 4-byte little-endian length, then its bytes). Ask for binary outputs with "
    "`parameters.binary_data_output: true` or per output `parameters.binary_data: true`: the "
    "answer then comes the same way, with its own `Inference-Header-Content-Length`. Declared "
    "sizes are checked against the body before anything is allocated. A version whose servers "
    "take JSON only (routing.yaml `binary_tensors: false`) gets the request as JSON and the "
    "answer is turned back into binary."
)

ROUTING_NOTE = (
    "Without a version: routed exactly like /predict (pin header, blue/green live colour, "
    "sticky key or weights; on failure, stable), shadowed and logged alike. With "
    "`/versions/{version}`: a pin, with the pin header's rules (the version must be in "
    "routing.yaml's `pinning.allow`; no fallback). The request's `id` is echoed and becomes the "
    "request id (X-Request-Id) when the client sent none, so outcomes can be posted against it. "
    "The answer's `model_version` is the version that served."
)

V2_ERRORS = {
    "400": "Bad input: the message names the tensor (shape and data disagreeing, a wrong "
    "datatype, an unknown or missing input, a binary header past the body), or a pin the "
    "routing does not allow.",
    "404": "Unknown model or version: the message names the known ones.",
    "413": "The body is over the gateway's limit (GATEWAY_MAX_BODY_BYTES).",
    "502": "Every replica tried failed with a 5xx or an answer that was not valid.",
    "503": "No replica of the version can take the request.",
    "504": "The last replica tried did not answer in time.",
}

_DATA = {
    "description": "The tensor's elements, flat or nested in row-major order (a single value "
    "stands for shape [1]); BYTES elements are strings.",
    "oneOf": [
        {"type": "array", "items": {}},
        {"type": "number"},
        {"type": "string"},
        {"type": "boolean"},
    ],
}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_DATATYPE = {"type": "string", "enum": sorted(DATATYPES)}
_PARAMETERS = {"type": "object", "additionalProperties": True}

SCHEMAS: dict[str, Any] = {
    "V2Error": {
        "type": "object",
        "description": "The protocol's error object.",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "V2RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": _SHAPE,
            "datatype": _DATATYPE,
            "parameters": {
                **_PARAMETERS,
                "description": "binary_data_size: the byte count of this input's binary data.",
            },
            "data": _DATA,
        },
    },
    "V2RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {**_PARAMETERS, "description": "binary_data: answer it in binary."},
        },
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "Echoed; the request id when none is sent."},
            "parameters": {
                **_PARAMETERS,
                "description": "binary_data_output: every output in binary.",
            },
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/V2RequestInput"},
            },
            "outputs": {
                "type": "array",
                "description": "The outputs wanted (none: all). The churn model's are "
                "churn_probability, risk_tier and top_reasons (SHAP only when asked for).",
                "items": {"$ref": "#/components/schemas/V2RequestOutput"},
            },
        },
    },
    "V2ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": _SHAPE,
            "datatype": _DATATYPE,
            "parameters": _PARAMETERS,
            "data": _DATA,
        },
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string", "description": "The version that served."},
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/V2ResponseOutput"},
            },
        },
    },
}

EXAMPLE_REQUEST: dict[str, Any] = {
    "id": "customer-42",
    **orjson.loads(predict_to_v2(orjson.dumps(EXAMPLE_CUSTOMER), batch=False)),
}
EXAMPLE_ANSWER: dict[str, Any] = {
    "model_name": "churn",
    "model_version": "v2.3.1",
    "id": "customer-42",
    "outputs": [
        {"name": "churn_probability", "datatype": "FP64", "shape": [1], "data": [0.8705]},
        {"name": "risk_tier", "datatype": "BYTES", "shape": [1], "data": ["high"]},
    ],
}

_BINARY_BODY = {
    "schema": {"type": "string", "format": "binary"},
    "description": "The binary tensor extension: JSON header, then tensors' bytes.",
}
_V2_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/V2Error"}}}


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def infer_operation(versioned: bool) -> dict[str, Any]:
    parameters = [_path_parameter("model", "The model's name: routing.yaml's `model`.")]
    if versioned:
        parameters.append(_path_parameter("version", "One of routing.yaml's versions."))
    parameters.append(
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "Binary requests only: the byte length of the JSON header.",
            "schema": {"type": "integer", "minimum": 0},
        }
    )
    binary_header = {
        "Inference-Header-Content-Length": {
            "description": "Binary answers only: the byte length of the JSON header.",
            "schema": {"type": "integer"},
        }
    }
    responses: dict[str, Any] = {
        "200": {
            "description": "The version's answer, tagged like /predict's.",
            "headers": {**headers(ROUTING_HEADERS), **binary_header},
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/V2InferenceResponse"},
                    "example": EXAMPLE_ANSWER,
                },
                "application/octet-stream": _BINARY_BODY,
            },
        },
    }
    for status, text in V2_ERRORS.items():
        responses[status] = {"description": text, "content": _V2_ERROR}
    which = "one pinned version" if versioned else "the version routing picks"
    return {
        "tags": [TAG],
        "summary": f"Infer with {which}",
        "description": f"{ROUTING_NOTE}\n\n{BINARY_NOTE}",
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/V2InferenceRequest"},
                    "example": EXAMPLE_REQUEST,
                },
                "application/octet-stream": _BINARY_BODY,
            },
        },
        "responses": responses,
    }


PATHS: dict[str, Any] = {
    "/v2/models/{model}/infer": {"post": infer_operation(versioned=False)},
    "/v2/models/{model}/versions/{version}/infer": {"post": infer_operation(versioned=True)},
}


def document_infer(app: FastAPI, *, model: str, version: str) -> None:
    """Make the app's OpenAPI document (and so /docs) list the two infer endpoints too, and
    give every V2 path's ``model`` and ``version`` the served ones as examples (so "Try it out"
    and schemathesis start from a request that reaches a model)."""
    build = app.openapi
    examples = {"model": model, "version": version}

    def openapi() -> dict[str, Any]:
        schema = build()  # cached on the app after the first call
        if "/v2/models/{model}/infer" not in schema["paths"]:
            schema["paths"].update(copy.deepcopy(PATHS))
            schema.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
            for path, item in schema["paths"].items():
                if not path.startswith("/v2/models/"):
                    continue
                for operation in item.values():
                    for parameter in operation.get("parameters", ()):
                        if parameter["in"] == "path" and parameter["name"] in examples:
                            parameter["example"] = examples[parameter["name"]]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
