"""The gateway's JSON error answers on the ASGI path: {"error": ..., "detail": ...}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("gateway")


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    name = "not_found" if exc.status_code == 404 else "http_error"
    return JSONResponse({"error": name, "detail": str(exc.detail)}, status_code=exc.status_code)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return JSONResponse({"error": "internal_error", "detail": type(exc).__name__}, 500)


def handle_errors(app: FastAPI) -> None:
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(Exception)(unexpected)
