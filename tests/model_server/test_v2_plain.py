"""The plain form of a V2 request (model_server/v2_model.py's ``_plain``, v2_rows.plain_rows):
read in one pass, it gives exactly what the general decoding gives (id, rows bit for bit,
outputs, which go binary), and anything else, every refusal included, is left to the general
path (None), so its answer and its 400 are the ones given."""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi import FastAPI

from model_server import v2_model
from model_server.plain_rows import MAX_ROWS
from model_server.predictor import RowOutputs
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_model import Prepared, V2Answer
from protocols.v2.codec import (
    InferResponse,
    RequestedOutput,
    Tensor,
    TensorError,
    encode_response,
    header_length_of,
)
from tests.model_server.test_api import customers
from tests.model_server.v2_requests import v2_body
from vocabulary.tiers import RISK_TIERS

Document = dict[str, Any]


def general(body: bytes, header_length: int | None) -> Prepared | str:
    try:
        return v2_model._general(body, header_length)
    except TensorError as exc:
        return str(exc)


def same(plain: Prepared, prepared: Prepared | str) -> None:
    assert isinstance(prepared, Prepared), prepared
    assert plain.id == prepared.id
    assert plain.outputs == prepared.outputs
    assert plain.binary == prepared.binary
    assert plain.matrix.dtype == prepared.matrix.dtype == np.float64
    assert plain.matrix.shape == prepared.matrix.shape
    assert plain.matrix.tobytes() == prepared.matrix.tobytes()  # bit for bit, -0.0 included


def check(body: bytes, headers: dict[str, str], *, plain: bool) -> Prepared | str:
    """The plain reading agrees with the general one; ``plain``: it must take the request."""
    header_length = header_length_of(
        [(k.encode(), v.encode()) for k, v in headers.items()], len(body)
    )
    taken = v2_model._plain(body, header_length)
    expected = general(body, header_length)
    if plain:
        assert taken is not None, expected
    if taken is not None:
        same(taken, expected)
    return expected


def json_document(rows: list[dict[str, Any]], **kwargs: Any) -> Document:
    body, _ = v2_body(rows, **kwargs)
    document: Document = orjson.loads(body)
    return document


def json_request(document: Document) -> tuple[bytes, dict[str, str]]:
    # The json module: it writes integers past 64 bits, as a client may send them.
    return json.dumps(document).encode(), {"content-type": "application/json"}


def tensor(document: Document, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in document["inputs"] if t["name"] == name)
    return found


ROWS = {1: [EXAMPLE_CUSTOMER], 10: customers(10), 1000: customers(1000)}


@pytest.mark.parametrize("n", [1, 10, 1000])
@pytest.mark.parametrize("binary", [False, True])
def test_the_usual_requests_are_plain_and_read_as_the_general_path_reads_them(
    n: int, binary: bool
) -> None:
    asks: list[dict[str, Any]] = [
        {},
        {"request_id": "r-1"},
        {"outputs": [RequestedOutput("churn_probability")]},
        {"outputs": [RequestedOutput("top_reasons", binary=True), RequestedOutput("risk_tier")]},
        {"binary_data_output": True},
        {"binary_data_output": False, "outputs": [RequestedOutput("risk_tier", binary=False)]},
    ]
    for ask in asks:
        body, headers = v2_body(ROWS[n], binary=binary, **ask)
        check(body, headers, plain=True)


Change = Callable[[Document], None]


def set_in(name: str, key: str, value: Any) -> Change:
    def change(document: Document) -> None:
        tensor(document, name)[key] = value

    return change


def data_of(name: str, value: Any) -> Change:
    return set_in(name, "data", value)


def first(name: str, value: Any) -> Change:
    """The first row's value of an input changed."""

    def change(document: Document) -> None:
        tensor(document, name)["data"][0] = value

    return change


def both_shapes(document: Document) -> None:
    for raw in document["inputs"]:
        raw["shape"] = [len(raw["data"]), 1]


def scalar_data(document: Document) -> None:
    for raw in document["inputs"]:
        raw["data"] = raw["data"][0]


def other_parameters(document: Document) -> None:
    for raw in document["inputs"]:
        raw["parameters"] = {"content_type": "np"}


