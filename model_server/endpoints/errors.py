"""The model server's error answers: a 422 that is always valid JSON, a plain 500, and the
Open Inference Protocol's error object for whatever FastAPI refuses under /v2."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

log = logging.getLogger("model_server")


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler echoes each bad input back, and JSON has no NaN or Infinity
    # (which Python's parser accepts): such a body would turn its 422 into a 500.
    return JSONResponse({"detail": finite_json(jsonable_encoder(exc.errors()))}, 422)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": "internal_error", "detail": type(exc).__name__}, status_code=500)


async def http_error(request: Request, exc: HTTPException) -> Response:
    # A V2 client reads {"error": ...} (an unknown path, a wrong method): the protocol's form.
    path = request.url.path
    if path == "/v2" or path.startswith("/v2/"):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)


def handle_errors(app: FastAPI) -> None:
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(HTTPException)(http_error)
    app.exception_handler(Exception)(unexpected_error)


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float spelt as a string ("nan", "inf")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_json(item) for item in value]
    return value
