"""The prediction log with V2 answers: the score's place kept with the answer, stored and read
back, rows (and features) made from V2 answers and requests in JSON and binary."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from outcomes.records import (
    BATCH_MAGIC_V2,
    Answered,
    NotAPrediction,
    decode_answers,
    encode_answers,
    predictions_of,
)
from outcomes.store.sqlite import SqliteStore
from protocols.scores import ScoreSource
from protocols.v2.codec import InferRequest, InferResponse, Tensor, encode_request, encode_response

SKLEARN = ScoreSource("v2", "predict_proba", 1)
OURS = ScoreSource("v2")


def v2_answer(binary: bool) -> tuple[bytes, int | None]:
    outputs = {
        "churn_probability": Tensor("churn_probability", "FP64", (2,), np.array([0.2, 0.7])),
        "risk_tier": Tensor("risk_tier", "BYTES", (2,), [b"low", b"high"]),
    }
    response = InferResponse("churn", "v1", "req", outputs, {})
    return encode_response(response, binary=set(outputs) if binary else ())


def v2_request(binary: bool) -> tuple[bytes, int | None]:
    inputs = [
        Tensor("tenure", "INT64", (2,), np.array([3, 40], dtype=np.int64)),
        Tensor("contract_type", "BYTES", (2, 1), [b"Month-to-month", b"Two year"]),
        Tensor("paperless_billing", "BOOL", (2,), np.array([True, False])),
    ]
    return encode_request(InferRequest("req", inputs, None, {}), binary=binary)


def answered(body: bytes, **kwargs: object) -> Answered:
    return Answered(1.0, b"req", None, "v1", "weighted", b"rev", body, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("binary", [False, True])
def test_v2_answers_become_rows_with_their_features(binary: bool) -> None:
    body, length = v2_answer(binary)
    request, request_length = v2_request(binary)
    answer = answered(
        body,
        request=request,
        source=OURS,
        header_length=length,
        request_header_length=request_length,
    )
    rows = predictions_of(answer)
    assert [(r.row, r.churn_probability, r.risk_tier) for r in rows] == [
        (0, 0.2, "low"),
        (1, 0.7, "high"),
    ]
    assert [orjson.loads(r.features or "") for r in rows] == [
        {"tenure": 3, "contract_type": "Month-to-month", "paperless_billing": True},
        {"tenure": 40, "contract_type": "Two year", "paperless_billing": False},
    ]
    # Stored and read back: the same answer, where its score is included.
    (back,) = decode_answers(encode_answers([answer]))
    assert back == answer
    assert predictions_of(back) == rows


def test_a_v2_answer_read_as_the_model_api_is_not_a_prediction() -> None:
    body, _ = v2_answer(False)
    with pytest.raises(NotAPrediction):
        predictions_of(answered(body))
    with pytest.raises(NotAPrediction, match="no output 'predict_proba'"):
        predictions_of(answered(body, source=SKLEARN))


def test_a_shadow_keeps_its_own_score_place() -> None:
    ours = answered(b'{"churn_probability":0.3,"risk_tier":"medium","top_reasons":[]}')
    proba = Tensor("predict_proba", "FP64", (1, 2), np.array([0.6, 0.4]))
    body, _ = encode_response(InferResponse("churn-sk", "v2", None, {proba.name: proba}, {}))
    shadow = ours.as_shadow("v2", body, SKLEARN, None)
    assert shadow.assignment == "shadow" and shadow.source == SKLEARN
    (row,) = predictions_of(shadow)
    assert (row.version, row.churn_probability, row.risk_tier) == ("v2", 0.4, "medium")


def test_batches_of_the_previous_format_still_read() -> None:
    body = b'{"churn_probability":0.42,"risk_tier":"medium"}'
    head = struct.Struct("<dIIHHHII").pack(2.0, 2, 4, 2, 8, 3, len(body), 0)
    blob = BATCH_MAGIC_V2 + head + b"r1" + b"cust" + b"v1" + b"weighted" + b"rev" + body
    assert list(decode_answers(blob)) == [
        Answered(2.0, b"r1", b"cust", "v1", "weighted", b"rev", body, None)
    ]


def test_the_store_materializes_v2_rows() -> None:
    store = SqliteStore(":memory:")
    try:
        body, length = v2_answer(True)
        store.write_answers([answered(body, source=OURS, header_length=length)])
        assert store.materialize() == (2, 0)
        assert store.counts()["predictions"] == 2
    finally:
        store.close()
