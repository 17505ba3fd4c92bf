"""The pinned model on the Open Inference Protocol: its metadata, and an inference request's
answer, whichever way the request came in (the FastAPI route or the protocol's short-cut).

The answer is built here once, so both ways give the same bytes: a request decoded by the
codec (JSON or Triton's binary tensors), its tensors turned into rows by /predict's rules
(``model_server.v2_rows``), the outputs the client asked for computed as whole columns
(``Predictor.outputs``: the SHAP pass only when ``top_reasons`` is asked for), and the answer
encoded with each output binary or JSON as the request says. Every bad input is a 400
``{"error": ...}`` naming the tensor.

A one-row JSON request cost a replica 103 µs of CPU under 64 connections where /predict of
the same customer cost 38 (126 against 60 at one connection), almost all of the difference in
the generic decoding (a numpy array and a dataclass per one-element tensor) and encoding
(the same, back). A request in its plain form (``v2_rows.plain_rows``: every input once, flat
data of the JSON types the model API takes, or their binary elements) is therefore read in
one pass straight into the rows, and the answer written as one document: 63 µs (86 at one
connection; binary 108 to 83 µs). Anything else takes the codec, whose reading and 400s are
then the ones given (tests/model_server/test_v2_plain.py holds the two ways equal, errors
included). What is left above /predict is mostly reading ten tensor objects in Python where
pydantic-core reads /predict's one object in Rust.

One customer in JSON, the usual request, goes further: its ten tensors are checked cell by cell
(``v2_rows._json_row``) rather than built into ten columns, a request of its inputs alone skips
reading an id, parameters and outputs it has not got, and one row scored on the event loop is
answered from its plain values (``Predictor.one_row``) written into templates of the answer's
tensors (``_one_row_json``), with no arrays, dataclasses or dictionaries in between: the
protocol's whole answer, in process, 23 µs against 31 (/predict's 16; bench/README.md, "The
Open Inference Protocol").
"""

from __future__ import annotations

import functools
import struct
import time
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import orjson

from model_server.metrics import ModelMetrics
from model_server.plain_rows import MAX_ROWS
from model_server.predictor import Predictor, RowOutputs
from model_server.v2_rows import INPUTS, encode_tensors, plain_rows
from protocols.v2.codec import (
    RequestedOutput,
    TensorError,
    binary_outputs,
    binary_outputs_of,
    decode_request,
    header_length_of,
    optional_id,
    request_parameters,
    requested_outputs,
)
from vocabulary.tiers import RISK_TIERS

# Requests of at most this many rows are scored on the event loop on the compiled path, as
# /predict's are (model_server.endpoints.predict.INLINE_MAX_ROWS says why).
INLINE_MAX_ROWS = 1
PROBABILITY, TIER, REASONS = "churn_probability", "risk_tier", "top_reasons"
OUTPUTS: dict[str, str] = {PROBABILITY: "FP64", TIER: "BYTES", REASONS: "BYTES"}
_GIVES = ", ".join(f"{name} ({datatype})" for name, datatype in OUTPUTS.items())
_TIER_BYTES = [tier.encode() for tier in RISK_TIERS]
_LENGTH = struct.Struct("<I")
# A request's tensors hold at most a batch's rows each (an input of shape [n] or [n, 1]).
assert MAX_ROWS is not None
MAX_ELEMENTS = MAX_ROWS
PLATFORM = "streamflow_gradient_boosting"


