"""The V2 codec: JSON (flat and nested), every datatype, Triton's binary tensor extension byte for
byte, and every kind of bad input refused with a TensorError naming the tensor."""

from __future__ import annotations

import json
import struct
import tracemalloc
from typing import Any

import numpy as np
import orjson
import pytest

from protocols.v2.codec import (
    DATATYPES,
    INFERENCE_HEADER,
    InferRequest,
    InferResponse,
    RequestedOutput,
    Tensor,
    TensorError,
    binary_outputs,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    header_length_of,
)

MAX = 10_000


def request_body(*inputs: dict[str, Any], **extra: Any) -> bytes:
    # The standard library's encoder: it writes integers past 64 bits, as a client may.
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def decode_one(datatype: str, shape: list[int], data: Any) -> Tensor:
    return decode_request(
        request_body(tensor("x", datatype, shape, data)), None, max_elements=MAX
    ).inputs[0]


def refused(body: bytes, header_length: int | None = None, max_elements: int = MAX) -> TensorError:
    with pytest.raises(TensorError) as caught:
        decode_request(body, header_length, max_elements=max_elements)
    return caught.value


# -- JSON --------------------------------------------------------------------------------------


def test_datatypes_are_the_protocols() -> None:
    assert {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    } == DATATYPES
    assert INFERENCE_HEADER == "inference-header-content-length"


def test_a_flat_json_request_decodes_with_its_id_outputs_and_parameters() -> None:
    body = request_body(
        tensor("tenure", "INT64", [3], [1, 2, 3]),
        tensor("contract_type", "BYTES", [3], ["Month-to-month", "One year", "Zwei Jahre ü"]),
        id="req-7",
        outputs=[
            {"name": "churn_probability"},
            {"name": "risk_tier", "parameters": {"binary_data": True}},
        ],
        parameters={"binary_data_output": False},
    )
    request = decode_request(body, None, max_elements=MAX)
    assert request.id == "req-7"
    assert request.parameters == {"binary_data_output": False}
    assert request.outputs == [
        RequestedOutput("churn_probability", None),
        RequestedOutput("risk_tier", True),
    ]
    tenure, contract = request.inputs
    assert tenure.shape == (3,) and tenure.datatype == "INT64"
    assert isinstance(tenure.data, np.ndarray) and tenure.data.dtype == np.int64
    assert tenure.data.tolist() == [1, 2, 3]
    assert contract.data == [b"Month-to-month", b"One year", "Zwei Jahre ü".encode()]


def test_no_outputs_means_none() -> None:
    request = decode_request(request_body(tensor("a", "FP64", [1], [0.5])), None, max_elements=MAX)
    assert request.outputs is None and request.id is None and request.parameters == {}


def test_nested_data_is_flattened_in_row_major_order() -> None:
    nested = decode_one("INT32", [2, 3], [[1, 2, 3], [4, 5, 6]])
    assert nested.shape == (2, 3)
    assert isinstance(nested.data, np.ndarray) and nested.data.tolist() == [1, 2, 3, 4, 5, 6]
    deep = decode_one("FP32", [2, 1, 2], [[[1.5, 2]], [[3, 4.25]]])
    assert isinstance(deep.data, np.ndarray) and deep.data.tolist() == [1.5, 2.0, 3.0, 4.25]
    words = decode_one("BYTES", [2, 1], [["a"], ["b"]])
    assert words.data == [b"a", b"b"]


