"""The Open Inference Protocol's door for inference: ``POST /v2/models/{model}/infer`` and
``POST /v2/models/{model}/versions/{version}/infer``.

It turns a V2 request into the proxy's one routing call and nothing more: the request without a
version is routed like /predict (pin header, blue/green or weights, sticky key, fallback to
stable, shadow, prediction log, metrics); the versioned path is a pin, by the pin header's rules
(the version must be in ``pinning.allow``: with no ``pinning`` section nothing may be pinned;
never a fallback). The body passes on as bytes, binary tensors included; the per-version forms
(the replicas' path, JSON for a server that takes no binary tensors, the model's name in the
answer) are the lanes' (gateway/lanes.py).

Per request the door reads only what it must: the model and version from the path, the
Inference-Header-Content-Length (checked against the body before anything else), and the
request's ``id``, which becomes its request id (X-Request-Id, the prediction log's request id,
so outcomes can be posted against it) when the client sent no X-Request-Id. The JSON is parsed
for that only when the client sent no X-Request-Id and ``"id"`` occurs in its JSON part. An
``id`` that cannot be a header value (over 128 characters, or a character outside printable
ASCII) stays in the body, and the request gets an id of the gateway's making.

Answers carry the gateway's headers as /predict's do. Errors are the protocol's error object,
``{"error": "..."}``: 404 for a model or version the gateway does not serve (naming the ones it
does), 400 for a bad pin or body, 413, and 503/504/502 as the gateway's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

import orjson
from starlette.types import Receive, Scope, Send

from gateway.errors import BadRequest, GatewayError, UnknownModel
from gateway.lanes import V2Call
from gateway.v2_models import V2Error, check_model
from gateway.wire import Headers, Message
from protocols.v2.codec import INFERENCE_HEADER, TensorError, header_length_of
from routing_config import RoutingConfig
from vocabulary.headers import REQUEST_ID

if TYPE_CHECKING:
    from gateway.proxy import Proxy

__all__ = ["V2Door", "infer_target", "is_infer_path", "short_cut_paths"]

MODELS = "/v2/models/"
INFER = "/infer"
VERSIONS = "versions/"
INFERENCE_HEADER_BYTES = INFERENCE_HEADER.encode()
REQUEST_ID_BYTES = REQUEST_ID.lower().encode()
# An id that can travel as a header value and a log key: printable ASCII, no edge spaces.
REQUEST_ID_TEXT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")
PREDICT_PATHS = {b"/predict": "/predict", b"/predict/batch": "/predict/batch"}


def short_cut_paths(config: RoutingConfig) -> dict[bytes, str]:
    """The request targets the server's short-cut hands the proxy (gateway/server.py): /predict,
    /predict/batch, and this model's two V2 infer paths, one per version. A closed table: any
    other target (another model, a version not in routing.yaml, a query string) takes the ASGI
    path, which answers it the same way, or with a 404."""
    paths = dict(PREDICT_PATHS)
    for target in infer_pins(config):
        paths[target.encode()] = target
    return paths


def infer_pins(config: RoutingConfig) -> dict[str, str | None]:
    """This model's infer paths as written, each with the version it pins (None: routed)."""
    base = f"{MODELS}{config.model}"
    pins: dict[str, str | None] = {base + INFER: None}
    for version in config.versions:
        pins[f"{base}/{VERSIONS}{version}{INFER}"] = version
    return pins


def is_infer_path(path: str) -> bool:
    """A path the door answers (any model's: an unknown one gets its 404 here)."""
    return path.startswith(MODELS) and path.endswith(INFER)


def infer_target(target: str) -> tuple[str, str | None, str]:
    """(model, version or None, query) of an infer request's target; UnknownModel (404) when
    the path is no infer path of the protocol's."""
    path, has_query, query = target.partition("?")
    if not is_infer_path(path):
        raise UnknownModel(f"no such path: {path[:64]!r}")
    middle = path[len(MODELS) : -len(INFER)]
    model, has_version, rest = middle.partition("/")
    version = None
    if has_version:
        version = rest[len(VERSIONS) :] if rest.startswith(VERSIONS) else ""
        if not version or "/" in version:
            raise UnknownModel(
                f"no such path: {path[:64]!r}; infer is /v2/models/{{model}}/infer or "
                "/v2/models/{model}/versions/{version}/infer"
            )
        version = unquote(version)
    return unquote(model), version, "?" + query if has_query else ""


class V2Door:
    """Turns V2 infer requests into the proxy's call: ``forward`` (the server's short-cut) and
    an ASGI entry (everything else that reaches an infer path)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        # The call of a plain request (JSON with no "id", no query) to each of the model's infer
        # paths, made once for the routing config they were made from: the usual request needs
        # no parsing of its path and no call of its own.
        self._plain_calls: tuple[RoutingConfig | None, dict[str, V2Call]] = (None, {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy.serve(scope, receive, send, self.forward, v2=True)

    async def forward(self, target: str, headers: Headers, body: bytes, start: float) -> Message:
        proxy = self.proxy
        snap = proxy.state.snapshot  # forward reads the same one: nothing awaits in between
        try:
            call = self.call_of(snap.loaded.config, target, headers, body)
        except GatewayError as exc:
            request_id = next((v for n, v in headers if n == REQUEST_ID_BYTES), b"")
            return proxy.error_answer(exc, snap, request_id, start, v2=True)
        return await proxy.forward(target, headers, body, start, call)

    def call_of(self, config: RoutingConfig, target: str, headers: Headers, body: bytes) -> V2Call:
        """The routing call of one request; a GatewayError (404, 400) when there is none."""
        has_request_id = False
        length_header = None
        for name, value in headers:
            if name == INFERENCE_HEADER_BYTES:
                length_header = value
            elif name == REQUEST_ID_BYTES:
                has_request_id = True
        if length_header is None and (has_request_id or b'"id"' not in body):
            plain = self._plain_call(config, target)
            if plain is not None:
                return plain
        model, version, query = infer_target(target)
        try:
            check_model(config, model, version)
        except V2Error as exc:
            raise UnknownModel(str(exc)) from None
        header_length = None
        if length_header is not None:
            try:
                header_length = header_length_of(
                    [(INFERENCE_HEADER_BYTES, length_header)], len(body)
                )
            except TensorError as exc:
                raise BadRequest(str(exc)) from None
        request_id = None if has_request_id else id_of(body, header_length)
        return V2Call(version, header_length, query, request_id)

    def _plain_call(self, config: RoutingConfig, target: str) -> V2Call | None:
        """The call of a plain request to ``target``, one of the model's infer paths as
        ``call_of`` would make it; None for any other target."""
        made_for, calls = self._plain_calls
        if made_for is not config:
            # routing.yaml's names (letters, digits and . _ + -) read back from a path as
            # they are: infer_target gives each of these paths its model and pin.
            calls = {path: V2Call(pin, None, "", None) for path, pin in infer_pins(config).items()}
            self._plain_calls = (config, calls)
        return calls.get(target)


def id_of(body: bytes, header_length: int | None) -> bytes | None:
    """The request's ``id`` as a request id, when it has one that can be (see the module's
    docstring); the JSON part is parsed only when ``"id"`` occurs in it."""
    json_part = body if header_length is None else body[:header_length]
    if b'"id"' not in json_part:
        return None
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        return None  # the replica's 400 says what is wrong with it
    value = document.get("id") if isinstance(document, dict) else None
    if isinstance(value, str) and REQUEST_ID_TEXT.fullmatch(value):
        return value.encode()
    return None
