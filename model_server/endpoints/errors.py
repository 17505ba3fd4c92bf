"""The model server's error answers: a 422 that is always valid JSON, and a plain 500."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger("model_server")


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler echoes each bad input back, and JSON has no NaN or Infinity
    # (which Python's parser accepts): such a body would turn its 422 into a 500.
    return JSONResponse({"detail": finite_json(jsonable_encoder(exc.errors()))}, 422)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": "internal_error", "detail": type(exc).__name__}, status_code=500)


def handle_errors(app: FastAPI) -> None:
    app.exception_handler(RequestValidationError)(invalid_request)
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