def test_a_shape_one_tensor_may_carry_a_bare_value() -> None:
    assert decode_one("FP64", [1], 0.25).data.tolist() == [0.25]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("datatype", "values", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT16", [0, 65535], np.uint16),
        ("UINT32", [0, 2**32 - 1], np.uint32),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT16", [-(2**15), 2**15 - 1], np.int16),
        ("INT32", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [-1.5, 65504.0], np.float16),
        ("FP32", [-1.25, 3.0e38], np.float32),
        ("FP64", [-1e300, 0.1], np.float64),
    ],
)
def test_every_fixed_size_datatype_round_trips_in_json_and_binary(
    datatype: str, values: list[Any], dtype: type
) -> None:
    decoded = decode_one(datatype, [2], values)
    assert isinstance(decoded.data, np.ndarray)
    assert decoded.data.dtype == np.dtype(dtype)
    assert decoded.data.tolist() == np.array(values, dtype=dtype).tolist()
    original = InferRequest(id=None, inputs=[decoded], outputs=None, parameters={})
    for binary in (False, True):
        body, header = encode_request(original, binary=binary)
        assert (header is not None) is binary
        again = decode_request(body, header, max_elements=MAX).inputs[0]
        assert isinstance(again.data, np.ndarray) and again.data.dtype == decoded.data.dtype
        assert again.data.tolist() == decoded.data.tolist()


def test_ints_are_accepted_as_floats_but_not_the_other_way() -> None:
    assert decode_one("FP64", [2], [1, 2.5]).data.tolist() == [1.0, 2.5]  # type: ignore[union-attr]
    error = refused(request_body(tensor("tenure", "INT64", [2], [1, 2.5])))
    assert str(error) == "input 'tenure': INT64 data must be integers, not fractions"
    assert error.tensor == "tenure"


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT64", [1, True], "INT64 data must be integers, not true/false"),
        ("INT64", ["1"], "INT64 data must be integers, not strings"),
        ("FP64", [None], "FP64 data must be numbers, not null"),
        ("FP64", [True], "FP64 data must be numbers, not true/false"),
        ("BOOL", [1], "BOOL data must be true or false, not integers"),
        ("BYTES", [1], "BYTES data must be strings, not integers"),
        ("BYTES", [{"a": 1}], "BYTES data must be strings, not objects"),
        ("BYTES", [[{"a": 1}]], "data must hold values or lists, not objects"),
        ("UINT8", [256], "256 does not fit UINT8 (0..255)"),
        ("UINT8", [-1], "-1 does not fit UINT8 (0..255)"),
        ("INT8", [-129], "-129 does not fit INT8 (-128..127)"),
        ("UINT64", [-1], "-1 does not fit UINT64 (0..18446744073709551615)"),
        (
            "INT64",
            [2**63],
            "9223372036854775808 does not fit INT64 (-9223372036854775808..9223372036854775807)",
        ),
        ("INT64", [2**64], "18446744073709551616 does not fit INT64"),
        ("FP16", [70000.0], "70000.0 does not fit FP16 (at most 65504.0)"),
        ("FP32", [1e39], "1e+39 does not fit FP32 (at most 3.4028234663852886e+38)"),
    ],
)
def test_values_must_fit_the_datatype(datatype: str, data: list[Any], message: str) -> None:
    error = refused(request_body(tensor("f", datatype, [len(data)], data)))
    assert str(error) == f"input 'f': {message}"
    assert error.tensor == "f"


def test_element_count_must_equal_the_shapes_product() -> None:
    error = refused(request_body(tensor("tenure", "INT64", [3], [1, 2])))
    assert str(error) == "input 'tenure': shape [3] holds 3 elements, data has 2"
    error = refused(request_body(tensor("t", "INT64", [2, 2], [[1, 2], [3]])))
    assert str(error) == "input 't': shape [2, 2] holds 4 elements, data has 3"


def test_unknown_datatype_and_bad_shapes_name_the_tensor() -> None:
    error = refused(request_body(tensor("tenure", "INT128", [1], [1])))
    assert str(error).startswith("input 'tenure': unknown datatype 'INT128'; one of BOOL, BYTES")
    for shape in ([-1], [1.5], "3", [True], None):
        error = refused(request_body(tensor("tenure", "INT64", shape, [1])))  # type: ignore[arg-type]
        assert error.tensor == "tenure" and "shape must be a list of non-negative integers" in str(
            error
        )