# Requests the general path takes: each must read the same, plain or not.
TAKEN: dict[str, Change] = {
    "shape [n, 1]": both_shapes,
    "one value for [1]": scalar_data,
    "tensor parameters": other_parameters,
    "an integer for FP64": first("monthly_charges", 70),
    "negative zero": first("total_charges", -0.0),
    "the largest tenure": first("tenure", 120),
    "a large ticket count": first("num_support_tickets", 2**63 - 1),
    "null parameters": set_in("tenure", "parameters", None),
    "inputs in another order": lambda d: d["inputs"].reverse(),
    "document parameters": lambda d: d.update(parameters={"x": 1}),
    "a null id": lambda d: d.update(id=None),
    "an output asked twice": lambda d: d.update(
        outputs=[{"name": "risk_tier"}, {"name": "risk_tier"}]
    ),
    "an empty outputs list": lambda d: d.update(outputs=[]),
}


# Requests the general path refuses (or takes only by its own rules): never plain.
REFUSED: dict[str, Change] = {
    "a wrong datatype": set_in("tenure", "datatype", "INT32"),
    "an unknown datatype": set_in("tenure", "datatype", "INT128"),
    "an unknown input": lambda d: d["inputs"].append({**d["inputs"][0], "name": "age"}),
    "a missing input": lambda d: d["inputs"].pop(),
    "an input twice": lambda d: d["inputs"].__setitem__(1, d["inputs"][0]),
    "an input not an object": lambda d: d["inputs"].__setitem__(0, []),
    "a nameless input": set_in("tenure", "name", 5),
    "rows disagreeing": set_in("tenure", "shape", [2]),
    "data short of the shape": data_of("tenure", []),
    "nested data": data_of("tenure", [[12]]),
    "no rows": lambda d: [t.update(shape=[0], data=[]) for t in d["inputs"]],
    "a shape [1, 2]": set_in("tenure", "shape", [1, 2]),
    "a shape [1, true]": set_in("tenure", "shape", [1, True]),
    "a shape [true]": set_in("tenure", "shape", [True]),
    "a shape [-1]": set_in("tenure", "shape", [-1]),
    "a shape not a list": set_in("tenure", "shape", 1),
    "a tenure out of bounds": first("tenure", 121),
    "a negative count": first("num_support_tickets", -1),
    "a count past INT64": first("num_support_tickets", 2**63),
    "a count past 64 bits": first("streaming_services", 2**64),
    "a float for INT64": first("tenure", 12.0),
    "true for INT64": first("tenure", True),
    "a string for FP64": first("monthly_charges", "70"),
    "an integer past 2**53 for FP64": first("total_charges", 2**53 + 1),
    "an integer for BOOL": first("paperless_billing", 1),
    "an unknown category": first("contract_type", "weekly"),
    "a number for BYTES": first("contract_type", 1),
    "null data": data_of("tenure", None),
    "no data": lambda d: tensor(d, "tenure").pop("data"),
    "data and a binary size": set_in("tenure", "parameters", {"binary_data_size": 8}),
    "a binary size in JSON": lambda d: tensor(d, "tenure").update(
        parameters={"binary_data_size": 8}, data=None
    ),
    "parameters not an object": set_in("tenure", "parameters", [1]),
    "an id not a string": lambda d: d.update(id=5),
    "parameters of the document not an object": lambda d: d.update(parameters=[]),
    "an unknown output": lambda d: d.update(outputs=[{"name": "score"}]),
    "outputs not a list": lambda d: d.update(outputs={"name": "risk_tier"}),
    "a binary_data not true or false": lambda d: d.update(
        outputs=[{"name": "risk_tier", "parameters": {"binary_data": 1}}]
    ),
    "inputs not a list": lambda d: d.update(inputs={}),
    "no inputs": lambda d: d.update(inputs=[]),
}


@pytest.mark.parametrize(
    ("name", "n"),
    [(name, n) for name in sorted(TAKEN) for n in (1, 3) if n == 1 or name != "one value for [1]"],
)
def test_requests_the_general_path_takes_read_the_same(name: str, n: int) -> None:
    document = json_document(ROWS[1] * n)
    TAKEN[name](document)
    assert isinstance(check(*json_request(document), plain=False), Prepared)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_anything_else_is_left_to_the_general_path(name: str, n: int) -> None:
    document = json_document(ROWS[1] * n)
    REFUSED[name](document)
    body, headers = json_request(document)
    header_length = None
    expected = general(body, header_length)
    assert v2_model._plain(body, header_length) is None, expected


