"""The Open Inference Protocol's inference documents, in JSON and with binary tensors.

A V2 request or answer is a JSON document whose tensors carry their elements either in `data`
(flat or nested JSON arrays, flattened in row-major order) or, with Triton's binary tensor
extension, as raw bytes after the JSON: the JSON part is the first `Inference-Header-Content-Length`
bytes of the body, each binary tensor names its byte count in `parameters.binary_data_size`, and
the tensors' bytes follow in the order the tensors appear. Fixed-size datatypes are their
little-endian values; a BYTES element is a 4-byte little-endian length, then its bytes.

Every declared size (a shape's element count, a `binary_data_size`, the header length) is checked
against the body and against the caller's `max_elements` before anything is allocated, so a
client can never make a process allocate more than the body it sent; every complaint is a
`TensorError` naming the tensor, which the servers turn into a 400.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

INFERENCE_HEADER = "inference-header-content-length"
_INFERENCE_HEADER_BYTES = INFERENCE_HEADER.encode("ascii")

# The protocol's tensor datatypes and the little-endian numpy dtype of their binary form.
_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES: frozenset[str] = frozenset({*_DTYPES, "BYTES"})
_NATIVE = {name: dtype.newbyteorder("=") for name, dtype in _DTYPES.items()}
_INT_BOUNDS = {
    name: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for name, dtype in _DTYPES.items()
    if dtype.kind in "iu"
}

_BYTES_PREFIX = 4  # a BYTES element's little-endian uint32 length in binary form
_LENGTH = struct.Struct("<I")


class TensorError(ValueError):
    """Bad input: `.tensor` is the tensor's name (None for the document), and str() names it.

    `TensorError("shape [3] holds 3 elements, data has 2", tensor="tenure")` reads
    `input 'tenure': shape [3] holds 3 elements, data has 2`; `role` is "output" for a tensor
    of an answer.
    """

    tensor: str | None
    detail: str
    role: str

    def __init__(self, detail: str, tensor: str | None = None, *, role: str = "input") -> None:
        self.tensor = tensor
        self.detail = detail
        self.role = role
        super().__init__(detail if tensor is None else f"{role} {tensor!r}: {detail}")


@dataclass(frozen=True, slots=True)
class Tensor:
    """One named tensor: `data` is a flat array in the datatype's numpy dtype, or for BYTES a
    list of the elements' bytes; `shape` says how the flat elements are laid out."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray[Any, Any] | list[bytes]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An output the client asked for; `binary` is its `parameters.binary_data` (None: unsaid)."""

    name: str
    binary: bool | None = None


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None  # None: the client asked for no particular output
    parameters: dict[str, Any]  # binary_data_output: every output binary unless it says otherwise


@dataclass(frozen=True, slots=True)
class InferResponse:
    model_name: str
    model_version: str | None
    id: str | None
    outputs: dict[str, Tensor]
    parameters: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# The header


def header_length_of(headers: list[tuple[bytes, bytes]], body_length: int) -> int | None:
    """The Inference-Header-Content-Length of a request or answer: None when absent, else the
    JSON part's length, which must be a number no larger than the body."""
    for name, value in headers:
        if name.lower() == _INFERENCE_HEADER_BYTES:
            text = value.strip()
            if not text.isdigit() or len(text) > 19:
                raise TensorError(
                    f"Inference-Header-Content-Length must be a byte count, not {_show(text)}"
                )
            length = int(text)
            if length > body_length:
                raise TensorError(
                    f"Inference-Header-Content-Length {length} is past the body's "
                    f"{body_length} bytes"
                )
            return length
    return None


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_request(body: bytes, header_length: int | None, *, max_elements: int) -> InferRequest:
    """A V2 inference request from its body (JSON, or JSON then binary tensors)."""
    document, binary = _split(body, header_length)
    request_id = optional_id(document)
    parameters = request_parameters(document)
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise TensorError("'inputs' must be a non-empty list of tensors")
    reader = _BinaryReader(binary)
    inputs: list[Tensor] = []
    seen: set[str] = set()
    for position, raw in enumerate(raw_inputs):
        tensor = _decode_tensor(raw, position, "input", reader, max_elements)
        if tensor.name in seen:
            raise TensorError("is given twice", tensor.name)
        seen.add(tensor.name)
        inputs.append(tensor)
    reader.finish()
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=requested_outputs(document.get("outputs")),
        parameters=parameters,
    )