def test_a_huge_shape_is_refused_before_anything_is_allocated() -> None:
    # 2**62 * 2**62 elements: the product is bounded step by step, never formed or allocated.
    error = refused(request_body(tensor("tenure", "INT64", [2**62, 2**62], [1])))
    assert error.tensor == "tenure"
    assert "holds more than the 10000 elements a request may carry" in str(error)
    error = refused(request_body(tensor("big", "FP64", [101], [0.0] * 101)), max_elements=100)
    assert error.tensor == "big"
    assert decode_one("FP64", [0], []).data.tolist() == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the body is not valid JSON"),
        (b"[1]", "the body must be a JSON object"),
        (b"{}", "'inputs' must be a non-empty list of tensors"),
        (b'{"inputs": []}', "'inputs' must be a non-empty list of tensors"),
        (b'{"inputs": [1]}', "inputs[0] must be an object"),
        (b'{"inputs": [{"datatype": "INT64"}]}', "inputs[0] needs a string 'name'"),
        (
            b'{"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "data": [1]}], "id": 5}',
            "'id' must be a string",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "data": [1]}], '
            b'"outputs": {}}',
            "'outputs' must be a list",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "INT64", "shape": [1], "data": [1]}], '
            b'"parameters": []}',
            "'parameters' must be an object",
        ),
    ],
)
def test_bad_documents_are_refused(body: bytes, message: str) -> None:
    error = refused(body)
    assert error.tensor is None
    assert str(error).startswith(message)


def test_tensor_level_structure_errors_name_the_tensor() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "a", "shape": [1], "data": [1]}, "input 'a': needs a string 'datatype'"),
        (
            {"name": "a", "datatype": "INT64", "shape": [1]},
            "input 'a': has neither 'data' nor parameters.binary_data_size",
        ),
        (
            {"name": "a", "datatype": "INT64", "shape": [1], "data": [1], "parameters": 3},
            "input 'a': 'parameters' must be an object",
        ),
    ]
    for raw, message in cases:
        assert str(refused(request_body(raw))) == message
    twice = request_body(tensor("a", "INT64", [1], [1]), tensor("a", "INT64", [1], [2]))
    assert str(refused(twice)) == "input 'a': is given twice"
    bad_output = request_body(
        tensor("a", "INT64", [1], [1]), outputs=[{"name": "p", "parameters": {"binary_data": 1}}]
    )
    assert str(refused(bad_output)) == "output 'p': parameters.binary_data must be true or false"


# -- binary: Triton's layout, byte for byte ----------------------------------------------------


def triton_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, int]:
    json_part = orjson.dumps(header)
    return json_part + b"".join(blobs), len(json_part)


