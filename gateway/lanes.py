"""Per version: the path its replicas take a request on, the body they take, and how their answer
comes back to the door the request came in by. One ``Lane`` per version, built with each
routing snapshot (gateway/state.py).

The proxy asks a lane only when there is something to do. A /predict request to a version whose
replicas speak the model API (``Snapshot.passthrough``) goes as bytes, as it always has: that
path costs one set lookup per version tried, nothing more. Everything else is prepared once per
version tried (not per replica), so a fallback to stable prepares stable's form of the request:

- a V2 request (the V2 door, gateway/v2_door.py) goes to ``/v2/models/{name}/infer`` of the
  version's replicas, ``name`` being routing.yaml's ``model_name`` (default: ``model``). Our
  model servers take it as it came, binary tensors included. A ``protocol: v2`` version (any
  V2 server) asked for the model contract's outputs (``churn_probability``, ``risk_tier``,
  ``top_reasons``), or for none, is asked for its score output instead (routing.yaml's
  ``score``), and its answer is put in the contract's outputs: the probability, its tier, no
  reasons (``parameters.reasons_available: false``), so a client sees the same outputs whichever
  version serves it, as the gateway's metadata (the stable version's) says. A client asking
  for the server's own outputs gets them as they are. A version with ``binary_tensors: false``
  (MLServer) gets a binary request as JSON (``protocols.v2.translate.binary_to_json_request``),
  and its answer is made binary again as the request asked. A replica that names the model
  otherwise has its answer say the gateway's name, so a client sees one model;
- a /predict or /predict/batch request to a ``protocol: v2`` version is translated to a V2
  request (``predict_to_v2``) and the answer back to the model API (``v2_to_predict``): the
  probability and the tier as the model API gives them, ``top_reasons: []`` and
  ``"reasons_available": false``, since a V2 server that is not ours gives no reasons. A body
  that is not a model-API request is a 422 naming the field, as a model server's would be.

An answer that cannot be read back (no score output, a broken V2 document) is a failure of that
replica (``protocol_error``): retried on another, then stable, like a 5xx.

Each prepared request also says where the replica's answer, and the client's, hold the score
(protocols/scores.py), for the shadow comparison and the prediction log. A ``protocol: v2``
version's reply also hands back the probabilities its answer served, which it reads anyway to
remake the answer: the gateway counts them (``gateway_served_probability_rows``) as that
version's prediction histogram, since a server that is not ours exports none for the rollout
judge's drift checks. Only the client's answer goes through a reply, never a shadow copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from gateway.errors import BadRequest, InvalidRequest, UpstreamFailure
from gateway.wire import Headers, Message, lines_named
from protocols.scores import (
    MODEL_API,
    BadScores,
    ScoreSource,
    decode_v2_answer,
    decoded_v2_scores,
    v2_probabilities,
)
from protocols.v2.codec import (
    INFERENCE_HEADER,
    InferRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
    TensorError,
    binary_outputs,
    encode_response,
)
from protocols.v2.translate import (
    TranslationError,
    binary_to_json_request,
    json_to_binary_answer,
    predict_to_v2,
    v2_to_predict_served,
)
from routing_config import RoutingConfig

__all__ = ["Lane", "Prepared", "V2Call", "answer_header_length", "lanes_of"]

INFERENCE_HEADER_BYTES = INFERENCE_HEADER.encode()
JSON_TYPE = b"content-type: application/json\r\n"
BINARY_TYPE = b"content-type: application/octet-stream\r\n"
# The lines an answer's body decides: dropped and written again when the body is remade.
BODY_LINES = lines_named((b"content-type", INFERENCE_HEADER_BYTES))
HEADER_LENGTH_LINE = re.compile(rb"\n" + INFERENCE_HEADER_BYTES + rb"[ \t]*:[ \t]*(\d{1,19})", re.I)
# The V2 model contract's outputs (our model servers'), and the ones a server that is not ours
# can be made to give: the probability and its tier, no reasons.
PROBABILITY_OUTPUT = "churn_probability"
TIER_OUTPUT = "risk_tier"
OUR_OUTPUTS = (PROBABILITY_OUTPUT, TIER_OUTPUT, "top_reasons")
SERVED_OUTPUTS = (PROBABILITY_OUTPUT, TIER_OUTPUT)
CONTRACT_SOURCE = ScoreSource("v2")  # where an answer in the contract's outputs holds the score
# Request headers a JSON-made body must not carry on (it has no binary part, and is JSON).
BINARY_REQUEST_HEADERS = frozenset({INFERENCE_HEADER_BYTES, b"content-type"})


@dataclass(frozen=True, slots=True)
class V2Call:
    """A V2 inference request as the V2 door hands it to the proxy."""

    pin: str | None  # the version of /v2/models/{model}/versions/{version}/infer
    header_length: int | None  # a binary request's JSON part (Inference-Header-Content-Length)
    query: str  # "" or "?..." as the client sent it
    request_id: bytes | None  # the request's ``id``, when it can be a request id


# The probabilities a client's answer served, when its lane read them (None: not read).
Served = Sequence[float] | npt.NDArray[np.float64] | None
Reply = Callable[[Message, float], tuple[Message, Served]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request in the form one version's replicas take."""

    path: str
    body: bytes
    headers: Headers
    # The replica's answer (status 200) as the client gets it, given the seconds the replica
    # took, and the probabilities it served when they were read; raises UpstreamFailure when it
    # cannot be read. None: as it came.
    reply: Reply | None
    replica_source: ScoreSource  # where the replica's answer holds the score
    client_source: ScoreSource  # where the client's answer does


