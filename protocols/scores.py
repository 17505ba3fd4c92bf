"""A version's score, read out of its answer: one function per protocol, and nothing else reads it.

Every consumer of a score (the shadow comparison, the prediction log's rows, and through them
``/quality`` and the rollout judge's drift checks) calls ``read_scores`` with where the answer
holds it (``ScoreSource``), so an answer in the model API, in V2 JSON or in V2 with binary
tensors gives the same rows: one ``Score`` per customer, in the request's order.

- The model API: ``churn_probability`` and ``risk_tier`` of a ``/predict`` answer, or of each
  of a ``/predict/batch`` answer's ``predictions``; the top reasons' feature names, unless the
  answer says ``"reasons_available": false`` (an answer translated from a V2-only version) or
  has none.
- The Open Inference Protocol: the score output (``churn_probability`` by default; for a
  two-dimensional output such as scikit-learn's ``predict_proba``, one column of it); the tier
  from a ``risk_tier`` output when the answer has one, else from the probability
  (``vocabulary.tiers.tier_of``, the model API's own edges); the reasons from a ``top_reasons``
  output (each element the JSON array of a row's reasons) when present, else none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from protocols.v2.codec import InferResponse, TensorError, decode_response
from vocabulary.tiers import RISK_TIERS, TIER_INDEX, tier_of

__all__ = [
    "MODEL_API",
    "BadScores",
    "Score",
    "ScoreSource",
    "V2_DEFAULT",
    "decode_v2_answer",
    "decoded_v2_scores",
    "model_api_scores",
    "read_scores",
    "v2_probabilities",
    "v2_scores",
]

TOP_REASONS = 3
DEFAULT_OUTPUT = "churn_probability"
TIER_OUTPUT = "risk_tier"
REASONS_OUTPUT = "top_reasons"


class BadScores(ValueError):
    """An answer with no score where its source says (str() says what is missing, and where)."""


@dataclass(frozen=True, slots=True)
class Score:
    """One scored customer."""

    probability: float
    tier: str
    reasons: tuple[str, ...] | None = None  # top reasons' features, first first; None: none given


@dataclass(frozen=True, slots=True)
class ScoreSource:
    """Where a version's answer holds its score: the model API's fields, or a V2 output (and
    its column, for a two-dimensional output)."""

    protocol: Literal["model_api", "v2"] = "model_api"
    output: str = DEFAULT_OUTPUT
    column: int | None = None

    def describe(self) -> str:
        if self.protocol == "model_api":
            return "model_api"
        column = "" if self.column is None else f"[:, {self.column}]"
        return f"v2 output {self.output!r}{column}"


MODEL_API = ScoreSource()
V2_DEFAULT = ScoreSource("v2")


def read_scores(body: bytes, source: ScoreSource, header_length: int | None = None) -> list[Score]:
    """The rows of one answer, read as ``source`` says. ``header_length``: a binary V2 answer's
    Inference-Header-Content-Length (None: all JSON)."""
    if source.protocol == "model_api":
        return model_api_scores(body)
    return v2_scores(body, header_length, source.output, source.column)


# --- the model API -----------------------------------------------------------------------------


def model_api_scores(body: bytes) -> list[Score]:
    """The rows of a /predict answer (one) or a /predict/batch answer (its predictions)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadScores(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadScores("not a JSON object")
    if "predictions" in document:
        items = document["predictions"]
        if not isinstance(items, list):
            raise BadScores("predictions is not a list")
        return [_model_api_row(item, f"predictions[{i}]") for i, item in enumerate(items)]
    return [_model_api_row(document, "answer")]


def _model_api_row(item: object, where: str) -> Score:
    if not isinstance(item, dict):
        raise BadScores(f"{where}: not an object")
    probability = _probability(item.get("churn_probability"), f"{where}.churn_probability")
    tier = item.get("risk_tier")
    if tier not in TIER_INDEX:
        raise BadScores(f"{where}.risk_tier: {tier!r} is not one of {', '.join(RISK_TIERS)}")
    reasons = item.get("top_reasons", [])  # absent: the prediction log keeps none
    if not isinstance(reasons, list):
        raise BadScores(f"{where}.top_reasons: not a list")
    features = _features(reasons, f"{where}.top_reasons")
    # A translated answer (a V2-only version behind /predict) says it has no reasons.
    explained = item.get("reasons_available", True) is not False and bool(features)
    return Score(probability, str(tier), features if explained else None)


def _probability(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadScores(f"{where}: not a number")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise BadScores(f"{where}: {value} is outside 0..1")
    return float(value)


def _features(reasons: list[Any], where: str) -> tuple[str, ...]:
    features = []
    for reason in reasons[:TOP_REASONS]:
        feature = reason.get("feature") if isinstance(reason, dict) else None
        if not isinstance(feature, str):
            raise BadScores(f"{where}: an entry has no feature name")
        features.append(feature)
    return tuple(features)


# --- the Open Inference Protocol ---------------------------------------------------------------


def v2_scores(
    body: bytes,
    header_length: int | None,
    output: str = DEFAULT_OUTPUT,
    column: int | None = None,
) -> list[Score]:
    """The rows of a V2 inference answer (JSON, or JSON then binary tensors)."""
    return decoded_v2_scores(decode_v2_answer(body, header_length), output, column)


def decoded_v2_scores(
    answer: InferResponse, output: str = DEFAULT_OUTPUT, column: int | None = None
) -> list[Score]:
    """``v2_scores`` of an answer already decoded, for a reader that needs more of it (its
    ``id``) and would otherwise parse it twice."""
    probabilities = _probabilities(answer, output, column)
    rows = len(probabilities)
    tiers = _tiers(answer.outputs.get(TIER_OUTPUT), rows)
    reasons = _reasons(answer.outputs.get(REASONS_OUTPUT), rows)
    scores = []
    for i, probability in enumerate(probabilities.tolist()):
        tier = tiers[i] if tiers is not None else tier_of(probability)
        scores.append(Score(probability, tier, reasons[i] if reasons is not None else None))
    return scores


def v2_probabilities(
    body: bytes,
    header_length: int | None,
    output: str = DEFAULT_OUTPUT,
    column: int | None = None,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Only the probability of each row of a V2 answer, as ``v2_scores`` reads it (no tiers,
    no reasons, no row objects): for a reader that counts them per bin."""
    return _probabilities(decode_v2_answer(body, header_length), output, column)


def decode_v2_answer(body: bytes, header_length: int | None) -> InferResponse:
    """A V2 answer decoded, or BadScores saying why it is not one."""
    try:
        return decode_response(body, header_length)
    except TensorError as exc:
        raise BadScores(f"not a V2 answer: {exc}") from None


def _probabilities(
    answer: InferResponse, output: str, column: int | None
) -> np.ndarray[Any, np.dtype[np.float64]]:
    tensor = answer.outputs.get(output)
    if tensor is None:
        have = ", ".join(repr(name) for name in answer.outputs) or "none"
        raise BadScores(f"the answer has no output {output!r} (it has: {have})")
    if not isinstance(tensor.data, np.ndarray) or tensor.data.dtype.kind not in "fiu":
        raise BadScores(f"output {output!r}: {tensor.datatype} is not a number type")
    probabilities = _column(tensor.data, tensor.shape, output, column).astype(np.float64)
    outside = np.flatnonzero(~((probabilities >= 0.0) & (probabilities <= 1.0)))  # NaN too
    if outside.size:
        i = int(outside[0])
        raise BadScores(f"output {output!r} row {i}: {float(probabilities[i])} is outside 0..1")
    return probabilities


def _column(
    data: np.ndarray[Any, Any], shape: tuple[int, ...], output: str, column: int | None
) -> np.ndarray[Any, Any]:
    """The score of each row: a [n] output as it is, a [n, k] output's column (column 0 of a
    [n, 1] one when no column is named)."""
    if len(shape) == 1:
        if column is not None:
            raise BadScores(f"output {output!r} has shape {list(shape)}: it has no column {column}")
        return data
    if len(shape) != 2:
        raise BadScores(f"output {output!r} has shape {list(shape)}: want [n] or [n, k]")
    rows, columns = shape
    if column is None:
        if columns != 1:
            raise BadScores(
                f"output {output!r} has {columns} columns: say which holds the score "
                "(routing.yaml: score.column)"
            )
        column = 0
    if column >= columns:
        raise BadScores(f"output {output!r} has {columns} columns: no column {column}")
    return data.reshape(rows, columns)[:, column]


def _elements(tensor: Any, rows: int, name: str) -> list[str] | None:
    """A BYTES output's elements as text, one a row; None when the answer lacks the output."""
    if tensor is None:
        return None
    data = tensor.data
    if isinstance(data, np.ndarray) or len(data) != rows:
        raise BadScores(f"output {name!r}: want {rows} BYTES elements, one a row")
    try:
        return [element.decode("utf-8") for element in data]
    except UnicodeDecodeError:
        raise BadScores(f"output {name!r}: an element is not UTF-8 text") from None


def _tiers(tensor: Any, rows: int) -> list[str] | None:
    tiers = _elements(tensor, rows, TIER_OUTPUT)
    for i, tier in enumerate(tiers or ()):
        if tier not in TIER_INDEX:
            raise BadScores(
                f"output {TIER_OUTPUT!r} row {i}: {tier!r} is not one of {', '.join(RISK_TIERS)}"
            )
    return tiers


def _reasons(tensor: Any, rows: int) -> list[tuple[str, ...] | None] | None:
    texts = _elements(tensor, rows, REASONS_OUTPUT)
    if texts is None:
        return None
    out: list[tuple[str, ...] | None] = []
    for i, text in enumerate(texts):
        try:
            reasons = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise BadScores(f"output {REASONS_OUTPUT!r} row {i}: not a JSON array") from None
        if not isinstance(reasons, list):
            raise BadScores(f"output {REASONS_OUTPUT!r} row {i}: not a JSON array")
        features = _features(reasons, f"output {REASONS_OUTPUT!r} row {i}")
        out.append(features or None)
    return out
