"""One reader of scores per protocol: the model API's answers, V2 answers in JSON and binary."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from protocols.scores import (
    MODEL_API,
    BadScores,
    Score,
    ScoreSource,
    model_api_scores,
    read_scores,
    v2_probabilities,
    v2_scores,
)
from protocols.v2.codec import InferResponse, Tensor, encode_response

REASONS = [{"feature": f, "value": 1.0} for f in ("tenure", "contract_type", "monthly_charges")]


def v2_answer(outputs: list[Tensor], *, binary: bool = False) -> tuple[bytes, int | None]:
    response = InferResponse("churn", "v1", None, {t.name: t for t in outputs}, {})
    return encode_response(response, binary={t.name for t in outputs} if binary else ())


def ours(p: list[float], tiers: list[str] | None = None, reasons: bool = True) -> list[Tensor]:
    n = len(p)
    out = [Tensor("churn_probability", "FP64", (n,), np.array(p))]
    if tiers is not None:
        out.append(Tensor("risk_tier", "BYTES", (n,), [t.encode() for t in tiers]))
    if reasons:
        out.append(Tensor("top_reasons", "BYTES", (n,), [orjson.dumps(REASONS)] * n))
    return out


def test_model_api_single_and_batch_answers() -> None:
    single = {"churn_probability": 0.42, "risk_tier": "medium", "top_reasons": REASONS}
    assert model_api_scores(orjson.dumps(single)) == [
        Score(0.42, "medium", ("tenure", "contract_type", "monthly_charges"))
    ]
    batch: dict[str, Any] = {"predictions": [single, {**single, "churn_probability": 0.9}]}
    assert [s.probability for s in model_api_scores(orjson.dumps(batch))] == [0.42, 0.9]


def test_a_model_api_answer_without_reasons_has_none() -> None:
    translated = {
        "churn_probability": 0.1,
        "risk_tier": "low",
        "top_reasons": [],
        "reasons_available": False,
    }
    assert model_api_scores(orjson.dumps(translated)) == [Score(0.1, "low", None)]
    logged = b'{"churn_probability":0.7,"risk_tier":"high"}'  # what the log keeps of one
    assert model_api_scores(logged) == [Score(0.7, "high", None)]


@pytest.mark.parametrize("binary", [False, True])
def test_v2_answers_of_ours_json_and_binary(binary: bool) -> None:
    body, length = v2_answer(ours([0.2, 0.65], ["low", "high"]), binary=binary)
    assert (length is not None) == binary
    scores = read_scores(body, ScoreSource("v2"), length)
    assert scores == [
        Score(0.2, "low", ("tenure", "contract_type", "monthly_charges")),
        Score(0.65, "high", ("tenure", "contract_type", "monthly_charges")),
    ]


def test_v2_tier_from_the_probability_when_the_answer_has_none() -> None:
    body, _ = v2_answer(ours([0.1, 0.3, 0.6], reasons=False))
    assert [(s.tier, s.reasons) for s in v2_scores(body, None)] == [
        ("low", None),
        ("medium", None),
        ("high", None),
    ]


@pytest.mark.parametrize("binary", [False, True])
def test_a_column_of_a_two_dimensional_output(binary: bool) -> None:
    proba = Tensor("predict_proba", "FP64", (2, 2), np.array([0.9, 0.1, 0.35, 0.65]))
    body, length = v2_answer([proba], binary=binary)
    source = ScoreSource("v2", "predict_proba", 1)
    assert [(s.probability, s.tier) for s in read_scores(body, source, length)] == [
        (0.1, "low"),
        (0.65, "high"),
    ]
    single = Tensor("p", "FP32", (2, 1), np.array([0.25, 0.5], dtype=np.float32))
    body, _ = v2_answer([single])
    assert [s.probability for s in v2_scores(body, None, "p")] == [0.25, 0.5]


@pytest.mark.parametrize(
    ("outputs", "output", "column", "message"),
    [
        (ours([0.5]), "predict_proba", None, "no output 'predict_proba'"),
        (
            [Tensor("predict_proba", "FP64", (1, 2), np.array([0.5, 0.5]))],
            "predict_proba",
            None,
            "2 columns: say which",
        ),
        (
            [Tensor("predict_proba", "FP64", (1, 2), np.array([0.5, 0.5]))],
            "predict_proba",
            2,
            "no column 2",
        ),
        (ours([1.5]), "churn_probability", None, "outside 0..1"),
        ([Tensor("churn_probability", "BYTES", (1,), [b"x"])], "churn_probability", None, "BYTES"),
        (ours([0.5], ["extreme"]), "churn_probability", None, "'extreme' is not one of"),
    ],
)
def test_bad_v2_answers_say_what_is_missing(
    outputs: list[Tensor], output: str, column: int | None, message: str
) -> None:
    body, _ = v2_answer(outputs)
    with pytest.raises(BadScores, match=message):
        v2_scores(body, None, output, column)


def test_not_an_answer_at_all() -> None:
    with pytest.raises(BadScores, match="not a V2 answer"):
        v2_scores(b"{nope", None)
    with pytest.raises(BadScores, match="not JSON"):
        read_scores(b"{nope", MODEL_API)


@pytest.mark.parametrize("binary", [False, True])
def test_v2_probabilities_are_the_scores_probabilities_alone(binary: bool) -> None:
    proba = Tensor("predict_proba", "FP64", (3, 2), np.array([0.9, 0.1, 0.35, 0.65, 0.0, 1.0]))
    body, length = v2_answer([proba], binary=binary)
    got = v2_probabilities(body, length, "predict_proba", 1)
    assert got.dtype == np.float64
    assert got.tolist() == [s.probability for s in v2_scores(body, length, "predict_proba", 1)]
    assert got.tolist() == [0.1, 0.65, 1.0]
    for bad in ([0.5, float("nan")], [0.2, -0.1]):
        body, length = v2_answer(ours(bad), binary=True)  # JSON has no NaN
        with pytest.raises(BadScores, match="row 1: .* is outside 0..1"):
            v2_probabilities(body, length)