def bytes_element(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


def test_a_triton_binary_request_decodes() -> None:
    # What tritonclient.http sends: each tensor's raw little-endian bytes after the JSON, in
    # the tensors' order, each sized by parameters.binary_data_size.
    tenure = struct.pack("<3q", 1, 24, -5)
    charges = struct.pack("<3d", 29.85, 56.95, 0.5)
    contract = bytes_element(b"Month-to-month") + bytes_element(b"") + bytes_element(b"Two year")
    paperless = bytes([1, 0, 1])
    header = {
        "inputs": [
            {
                "name": "tenure",
                "datatype": "INT64",
                "shape": [3, 1],
                "parameters": {"binary_data_size": 24},
            },
            {
                "name": "monthly_charges",
                "datatype": "FP64",
                "shape": [3],
                "parameters": {"binary_data_size": 24},
            },
            {
                "name": "contract_type",
                "datatype": "BYTES",
                "shape": [3],
                "parameters": {"binary_data_size": len(contract)},
            },
            {
                "name": "paperless_billing",
                "datatype": "BOOL",
                "shape": [3],
                "parameters": {"binary_data_size": 3},
            },
            tensor("senior_citizen", "BOOL", [3], [False, False, True]),  # JSON and binary mixed
        ],
        "outputs": [{"name": "churn_probability", "parameters": {"binary_data": True}}],
    }
    body, length = triton_body(header, tenure, charges, contract, paperless)
    request = decode_request(body, length, max_elements=MAX)
    values = {t.name: t.data for t in request.inputs}
    assert values["tenure"].tolist() == [1, 24, -5]  # type: ignore[union-attr]
    assert values["monthly_charges"].tolist() == [29.85, 56.95, 0.5]  # type: ignore[union-attr]
    assert values["contract_type"] == [b"Month-to-month", b"", b"Two year"]
    assert values["paperless_billing"].tolist() == [True, False, True]  # type: ignore[union-attr]
    assert values["senior_citizen"].tolist() == [False, False, True]  # type: ignore[union-attr]
    assert all(t.parameters == {} for t in request.inputs)  # the wire's sizes are not kept
    assert request.outputs == [RequestedOutput("churn_probability", True)]


def test_a_binary_request_is_encoded_as_triton_lays_it_out() -> None:
    request = InferRequest(
        id="r1",
        inputs=[
            Tensor("tenure", "INT64", (2,), np.array([7, 8], dtype=np.int64)),
            Tensor("contract_type", "BYTES", (2,), [b"One year", b"x"]),
        ],
        outputs=[RequestedOutput("risk_tier", True)],
        parameters={},
    )
    body, length = encode_request(request, binary=True)
    assert length is not None
    header = orjson.loads(body[:length])
    assert header == {
        "id": "r1",
        "inputs": [
            {
                "name": "tenure",
                "datatype": "INT64",
                "shape": [2],
                "parameters": {"binary_data_size": 16},
            },
            {
                "name": "contract_type",
                "datatype": "BYTES",
                "shape": [2],
                "parameters": {"binary_data_size": 4 + 8 + 4 + 1},
            },
        ],
        "outputs": [{"name": "risk_tier", "parameters": {"binary_data": True}}],
    }
    assert body[length:] == struct.pack("<2q", 7, 8) + bytes_element(b"One year") + bytes_element(
        b"x"
    )
    assert decode_request(body, length, max_elements=MAX).inputs[1].data == [b"One year", b"x"]


def test_a_json_request_encodes_to_what_it_decodes_from() -> None:
    body = request_body(
        tensor("a", "FP64", [2, 1], [[0.1], [0.2]]),
        tensor("b", "BYTES", [1], ["ü"]),
        id="x",
        outputs=[{"name": "p"}],
    )
    request = decode_request(body, None, max_elements=MAX)
    encoded, length = encode_request(request, binary=False)
    assert length is None
    assert orjson.loads(encoded) == {
        "id": "x",
        "inputs": [tensor("a", "FP64", [2, 1], [0.1, 0.2]), tensor("b", "BYTES", [1], ["ü"])],
        "outputs": [{"name": "p"}],
    }


def make_response() -> InferResponse:
    return InferResponse(
        model_name="churn",
        model_version="v2.3.1",
        id="abc",
        outputs={
            "churn_probability": Tensor(
                "churn_probability", "FP64", (2,), np.array([0.87049841, 0.1])
            ),
            "risk_tier": Tensor("risk_tier", "BYTES", (2,), [b"high", b"low"]),
            "top_reasons": Tensor("top_reasons", "BYTES", (2,), [b'[{"feature":"tenure"}]', b"[]"]),
        },
        parameters={},
    )


def test_a_json_response_round_trips() -> None:
    body, length = encode_response(make_response())
    assert length is None
    document = orjson.loads(body)
    assert document["model_name"] == "churn" and document["model_version"] == "v2.3.1"
    assert document["id"] == "abc"
    assert document["outputs"][0] == tensor("churn_probability", "FP64", [2], [0.87049841, 0.1])
    assert document["outputs"][1] == tensor("risk_tier", "BYTES", [2], ["high", "low"])
    decoded = decode_response(body, None)
    assert decoded.outputs["churn_probability"].data.tolist() == [0.87049841, 0.1]  # type: ignore[union-attr]
    assert decoded.outputs["risk_tier"].data == [b"high", b"low"]
    assert decoded.model_version == "v2.3.1" and decoded.id == "abc"


def test_a_binary_response_is_laid_out_as_triton_does() -> None:
    body, length = encode_response(make_response(), binary={"churn_probability", "risk_tier"})
    assert length is not None
    header = orjson.loads(body[:length])
    assert header["outputs"][0] == {
        "name": "churn_probability",
        "datatype": "FP64",
        "shape": [2],
        "parameters": {"binary_data_size": 16},
    }
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 4 + 4 + 4 + 3}
    assert "data" in header["outputs"][2]  # not asked in binary: stays JSON
    assert body[length:] == struct.pack("<2d", 0.87049841, 0.1) + bytes_element(
        b"high"
    ) + bytes_element(b"low")
    decoded = decode_response(body, length)
    assert decoded.outputs["churn_probability"].data.tolist() == [0.87049841, 0.1]  # type: ignore[union-attr]
    assert decoded.outputs["risk_tier"].data == [b"high", b"low"]
    assert decoded.outputs["top_reasons"].data == [b'[{"feature":"tenure"}]', b"[]"]


