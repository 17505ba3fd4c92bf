"""POST /outcomes: the real outcomes, posted by whoever learns them, joined to the predictions.

Off (404) unless both the prediction log and a bearer token (GATEWAY_OUTCOMES_TOKEN) are set;
a missing or wrong token is a 401, compared in constant time. The body is a JSON list of
outcomes (outcomes/ingest.py); a batch with a bad row is a 422 naming every bad row and field,
and writes nothing. The answer counts what the batch did: new, duplicates (the same outcome
twice counts once), predictions labelled, and outcomes that matched no prediction (not an error).
"""

from __future__ import annotations

import asyncio
import hmac

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.prediction_log import PredictionLog
from gateway.settings import GatewaySettings
from outcomes.ingest import IngestError, parse_batch
from outcomes.store import StoreError

__all__ = ["outcomes_router"]

# Problems listed in a 422 at most (the count is always whole).
MAX_PROBLEMS_LISTED = 10_000


def error(status: int, name: str, detail: str, **extra: object) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": name, "detail": detail, **extra}, status, headers=headers)


def outcomes_router(settings: GatewaySettings, prediction_log: PredictionLog | None) -> APIRouter:
    router = APIRouter()
    token = settings.outcomes_token
    expected = f"Bearer {token.get_secret_value()}".encode() if token is not None else None
    max_bytes = settings.outcomes_max_bytes

    @router.post("/outcomes")
    async def post_outcomes(request: Request) -> JSONResponse:
        """Observed outcomes: a JSON list of {request_id | customer_id, churned, observed_at}.
        Needs ``Authorization: Bearer <GATEWAY_OUTCOMES_TOKEN>``."""
        if prediction_log is None or expected is None:
            missing = "GATEWAY_OUTCOMES_TOKEN" if prediction_log else "GATEWAY_PREDICTION_LOG"
            return error(404, "not_found", f"POST /outcomes is off: set {missing} to turn it on")
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return error(401, "unauthorized", "a valid bearer token is required")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                detail = f"outcomes bodies are at most {max_bytes} bytes"
                return error(413, "body_too_large", detail)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return error(400, "bad_json", f"the body is not JSON: {exc}")
        try:
            outcomes = parse_batch(document)
        except IngestError as exc:
            problems = [p.as_dict() for p in exc.problems[:MAX_PROBLEMS_LISTED]]
            return error(422, "invalid_outcomes", str(exc), problems=problems)
        try:
            tally = await asyncio.to_thread(prediction_log.write_outcomes, outcomes)
        except StoreError as exc:
            return error(503, "store_unavailable", str(exc).splitlines()[0])
        return JSONResponse(tally.as_dict())

    return router
