"""A well-formed prediction or batch skips FastAPI's routing and request parsing.

Profiled on a replica under load once the model work was compiled (about 20 µs a row), the
request machinery around the endpoint cost more than the prediction: routing, the exit stacks,
dependency solving, ``json.loads`` then pydantic's Python-mode validation. A ``POST /predict``
with a JSON body that validates is parsed here by pydantic-core straight from the bytes and
handed to the same endpoint function the route calls, so the answer, the metrics and the headers
(added by the middleware outside this one) are the ones the route gives. Anything else, and every
body that does not validate, goes to the app unchanged with the body replayed: its errors (422
naming the field, the JSON decode error) are FastAPI's own.

A ``POST /predict/batch`` is parsed by orjson and its rows checked and encoded column by column
(``model_server.plain_rows``); a batch that needs pydantic for anything goes to the app the same
way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model_server.plain_rows import encode_plain_batch
from model_server.schemas import ChurnPredictionRequest

Endpoint = Callable[[ChurnPredictionRequest, Request], Awaitable[Response]]
BatchEndpoint = Callable[[np.ndarray, Request], Awaitable[Response]]


class PredictFastPath:
    """Pure ASGI middleware in front of the app for ``POST /predict`` and ``/predict/batch``
    with a JSON body."""

    def __init__(self, app: ASGIApp, endpoint: Endpoint, batch_endpoint: BatchEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint
        self.batch_endpoint = batch_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_json_predict(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(b"".join(chunks), message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if scope["path"] == "/predict":
            try:
                customer = ChurnPredictionRequest.model_validate_json(body)
            except ValidationError:
                await self.app(scope, _replay(body, None, receive), send)
                return
            response = await self.endpoint(customer, Request(scope, receive))
        else:
            try:
                matrix = encode_plain_batch(orjson.loads(body))
            except orjson.JSONDecodeError:
                matrix = None
            if matrix is None:
                await self.app(scope, _replay(body, None, receive), send)
                return
            response = await self.batch_endpoint(matrix, Request(scope, receive))
        await response(scope, receive, send)


def _is_json_predict(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    if scope["path"] not in ("/predict", "/predict/batch"):
        return False
    # Only the plain media type: FastAPI decides what other content types mean.
    return any(
        name == b"content-type" and value == b"application/json" for name, value in scope["headers"]
    )


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    """A receive that yields the body already read, then what the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent, pending
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": pending is not None}
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return replayed