def test_a_non_utf8_bytes_element_cannot_be_json() -> None:
    response = InferResponse("m", None, None, {"o": Tensor("o", "BYTES", (1,), [b"\xff"])}, {})
    with pytest.raises(TensorError) as caught:
        encode_response(response)
    assert caught.value.tensor == "o" and str(caught.value).startswith("output 'o': ")
    body, length = encode_response(response, binary={"o"})
    assert decode_response(body, length).outputs["o"].data == [b"\xff"]


def test_bad_answers_are_refused() -> None:
    with pytest.raises(TensorError, match="model_name"):
        decode_response(b'{"outputs": []}', None)
    with pytest.raises(TensorError) as caught:
        decode_response(
            orjson.dumps({"model_name": "m", "outputs": [tensor("p", "FP64", [2], [1.0])]}), None
        )
    assert str(caught.value) == "output 'p': shape [2] holds 2 elements, data has 1"


# -- binary: bad sizes -------------------------------------------------------------------------


def binary_input(name: str, datatype: str, shape: list[int], size: Any) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


def test_binary_data_size_past_the_body() -> None:
    body, length = triton_body({"inputs": [binary_input("tenure", "INT64", [2], 16)]}, b"\x00" * 8)
    error = refused(body, length)
    assert error.tensor == "tenure"
    assert str(error) == (
        "input 'tenure': parameters.binary_data_size 16 is past the body: "
        "8 bytes of binary data are left"
    )
    huge, length = triton_body(
        {"inputs": [binary_input("tenure", "INT64", [2], 2**60)]}, b"\x00" * 16
    )
    assert "is past the body" in str(refused(huge, length))


def test_binary_size_must_match_the_shape() -> None:
    body, length = triton_body({"inputs": [binary_input("tenure", "INT64", [3], 16)]}, b"\x00" * 16)
    assert str(refused(body, length)) == (
        "input 'tenure': shape [3] of INT64 takes 24 bytes, parameters.binary_data_size is 16"
    )
    body, length = triton_body({"inputs": [binary_input("t", "INT64", [2**40], 16)]}, b"\x00" * 16)
    assert "holds more than the 10000 elements" in str(refused(body, length))


@pytest.mark.parametrize(
    ("blob", "shape", "message"),
    [
        (
            bytes_element(b"ab"),
            [2],
            "shape [2] of BYTES needs at least 8 bytes, parameters.binary_data_size is 6",
        ),
        (
            struct.pack("<I", 100) + b"ab",
            [1],
            "BYTES element 0 of 100 bytes runs past parameters.binary_data_size",
        ),
        (
            bytes_element(b"ab") + b"\x01\x00",
            [2],
            "BYTES element 1 starts past parameters.binary_data_size",
        ),
        (
            bytes_element(b"ab") + b"zz",
            [1],
            "parameters.binary_data_size is 8, the 1 BYTES elements take 6",
        ),
    ],
)
def test_bad_binary_bytes_elements(blob: bytes, shape: list[int], message: str) -> None:
    body, length = triton_body(
        {"inputs": [binary_input("contract_type", "BYTES", shape, len(blob))]}, blob
    )
    error = refused(body, length)
    assert error.tensor == "contract_type"
    assert str(error) == f"input 'contract_type': {message}"


def test_binary_bool_must_be_zero_or_one() -> None:
    body, length = triton_body({"inputs": [binary_input("flag", "BOOL", [2], 2)]}, b"\x01\x02")
    assert str(refused(body, length)) == "input 'flag': a BOOL element must be the byte 0 or 1"