@dataclass(frozen=True, slots=True)
class V2Answer:
    """A whole answer: status, body, and the JSON part's length when outputs are binary."""

    status: int
    body: bytes
    header_length: int | None = None

    @property
    def media_type(self) -> str:
        return "application/json" if self.header_length is None else "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that decoded and validated: its id, its rows, the outputs to compute and
    which of them go binary."""

    id: str | None
    matrix: np.ndarray
    outputs: tuple[str, ...]
    binary: frozenset[str]

    @property
    def reasons(self) -> bool:
        return REASONS in self.outputs


def error(status: int, message: str) -> V2Answer:
    return V2Answer(status, orjson.dumps({"error": message}))


class V2Model:
    """The model ``name`` at ``version`` as the protocol sees it; scoring with at most
    ``limiter``'s threads, counting in ``metrics`` (endpoint "v2")."""

    def __init__(
        self, name: str, version: str, metrics: ModelMetrics, limiter: anyio.CapacityLimiter
    ) -> None:
        self.name = name
        self.version = version
        self.metrics = metrics
        self.limiter = limiter
        self.infer_paths = (
            f"/v2/models/{name}/infer",
            f"/v2/models/{name}/versions/{version}/infer",
        )
        # What every answer's JSON starts with (orjson's spelling of the two strings).
        self.answer_start = b'{"model_name":%s,"model_version":%s' % (
            orjson.dumps(name),
            orjson.dumps(version),
        )

    # -- metadata and the 404s -------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [
                {"name": name, "datatype": datatype, "shape": [-1]}
                for name, datatype in INPUTS.items()
            ],
            "outputs": [
                {"name": name, "datatype": datatype, "shape": [-1]}
                for name, datatype in OUTPUTS.items()
            ],
        }

    def unknown(self, model: str, version: str | None = None) -> V2Answer | None:
        """The 404 for a model or version this server does not serve; None when it does."""
        if model != self.name:
            return error(404, f"unknown model {model!r}; this server serves {self.name!r}")
        if version is not None and version != self.version:
            return error(
                404,
                f"unknown version {version!r} of model {self.name!r}; this server serves "
                f"{self.version!r}",
            )
        return None

    def not_ready(self) -> V2Answer:
        return error(503, f"model {self.name!r} is not ready: it is still loading")

    # -- inference ---------------------------------------------------------------------------

    def prepare(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> Prepared | V2Answer:
        """The request decoded and checked, or its 400."""
        try:
            header_length = header_length_of(headers, len(body))
            return _plain(body, header_length) or _general(body, header_length)
        except TensorError as exc:
            return error(400, str(exc))

    def inline(self, predictor: Predictor, prepared: Prepared) -> bool:
        """Whether to score on the event loop: the compiled path's few rows."""
        return len(prepared.matrix) <= INLINE_MAX_ROWS and predictor.serving_path.name == "compiled"

    def score_inline(self, predictor: Predictor, prepared: Prepared, shadow: bool) -> V2Answer:
        start = time.perf_counter()
        if not prepared.binary and len(prepared.matrix) == 1:
            # All in JSON: the row's values as they are, no arrays (``answer`` and ``encode``
            # on one row, without their per-call costs).
            served, tier, top = predictor.one_row(prepared.matrix, reasons=prepared.reasons)
            seconds = time.perf_counter() - start
            self.metrics.observe_one("v2", RISK_TIERS[tier], served, seconds, shadow=shadow)
            return V2Answer(200, self._one_row_json(prepared, served, tier, top))
        outputs = predictor.outputs(prepared.matrix, reasons=prepared.reasons)
        return self.answer(prepared, outputs, time.perf_counter() - start, shadow)

    async def score(self, predictor: Predictor, prepared: Prepared, shadow: bool) -> V2Answer:
        if self.inline(predictor, prepared):
            return self.score_inline(predictor, prepared, shadow)
        start = time.perf_counter()
        outputs = await anyio.to_thread.run_sync(
            functools.partial(predictor.outputs, prepared.matrix, reasons=prepared.reasons),
            limiter=self.limiter,
        )
        return self.answer(prepared, outputs, time.perf_counter() - start, shadow)

    async def infer(
        self,
        predictor: Predictor | None,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        shadow: bool,
    ) -> V2Answer:
        """The whole answer to an inference request's body and headers."""
        if predictor is None:
            return self.not_ready()
        prepared = self.prepare(body, headers)
        if isinstance(prepared, V2Answer):
            return prepared
        return await self.score(predictor, prepared, shadow)

    def answer(
        self, prepared: Prepared, outputs: RowOutputs, seconds: float, shadow: bool
    ) -> V2Answer:
        """The answer of computed outputs, counted in the metrics."""
        tier_indexes = outputs.tiers.tolist()
        if len(tier_indexes) == 1:  # without the arrays' tallies, as /predict counts its row
            probability = float(outputs.probabilities[0])
            tier = RISK_TIERS[tier_indexes[0]]
            self.metrics.observe_one("v2", tier, probability, seconds, shadow=shadow)
        else:
            self.metrics.observe_batch(
                outputs.probabilities,
                outputs.tiers,
                RISK_TIERS,
                seconds,
                shadow=shadow,
                endpoint="v2",
            )
        body, header_length = self.encode(prepared, outputs, tier_indexes)
        return V2Answer(200, body, header_length)

    def encode(
        self, prepared: Prepared, outputs: RowOutputs, tier_indexes: list[int]
    ) -> tuple[bytes, int | None]:
        """The answer's body and header length, as ``codec.encode_response`` writes the
        outputs' tensors (each binary when ``prepared.binary`` names it), byte for byte.

        Written here as one document: on one row, building the tensors' objects and the
        codec's pass over them cost about as much as the prediction's own answer
        (tests/model_server/test_v2_plain.py compares the two ways)."""
        if len(tier_indexes) == 1 and not prepared.binary:
            top = None if outputs.reasons is None else outputs.reasons[0]
            served = float(outputs.probabilities[0])
            return self._one_row_json(prepared, served, tier_indexes[0], top), None
        shape = [len(tier_indexes)]
        tensors: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for name in prepared.outputs:
            data: Any
            if name == PROBABILITY:
                # float64 in native order: the codec's FP64, in JSON (numpy's) and in binary.
                data = np.ascontiguousarray(outputs.probabilities, dtype=np.float64)
            elif name == TIER:
                data = [_TIER_BYTES[i] for i in tier_indexes]
            else:
                assert outputs.reasons is not None  # asked for, so computed
                data = outputs.reasons
            tensor: dict[str, Any] = {"name": name, "datatype": OUTPUTS[name], "shape": shape}
            if name in prepared.binary:
                blob = (
                    data.astype("<f8", copy=False).tobytes()
                    if name == PROBABILITY
                    else _binary_elements(data)
                )
                blobs.append(blob)
                tensor["parameters"] = {"binary_data_size": len(blob)}
            else:
                tensor["data"] = data if name == PROBABILITY else [e.decode() for e in data]
            tensors.append(tensor)
        document: dict[str, Any] = {"model_name": self.name, "model_version": self.version}
        if prepared.id is not None:
            document["id"] = prepared.id
        document["outputs"] = tensors
        header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
        if not blobs:
            return header, None
        return b"".join([header, *blobs]), len(header)

    def _one_row_json(
        self, prepared: Prepared, served: float, tier_index: int, top: bytes | None
    ) -> bytes:
        """``encode``'s document for one row, every output in JSON, from templates: the
        usual answer, where building its dictionaries cost more than its numbers."""
        tensors = []
        for name in prepared.outputs:
            if name == PROBABILITY:
                value = orjson.dumps(served)
            elif name == TIER:
                value = _TIERS_JSON[tier_index]
            else:
                assert top is not None  # asked for, so computed
                value = orjson.dumps(top.decode())
            tensors.append(_ONE_ROW_TENSORS[name] % value)
        request_id = b"" if prepared.id is None else b',"id":' + orjson.dumps(prepared.id)
        return b'%s%s,"outputs":[%s]}' % (self.answer_start, request_id, b",".join(tensors))


# Each output of one row as orjson writes its tensor in ``encode``, its data's one element %s.
_ONE_ROW_TENSORS = {
    name: b'{"name":"%s","datatype":"%s","shape":[1],"data":[%%s]}'
    % (name.encode(), datatype.encode())
    for name, datatype in OUTPUTS.items()
}
_TIERS_JSON = [orjson.dumps(tier) for tier in RISK_TIERS]


def _binary_elements(elements: list[bytes]) -> bytes:
    """BYTES elements in binary: each its 4-byte little-endian length, then its bytes."""
    return b"".join([part for e in elements for part in (_LENGTH.pack(len(e)), e)])


def _general(body: bytes, header_length: int | None) -> Prepared:
    """Any request, by the codec and ``v2_rows.encode_tensors``; TensorError names what is wrong."""
    request = decode_request(body, header_length, max_elements=MAX_ELEMENTS)
    outputs = _outputs_asked(request.outputs)
    matrix = encode_tensors(request.inputs)
    return Prepared(request.id, matrix, outputs, frozenset(binary_outputs(request, outputs)))


def _plain(body: bytes, header_length: int | None) -> Prepared | None:
    """The request in its plain form (``v2_rows.plain_rows``) read in one pass, or None: the
    general decoding then judges it. Only what decode_request and encode_tensors accept, as
    they read it, is taken here (tests/model_server/test_v2_plain.py compares the answers)."""
    if header_length is None:
        json_part: bytes | memoryview = body
        binary = memoryview(b"")
    else:
        view = memoryview(body)
        json_part, binary = view[:header_length], view[header_length:]
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    try:
        matrix = plain_rows(document.get("inputs"), binary)
    except TypeError:  # an unhashable name or datatype: not plain
        return None
    if matrix is None:
        return None
    if len(document) == 1:  # its inputs alone: every output, in JSON (as the lines below say)
        return Prepared(None, matrix, _EVERY_OUTPUT, _NONE_BINARY)
    try:
        request_id = optional_id(document)
        parameters = request_parameters(document)
        requested = requested_outputs(document.get("outputs"))
        outputs = _outputs_asked(requested)
    except TensorError:
        return None  # the general decoding's 400
    binary_names = binary_outputs_of(parameters, requested, outputs)
    return Prepared(request_id, matrix, outputs, frozenset(binary_names))


_EVERY_OUTPUT = tuple(OUTPUTS)
_NONE_BINARY: frozenset[str] = frozenset()


def _outputs_asked(requested: list[RequestedOutput] | None) -> tuple[str, ...]:
    """The outputs to compute, in the order asked (every one when the request names none)."""
    if not requested:
        return _EVERY_OUTPUT
    names: list[str] = []
    for output in requested:
        if output.name not in OUTPUTS:
            raise TensorError(
                f"is not an output of the model, which gives {_GIVES}", output.name, role="output"
            )
        if output.name not in names:
            names.append(output.name)
    return tuple(names)