@dataclass(frozen=True, slots=True)
class Lane:
    version: str
    protocol: str  # "model_api" | "v2"
    infer_path: str  # /v2/models/{name}/infer on its replicas
    model: str  # the gateway's model name, which every V2 answer says
    renames: bool  # its replicas call the model something else
    binary_tensors: bool  # its replicas take Triton's binary tensors
    source: ScoreSource  # where its V2 answers hold the score

    def prepare(self, path: str, body: bytes, headers: Headers, call: V2Call | None) -> Prepared:
        """The request for this version's replicas. Raises a GatewayError (4xx) when the
        request cannot be put in their form: nothing is sent then."""
        if call is None:
            return self._from_predict(path, body, headers)
        target = self.infer_path + call.query
        if self.protocol == "model_api":
            reply = self._rename if self.renames else None
            return Prepared(target, body, headers, reply, self.source, self.source)
        return self._to_v2_server(target, body, headers, call.header_length)

    # --- /predict and /predict/batch to a V2-only version ------------------------------------

    def _from_predict(self, path: str, body: bytes, headers: Headers) -> Prepared:
        # Only a protocol: v2 version gets here: model-API versions take /predict as it is.
        batch = path.split("?", 1)[0].rstrip("/").endswith("/batch")
        source = self.source
        try:
            v2_body = predict_to_v2(body, batch=batch, outputs=(source.output,))
        except TranslationError as exc:
            raise InvalidRequest(str(exc), exc.model_api_body(), version=self.version) from None

        def to_model_api(resp: Message, seconds: float) -> tuple[Message, Served]:
            try:
                answer, served = v2_to_predict_served(
                    resp.body,
                    answer_header_length(resp.head),
                    output=source.output,
                    column=source.column,
                    version=self.version,
                    batch=batch,
                    # A batch answer says how long the version took, as a model server's does.
                    processing_time_ms=round(seconds * 1000, 3) if batch else None,
                )
            except BadScores as exc:
                raise _unreadable(self.version, exc) from None
            return Message(resp.status, _retag(resp.head, None), answer), served

        return Prepared(
            self.infer_path, v2_body, _json_headers(headers), to_model_api, source, MODEL_API
        )

    # --- V2 to a V2-only version ----------------------------------------------------------------

    def _to_v2_server(
        self, target: str, body: bytes, headers: Headers, header_length: int | None
    ) -> Prepared:
        """A V2 request for a server that is not ours. Asked for the model contract's outputs
        (or for none), it is asked for its score output instead, and its answer is put in the
        contract's outputs (``_as_ours``): a client sees the same outputs whichever version
        serves it, as the gateway's metadata (the stable version's) says. Asked for the
        server's own outputs, it passes through. Binary tensors are made JSON for a server that
        takes none, and the answer binary again as the client asked."""
        wishes = binary_wishes(body, header_length)
        if header_length is not None and not self.binary_tensors:
            try:
                body = binary_to_json_request(body, header_length)
            except TensorError as exc:
                # What the replica would have said of this body: a 400 naming the tensor.
                raise BadRequest(str(exc)) from None
            header_length = None
        if header_length is None:
            # Whatever the client said (curl -d says a form): a V2 server that reads the content
            # type (MLServer does) would refuse the JSON as a form's text.
            headers = _json_headers(headers)
        json_part = body if header_length is None else body[:header_length]
        try:
            document = orjson.loads(json_part)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise BadRequest("the body must be a JSON object")
        asked = _asked_outputs(document)
        if asked is not None and not set(asked) <= set(OUR_OUTPUTS):
            # The server's own outputs: its answer as it is (binary if the client wished).
            remake: Callable[[Message], Message] | None = None
            if wishes is not None and not self.binary_tensors:
                remake = self._binary_answer(wishes)
            elif self.renames:
                remake = self._renamed
            return Prepared(target, body, headers, self._as_is(remake), self.source, self.source)
        document["outputs"] = [{"name": self.source.output}]
        parameters = document.get("parameters")
        if isinstance(parameters, dict):
            document["parameters"] = {
                k: v for k, v in parameters.items() if k != "binary_data_output"
            }
        json_part = orjson.dumps(document)
        if header_length is not None:  # a binary request to a server that takes them
            body = json_part + body[header_length:]
            headers = [
                (name, b"%d" % len(json_part)) if name == INFERENCE_HEADER_BYTES else (name, value)
                for name, value in headers
            ]
        else:
            body = json_part
        wanted = tuple(asked) if asked else SERVED_OUTPUTS
        return Prepared(
            target, body, headers, self._as_ours(wanted, wishes), self.source, CONTRACT_SOURCE
        )

    def _as_ours(self, wanted: tuple[str, ...], wishes: InferRequest | None) -> Reply:
        def as_ours(resp: Message, seconds: float) -> tuple[Message, Served]:
            header_length = answer_header_length(resp.head)
            source = self.source
            try:
                # Decoded once: its scores, and its id to echo.
                answer = decode_v2_answer(resp.body, header_length)
                scores = decoded_v2_scores(answer, source.output, source.column)
            except BadScores as exc:
                raise _unreadable(self.version, exc) from None
            rows = (len(scores),)
            probabilities = np.array([s.probability for s in scores], dtype=np.float64)
            outputs: dict[str, Tensor] = {}
            for name in wanted:
                if name == PROBABILITY_OUTPUT:
                    outputs[name] = Tensor(name, "FP64", rows, probabilities)
                elif name == TIER_OUTPUT:
                    outputs[name] = Tensor(name, "BYTES", rows, [s.tier.encode() for s in scores])
            response = InferResponse(
                model_name=self.model,
                model_version=self.version,
                id=answer.id,
                outputs=outputs,
                # A server that is not ours gives no reasons: said, as /predict's answer says.
                parameters={"reasons_available": False},
            )
            binary = binary_outputs(wishes, outputs) if wishes is not None else ()
            body, length = encode_response(response, binary=binary)
            return Message(resp.status, _retag(resp.head, length), body), probabilities

        return as_ours

    def _as_is(self, remake: Callable[[Message], Message] | None) -> Reply:
        """The server's own outputs, as they came (remade only in form): their probabilities
        are read when they hold the score output (else the answer is not counted, as it is
        the client's to read)."""

        def as_is(resp: Message, seconds: float) -> tuple[Message, Served]:
            source = self.source
            header_length = answer_header_length(resp.head)
            served: Served
            try:
                served = v2_probabilities(resp.body, header_length, source.output, source.column)
            except BadScores:
                served = None
            return (resp if remake is None else remake(resp)), served

        return as_is

    def _binary_answer(self, wishes: InferRequest) -> Callable[[Message], Message]:
        def to_binary(resp: Message) -> Message:
            body = self._renamed(resp).body if self.renames else resp.body
            try:
                answer, header_length = json_to_binary_answer(body, (), request=wishes)
            except TensorError as exc:
                raise _unreadable(self.version, exc) from None
            return Message(resp.status, _retag(resp.head, header_length), answer)

        return to_binary

    def _rename(self, resp: Message, seconds: float) -> tuple[Message, Served]:
        return self._renamed(resp), None

    def _renamed(self, resp: Message) -> Message:
        """The answer with the gateway's model name in place of the replicas' own."""
        header_length = answer_header_length(resp.head)
        body = resp.body
        json_part = body if header_length is None else body[:header_length]
        try:
            document = orjson.loads(json_part)
        except orjson.JSONDecodeError as exc:
            raise _unreadable(self.version, exc) from None
        if not isinstance(document, dict):
            raise _unreadable(self.version, ValueError("the answer is not a JSON object"))
        document["model_name"] = self.model
        renamed = orjson.dumps(document)
        if header_length is None:
            return Message(resp.status, resp.head, renamed)
        return Message(resp.status, _retag(resp.head, len(renamed)), renamed + body[header_length:])