def test_row_counts_past_the_limit_and_bodies_not_json_are_left_to_it() -> None:
    assert MAX_ROWS is not None
    too_many = json_document(ROWS[1])
    for raw in too_many["inputs"]:
        raw["shape"] = [MAX_ROWS + 1]
        raw["data"] = raw["data"] * (MAX_ROWS + 1)
    for body in [orjson.dumps(too_many), b"{", b"[]", b'"x"']:
        assert v2_model._plain(body, None) is None
        assert isinstance(general(body, None), str)


def binary_request(rows: list[dict[str, Any]]) -> tuple[Document, bytes]:
    body, headers = v2_body(rows, binary=True)
    length = int(headers["inference-header-content-length"])
    document: Document = orjson.loads(body[:length])
    return document, body[length:]


def chunks_of(document: Document, blob: bytes) -> dict[str, bytes]:
    chunks: dict[str, bytes] = {}
    offset = 0
    for raw in document["inputs"]:
        size = raw["parameters"]["binary_data_size"]
        chunks[raw["name"]] = blob[offset : offset + size]
        offset += size
    return chunks


def joined(document: Document, chunks: dict[str, bytes]) -> tuple[bytes, dict[str, str]]:
    for raw in document["inputs"]:
        if raw["name"] in chunks:
            raw["parameters"]["binary_data_size"] = len(chunks[raw["name"]])
    head = orjson.dumps(document)
    blob = b"".join(chunks[raw["name"]] for raw in document["inputs"] if raw["name"] in chunks)
    return head + blob, {"inference-header-content-length": str(len(head))}


BinaryChange = Callable[[Document, dict[str, bytes]], None]


def chunk(name: str, value: bytes) -> BinaryChange:
    return lambda document, chunks: chunks.__setitem__(name, value)


def one_in_json(document: Document, chunks: dict[str, bytes]) -> None:
    raw = tensor(document, "tenure")
    del raw["parameters"]
    raw["data"] = list(struct.unpack(f"<{raw['shape'][0]}q", chunks.pop("tenure")))


def category(text: bytes) -> bytes:
    return struct.pack("<I", len(text)) + text


BINARY_TAKEN: dict[str, BinaryChange] = {
    "as sent": lambda document, chunks: None,
    "one input in JSON": one_in_json,
}

BINARY_REFUSED: dict[str, BinaryChange] = {
    "NaN": chunk("monthly_charges", struct.pack("<d", float("nan"))),
    "infinity": chunk("total_charges", struct.pack("<d", float("inf"))),
    "a BOOL byte 2": chunk("senior_citizen", b"\x02"),
    "a BOOL of two bytes": chunk("senior_citizen", b"\x00\x00"),
    "an INT64 short of its bytes": chunk("tenure", b"\x01\x00"),
    "a negative INT64": chunk("tenure", struct.pack("<q", -1)),
    "a category not UTF-8": chunk("contract_type", category(b"\xff")),
    "an unknown category": chunk("contract_type", category(b"weekly")),
    "a BYTES length past the chunk": chunk("contract_type", struct.pack("<I", 99) + b"x"),
    "bytes past the elements": chunk("contract_type", category(b"one-year") + b"x"),
    "a BYTES prefix cut short": chunk("contract_type", b"\x01\x00"),
}


def binary_case(change: BinaryChange) -> tuple[bytes, dict[str, str]]:
    document, blob = binary_request(ROWS[1])
    chunks = chunks_of(document, blob)
    change(document, chunks)
    return joined(document, chunks)


@pytest.mark.parametrize("name", sorted(BINARY_TAKEN))
def test_binary_requests_the_general_path_takes_read_the_same(name: str) -> None:
    assert isinstance(check(*binary_case(BINARY_TAKEN[name]), plain=True), Prepared)


