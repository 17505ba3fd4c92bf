"""Translations between the model API and the Open Inference Protocol, and binary and JSON V2.

Pure functions over the codec (protocols/v2/codec.py), for the gateway's doors:

- ``predict_to_v2`` / ``v2_to_predict``: a ``/predict`` or ``/predict/batch`` request whose
  routing lands on a ``protocol: v2`` version (any V2 server) goes there as a V2 request, one
  tensor per model-API field, and its answer comes back as the model API's JSON. A V2 server
  gives no SHAP reasons in the model API's form, so the answer says so: ``top_reasons: []`` and
  ``"reasons_available": false`` (the probability, the tier and the version are as ever).
- ``binary_to_json_request`` / ``json_to_binary_answer``: a client speaking Triton's binary
  tensor extension to a version whose servers take only JSON (MLServer) has its request turned
  into JSON and the answer back into binary, so the client never sees a server's decoding error.

Client input that cannot be translated raises ``TranslationError``, whose message names the
field as the model API's 422 does (and whose ``model_api_body`` is that 422's body). An answer
that does not hold what is needed raises ``protocols.scores.BadScores``, read as every other
consumer reads a V2 answer's score: the version answered badly, which is the gateway's 502, not
the client's fault.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import orjson

from protocols.scores import BadScores, decode_v2_answer, decoded_v2_scores
from protocols.v2.codec import (
    InferRequest,
    RequestedOutput,
    Tensor,
    binary_outputs,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

__all__ = [
    "MAX_BATCH",
    "MODEL_API_INPUTS",
    "TranslationError",
    "binary_to_json_request",
    "json_to_binary_answer",
    "predict_to_v2",
    "v2_to_predict",
    "v2_to_predict_served",
]

# The V2 model contract: one input per model-API field, in the model API's order.
MODEL_API_INPUTS: tuple[tuple[str, str], ...] = (
    ("tenure", "INT64"),
    ("monthly_charges", "FP64"),
    ("total_charges", "FP64"),
    ("contract_type", "BYTES"),
    ("payment_method", "BYTES"),
    ("num_support_tickets", "INT64"),
    ("internet_service", "BYTES"),
    ("streaming_services", "INT64"),
    ("paperless_billing", "BOOL"),
    ("senior_citizen", "BOOL"),
)
MAX_BATCH = 1000  # customers in one /predict/batch, as the model API's schema says
TIER_OUTPUT = "risk_tier"

_INT64 = (-(2**63), 2**63 - 1)
# The strings pydantic's lax mode reads as a boolean (the model API is pydantic).
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class TranslationError(ValueError):
    """A model-API request that cannot become a V2 request: ``loc`` is the field's path as the
    model API's 422 gives it (``("body", "customers", 3, "tenure")``); str() names it."""

    def __init__(self, loc: tuple[str | int, ...], kind: str, message: str, given: Any) -> None:
        self.loc = loc
        self.kind = kind
        self.message = message
        self.given = given
        where = ".".join(str(part) for part in loc[1:]) or "body"
        super().__init__(f"{where}: {message}")

    def model_api_body(self) -> bytes:
        """The 422 body the model API answers for the same mistake (FastAPI's shape)."""
        error = {"type": self.kind, "loc": list(self.loc), "msg": self.message}
        if self.kind != "json_invalid":
            error["input"] = self.given
        return orjson.dumps({"detail": [error]})


# ---------------------------------------------------------------------------------------------
# /predict and /predict/batch -> V2


