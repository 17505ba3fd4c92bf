"""Rows encoded column by column are the rows pydantic would accept, encoded the same."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from model_server.features import encode_rows
from model_server.plain_rows import encode_plain_batch
from model_server.schemas import BatchPredictionRequest
from tests.model_server.test_api import customers

BASE = customers(30)

# Each changes one cell of row 4; pydantic either rejects it or coerces it.
NOT_PLAIN: list[tuple[str, Any]] = [
    ("tenure", -1),
    ("tenure", 121),
    ("tenure", 14.0),
    ("tenure", "14"),
    ("tenure", True),
    ("tenure", None),
    ("monthly_charges", -0.01),
    ("monthly_charges", "89.5"),
    ("monthly_charges", False),
    ("monthly_charges", 2**60),
    ("total_charges", [1.0]),
    ("contract_type", "monthly"),
    ("contract_type", 1),
    ("payment_method", "Electronic_check"),
    ("internet_service", " dsl"),
    ("num_support_tickets", -3),
    ("streaming_services", 2.5),
    ("paperless_billing", 1),
    ("paperless_billing", "true"),
    ("senior_citizen", None),
]


def pydantic_matrix(payload: Any) -> np.ndarray | None:
    try:
        batch = BatchPredictionRequest.model_validate_json(json.dumps(payload))
    except ValidationError:
        return None
    return encode_rows(batch.customers)


def test_plain_rows_encode_as_pydantic_does() -> None:
    payload = {"customers": BASE, "ignored": 1}
    ours = encode_plain_batch(orjson.loads(json.dumps(payload)))
    assert ours is not None
    assert np.array_equal(ours, pydantic_matrix(payload))
    # An int where the schema says float, and bounds met exactly, are plain too.
    edge = copy.deepcopy(BASE)
    edge[0].update(tenure=120, monthly_charges=0, total_charges=-0.0, extra="ignored")
    assert np.array_equal(
        encode_plain_batch({"customers": edge}), pydantic_matrix({"customers": edge})
    )


@pytest.mark.parametrize(("field", "value"), NOT_PLAIN)
def test_a_cell_pydantic_must_judge_is_left_to_it(field: str, value: Any) -> None:
    rows = copy.deepcopy(BASE)
    rows[4][field] = value
    assert encode_plain_batch({"customers": rows}) is None


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"customers": []},
        {"customers": BASE[0]},
        {"customers": [*BASE, "row"]},
        {"customers": customers(1001)},
        {"rows": BASE},
        {"customers": [{k: v for k, v in BASE[0].items() if k != "tenure"}]},
    ],
)
def test_a_batch_pydantic_must_judge_is_left_to_it(payload: Any) -> None:
    assert encode_plain_batch(payload) is None


def test_the_largest_batch_is_plain() -> None:
    rows = customers(1000)
    assert np.array_equal(
        encode_plain_batch({"customers": rows}), pydantic_matrix({"customers": rows})
    )