@pytest.mark.parametrize("name", sorted(BINARY_REFUSED))
def test_binary_values_it_refuses_are_left_to_it(name: str) -> None:
    body, headers = binary_case(BINARY_REFUSED[name])
    header_length = int(headers["inference-header-content-length"])
    assert v2_model._plain(body, header_length) is None
    assert isinstance(general(body, header_length), str)


def test_binary_sizes_that_disagree_with_the_body_are_left_to_it() -> None:
    body, headers = v2_body(ROWS[1], binary=True)
    length = int(headers["inference-header-content-length"])
    for changed, header_length in [(body + b"x", length), (body[:-1], length), (body, None)]:
        assert v2_model._plain(changed, header_length) is None
        assert isinstance(general(changed, header_length), str)


def test_a_negative_binary_size_is_left_to_it() -> None:
    document, blob = binary_request(ROWS[1])
    first_input = document["inputs"][0]
    for size in (-8, 8 - len(blob), -len(blob)):
        first_input["parameters"]["binary_data_size"] = size
        head = orjson.dumps(document)
        assert v2_model._plain(head + blob, len(head)) is None
        assert isinstance(general(head + blob, len(head)), str)


@pytest.mark.parametrize("binary", [False, True])
def test_the_answers_are_the_general_paths_byte_for_byte(app: FastAPI, binary: bool) -> None:
    model = app.state.short_cut.v2_model
    predictor = app.state.predictor
    for n in (1, 10):
        body, headers = v2_body(ROWS[n], binary=binary, request_id="r-2", binary_data_output=binary)
        header_length = header_length_of(
            [(k.encode(), v.encode()) for k, v in headers.items()], len(body)
        )
        plain = v2_model._plain(body, header_length)
        assert plain is not None
        answers: list[V2Answer] = []
        for prepared in (plain, v2_model._general(body, header_length)):
            outputs = predictor.outputs(prepared.matrix, reasons=prepared.reasons)
            answers.append(model.answer(prepared, outputs, 0.0, False))
        assert answers[0] == answers[1]
        assert answers[0].status == 200
        assert (answers[0].header_length is None) is not binary


def test_a_copy_is_not_changed_by_reading_it() -> None:
    document = json_document(ROWS[10])
    kept = copy.deepcopy(document)
    v2_model._plain(orjson.dumps(document), None)
    assert document == kept


def codec_encoding(model: Any, prepared: Prepared, outputs: RowOutputs) -> tuple[bytes, int | None]:
    """The answer as the codec encodes the outputs' tensors: what ``V2Model.encode`` must give."""
    n_rows = (len(outputs.tiers),)
    tensors: dict[str, Tensor] = {}
    for name in prepared.outputs:
        if name == "churn_probability":
            tensors[name] = Tensor(name, "FP64", n_rows, outputs.probabilities)
        elif name == "risk_tier":
            tiers = [RISK_TIERS[i].encode() for i in outputs.tiers.tolist()]
            tensors[name] = Tensor(name, "BYTES", n_rows, tiers)
        else:
            assert outputs.reasons is not None
            tensors[name] = Tensor(name, "BYTES", n_rows, outputs.reasons)
    response = InferResponse(model.name, model.version, prepared.id, tensors, {})
    return encode_response(response, binary=prepared.binary)


@pytest.mark.parametrize("n", [1, 2, 10, 1000])
def test_an_answer_is_the_codecs_encoding_byte_for_byte(app: FastAPI, n: int) -> None:
    model = app.state.short_cut.v2_model
    predictor = app.state.predictor
    rows = ROWS[n] if n in ROWS else customers(n)
    asks: list[dict[str, Any]] = [
        {},
        {"request_id": "r-3"},
        {"request_id": 'a "quoted" \\ id\u00e9'},
        {"outputs": [RequestedOutput("top_reasons"), RequestedOutput("churn_probability")]},
        {"outputs": [RequestedOutput("risk_tier")]},
        {"binary_data_output": True},
        {"binary_data_output": True, "outputs": [RequestedOutput("risk_tier", binary=False)]},
        {"outputs": [RequestedOutput("top_reasons", binary=True), RequestedOutput("risk_tier")]},
        {"outputs": [RequestedOutput("churn_probability", binary=True)]},
    ]
    for ask in asks:
        body, _ = v2_body(rows, **ask)
        prepared = v2_model._plain(body, None)
        assert prepared is not None
        outputs = predictor.outputs(prepared.matrix, reasons=prepared.reasons)
        encoded = model.encode(prepared, outputs, outputs.tiers.tolist())
        assert encoded == codec_encoding(model, prepared, outputs)
        assert (encoded[1] is None) is not prepared.binary