def _asked_outputs(document: dict[str, Any]) -> list[str] | None:
    """The names of the outputs a request asks for; None when it names none."""
    outputs = document.get("outputs")
    if not isinstance(outputs, list):
        return None
    names = [o.get("name") for o in outputs if isinstance(o, dict)]
    return [n for n in names if isinstance(n, str)] or None


def binary_wishes(body: bytes, header_length: int | None) -> InferRequest | None:
    """What a request says of its outputs' form, as an InferRequest without its inputs (all
    ``json_to_binary_answer`` reads: each output's ``binary_data``, ``binary_data_output``);
    None when it asks for no output in binary, or its JSON part does not parse (the replica's
    400 then says why). Only the JSON part is read: a binary request's tensors are not."""
    json_part = body if header_length is None else body[:header_length]
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    parameters = document.get("parameters")
    default = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    outputs: list[RequestedOutput] = []
    raw_outputs = document.get("outputs")
    for output in raw_outputs if isinstance(raw_outputs, list) else ():
        name = output.get("name") if isinstance(output, dict) else None
        params = output.get("parameters") if isinstance(output, dict) else None
        flag = params.get("binary_data") if isinstance(params, dict) else None
        if isinstance(name, str):
            outputs.append(RequestedOutput(name, flag if isinstance(flag, bool) else None))
    if not default and not any(o.binary for o in outputs):
        return None
    return InferRequest(
        id=None, inputs=[], outputs=outputs or None, parameters={"binary_data_output": default}
    )


