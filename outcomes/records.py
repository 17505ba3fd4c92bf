"""What the prediction log holds: one scored row as a client (or the shadow comparison) got it,
one observed outcome, and the labelled pairs the quality report reads.

The gateway hands the writer an ``Answered`` (the raw bytes of one answer, nothing parsed) and
the writer turns it into ``Prediction`` rows in its own thread, so the client's path never pays
for parsing. An answer says where it holds its score (protocols/scores.py, the one reader of
scores): the model API's fields by default, or a V2 output, in JSON or with binary tensors (the
answer's Inference-Header-Content-Length kept beside it); a stored batch keeps that too.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from protocols.scores import MODEL_API, BadScores, ScoreSource, read_scores
from protocols.v2.codec import TensorError, decode_request
from vocabulary.headers import ROUTE_REASONS

if TYPE_CHECKING:  # numpy only for the annotations: the gateway's writer never needs it
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ASSIGNMENTS",
    "Answered",
    "decode_answers",
    "encode_answers",
    "Labelled",
    "LabelledColumns",
    "ShadowPairColumns",
    "Outcome",
    "OutcomeTally",
    "Prediction",
    "predictions_of",
]

# How a prediction was assigned to its version: the route reasons a client's answer carries,
# and ``shadow`` for a mirrored copy that was compared and never returned.
SHADOW = "shadow"
ASSIGNMENTS: tuple[str, ...] = (*ROUTE_REASONS, SHADOW)


@dataclass(frozen=True, slots=True)
class Prediction:
    """One scored row: a single answer is row 0; a batch answer's rows are 0..n-1."""

    time: float  # Unix seconds when the answer was ready
    request_id: str
    row: int
    customer_key: str | None  # the sticky header's value, when the request carried one
    version: str
    assignment: str  # one of ASSIGNMENTS
    routing_revision: str
    churn_probability: float
    risk_tier: str
    features: str | None = None  # the row's request features as JSON (off by default)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One observed outcome, keyed by the request (and row) that scored it or by the customer."""

    churned: bool
    observed_at: float  # Unix seconds
    request_id: str | None = None
    customer_id: str | None = None
    row: int = 0  # with request_id: which row of a batch answer

    @property
    def kind(self) -> str:
        return "request" if self.request_id is not None else "customer"

    @property
    def key(self) -> str:
        key = self.request_id if self.request_id is not None else self.customer_id
        assert key is not None
        return key


@dataclass(slots=True)
class OutcomeTally:
    """What writing one batch of outcomes did."""

    received: int = 0
    new: int = 0  # not seen before (the same outcome twice counts once)
    duplicates: int = 0
    labelled: int = 0  # predictions that got a label from this batch (new labels only)
    unmatched: int = 0  # outcomes of this batch that belong to no recorded prediction
    new_unmatched: int = 0  # of those, the ones this batch stored first (counted once)
    unmatched_keys: list[str] = field(default_factory=list)  # the first few, to report

    def add(self, other: OutcomeTally, keep: int = 20) -> None:
        self.received += other.received
        self.new += other.new
        self.duplicates += other.duplicates
        self.labelled += other.labelled
        self.unmatched += other.unmatched
        self.new_unmatched += other.new_unmatched
        room = keep - len(self.unmatched_keys)
        if room > 0:
            self.unmatched_keys.extend(other.unmatched_keys[:room])

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "new": self.new,
            "duplicates": self.duplicates,
            "labelled": self.labelled,
            "unmatched": self.unmatched,
            "new_unmatched": self.new_unmatched,
            "unmatched_keys": list(self.unmatched_keys),
        }


@dataclass(frozen=True, slots=True)
class Labelled:
    """Labelled predictions as parallel columns (cheap to build for a million rows, and what
    numpy wants): row i is one prediction and the outcome joined to it."""

    time: list[float]
    version: list[str]
    assignment: list[str]
    churn_probability: list[float]
    risk_tier: list[str]
    churned: list[bool]
    request_id: list[str]
    row: list[int]
    customer_key: list[str | None]

    def __len__(self) -> int:
        return len(self.time)


@dataclass(frozen=True)
class LabelledColumns:
    """What the quality report reads of a window's labelled predictions, as numpy arrays (a
    million rows in well under a second): row i's version is ``versions[version[i]]``, its
    assignment ``ASSIGNMENTS[assignment[i]]``."""

    versions: tuple[str, ...]
    version: npt.NDArray[np.intp]
    assignment: npt.NDArray[np.int8]
    churn_probability: npt.NDArray[np.float64]
    churned: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.churn_probability.size)