@pytest.mark.parametrize("binary", [frozenset(), frozenset({"churn_probability"})])
def test_probabilities_are_spelt_as_the_codec_spells_them(
    app: FastAPI, binary: frozenset[str]
) -> None:
    model = app.state.short_cut.v2_model
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [np.round(rng.random(5000), 4), [0.0, -0.0, 1.0, 0.0001, 0.9999, 0.5, 1e-05, 1e300]]
    )
    prepared = Prepared(None, np.zeros((len(values), 10)), ("churn_probability",), binary)
    outputs = RowOutputs(values, np.zeros(len(values), dtype=np.intp), None)
    encoded = model.encode(prepared, outputs, outputs.tiers.tolist())
    assert encoded == codec_encoding(model, prepared, outputs)


@pytest.mark.parametrize(
    "elements",
    [
        category(b"one-year") + category(b"\xff"),
        category(b"one-year") + category(b"weekly"),
        category(b"one-year") + struct.pack("<I", 99) + b"x",
        category(b"one-year") + category(b"two-year") + b"x",
        category(b"one-year") + b"\x01\x00",
        category(b"one-year"),
    ],
)
def test_binary_elements_of_several_rows_it_refuses_are_left_to_it(elements: bytes) -> None:
    document, blob = binary_request(ROWS[1] * 2)
    chunks = chunks_of(document, blob)
    chunks["contract_type"] = elements
    body, headers = joined(document, chunks)
    header_length = int(headers["inference-header-content-length"])
    assert v2_model._plain(body, header_length) is None
    assert isinstance(general(body, header_length), str)


def test_binary_elements_of_several_rows_read_as_the_general_path_reads_them() -> None:
    document, blob = binary_request(ROWS[1] * 2)
    chunks = chunks_of(document, blob)
    chunks["contract_type"] = category(b"one-year") + category(b"two-year")
    prepared = check(*joined(document, chunks), plain=True)
    assert isinstance(prepared, Prepared)
    assert prepared.matrix[:, 3].tolist() == [1.0, 2.0]


def test_one_row_scored_on_the_loop_answers_as_the_arrays_do(app: FastAPI) -> None:
    """``score_inline`` writes one row's JSON answer from its plain values: the same bytes as
    the outputs' arrays through ``answer`` (and so the codec's), counted the same way."""
    model = app.state.short_cut.v2_model
    predictor = app.state.predictor
    asks: list[dict[str, Any]] = [
        {},
        {"request_id": 'a "quoted" \\ id\u00e9'},
        {"outputs": [RequestedOutput("risk_tier"), RequestedOutput("churn_probability")]},
        {"outputs": [RequestedOutput("top_reasons")]},
    ]
    for customer in customers(40):
        for ask in asks:
            body, _ = v2_body([customer], **ask)
            prepared = v2_model._plain(body, None)
            assert prepared is not None and model.inline(predictor, prepared)
            outputs = predictor.outputs(prepared.matrix, reasons=prepared.reasons)
            expected = model.answer(prepared, outputs, 0.0, False)
            assert model.score_inline(predictor, prepared, False) == expected
            assert expected.body == codec_encoding(model, prepared, outputs)[0]


def test_one_rows_probabilities_are_spelt_as_the_codec_spells_them(app: FastAPI) -> None:
    model = app.state.short_cut.v2_model
    rng = np.random.default_rng(11)
    values = [*np.round(rng.random(2000), 4).tolist(), 0.0, -0.0, 1.0, 1e-05, 0.9999, 1e300]
    prepared = Prepared(None, np.zeros((1, 10)), ("churn_probability",), frozenset())
    for value in values:
        outputs = RowOutputs(np.array([value]), np.zeros(1, dtype=np.intp), None)
        encoded = model.encode(prepared, outputs, [0])
        assert encoded == codec_encoding(model, prepared, outputs)