def _unreadable(version: str, exc: Exception) -> UpstreamFailure:
    return UpstreamFailure("protocol_error", f"version {version}: unreadable V2 answer: {exc}")


def _json_headers(headers: Headers) -> Headers:
    """The request's headers for a JSON body made at the gateway."""
    kept = [h for h in headers if h[0] not in BINARY_REQUEST_HEADERS]
    kept.append((b"content-type", b"application/json"))
    return kept


def _retag(head: bytes, header_length: int | None) -> bytes:
    """An answer head with the content type (and header length) of a remade body."""
    head = BODY_LINES.sub(b"", b"\n" + head)[1:]
    if header_length is None:
        return head + JSON_TYPE
    return head + BINARY_TYPE + INFERENCE_HEADER_BYTES + b": %d\r\n" % header_length


def answer_header_length(head: bytes) -> int | None:
    """The Inference-Header-Content-Length of an answer head (None: an all-JSON answer)."""
    found = HEADER_LENGTH_LINE.search(b"\n" + head)
    return int(found[1]) if found is not None else None


def lanes_of(config: RoutingConfig) -> Mapping[str, Lane]:
    """Every version's lane."""
    lanes = {}
    for version, spec in config.versions.items():
        name = spec.model_name or config.model
        score: Any = spec.score
        lanes[version] = Lane(
            version=version,
            protocol=spec.protocol,
            infer_path=f"/v2/models/{name}/infer",
            model=config.model,
            renames=name != config.model,
            binary_tensors=spec.protocol == "model_api" or bool(spec.binary_tensors),
            source=ScoreSource("v2", score.output, score.column) if score else ScoreSource("v2"),
        )
    return lanes


def passthrough_of(config: RoutingConfig) -> frozenset[str]:
    """The versions that take /predict as it comes: their replicas speak the model API."""
    return frozenset(v for v, spec in config.versions.items() if spec.protocol == "model_api")