def test_other_binary_mistakes() -> None:
    both = {**binary_input("a", "INT64", [1], 8), "data": [1]}
    body, length = triton_body({"inputs": [both]}, b"\x00" * 8)
    assert (
        str(refused(body, length)) == "input 'a': has both 'data' and parameters.binary_data_size"
    )
    body, length = triton_body({"inputs": [binary_input("a", "INT64", [1], -8)]}, b"\x00" * 8)
    assert "non-negative integer" in str(refused(body, length))
    body, length = triton_body({"inputs": [binary_input("a", "INT64", [1], 8)]}, b"\x00" * 12)
    error = refused(body, length)
    assert error.tensor is None and "4 bytes of binary data past" in str(error)
    # A binary size but no header: the body is all JSON, so no binary data is there.
    body, length = triton_body({"inputs": [binary_input("a", "INT64", [1], 8)]})
    assert "is past the body" in str(refused(body, None))
    assert "not valid JSON" in str(refused(body + b"\x00" * 8, length - 1))


# -- the header --------------------------------------------------------------------------------


def test_header_length_of() -> None:
    assert header_length_of([(b"content-type", b"application/json")], 10) is None
    assert header_length_of([(b"Inference-Header-Content-Length", b"7")], 10) == 7
    assert header_length_of([(b"inference-header-content-length", b"10")], 10) == 10
    with pytest.raises(TensorError) as caught:
        header_length_of([(b"inference-header-content-length", b"11")], 10)
    assert str(caught.value) == "Inference-Header-Content-Length 11 is past the body's 10 bytes"
    assert caught.value.tensor is None
    for bad in (b"-1", b"abc", b"", b"1e3", b"9" * 40):
        with pytest.raises(TensorError, match="must be a byte count"):
            header_length_of([(b"inference-header-content-length", bad)], 10)
    assert "is past the body" in str(refused(b"{}", 5))


# -- which outputs go binary -------------------------------------------------------------------


def test_binary_outputs_follow_the_request() -> None:
    names = ["churn_probability", "risk_tier", "top_reasons"]

    def request(outputs: list[RequestedOutput] | None, **parameters: Any) -> InferRequest:
        return InferRequest(None, [], outputs, parameters)

    assert binary_outputs(request(None), names) == set()
    assert binary_outputs(request(None, binary_data_output=True), names) == set(names)
    asked = [RequestedOutput("churn_probability", True), RequestedOutput("risk_tier", None)]
    assert binary_outputs(request(asked), names) == {"churn_probability"}
    asked = [RequestedOutput("churn_probability", False), RequestedOutput("risk_tier")]
    assert binary_outputs(request(asked, binary_data_output=True), names) == {
        "risk_tier",
        "top_reasons",
    }


def test_declared_sizes_allocate_nothing_before_they_are_checked() -> None:
    # Each body is a few hundred bytes but declares gigabytes; decoding it must be refused
    # with at most a body's worth of memory allocated on the way.
    cases = [
        # a shape within max_elements, whose bytes the body does not hold
        triton_body({"inputs": [binary_input("a", "FP64", [10**9], 8 * 10**9)]}, b"\x00" * 64),
        # BYTES: a billion elements declared in a 64-byte binary part
        triton_body({"inputs": [binary_input("b", "BYTES", [10**9], 64)]}, b"\x00" * 64),
        # one BYTES element declaring a 4 GB length
        triton_body(
            {"inputs": [binary_input("c", "BYTES", [1], 8)]}, b"\xff\xff\xff\xff" + b"x" * 4
        ),
        # JSON data far shorter than its shape
        (request_body(tensor("d", "INT64", [10**9], [1, 2, 3])), None),
    ]
    for body, length in cases:
        tracemalloc.start()
        try:
            with pytest.raises(TensorError) as caught:
                decode_request(body, length, max_elements=10**12)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert caught.value.tensor in {"a", "b", "c", "d"}
        assert peak < 64 * 1024, (caught.value, peak)