def decode_response(body: bytes, header_length: int | None) -> InferResponse:
    """A V2 inference answer from its body (JSON, or JSON then binary tensors)."""
    document, binary = _split(body, header_length)
    model_name = document.get("model_name")
    if not isinstance(model_name, str):
        raise TensorError("the answer's 'model_name' must be a string")
    model_version = document.get("model_version")
    if model_version is not None and not isinstance(model_version, str):
        raise TensorError("the answer's 'model_version' must be a string")
    raw_outputs = document.get("outputs", [])
    if not isinstance(raw_outputs, list):
        raise TensorError("the answer's 'outputs' must be a list of tensors")
    reader = _BinaryReader(binary)
    outputs: dict[str, Tensor] = {}
    # Each element of an answer costs at least a byte of it, so the body bounds every count.
    bound = max(len(body), 1)
    for position, raw in enumerate(raw_outputs):
        tensor = _decode_tensor(raw, position, "output", reader, bound)
        if tensor.name in outputs:
            raise TensorError("is given twice", tensor.name, role="output")
        outputs[tensor.name] = tensor
    reader.finish()
    return InferResponse(
        model_name=model_name,
        model_version=model_version,
        id=optional_id(document),
        outputs=outputs,
        parameters=_parameters(document.get("parameters"), None, "output"),
    )


