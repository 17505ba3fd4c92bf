"""The replica's HTTP/1.1 server protocol: the shared one (httpserver/), with plain predictions
scored straight from the protocol.

Serve with ``uvicorn --factory model_server.app:create_app --http
model_server.server:ReplicaProtocol`` (the local stack, the image and the bench do). Profiled
under load, a replica spent most of its CPU on HTTP and ASGI plumbing around a prediction of
about 20 µs: the scope, the receive and send messages, two middlewares, and two writes (head,
then body) per answer (bench/README.md). Here a ``POST /predict`` with a JSON body that
validates is parsed by pydantic-core straight from the bytes, scored by the compiled predictor
on the event loop, counted in the same metrics, and written with its headers in one send.
A ``POST /predict/batch`` takes the same way, scored in a worker thread as its route does, and
so does a ``POST /v2/models/{name}[/versions/{version}]/infer`` of the model served (JSON or
binary tensors, any content type): its answer, a 400 included, is built by the same code the
route calls (``model_server.v2_model``), so only a replica not ready or an unexpected error goes
to the route.

What the route would answer differently goes to the FastAPI app, whole and unchanged: a body
that does not validate (its 422 names the field), another content type, a replica not ready
(its 503), a model off the compiled path, an unexpected error (the app's own 500 and log line),
and everything the shared protocol hands the app anyway (chunked bodies, Expect, a query
string, a body over the limit). The answer's bytes and headers are the route's: content-length,
content-type, then X-Model-Version and X-Response-Time-Ms as the VersionHeaders middleware adds
them (tests/model_server/test_server.py compares both paths byte for byte).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine
from typing import Any

import orjson
from pydantic import ValidationError

from httpserver import Request, ServerProtocol, Service
from httpserver.limits import ClientLimits
from httpserver.tally import ConnectionTally
from model_server.endpoints.predict import Predictions
from model_server.plain_rows import encode_plain_batch
from model_server.predictor import Predictor
from model_server.schemas import ChurnPredictionRequest
from model_server.v2_model import Prepared, V2Answer, V2Model
from model_server.version_headers import MODEL_VERSION_HEADER, RESPONSE_TIME_HEADER
from protocols.v2.codec import INFERENCE_HEADER
from vocabulary.headers import SHADOW_OF

PREDICT = "/predict"
BATCH = "/predict/batch"
SHORT_CUT = {b"/predict": PREDICT, b"/predict/batch": BATCH}
SHORT_CUT_NAMES = frozenset(SHORT_CUT.values())
_INFERENCE_HEADER = INFERENCE_HEADER.encode()
_SHADOW_OF = SHADOW_OF.encode()
_JSON = b"application/json"


class Answer:
    """A whole answer for the protocol to write (httpserver.Reply)."""

    __slots__ = ("status", "head", "body")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status = status
        self.head = head
        self.body = body


class ReplicaService:
    """The replica's predictions as the short-cut's service (httpserver/service.py)."""

    name = "model server"
    log = logging.getLogger("model_server")
    # Unused: an unexpected error hands the request to the app, which answers its own 500.
    internal_error = b'{"error":"internal_error","detail":"see the model server log"}'

    def __init__(
        self,
        state: Any,
        predictions: Predictions,
        version: str,
        limits: ClientLimits,
        v2_model: V2Model,
    ) -> None:
        self.state = state  # the app's state: .predictor is None until the model is loaded
        self.predictions = predictions
        self.v2_model = v2_model
        self.client_limits = limits
        # The model API's paths and the V2 infer paths of the model served (both its forms).
        self.short_cut_paths = {
            **SHORT_CUT,
            **{path.encode(): path for path in v2_model.infer_paths},
        }
        # One per process, so the connection cap counts the process's connections. Not
        # exported: the replica's /metrics keeps its own families.
        self.client_tally = ConnectionTally()
        # What follows the content-length in every answer: the route's content type, then the
        # version header VersionHeaders adds (X-Response-Time-Ms comes last, per answer).
        self.after_length = (
            b"\r\ncontent-type: application/json\r\n"
            + MODEL_VERSION_HEADER
            + b": "
            + version.encode()
            + b"\r\n"
            + RESPONSE_TIME_HEADER
            + b": "
        )
        self.version_line = (
            MODEL_VERSION_HEADER + b": " + version.encode() + b"\r\n" + RESPONSE_TIME_HEADER + b": "
        )

    def body_limit(self) -> int | None:
        predictor: Predictor | None = self.state.predictor
        if predictor is None or predictor.serving_path.name != "compiled":
            return None  # the app answers: its 503 not_ready, or scikit-learn in a thread
        return self.client_limits.max_body_bytes

    def answer(
        self, request: Request, body: bytes
    ) -> Answer | Coroutine[Any, Any, Answer | None] | None:
        if request.path not in SHORT_CUT_NAMES:
            return self._v2(request, body)
        json_body = shadow = False
        for name, value in request.headers:
            if name == b"content-type":
                # Only the plain media type: FastAPI decides what other content types mean.
                json_body = value == _JSON
            elif name == _SHADOW_OF:
                shadow = True
        predictor: Predictor | None = self.state.predictor
        if not json_body or predictor is None:
            return None
        if request.path == PREDICT:
            try:
                customer = ChurnPredictionRequest.model_validate_json(body)
            except ValidationError:
                return None  # the app's 422, naming the field
            try:
                results = self.predictions.score_inline(predictor, [customer], "single", shadow)
            except Exception:
                return None  # the app's 500 and its log line
            return self._answer(orjson.dumps(results[0]), request.start)
        try:
            matrix = encode_plain_batch(orjson.loads(body))
        except orjson.JSONDecodeError:
            return None
        if matrix is None:
            return None  # anything pydantic must judge
        return self._batch(predictor, matrix, shadow, request.start)

    def _v2(
        self, request: Request, body: bytes
    ) -> Answer | Coroutine[Any, Any, Answer | None] | None:
        # Any content type: the route reads the body as bytes whatever it is said to be.
        predictor: Predictor | None = self.state.predictor
        if predictor is None:
            return None  # the route's 503
        model = self.v2_model
        prepared = model.prepare(body, request.headers)
        if isinstance(prepared, V2Answer):
            return self._v2_answer(prepared, request.start)  # the route's 400, the same bytes
        shadow = any(name == _SHADOW_OF for name, _ in request.headers)
        if not model.inline(predictor, prepared):
            return self._v2_scored(predictor, prepared, shadow, request.start)
        try:
            answer = model.score_inline(predictor, prepared, shadow)
        except Exception:
            return None  # the app's 500 and its log line
        return self._v2_answer(answer, request.start)

    async def _v2_scored(
        self, predictor: Predictor, prepared: Prepared, shadow: bool, start: float
    ) -> Answer | None:
        try:
            answer = await self.v2_model.score(predictor, prepared, shadow)
        except Exception:
            return None
        return self._v2_answer(answer, start)

    def _v2_answer(self, answer: V2Answer, start: float) -> Answer:
        # The route's head: Starlette puts the headers it is given before content-length and
        # content-type, then VersionHeaders adds the version and the time.
        elapsed_ms = (time.perf_counter() - start) * 1000
        binary = answer.header_length
        head = b"%scontent-length: %d\r\ncontent-type: %s\r\n%s%.2f\r\n" % (
            b"" if binary is None else b"%s: %d\r\n" % (_INFERENCE_HEADER, binary),
            len(answer.body),
            answer.media_type.encode(),
            self.version_line,
            elapsed_ms,
        )
        return Answer(answer.status, head, answer.body)

    async def _batch(
        self, predictor: Predictor, matrix: Any, shadow: bool, start: float
    ) -> Answer | None:
        try:
            body = await self.predictions.batch_body(predictor, matrix, shadow)
        except Exception:
            return None
        return self._answer(body, start)

    def _answer(self, body: bytes, start: float) -> Answer:
        elapsed_ms = (time.perf_counter() - start) * 1000
        head = b"content-length: %d%s%.2f\r\n" % (len(body), self.after_length, elapsed_ms)
        return Answer(200, head, body)


class ReplicaProtocol(ServerProtocol):
    """Serve with ``uvicorn ... --http model_server.server:ReplicaProtocol``."""

    @classmethod
    def service_of(cls, app: Any) -> Service | None:
        # uvicorn may wrap the app in middleware; the FastAPI app is at the bottom.
        while app is not None:
            state = getattr(app, "state", None)
            service = getattr(state, "short_cut", None) if state is not None else None
            if isinstance(service, ReplicaService):
                return service
            app = getattr(app, "app", None)
        return None