@dataclass(frozen=True)
class ShadowPairColumns:
    """Labelled shadow predictions of one version, each with the labelled answer another
    version served the same request and row (``PredictionStore.shadow_pairs``)."""

    shadow_version: str
    served_version: str
    shadow_probability: npt.NDArray[np.float64]
    served_probability: npt.NDArray[np.float64]
    churned: npt.NDArray[np.bool_]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs four times more
class Answered:
    """One answer as the gateway had it: raw bytes, parsed later (never changed once made)."""

    time: float
    request_id: bytes
    customer_key: bytes | None
    version: str
    assignment: str
    revision: bytes
    body: bytes  # the answer: a ChurnPredictionResponse or a batch of them, or a V2 answer
    request: bytes | None = None  # the request body, only when features are logged
    source: ScoreSource | None = None  # where ``body`` holds the score; None: the model API
    header_length: int | None = None  # a binary V2 answer's JSON part
    request_header_length: int | None = None  # a binary V2 request's JSON part

    def as_shadow(
        self,
        version: str,
        body: bytes,
        source: ScoreSource | None = None,
        header_length: int | None = None,
    ) -> Answered:
        """The shadow version's answer to the same request (same id, key and time)."""
        return Answered(
            self.time,
            self.request_id,
            self.customer_key,
            version,
            SHADOW,
            self.revision,
            body,
            self.request,
            source,
            header_length,
            self.request_header_length,
        )


class NotAPrediction(ValueError):
    """An answer body with no prediction in it (the writer counts and skips it)."""


def predictions_of(answered: Answered) -> list[Prediction]:
    """The rows of one answer. Raises NotAPrediction for a body that is not one."""
    source = answered.source
    try:
        if source is None:
            scores = read_scores(answered.body, MODEL_API)
        else:
            scores = read_scores(answered.body, source, answered.header_length)
    except BadScores as exc:
        raise NotAPrediction(str(exc)) from None
    features: list[str | None] = [None] * len(scores)
    if answered.request is not None:
        if source is None:
            features = _features(answered.request, len(scores))
        else:
            features = _v2_features(answered.request, answered.request_header_length, len(scores))
    request_id = answered.request_id.decode("latin-1")
    key = answered.customer_key.decode("latin-1") if answered.customer_key else None
    revision = answered.revision.decode("latin-1")
    return [
        Prediction(
            answered.time,
            request_id,
            row,
            key,
            answered.version,
            answered.assignment,
            revision,
            score.probability,
            score.tier,
            features[row],
        )
        for row, score in enumerate(scores)
    ]


def _features(request: bytes, rows: int) -> list[str | None]:
    """Each row's customer from the request body, as compact JSON (None when unreadable)."""
    try:
        document = orjson.loads(request)
    except orjson.JSONDecodeError:
        return [None] * rows
    customers = document.get("customers") if isinstance(document, dict) else None
    if customers is None:
        customers = [document]
    if not isinstance(customers, list) or len(customers) != rows:
        return [None] * rows
    return [orjson.dumps(customer).decode() for customer in customers]


def _v2_features(request: bytes, header_length: int | None, rows: int) -> list[str | None]:
    """Each row's customer from a V2 request (one tensor per model-API field, shape [n] or
    [n, 1]), as the same compact JSON as a /predict customer's (None when unreadable)."""
    try:
        decoded = decode_request(request, header_length, max_elements=max(len(request), 1))
    except TensorError:
        return [None] * rows
    columns: dict[str, list[object]] = {}
    for tensor in decoded.inputs:
        if len(tensor.data) != rows:
            return [None] * rows
        if isinstance(tensor.data, list):
            values: list[object] = [e.decode("utf-8", "replace") for e in tensor.data]
        else:
            values = tensor.data.tolist()
        columns[tensor.name] = values
    return [
        orjson.dumps({name: values[row] for name, values in columns.items()}).decode()
        for row in range(rows)
    ]


_PROBABILITY = re.compile(rb'"churn_probability"\s*:\s*(-?[0-9][0-9.eE+-]*)')
_TIER = re.compile(rb'"risk_tier"\s*:\s*("[a-z]+")')


def compact(body: bytes) -> bytes:
    """What the log needs of a single answer (probability and tier), as a small JSON object:
    the top reasons are most of an answer's bytes, and bytes written are most of a batch's
    cost. A batch answer, or a body the patterns do not find, is kept whole."""
    if b'"predictions"' in body:
        return body
    probability = _PROBABILITY.search(body)
    tier = _TIER.search(body)
    if probability is None or tier is None:
        return body
    return b'{"churn_probability":%s,"risk_tier":%s}' % (probability[1], tier[1])


