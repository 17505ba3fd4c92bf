"""Model API <-> V2 translations and binary <-> JSON V2, over the codec."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from model_server.schemas import (
    EXAMPLE_CUSTOMER,
    BatchPredictionRequest,
    ChurnPredictionRequest,
)
from protocols.scores import BadScores, ScoreSource, read_scores
from protocols.v2.codec import (
    InferRequest,
    InferResponse,
    Tensor,
    TensorError,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from protocols.v2.translate import (
    MODEL_API_INPUTS,
    TranslationError,
    binary_to_json_request,
    json_to_binary_answer,
    predict_to_v2,
    v2_to_predict,
    v2_to_predict_served,
)
from vocabulary.tiers import tier_of


def test_the_inputs_are_the_model_apis_fields() -> None:
    assert [name for name, _ in MODEL_API_INPUTS] == list(ChurnPredictionRequest.model_fields)


def test_the_inputs_are_the_ones_the_model_server_takes() -> None:
    """The gateway's translation cannot import the model server: the two say it apart, and
    this holds them to one contract (names, order and datatypes)."""
    from model_server.v2_rows import INPUTS

    assert list(MODEL_API_INPUTS) == list(INPUTS.items())


def test_predict_becomes_one_tensor_per_field() -> None:
    body = predict_to_v2(orjson.dumps(EXAMPLE_CUSTOMER), batch=False)
    request = decode_request(body, None, max_elements=100)
    assert request.outputs is None
    tensors = {t.name: t for t in request.inputs}
    assert [t.name for t in request.inputs] == [n for n, _ in MODEL_API_INPUTS]
    for name, datatype in MODEL_API_INPUTS:
        assert tensors[name].datatype == datatype
        assert tensors[name].shape == (1,)
    assert tensors["tenure"].data.tolist() == [14]  # type: ignore[union-attr]
    assert tensors["monthly_charges"].data.tolist() == [89.5]  # type: ignore[union-attr]
    assert tensors["contract_type"].data == [b"month-to-month"]
    assert tensors["paperless_billing"].data.tolist() == [True]  # type: ignore[union-attr]


def test_a_batch_is_one_tensor_per_field_of_n_rows_and_outputs_may_be_asked() -> None:
    second = {**EXAMPLE_CUSTOMER, "tenure": 3, "senior_citizen": True}
    body = orjson.dumps({"customers": [EXAMPLE_CUSTOMER, second]})
    request = decode_request(
        predict_to_v2(body, batch=True, outputs=["predict_proba"]), None, max_elements=100
    )
    tensors = {t.name: t for t in request.inputs}
    assert tensors["tenure"].shape == (2,)
    assert tensors["tenure"].data.tolist() == [14, 3]  # type: ignore[union-attr]
    assert tensors["senior_citizen"].data.tolist() == [False, True]  # type: ignore[union-attr]
    assert [o.name for o in request.outputs or ()] == ["predict_proba"]


def test_lax_values_are_read_as_the_model_api_reads_them() -> None:
    customer = {
        **EXAMPLE_CUSTOMER,
        "tenure": "14",
        "num_support_tickets": 3.0,
        "monthly_charges": 89,
        "paperless_billing": "yes",
        "senior_citizen": 0,
    }
    model = ChurnPredictionRequest.model_validate(customer)
    request = decode_request(
        predict_to_v2(orjson.dumps(customer), batch=False), None, max_elements=100
    )
    for tensor in request.inputs:
        data = tensor.data
        value = data[0].decode() if isinstance(data, list) else data.tolist()[0]
        assert value == getattr(model, tensor.name), tensor.name


BAD_CUSTOMERS: list[tuple[str, Any]] = [
    ("tenure", None),
    ("tenure", 1.5),
    ("tenure", "abc"),
    ("tenure", [1]),
    ("monthly_charges", "cheap"),
    ("monthly_charges", {}),
    ("contract_type", 3),
    ("paperless_billing", "maybe"),
    ("senior_citizen", 2),
    ("senior_citizen", 1.5),
]


@pytest.mark.parametrize(("field", "value"), BAD_CUSTOMERS)
def test_a_bad_field_is_named_as_the_model_api_names_it(field: str, value: Any) -> None:
    customer = {**EXAMPLE_CUSTOMER, field: value}
    with pytest.raises(ValidationError) as expected:
        BatchPredictionRequest.model_validate({"customers": [EXAMPLE_CUSTOMER, customer]})
    model_error = expected.value.errors()[0]
    with pytest.raises(TranslationError) as got:
        predict_to_v2(orjson.dumps({"customers": [EXAMPLE_CUSTOMER, customer]}), batch=True)
    assert got.value.loc == ("body", *model_error["loc"])
    assert got.value.kind == model_error["type"]
    assert got.value.message == model_error["msg"]
    assert str(got.value) == f"customers.1.{field}: {model_error['msg']}"
    detail = orjson.loads(got.value.model_api_body())["detail"][0]
    assert detail["loc"] == ["body", "customers", 1, field]


def test_a_missing_field_and_a_bad_document_are_named() -> None:
    customer = copy.deepcopy(EXAMPLE_CUSTOMER)
    del customer["senior_citizen"]
    with pytest.raises(TranslationError, match=r"^senior_citizen: Field required$"):
        predict_to_v2(orjson.dumps(customer), batch=False)
    cases: list[tuple[bytes, bool, str]] = [
        (b"{", False, "body: JSON decode error"),
        (b"[1]", False, "body: Input should be a valid dictionary or object to extract fields"),
        (b"{}", True, "customers: Field required"),
        (b'{"customers": {}}', True, "customers: Input should be a valid list"),
        (b'{"customers": []}', True, "customers: List should have at least 1 item"),
        (b'{"customers": [1]}', True, "customers.0: Input should be a valid dictionary"),
        (
            orjson.dumps({"customers": [EXAMPLE_CUSTOMER] * 1001}),
            True,
            "customers: List should have at most 1000 items after validation, not 1001",
        ),
    ]
    for body, batch, message in cases:
        with pytest.raises(TranslationError) as got:
            predict_to_v2(body, batch=batch)
        assert str(got.value).startswith(message)


def test_a_number_past_int64_is_refused_not_wrapped() -> None:
    customer = {**EXAMPLE_CUSTOMER, "num_support_tickets": 2**64}
    with pytest.raises(TranslationError, match="num_support_tickets: .*64-bit"):
        predict_to_v2(json.dumps(customer).encode(), batch=False)


def answer(outputs: list[Tensor], version: str | None = "v2.5.0") -> bytes:
    body, _ = encode_response(
        InferResponse(
            model_name="churn",
            model_version=version,
            id=None,
            outputs={t.name: t for t in outputs},
            parameters={},
        )
    )
    return body


def proba(rows: list[list[float]]) -> Tensor:
    return Tensor("predict_proba", "FP64", (len(rows), 2), np.array(rows).ravel())


def test_a_predict_proba_answer_becomes_the_model_apis_answer_without_reasons() -> None:
    body = answer([proba([[0.13, 0.87]])])
    got = orjson.loads(
        v2_to_predict(body, None, output="predict_proba", column=1, version="v2.5.0", batch=False)
    )
    assert got == {
        "churn_probability": 0.87,
        "risk_tier": "high",
        "top_reasons": [],
        "reasons_available": False,
        "model_version": "v2.5.0",
    }


def test_a_batch_answer_in_binary_with_a_tier_output() -> None:
    probabilities = [0.1, 0.45, 0.6]
    body, header = encode_response(
        InferResponse(
            "churn",
            "v2.3.1",
            None,
            {
                "churn_probability": Tensor(
                    "churn_probability", "FP64", (3,), np.array(probabilities)
                ),
                "risk_tier": Tensor("risk_tier", "BYTES", (3,), [b"low", b"medium", b"high"]),
            },
            {},
        ),
        binary={"churn_probability", "risk_tier"},
    )
    assert header is not None
    got = orjson.loads(
        v2_to_predict(
            body,
            header,
            output="churn_probability",
            column=None,
            version="v2.3.1",
            batch=True,
            processing_time_ms=4.5,
        )
    )
    assert got["batch_size"] == 3
    assert got["processing_time_ms"] == 4.5
    assert [p["churn_probability"] for p in got["predictions"]] == probabilities
    assert [p["risk_tier"] for p in got["predictions"]] == ["low", "medium", "high"]
    assert all(p["reasons_available"] is False for p in got["predictions"])


def test_without_a_tier_output_the_tier_comes_from_the_probability() -> None:
    tensor = Tensor("churn_probability", "FP32", (2, 1), np.array([0.3, 0.59], dtype=np.float32))
    got = orjson.loads(
        v2_to_predict(
            answer([tensor]),
            None,
            output="churn_probability",
            column=None,
            version="v2.5.0",
            batch=True,
        )
    )
    tiers = [p["risk_tier"] for p in got["predictions"]]
    assert tiers == [tier_of(float(np.float32(0.3))), tier_of(float(np.float32(0.59)))]
    assert "processing_time_ms" not in got


@pytest.mark.parametrize(
    ("outputs", "output", "column", "batch", "message"),
    [
        ([proba([[0.1, 0.9]])], "probability", None, False, "no output 'probability'"),
        ([proba([[0.1, 0.9]])], "predict_proba", None, False, "say which holds the score"),
        ([proba([[0.1, 0.9]])], "predict_proba", 2, False, "has 2 columns: no column 2"),
        ([proba([[0.1, 0.9], [0.5, 0.5]])], "predict_proba", 1, False, "asked for one"),
        ([proba([[0.1, 1.9]])], "predict_proba", 1, False, "1.9 is outside 0..1"),
        ([Tensor("label", "BYTES", (1,), [b"yes"])], "label", None, False, "BYTES is not a"),
        ([proba([[0.1, 0.9]])], "predict_proba", 1, True, None),  # the one that is a score
    ],
)
def test_an_answer_without_a_score_is_the_versions_fault(
    outputs: list[Tensor], output: str, column: int | None, batch: bool, message: str | None
) -> None:
    """Read as the shadow comparison and the prediction log read a V2 answer's score
    (protocols/scores.py): the same answer is a score to all of them, or to none."""
    body = answer(outputs)
    try:
        read = read_scores(body, ScoreSource("v2", output, column))
    except BadScores as exc:
        read, why = None, str(exc)
    if message is None:
        assert read is not None
        got = orjson.loads(
            v2_to_predict(body, None, output=output, column=column, version="v", batch=batch)
        )
        assert [p["churn_probability"] for p in got["predictions"]] == [s.probability for s in read]
        return
    with pytest.raises(BadScores, match=message) as raised:
        v2_to_predict(body, None, output=output, column=column, version="v", batch=batch)
    assert f"output {output!r}" in str(raised.value)
    if read is None:
        assert str(raised.value) == why


def test_binary_requests_become_json_and_answers_binary_again() -> None:
    client_json = predict_to_v2(orjson.dumps(EXAMPLE_CUSTOMER), batch=False)
    request = decode_request(client_json, None, max_elements=100)
    binary_request = InferRequest(
        id="r-1",
        inputs=request.inputs,
        outputs=None,
        parameters={"binary_data_output": True},
    )
    body, header = encode_request(binary_request, binary=True)
    assert header is not None
    as_json = binary_to_json_request(body, header)
    document = orjson.loads(as_json)  # all JSON: no binary part follows
    assert document["id"] == "r-1"
    assert "parameters" not in document
    again = decode_request(as_json, None, max_elements=100)
    for before, after in zip(request.inputs, again.inputs, strict=True):
        assert (before.name, before.datatype, before.shape) == (
            after.name,
            after.datatype,
            after.shape,
        )
        left, right = before.data, after.data
        assert (left.tolist() if isinstance(left, np.ndarray) else left) == (
            right.tolist() if isinstance(right, np.ndarray) else right
        )

    server_answer = answer([proba([[0.25, 0.75]])])
    body, header = json_to_binary_answer(server_answer, (), request=binary_request)
    assert header is not None and header < len(body)
    decoded = decode_response(body, header)
    assert decoded.outputs["predict_proba"].data.tolist() == [0.25, 0.75]  # type: ignore[union-attr]
    assert "data" not in orjson.loads(body[:header])["outputs"][0]
    # Nothing asked in binary: the answer stays JSON.
    body, header = json_to_binary_answer(server_answer, ())
    assert header is None and orjson.loads(body)["outputs"][0]["data"] == [0.25, 0.75]
    body, header = json_to_binary_answer(server_answer, {"predict_proba", "absent"})
    assert header is not None


def test_a_bad_binary_request_names_the_tensor() -> None:
    tensor = Tensor("contract_type", "BYTES", (1,), [b"\xff\xfe"])
    request = InferRequest(id=None, inputs=[tensor], outputs=None, parameters={})
    body, header = encode_request(request, binary=True)
    assert header is not None
    with pytest.raises(TensorError, match="'contract_type': a BYTES element is not UTF-8"):
        binary_to_json_request(body, header)
    with pytest.raises(TensorError, match="past the body"):
        binary_to_json_request(body[: header + 2], header)


@pytest.mark.parametrize("batch", [False, True])
def test_the_served_form_gives_the_same_answer_and_its_probabilities(batch: bool) -> None:
    rows = [[0.13, 0.87], [0.6, 0.4]] if batch else [[0.13, 0.87]]
    body = answer([proba(rows)])
    kwargs: dict[str, Any] = {
        "output": "predict_proba",
        "column": 1,
        "version": "v",
        "batch": batch,
    }
    served_body, probabilities = v2_to_predict_served(body, None, **kwargs)
    assert served_body == v2_to_predict(body, None, **kwargs)
    assert probabilities == [r[1] for r in rows]