def _split(body: bytes, header_length: int | None) -> tuple[dict[str, Any], memoryview]:
    if header_length is None:
        json_part, binary = body, memoryview(b"")
    else:
        if header_length < 0 or header_length > len(body):
            raise TensorError(
                f"Inference-Header-Content-Length {header_length} is past the body's "
                f"{len(body)} bytes"
            )
        view = memoryview(body)
        json_part, binary = bytes(view[:header_length]), view[header_length:]
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError as error:
        raise TensorError(f"the body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise TensorError("the body must be a JSON object")
    return document, binary


def optional_id(document: dict[str, Any]) -> str | None:
    """A parsed document's `id`, as decode_request reads it."""
    value = document.get("id")
    if value is None or isinstance(value, str):
        return value
    raise TensorError("'id' must be a string")


def _parameters(value: Any, tensor: str | None, role: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TensorError("'parameters' must be an object", tensor, role=role)
    return value


def request_parameters(document: dict[str, Any]) -> dict[str, Any]:
    """A parsed request document's `parameters`, as decode_request reads them."""
    return _parameters(document.get("parameters"), None, "input")


def requested_outputs(value: Any) -> list[RequestedOutput] | None:
    """A parsed request document's `outputs`, as decode_request reads them."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise TensorError("'outputs' must be a list of {\"name\": ...} objects")
    outputs: list[RequestedOutput] = []
    for raw in value:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise TensorError("each of 'outputs' must be an object with a string 'name'")
        name = raw["name"]
        parameters = _parameters(raw.get("parameters"), name, "output")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise TensorError("parameters.binary_data must be true or false", name, role="output")
        outputs.append(RequestedOutput(name=name, binary=binary))
    return outputs


class _BinaryReader:
    """The binary part of a body, handed out tensor by tensor in order."""

    __slots__ = ("_view", "_offset")

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._offset = 0

    def take(self, size: int, tensor: str, role: str) -> memoryview:
        left = len(self._view) - self._offset
        if size > left:
            raise TensorError(
                f"parameters.binary_data_size {size} is past the body: {left} bytes of binary "
                "data are left",
                tensor,
                role=role,
            )
        chunk = self._view[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def finish(self) -> None:
        extra = len(self._view) - self._offset
        if extra:
            raise TensorError(
                f"the body holds {extra} bytes of binary data past the tensors' "
                "binary_data_size (or past Inference-Header-Content-Length)"
            )


def _decode_tensor(
    raw: Any, position: int, role: str, reader: _BinaryReader, max_elements: int
) -> Tensor:
    # Written for the common case (a plain tensor of a few values): type() tests and no
    # copies, since a request of ten one-row tensors spends most of its decoding here.
    if type(raw) is not dict:
        raise TensorError(f"{role}s[{position}] must be an object")
    name = raw.get("name")
    if type(name) is not str:
        raise TensorError(f"{role}s[{position}] needs a string 'name'")
    datatype = raw.get("datatype")
    if type(datatype) is not str:
        raise TensorError("needs a string 'datatype'", name, role=role)
    if datatype not in DATATYPES:
        raise TensorError(
            f"unknown datatype {_show(datatype)}; one of {', '.join(sorted(DATATYPES))}",
            name,
            role=role,
        )
    dims = raw.get("shape")
    if (
        type(dims) is list
        and len(dims) == 1
        and type(dims[0]) is int
        and 0 <= dims[0] <= max_elements
    ):
        shape: tuple[int, ...] = (dims[0],)  # the usual one-dimensional tensor, checked inline
        count = dims[0]
    else:
        shape = _shape(dims, name, role)
        count = _element_count(shape, max_elements, name, role)
    parameters = raw.get("parameters")
    size = None
    if parameters is None:
        parameters = {}
    elif type(parameters) is not dict:
        raise TensorError("'parameters' must be an object", name, role=role)
    elif "binary_data_size" in parameters:
        parameters = dict(parameters)
        size = parameters.pop("binary_data_size")
    if size is not None:
        if "data" in raw:
            raise TensorError("has both 'data' and parameters.binary_data_size", name, role=role)
        if not _is_int(size) or size < 0:
            raise TensorError(
                "parameters.binary_data_size must be a non-negative integer", name, role=role
            )
        chunk = reader.take(size, name, role)
        data = _from_binary(chunk, datatype, shape, count, name, role)
    else:
        if "data" not in raw:
            raise TensorError("has neither 'data' nor parameters.binary_data_size", name, role=role)
        data = _from_json(raw["data"], datatype, shape, count, name, role)
    return Tensor(name, datatype, shape, data, parameters)


def _shape(value: Any, name: str, role: str) -> tuple[int, ...]:
    # type() is int: a JSON true is no dimension.
    if type(value) is list and set(map(type, value)) <= {int} and (not value or min(value) >= 0):
        return tuple(value)
    raise TensorError(
        f"shape must be a list of non-negative integers, not {_show(value)}", name, role=role
    )


def _element_count(shape: tuple[int, ...], max_elements: int, name: str, role: str) -> int:
    # Multiplied with a bound at each step: a shape like [2**62, 2**62] is refused before the
    # product (or anything sized by it) exists.
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count > max_elements:
            raise TensorError(
                f"shape {list(shape)} holds more than the {max_elements} elements a request "
                "may carry",
                name,
                role=role,
            )
    return count


def _from_binary(
    chunk: memoryview, datatype: str, shape: tuple[int, ...], count: int, name: str, role: str
) -> np.ndarray[Any, Any] | list[bytes]:
    if datatype == "BYTES":
        return _bytes_from_binary(chunk, shape, count, name, role)
    dtype = _DTYPES[datatype]
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise TensorError(
            f"shape {list(shape)} of {datatype} takes {expected} bytes, "
            f"parameters.binary_data_size is {len(chunk)}",
            name,
            role=role,
        )
    if datatype == "BOOL":
        raw = chunk.tobytes()
        if raw.translate(None, b"\x00\x01"):  # a byte other than 0 and 1 is left
            raise TensorError("a BOOL element must be the byte 0 or 1", name, role=role)
        return np.frombuffer(raw, dtype=np.bool_).copy()
    return np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)


def _bytes_from_binary(
    chunk: memoryview, shape: tuple[int, ...], count: int, name: str, role: str
) -> list[bytes]:
    if count * _BYTES_PREFIX > len(chunk):
        raise TensorError(
            f"shape {list(shape)} of BYTES needs at least {count * _BYTES_PREFIX} bytes, "
            f"parameters.binary_data_size is {len(chunk)}",
            name,
            role=role,
        )
    data = chunk.tobytes()  # at most the body's bytes: its size was checked against the body
    elements: list[bytes] = []
    append = elements.append
    offset = 0
    end = len(data)
    for index in range(count):
        if offset + _BYTES_PREFIX > end:
            raise TensorError(
                f"BYTES element {index} starts past parameters.binary_data_size", name, role=role
            )
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _BYTES_PREFIX
        if offset + length > end:
            raise TensorError(
                f"BYTES element {index} of {length} bytes runs past parameters.binary_data_size",
                name,
                role=role,
            )
        append(data[offset : offset + length])
        offset += length
    if offset != end:
        raise TensorError(
            f"parameters.binary_data_size is {end}, the {count} BYTES elements take {offset}",
            name,
            role=role,
        )
    return elements


def _from_json(
    value: Any, datatype: str, shape: tuple[int, ...], count: int, name: str, role: str
) -> np.ndarray[Any, Any] | list[bytes]:
    if type(value) is list:
        flat: list[Any] = value
        kinds = set(map(type, value))
        if list in kinds:
            flat = _flatten(value, name, role)
            kinds = set(map(type, flat))
    else:
        # A single element may stand for a shape-[1] tensor, as Triton and MLServer take it.
        flat, kinds = [value], {type(value)}
    if len(flat) != count:
        raise TensorError(
            f"shape {list(shape)} holds {count} elements, data has {len(flat)}", name, role=role
        )
    if datatype == "BYTES":
        if kinds - {str}:
            raise TensorError(
                f"BYTES data must be strings, not {_kinds(kinds - {str})}", name, role=role
            )
        return [element.encode("utf-8") for element in flat]
    dtype = _NATIVE[datatype]
    if datatype == "BOOL":
        if kinds - {bool}:
            raise TensorError(
                f"BOOL data must be true or false, not {_kinds(kinds - {bool})}", name, role=role
            )
        return np.array(flat, dtype=np.bool_)
    bounds = _INT_BOUNDS.get(datatype)
    if bounds is not None:
        if float in kinds:
            # JSON integers past 64 bits reach us as floats (orjson): say what is wrong.
            huge = next((v for v in flat if isinstance(v, float) and abs(v) >= 2**63), None)
            if huge is not None and huge.is_integer():
                raise TensorError(f"{huge:.0f} does not fit {datatype}", name, role=role)
        if kinds - {int}:
            raise TensorError(
                f"{datatype} data must be integers, not {_kinds(kinds - {int})}", name, role=role
            )
        if flat:
            low, high = min(flat), max(flat)
            if low < bounds[0] or high > bounds[1]:
                worst = low if low < bounds[0] else high
                raise TensorError(
                    f"{worst} does not fit {datatype} ({bounds[0]}..{bounds[1]})", name, role=role
                )
        return np.array(flat, dtype=dtype)
    if kinds - {int, float}:
        raise TensorError(
            f"{datatype} data must be numbers, not {_kinds(kinds - {int, float})}",
            name,
            role=role,
        )
    return _floats(flat, datatype, dtype, name, role)


def _floats(
    flat: list[Any], datatype: str, dtype: np.dtype[Any], name: str, role: str
) -> np.ndarray[Any, Any]:
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise TensorError(f"a value is too large for {datatype}", name, role=role) from None
    if datatype == "FP64":
        return wide
    if wide.size:
        limit = float(np.finfo(dtype).max)
        largest = float(np.abs(wide).max())
        if largest > limit:
            raise TensorError(
                f"{largest} does not fit {datatype} (at most {limit})", name, role=role
            )
    return wide.astype(dtype)


def _flatten(value: list[Any], name: str, role: str) -> list[Any]:
    flat: list[Any] = []
    stack: list[Any] = [iter(value)]
    while stack:
        for element in stack[-1]:
            if isinstance(element, list):
                stack.append(iter(element))
                break
            if isinstance(element, dict):
                raise TensorError("data must hold values or lists, not objects", name, role=role)
            flat.append(element)
        else:
            stack.pop()
    return flat


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kinds(kinds: set[type]) -> str:
    words = {
        bool: "true/false",
        int: "integers",
        float: "fractions",
        str: "strings",
        type(None): "null",
        dict: "objects",
    }
    return ", ".join(sorted(words.get(kind, kind.__name__) for kind in kinds))


def _show(value: Any) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_request(request: InferRequest, *, binary: bool) -> tuple[bytes, int | None]:
    """A request's body: all JSON (`binary=False`, header length None), or every input's
    elements as binary after the JSON part (the header length returned)."""
    blobs: list[bytes] = []
    inputs = [_encode_tensor(tensor, binary, blobs) for tensor in request.inputs]
    document: dict[str, Any] = {}
    if request.id is not None:
        document["id"] = request.id
    if request.parameters:
        document["parameters"] = request.parameters
    document["inputs"] = inputs
    if request.outputs is not None:
        document["outputs"] = [_requested(output) for output in request.outputs]
    return _join(document, blobs)


def encode_response(
    response: InferResponse, *, binary: Collection[str] = ()
) -> tuple[bytes, int | None]:
    """An answer's body: the outputs named in `binary` as binary tensors after the JSON part;
    returns the body and the header length when any output is binary, else None."""
    blobs: list[bytes] = []
    outputs = [
        _encode_tensor(tensor, name in binary, blobs, role="output")
        for name, tensor in response.outputs.items()
    ]
    document: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        document["model_version"] = response.model_version
    if response.id is not None:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    document["outputs"] = outputs
    return _join(document, blobs)


def binary_outputs(request: InferRequest, names: Iterable[str]) -> set[str]:
    """Which of the answer's outputs `names` go binary: an output's own binary_data when the
    request says it, else the request's binary_data_output (false when unsaid)."""
    return binary_outputs_of(request.parameters, request.outputs, names)


def binary_outputs_of(
    parameters: dict[str, Any], outputs: list[RequestedOutput] | None, names: Iterable[str]
) -> set[str]:
    """`binary_outputs` of a request's parameters and requested outputs."""
    default = parameters.get("binary_data_output") is True
    said = {output.name: output.binary for output in (outputs or ()) if output.binary is not None}
    return {name for name in names if said.get(name, default)}


def _requested(output: RequestedOutput) -> dict[str, Any]:
    if output.binary is None:
        return {"name": output.name}
    return {"name": output.name, "parameters": {"binary_data": output.binary}}


def _encode_tensor(
    tensor: Tensor, binary: bool, blobs: list[bytes], *, role: str = "input"
) -> dict[str, Any]:
    if tensor.datatype not in DATATYPES:
        raise TensorError(f"unknown datatype {tensor.datatype!r}", tensor.name, role=role)
    encoded: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.shape),
    }
    parameters = (
        {k: v for k, v in tensor.parameters.items() if k != "binary_data_size"}
        if tensor.parameters
        else {}
    )
    if binary:
        blob = _to_binary(tensor)
        blobs.append(blob)
        parameters["binary_data_size"] = len(blob)
    else:
        encoded["data"] = _to_json(tensor, role)
    if parameters:
        encoded["parameters"] = parameters
    return encoded


def _to_binary(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        elements = _byte_elements(tensor)
        lengths = _LENGTH.pack  # each element: its 4-byte little-endian length, then its bytes
        return b"".join([part for e in elements for part in (lengths(len(e)), e)])
    return np.ascontiguousarray(tensor.data, dtype=_DTYPES[tensor.datatype]).tobytes()


def _to_json(tensor: Tensor, role: str) -> Any:
    if tensor.datatype == "BYTES":
        try:
            return [element.decode("utf-8") for element in _byte_elements(tensor)]
        except UnicodeDecodeError:
            raise TensorError(
                "a BYTES element is not UTF-8 text, so it cannot travel as JSON; send it binary",
                tensor.name,
                role=role,
            ) from None
    # orjson writes a native, contiguous array at C speed (OPT_SERIALIZE_NUMPY below).
    return np.ascontiguousarray(tensor.data, dtype=_NATIVE[tensor.datatype])


def _byte_elements(tensor: Tensor) -> list[bytes]:
    data = tensor.data
    if isinstance(data, np.ndarray):
        return [e if isinstance(e, bytes) else str(e).encode("utf-8") for e in data.tolist()]
    return data


def _join(document: dict[str, Any], blobs: list[bytes]) -> tuple[bytes, int | None]:
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