# A stored batch: BATCH_MAGIC, then per answer its fixed-size head (time, then the lengths of
# request id, customer key, version, assignment, revision, answer, request and where the answer
# holds its score), then those bytes. Packing a head is one struct call: the JSON head of the
# first format was two thirds of the writer's cost an answer. The score's place is empty for a
# model-API answer (most of them), else a small JSON array (``_place``). Batches stored before
# an upgrade are still read: SFA2 (the same without the score's place), and the first format
# (no magic: three lengths, a JSON head, the answer, the request).
BATCH_MAGIC = b"SFA3"
BATCH_MAGIC_V2 = b"SFA2"
_HEAD = struct.Struct("<dIIHHHIIH")
_HEAD_V2 = struct.Struct("<dIIHHHII")
_NO_KEY = 0xFFFFFFFF
_FRAME_V1 = struct.Struct("<III")


def encode_answers(answers: Sequence[Answered]) -> bytes:
    """A batch of answers as one blob, as the writer stores it (no parsing: a few C calls an
    answer)."""
    pack = _HEAD.pack
    parts = [BATCH_MAGIC]
    for a in answers:
        key = a.customer_key or None
        version = a.version.encode()
        assignment = a.assignment.encode()
        request = a.request if a.request is not None else b""
        if a.source is None:
            body = compact(a.body)
            place = b""
        else:
            body = a.body
            place = _place(a)
        parts += (
            pack(
                a.time,
                len(a.request_id),
                _NO_KEY if key is None else len(key),
                len(version),
                len(assignment),
                len(a.revision),
                len(body),
                len(request),
                len(place),
            ),
            a.request_id,
            key or b"",
            version,
            assignment,
            a.revision,
            body,
            request,
            place,
        )
    return b"".join(parts)


def _place(a: Answered) -> bytes:
    source = a.source
    assert source is not None
    return orjson.dumps(
        [
            source.protocol,
            source.output,
            source.column,
            a.header_length,
            a.request_header_length,
        ]
    )


def _unplace(place: bytes) -> tuple[ScoreSource | None, int | None, int | None]:
    """(source, the answer's header length, the request's) of a stored score place."""
    if not place:
        return None, None, None
    protocol, output, column, header_length, request_header_length = orjson.loads(place)
    return ScoreSource(protocol, output, column), header_length, request_header_length


def decode_answers(blob: bytes) -> Iterator[Answered]:
    if blob.startswith(BATCH_MAGIC):
        head = _HEAD
    elif blob.startswith(BATCH_MAGIC_V2):
        head = _HEAD_V2
    else:
        yield from _decode_v1(blob)
        return
    view = memoryview(blob)
    at = len(BATCH_MAGIC)
    while at < len(view):
        time_, ids, keys, versions, assignments, revisions, bodies, requests, *rest = (
            head.unpack_from(view, at)
        )
        at += head.size
        fields = []
        for size in (ids, 0 if keys == _NO_KEY else keys, versions, assignments, revisions):
            fields.append(bytes(view[at : at + size]))
            at += size
        body = bytes(view[at : at + bodies])
        at += bodies
        request = bytes(view[at : at + requests]) if requests else None
        at += requests
        places = rest[0] if rest else 0
        source, header_length, request_header_length = _unplace(bytes(view[at : at + places]))
        at += places
        request_id, key, version, assignment, revision = fields
        yield Answered(
            time_,
            request_id,
            None if keys == _NO_KEY else key,
            version.decode(),
            assignment.decode(),
            revision,
            body,
            request,
            source,
            header_length,
            request_header_length,
        )


def _decode_v1(blob: bytes) -> Iterator[Answered]:
    view = memoryview(blob)
    at = 0
    while at < len(view):
        heads, bodies, requests = _FRAME_V1.unpack_from(view, at)
        at += _FRAME_V1.size
        time_, request_id, key, version, assignment, revision = orjson.loads(view[at : at + heads])
        at += heads
        body = bytes(view[at : at + bodies])
        at += bodies
        request = bytes(view[at : at + requests]) if requests else None
        at += requests
        yield Answered(
            time_,
            request_id.encode("latin-1"),
            key.encode("latin-1") if key is not None else None,
            version,
            assignment,
            revision.encode("latin-1"),
            body,
            request,
        )
