"""The input contract, pure: the reference and how a version's inputs differ from it."""

from __future__ import annotations

import pytest

from gateway.input_contract import Contract, difference, reference_of
from gateway.model_metadata import MetadataError, parse_metadata

STABLE = Contract("v2.3.1", {"a": "INT64", "b": "FP64"})


def metadata(inputs: dict[str, str]) -> object:
    return parse_metadata(
        {
            "name": "churn",
            "versions": ["v"],
            "inputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in inputs.items()],
        }
    )


def test_the_same_inputs_in_any_order_keep_the_contract() -> None:
    assert difference(STABLE, {"b": "FP64", "a": "INT64"}) is None


def test_every_difference_is_named_and_a_long_list_is_cut() -> None:
    many = {"a": "FP32", **{f"x{i}": "BOOL" for i in range(6)}}
    said = difference(STABLE, many)
    assert said == (
        "input contract differs from v2.3.1: a is FP32, not INT64; b missing; "
        "x0 not an input of v2.3.1; x1 not an input of v2.3.1; and 4 more"
    )


def test_the_reference_is_stables_first_known_inputs_and_is_remembered() -> None:
    known = metadata({"a": "INT64"})
    found = reference_of("v2.3.1", [("v2.4.0", None), ("v2.3.1", None), ("v2.3.1", known)], None)  # type: ignore[list-item]
    assert found == Contract("v2.3.1", {"a": "INT64"})
    assert reference_of("v2.3.1", [("v2.3.1", None)], found) is found
    # A new stable (a promotion) does not inherit the old one's.
    assert reference_of("v2.4.0", [("v2.4.0", None)], found) is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a JSON object"),
        ({"name": ""}, "name: not a string"),
        ({"name": "m", "inputs": [{"name": "a"}]}, r"inputs\[0\].datatype: not a string"),
        ({"name": "m", "inputs": [{"name": "a", "datatype": "X", "shape": ["1"]}]}, "shape"),
        ({"name": "m", "outputs": [{}] * 300}, "outputs: not a list of at most 256"),
    ],
)
def test_a_bad_metadata_document_names_the_key(document: object, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(document)