def predict_to_v2(body: bytes, *, batch: bool, outputs: Sequence[str] | None = None) -> bytes:
    """A model-API request body as a V2 JSON inference request: one tensor per field, shape
    [n] (n = 1 for /predict). ``outputs`` names the outputs to ask for (a scikit-learn server
    answers ``predict`` unless asked for ``predict_proba``; ours skips SHAP unless asked for
    ``top_reasons``); None asks for none in particular."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise TranslationError(("body",), "json_invalid", "JSON decode error", None) from None
    if batch:
        rows = _customers(payload)
        where: tuple[str | int, ...] = ("body", "customers")
    else:
        rows = [payload]
        where = ("body",)
    columns: list[list[Any]] = [[] for _ in MODEL_API_INPUTS]
    for index, row in enumerate(rows):
        loc = (*where, index) if batch else where
        if not isinstance(row, dict):
            raise TranslationError(
                loc,
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
                row,
            )
        for column, (name, datatype) in zip(columns, MODEL_API_INPUTS, strict=True):
            if name not in row:
                raise TranslationError((*loc, name), "missing", "Field required", row)
            column.append(_value(row[name], datatype, (*loc, name)))
    n = len(rows)
    tensors = [
        Tensor(name=name, datatype=datatype, shape=(n,), data=_array(values, datatype))
        for (name, datatype), values in zip(MODEL_API_INPUTS, columns, strict=True)
    ]
    request = InferRequest(
        id=None,
        inputs=tensors,
        outputs=[RequestedOutput(name) for name in outputs] if outputs is not None else None,
        parameters={},
    )
    encoded, _ = encode_request(request, binary=False)
    return encoded


def _customers(payload: Any) -> list[Any]:
    if not isinstance(payload, dict):
        raise TranslationError(
            ("body",),
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            payload,
        )
    if "customers" not in payload:
        raise TranslationError(("body", "customers"), "missing", "Field required", payload)
    rows = payload["customers"]
    loc: tuple[str | int, ...] = ("body", "customers")
    if not isinstance(rows, list):
        raise TranslationError(loc, "list_type", "Input should be a valid list", rows)
    if not rows:
        raise TranslationError(
            loc, "too_short", "List should have at least 1 item after validation, not 0", rows
        )
    if len(rows) > MAX_BATCH:
        raise TranslationError(
            loc,
            "too_long",
            f"List should have at most {MAX_BATCH} items after validation, not {len(rows)}",
            None,  # not echoed: a thousand customers back in an error
        )
    return rows


def _value(value: Any, datatype: str, loc: tuple[str | int, ...]) -> Any:
    """One field's value in its tensor's type, coerced as the model API's pydantic (lax mode)
    would; bounds and categories are the model's to check, with its own messages."""
    if datatype == "INT64":
        number = _integer(value)
        if number is None:
            raise TranslationError(loc, *_int_problem(value), value)
        if not _INT64[0] <= number <= _INT64[1]:
            raise TranslationError(loc, "int_type", "Input should fit a 64-bit integer", value)
        return number
    if datatype == "FP64":
        number_f = _number(value)
        if number_f is None:
            kind, message = (
                (
                    "float_parsing",
                    "Input should be a valid number, unable to parse string as a number",
                )
                if isinstance(value, str)
                else ("float_type", "Input should be a valid number")
            )
            raise TranslationError(loc, kind, message, value)
        return number_f
    if datatype == "BOOL":
        flag = _boolean(value)
        if flag is None:
            kind, message = (
                ("bool_parsing", "Input should be a valid boolean, unable to interpret input")
                if isinstance(value, str | int) and not isinstance(value, bool)
                else ("bool_type", "Input should be a valid boolean")
            )
            raise TranslationError(loc, kind, message, value)
        return flag
    if not isinstance(value, str):
        raise TranslationError(loc, "string_type", "Input should be a valid string", value)
    return value


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)  # pydantic's lax int takes true/false as 1/0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit() and len(text) <= 20:
            return int(text)
    return None


