"""POST /predict and /predict/batch in the gateway's OpenAPI document.

GatewayApp answers them before FastAPI's router sees them, so FastAPI does not know they exist.
They are described here, by hand: the body is the model server's, forwarded as bytes, and the
gateway does not import model_server, so request and answer are free-form JSON objects with a
description and an example; the model's exact schema is on any replica's /docs and /openapi.json.
What the gateway itself adds (routing headers, its own errors) is described exactly.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

TAG = "predictions"

# Keep in step with examples/customer.json; tests check it against the model's schema.
EXAMPLE_CUSTOMER: dict[str, Any] = {
    "tenure": 14,
    "monthly_charges": 89.5,
    "total_charges": 1253.0,
    "contract_type": "month-to-month",
    "payment_method": "electronic_check",
    "num_support_tickets": 3,
    "internet_service": "fiber_optic",
    "streaming_services": 2,
    "paperless_billing": True,
    "senior_citizen": False,
}

# What v2.3.1 answers to EXAMPLE_CUSTOMER; tests check its shape against the model's schema.
EXAMPLE_PREDICTION: dict[str, Any] = {
    "churn_probability": 0.8705,
    "risk_tier": "high",
    "top_reasons": [
        {
            "feature": "tenure",
            "value": 14.0,
            "shap_contribution": 0.7545,
            "direction": "increases_risk",
        },
        {
            "feature": "contract_type",
            "value": 0.0,
            "shap_contribution": 0.726,
            "direction": "increases_risk",
        },
        {
            "feature": "num_support_tickets",
            "value": 3.0,
            "shap_contribution": 0.4654,
            "direction": "increases_risk",
        },
    ],
    "model_version": "v2.3.1",
}

ROUTING_HEADERS = {
    "X-Model-Version": "The version that actually served the request.",
    "X-Route-Reason": "Why: weighted | sticky | pinned | blue_green | fallback.",
    "X-Routing-Revision": "Short hash of the routing.yaml in effect.",
    "X-Fallback-From": "Only when stable served instead: the version chosen first.",
    "X-Request-Id": "The request's own X-Request-Id, or one the gateway made.",
    "X-Response-Time-Ms": "Time spent in the gateway, in milliseconds.",
}
# A gateway error was answered by no model: it carries no version or reason.
ERROR_HEADERS = ("X-Routing-Revision", "X-Request-Id", "X-Response-Time-Ms")

GATEWAY_ERRORS = {
    "400": "bad_pin: the pin header names a version routing.yaml does not allow (detail lists "
    "the allowed ones).",
    "413": "body_too_large: the body is over the gateway's limit (GATEWAY_MAX_BODY_BYTES, "
    "1 MiB by default).",
    "502": "bad_upstream: every replica tried failed with a 5xx or an answer that was not "
    "valid HTTP; `version` names the version.",
    "503": "no_healthy_replica: no replica of the version can take the request, or none could "
    "be reached; `version` names it.",
    "504": "upstream_timeout: the last replica tried did not answer in time.",
}

ROUTING_NOTE = (
    "Forwarded as bytes to one replica of the version routing.yaml picks (pin header, blue/green "
    "live colour, sticky key or weights; on failure, stable). The model's status and body come "
    "back unchanged: a model 422 stays a 422. Optional request headers, named in routing.yaml: "
    "the pin header (`pinning.header`, X-Model-Version in the shipped file) and the sticky key "
    "(`canary.sticky_header`, X-Customer-Id). The exact request and response schemas are the "
    "model server's: see a replica's /docs."
)

SCHEMAS: dict[str, Any] = {
    "GatewayError": {
        "type": "object",
        "description": "An error the gateway answers itself (no model was reached).",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "Machine-readable name, e.g. bad_pin."},
            "detail": {"type": "string", "description": "What went wrong, for a person."},
            "version": {"type": "string", "description": "The version concerned, if any."},
        },
    },
    "ModelAnswer": {
        "type": "object",
        "additionalProperties": True,
        "description": "The model server's JSON answer, unchanged: a prediction, or its 422.",
    },
}


def headers(names: Any) -> dict[str, Any]:
    return {
        name: {"description": ROUTING_HEADERS[name], "schema": {"type": "string"}} for name in names
    }


def operation(
    summary: str, description: str, example: dict[str, Any], answer: dict[str, Any]
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "The model's answer.",
            "headers": headers(ROUTING_HEADERS),
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ModelAnswer"},
                    "example": answer,
                }
            },
        },
        "422": {
            "description": "The model rejected the body; the message names the field.",
            "headers": headers(ROUTING_HEADERS),
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ModelAnswer"}}
            },
        },
    }
    for status, text in GATEWAY_ERRORS.items():
        responses[status] = {
            "description": text,
            "headers": headers(ERROR_HEADERS),
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/GatewayError"}}
            },
        }
    return {
        "tags": [TAG],
        "summary": summary,
        "description": f"{description}\n\n{ROUTING_NOTE}",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "additionalProperties": True},
                    "example": example,
                }
            },
        },
        "responses": responses,
    }


PATHS = {
    "/predict": {
        "post": operation(
            "Predict one customer",
            "One customer record (the model's ChurnPredictionRequest: tenure, monthly_charges, "
            "total_charges, contract_type, payment_method, num_support_tickets, "
            "internet_service, streaming_services, paperless_billing, senior_citizen) → "
            "churn_probability, risk_tier, top_reasons (3 SHAP reasons), model_version.",
            EXAMPLE_CUSTOMER,
            EXAMPLE_PREDICTION,
        )
    },
    "/predict/batch": {
        "post": operation(
            "Predict a batch of customers",
            '`{"customers": [...]}` with 1 to 1,000 records as for /predict → predictions '
            "(one per customer, in order), batch_size, processing_time_ms.",
            {"customers": [EXAMPLE_CUSTOMER]},
            {"predictions": [EXAMPLE_PREDICTION], "batch_size": 1, "processing_time_ms": 5.1},
        )
    },
}


def document_predictions(app: FastAPI) -> None:
    """Make the app's OpenAPI document (and so /docs) list the two forwarded endpoints first."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = build()  # FastAPI's document, cached on the app (as app.openapi_schema)
            schema["paths"] = {**PATHS, **schema.get("paths", {})}
            schema.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
            schema.setdefault("tags", []).insert(
                0, {"name": TAG, "description": "Forwarded to a model-server replica."}
            )
        return schema

    # FastAPI's documented way to change the document is to replace the app's openapi method.
    app.openapi = openapi  # type: ignore[method-assign]
