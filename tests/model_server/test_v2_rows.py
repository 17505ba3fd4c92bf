"""The model's V2 inputs (model_server/v2_rows.py): tensors become exactly the rows /predict
encodes, and every value /predict refuses is refused with pydantic's message, the input named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from model_server.features import FEATURE_ORDER, encode_rows
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest
from model_server.v2_rows import INPUTS, encode_tensors
from protocols.v2.codec import Tensor, TensorError
from tests.model_server.test_api import customers

DTYPES = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}


def tensors(rows: list[dict[str, Any]], shape_of: Any = None) -> list[Tensor]:
    made = []
    for name, datatype in INPUTS.items():
        values = [row[name] for row in rows]
        shape = (len(rows),) if shape_of is None else shape_of(len(rows))
        data: Any
        if datatype == "BYTES":
            data = [str(value).encode() for value in values]
        else:
            data = np.array(values, dtype=DTYPES[datatype])
        made.append(Tensor(name, datatype, shape, data))
    return made


def with_value(rows: list[dict[str, Any]], row: int, field: str, value: Any) -> list[Tensor]:
    changed = [dict(r) for r in rows]
    changed[row][field] = value
    return tensors(changed)


def refusal(inputs: list[Tensor]) -> TensorError:
    with pytest.raises(TensorError) as caught:
        encode_tensors(inputs)
    return caught.value


def predict_message(row: dict[str, Any], field: str) -> str:
    """/predict's message for the field (pydantic's, as its 422 gives it)."""
    with pytest.raises(ValidationError) as caught:
        ChurnPredictionRequest.model_validate(row)
    return next(e["msg"] for e in caught.value.errors() if e["loc"] == (field,))


def test_the_inputs_are_the_model_apis_fields_with_their_types() -> None:
    assert INPUTS == {
        "tenure": "INT64",
        "monthly_charges": "FP64",
        "total_charges": "FP64",
        "contract_type": "BYTES",
        "payment_method": "BYTES",
        "num_support_tickets": "INT64",
        "internet_service": "BYTES",
        "streaming_services": "INT64",
        "paperless_billing": "BOOL",
        "senior_citizen": "BOOL",
    }
    assert tuple(INPUTS) == FEATURE_ORDER


def test_tensors_encode_to_the_rows_predict_encodes() -> None:
    rows = customers(50)
    expected = encode_rows([ChurnPredictionRequest.model_validate(row) for row in rows])
    assert np.array_equal(encode_tensors(tensors(rows)), expected)
    # [n, 1] columns, as MLServer's pandas codec sends them, and inputs in any order.
    columns = tensors(rows, shape_of=lambda n: (n, 1))
    assert np.array_equal(encode_tensors(columns[::-1]), expected)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenure", -1),
        ("tenure", 121),
        ("monthly_charges", -0.5),
        ("monthly_charges", float("nan")),
        ("total_charges", float("inf")),
        ("num_support_tickets", -3),
        ("streaming_services", -1),
        ("contract_type", "weekly"),
        ("payment_method", "cash"),
        ("internet_service", "Fiber_Optic"),
    ],
)
def test_a_value_predict_refuses_is_refused_with_its_message(field: str, value: Any) -> None:
    rows = customers(5)
    error = refusal(with_value(rows, 3, field, value))
    assert error.tensor == field
    message = predict_message({**rows[3], field: value}, field)
    assert str(error) == f"input '{field}': row 3: {message}"


def test_the_first_refused_row_is_named_whichever_column_refuses_it() -> None:
    rows = customers(6)
    rows[4]["tenure"] = -1
    rows[2]["contract_type"] = "weekly"
    error = refusal(tensors(rows))
    assert error.tensor == "contract_type" and "row 2:" in str(error)


def test_a_bytes_element_that_is_not_utf8() -> None:
    inputs = tensors(customers(2))
    at = list(INPUTS).index("payment_method")
    inputs[at] = Tensor("payment_method", "BYTES", (2,), [b"mailed_check", b"\xff"])
    assert str(refusal(inputs)) == "input 'payment_method': row 1: not UTF-8 text"


def test_structural_mistakes_name_the_input() -> None:
    inputs = tensors(customers(3))
    error = refusal(inputs[1:])
    assert error.tensor == "tenure" and str(error).startswith(
        "input 'tenure': is missing; the model takes tenure (INT64), monthly_charges (FP64)"
    )
    error = refusal([*inputs, Tensor("age", "INT64", (3,), np.arange(3))])
    assert error.tensor == "age" and "is not an input of the model" in str(error)
    wrong = [Tensor("tenure", "FP64", (3,), np.zeros(3)), *inputs[1:]]
    assert str(refusal(wrong)) == "input 'tenure': datatype FP64; the model takes INT64"
    square = [Tensor("tenure", "INT64", (1, 3), np.zeros(3, dtype=np.int64)), *inputs[1:]]
    assert str(refusal(square)) == "input 'tenure': shape [1, 3]; the model takes [n] or [n, 1]"
    short = [*inputs[:-1], Tensor("senior_citizen", "BOOL", (2,), np.zeros(2, dtype=np.bool_))]
    assert str(refusal(short)) == "input 'senior_citizen': has 2 rows, input 'tenure' has 3"


def test_row_counts_follow_the_batch_limits() -> None:
    empty = tensors([])
    assert str(refusal(empty)) == "input 'tenure': holds no rows; a request takes 1 to 1000"
    assert encode_tensors(tensors(customers(1000))).shape == (1000, len(FEATURE_ORDER))
    error = refusal(tensors([EXAMPLE_CUSTOMER] * 1001))
    assert str(error) == "input 'tenure': holds 1001 rows; a request takes at most 1000"