def _int_problem(value: Any) -> tuple[str, str]:
    if isinstance(value, float) and np.isfinite(value):
        return (
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part",
        )
    if isinstance(value, str):
        return (
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        )
    return "int_type", "Input should be a valid integer"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if np.isfinite(number) else None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _array(values: list[Any], datatype: str) -> np.ndarray[Any, Any] | list[bytes]:
    if datatype == "BYTES":
        return [value.encode("utf-8") for value in values]
    return np.array(
        values, dtype={"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}[datatype]
    )


# ---------------------------------------------------------------------------------------------
# V2 answer -> /predict and /predict/batch


def v2_to_predict(
    answer: bytes,
    header_length: int | None,
    *,
    output: str,
    column: int | None,
    version: str,
    batch: bool,
    processing_time_ms: float | None = None,
) -> bytes:
    """A V2 answer (JSON or binary) as the model API's answer: the probability from ``output``
    (``column`` of a two-dimensional one, e.g. ``predict_proba``'s 1), the tier from a
    ``risk_tier`` output when there is one (else from the probability), no reasons, and
    ``version``, the routing version that served. Batch answers carry ``batch_size`` and,
    when given, ``processing_time_ms`` (the time the version took)."""
    body, _ = v2_to_predict_served(
        answer,
        header_length,
        output=output,
        column=column,
        version=version,
        batch=batch,
        processing_time_ms=processing_time_ms,
    )
    return body


def v2_to_predict_served(
    answer: bytes,
    header_length: int | None,
    *,
    output: str,
    column: int | None,
    version: str,
    batch: bool,
    processing_time_ms: float | None = None,
) -> tuple[bytes, list[float]]:
    """``v2_to_predict``'s answer and the probabilities it serves, row by row: read once, for a
    reader that counts them (the gateway's served histogram) without parsing the answer again."""
    # Read as every other consumer reads a V2 answer's score (protocols/scores.py).
    scores = decoded_v2_scores(decode_v2_answer(answer, header_length), output, column)
    if not batch and len(scores) != 1:
        raise BadScores(f"output {output!r} holds {len(scores)} rows; /predict asked for one")
    predictions = [
        {
            "churn_probability": score.probability,
            "risk_tier": score.tier,
            "top_reasons": [],
            "reasons_available": False,
            "model_version": version,
        }
        for score in scores
    ]
    probabilities = [score.probability for score in scores]
    if not batch:
        return orjson.dumps(predictions[0]), probabilities
    document: dict[str, Any] = {"predictions": predictions, "batch_size": len(predictions)}
    if processing_time_ms is not None:
        document["processing_time_ms"] = processing_time_ms
    return orjson.dumps(document), probabilities


# ---------------------------------------------------------------------------------------------
# Binary <-> JSON, for servers that take JSON only


def binary_to_json_request(body: bytes, header_length: int) -> bytes:
    """A request with binary tensors as the same request all in JSON, asking for JSON outputs
    (the client's binary wishes are kept by the gateway, for ``json_to_binary_answer``).
    TensorError, naming the tensor, when it is not a valid request or a BYTES element is not
    UTF-8 text (which JSON cannot carry)."""
    # Each element of a body costs at least a byte of it, so the body bounds every count.
    request = decode_request(body, header_length, max_elements=max(len(body), 1))
    parameters = {k: v for k, v in request.parameters.items() if k != "binary_data_output"}
    outputs = (
        [RequestedOutput(o.name) for o in request.outputs] if request.outputs is not None else None
    )
    encoded, _ = encode_request(
        InferRequest(id=request.id, inputs=request.inputs, outputs=outputs, parameters=parameters),
        binary=False,
    )
    return encoded


def json_to_binary_answer(
    answer: bytes, binary: Collection[str], *, request: InferRequest | None = None
) -> tuple[bytes, int | None]:
    """A JSON answer with the outputs named in ``binary`` (plus, given the client's
    ``request``, those it asked for in binary: ``binary_outputs``) as binary tensors; returns
    the body and its Inference-Header-Content-Length (None when nothing went binary)."""
    response = decode_response(answer, None)
    wanted = set(binary) & response.outputs.keys()
    if request is not None:
        wanted |= binary_outputs(request, response.outputs)
    return encode_response(response, binary=wanted)
