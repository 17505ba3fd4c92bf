"""The model's inputs on the Open Inference Protocol: one tensor per field of the model API,
turned into the encoded rows the predictor takes, by /predict's rules and with its messages.

Each field of ``ChurnPredictionRequest`` is one input tensor of shape ``[n]`` (or ``[n, 1]``, as
MLServer's pandas codec sends a column), with the datatype of its type: ``int`` INT64, ``float``
FP64, ``str`` BYTES, ``bool`` BOOL. Nothing here restates a rule: the types, the bounds, the
categories and the row limits are read from the schema (through ``model_server.plain_rows``,
which reads them from ``ChurnPredictionRequest`` and ``BatchPredictionRequest``), each column is
checked whole, and the first row a column refuses is validated by pydantic itself, whose message
for the field is the one given, as /predict would give it.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
from pydantic import ValidationError

from model_server.features import FEATURE_ORDER
from model_server.plain_rows import COLUMNS, EXACT_INT, MAX_ROWS, MIN_ROWS, encode_column
from model_server.schemas import ChurnPredictionRequest
from protocols.v2.codec import Tensor, TensorError

_DATATYPE_OF_KIND = {int: "INT64", float: "FP64", str: "BYTES", bool: "BOOL"}
# The model's inputs, in the model API's field order: name -> datatype.
INPUTS: dict[str, str] = {column.name: _DATATYPE_OF_KIND[column.kind] for column in COLUMNS}
# Each category's code under its UTF-8 bytes, as BYTES elements arrive.
_CODES = {
    column.name: {name.encode(): code for name, code in column.categories.items()}
    for column in COLUMNS
    if column.categories is not None
}
# The columns' bounds; unbounded is the largest finite float, so that an infinite value (of a
# float column: the others' values are always finite) is out of bounds.
_LARGEST = float(np.finfo(np.float64).max)
_LOW = np.array([-_LARGEST if c.low is None else c.low for c in COLUMNS])
_HIGH = np.array([_LARGEST if c.high is None else c.high for c in COLUMNS])
_TAKES = ", ".join(f"{name} ({datatype})" for name, datatype in INPUTS.items())
_INT64_MAX = 2**63 - 1
# A binary tensor's elements as Python values, by datatype: little-endian, n of them.
_BINARY_FORMATS = {"INT64": "<%dq", "FP64": "<%dd"}
_ITEM_SIZES = {"INT64": 8, "FP64": 8}
_ONE_ELEMENT = {name: struct.Struct(form % 1) for name, form in _BINARY_FORMATS.items()}
_LENGTH = struct.Struct("<I")


def encode_tensors(inputs: list[Tensor]) -> np.ndarray:
    """The encoded rows (n, len(FEATURE_ORDER)) of a request's input tensors; TensorError
    naming the input when a tensor or a value is not what /predict would take."""
    by_name = _by_name(inputs)
    n_rows = _row_count(by_name)
    matrix = np.empty((n_rows, len(COLUMNS)), dtype=np.float64)
    refused: list[tuple[int, int]] = []  # (first row a column refuses, the column's index)
    for j, column in enumerate(COLUMNS):
        data = by_name[column.name].data
        if isinstance(data, list):  # BYTES: a category
            codes = _CODES[column.name]
            encoded = [codes.get(element, -1) for element in data]
            if -1 in encoded:
                refused.append((encoded.index(-1), j))
            else:
                matrix[:, j] = encoded
        else:
            matrix[:, j] = data
    # Every column's bounds at once (ints are exact in float64 up to 2**53, and rounding never
    # carries a larger one back inside a bound); NaN is within no bounds, infinity within none
    # of a float column's (allow_inf_nan=False).
    within = (matrix >= _LOW) & (matrix <= _HIGH)
    if not within.all():
        rows, columns = np.nonzero(~within)
        refused.append((int(rows[0]), int(columns[0])))
    if refused:
        row, j = min(refused)  # the first row refused, and in it the first field
        name = COLUMNS[j].name
        raise TensorError(_message(by_name, row, name), name)
    return matrix


def _by_name(inputs: list[Tensor]) -> dict[str, Tensor]:
    by_name: dict[str, Tensor] = {}
    for tensor in inputs:
        expected = INPUTS.get(tensor.name)
        if expected is None:
            raise TensorError(f"is not an input of the model, which takes {_TAKES}", tensor.name)
        if tensor.datatype != expected:
            raise TensorError(
                f"datatype {tensor.datatype}; the model takes {expected}", tensor.name
            )
        by_name[tensor.name] = tensor
    for name in FEATURE_ORDER:
        if name not in by_name:
            raise TensorError(f"is missing; the model takes {_TAKES}", name)
    return by_name


def _row_count(by_name: dict[str, Tensor]) -> int:
    first: str | None = None
    n_rows = 0
    for name in FEATURE_ORDER:
        shape = by_name[name].shape
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise TensorError(f"shape {list(shape)}; the model takes [n] or [n, 1]", name)
        if first is None:
            first, n_rows = name, shape[0]
        elif shape[0] != n_rows:
            raise TensorError(f"has {shape[0]} rows, input {first!r} has {n_rows}", name)
    if n_rows < MIN_ROWS:
        raise TensorError(f"holds no rows; a request takes {MIN_ROWS} to {MAX_ROWS}", first)
    if MAX_ROWS is not None and n_rows > MAX_ROWS:
        raise TensorError(f"holds {n_rows} rows; a request takes at most {MAX_ROWS}", first)
    return n_rows


def _message(by_name: dict[str, Tensor], row: int, name: str) -> str:
    """pydantic's message for ``name`` in that row, as /predict gives it."""
    values: dict[str, Any] = {}
    for field, tensor in by_name.items():
        value = tensor.data[row]
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                if field == name:
                    return f"row {row}: not UTF-8 text"
                value = ""
        elif isinstance(value, np.generic):
            value = value.item()
        values[field] = value
    try:
        ChurnPredictionRequest.model_validate(values)
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            if problem["loc"] and problem["loc"][0] == name:
                return f"row {row}: {problem['msg']}"
    # A column check stricter than the schema would be a bug: say the value, never accept it.
    return f"row {row}: value {values[name]!r} is not accepted"


def plain_rows(inputs: Any, binary: memoryview) -> np.ndarray | None:
    """The encoded rows of a parsed request's ``inputs`` (``binary``: the body's binary part)
    when each is one of the model's inputs in its plain form, else None: then
    ``codec.decode_request`` and ``encode_tensors`` judge, and their answer (a 400 naming the
    tensor included) is the one given.

    A request of one row spent most of its CPU in the general decoding: a numpy array and a
    dataclass for each one-element tensor, then a pass over each to build the matrix. The
    plain form is every input once (no other), shape ``[n]`` or ``[n, 1]``, its ``data`` a
    flat JSON list (or one value) of exactly the JSON types /predict/batch's plain rows take
    (``plain_rows.encode_column``: an integer for INT64, a number for FP64, true or false,
    a known category), or its binary elements (``binary_data_size``) whose values are those;
    within the same bounds. The general path accepts all of those, with this matrix.
    """
    if type(inputs) is not list or len(inputs) != len(COLUMNS):
        return None
    if len(binary) == 0:
        row = _json_row(inputs)
        if row is not None:
            return np.array([row], dtype=np.float64)
    columns: list[Any] = [None] * len(COLUMNS)  # each input's cells, in COLUMNS' order
    n_rows = -1
    offset = 0
    end = len(binary)
    for raw in inputs:
        if type(raw) is not dict:
            return None
        # A name or datatype that is no string finds no place (and an unhashable one raises
        # TypeError, which the caller takes as None).
        place = _PLACES.get((raw.get("name"), raw.get("datatype")))
        if place is None:
            return None
        j, datatype, int64 = place
        if columns[j] is not None:
            return None
        shape = raw.get("shape")
        if type(shape) is not list:
            return None
        n = shape[0] if len(shape) == 1 else _column_rows(shape)
        if type(n) is not int:
            return None
        if n != n_rows:
            if n_rows >= 0 or n < MIN_ROWS or (MAX_ROWS is not None and n > MAX_ROWS):
                return None
            n_rows = n
        parameters = raw.get("parameters")
        size = None
        if parameters is not None:
            if type(parameters) is not dict:
                return None
            size = parameters.get("binary_data_size")
        cells: list[Any] | None
        if size is None:
            data = raw.get("data", _ABSENT)
            cells = data if type(data) is list else [data]
        else:
            if type(size) is not int or size < 0 or "data" in raw or offset + size > end:
                return None
            cells = _binary_cells(datatype, binary[offset : offset + size], n)
            offset += size
        if cells is None or len(cells) != n:
            return None
        encoded = encode_column(COLUMNS[j], cells)
        if encoded is None or (int64 and max(cells) > _INT64_MAX):
            return None
        columns[j] = encoded
    if offset != end:
        return None
    if n_rows <= _FEW_ROWS:
        return np.array(list(zip(*columns, strict=True)), dtype=np.float64)
    matrix = np.empty((n_rows, len(COLUMNS)), dtype=np.float64)
    for j, encoded in enumerate(columns):
        matrix[:, j] = encoded
    return matrix


# Up to this many rows, one conversion of the rows is faster than ten column assignments.
_FEW_ROWS = 16
# (name, datatype) -> the column's index, its datatype, whether its bounds leave INT64's to check.
_PLACES: dict[tuple[Any, Any], tuple[int, str, bool]] = {
    (column.name, INPUTS[column.name]): (
        j,
        INPUTS[column.name],
        INPUTS[column.name] == "INT64" and (column.high is None or column.high > _INT64_MAX),
    )
    for j, column in enumerate(COLUMNS)
}


# (name, datatype) -> what ``_json_row`` checks one cell of the column against: its index,
# the JSON types it takes, its categories, its bounds (INT64's own for an integer column whose
# bounds leave them), and whether it is a float column (whose integers must be exact floats).
_ROW_RULES: dict[
    tuple[Any, Any], tuple[int, frozenset[type], dict[str, int] | None, float, float, bool]
] = {
    (column.name, INPUTS[column.name]): (
        j,
        column.kinds,
        column.categories,
        -math.inf if column.low is None or column.kind is bool else column.low,
        _INT64_MAX
        if int64
        else math.inf
        if column.high is None or column.kind is bool
        else column.high,
        column.kind is float,
    )
    for (j, _, int64), column in zip(_PLACES.values(), COLUMNS, strict=True)
}
assert MIN_ROWS <= 1 and (MAX_ROWS is None or MAX_ROWS >= 1)


def _json_row(inputs: list[Any]) -> list[Any] | None:
    """The one row of ``inputs`` (as many as the model's inputs) when each is a JSON tensor of
    shape [1] with no parameters, its one value taken as ``encode_column`` takes it; else None,
    and ``plain_rows`` reads them column by column. A request of one customer is the usual
    one: checking its ten cells one by one costs a third of building ten columns."""
    row: list[Any] = [None] * len(COLUMNS)
    for raw in inputs:
        if type(raw) is not dict or "parameters" in raw:
            return None
        rule = _ROW_RULES.get((raw.get("name"), raw.get("datatype")))
        if rule is None:
            return None
        j, kinds, categories, low, high, float_column = rule
        shape = raw.get("shape")
        if (
            type(shape) is not list
            or len(shape) != 1
            or type(shape[0]) is not int
            or shape[0] != 1
            or row[j] is not None
        ):
            return None
        cell = raw.get("data", _ABSENT)
        if type(cell) is list:
            if len(cell) != 1:
                return None
            cell = cell[0]
        kind = type(cell)
        if kind not in kinds:
            return None
        if categories is not None:
            cell = categories.get(cell)
            if cell is None:
                return None
        elif not low <= cell <= high or (float_column and kind is int and abs(cell) >= EXACT_INT):
            return None
        row[j] = cell
    return row


def _column_rows(shape: list[Any]) -> Any:
    """The rows of a shape [n, 1] (n, unchecked); None for any other shape."""
    if len(shape) == 2 and type(shape[1]) is int and shape[1] == 1:
        return shape[0]
    return None


_ABSENT = object()  # no JSON value is this: a tensor without data is never plain


def _binary_cells(datatype: str, chunk: memoryview, n: int) -> list[Any] | None:
    """A binary tensor's n elements as the JSON values they stand for, or None."""
    if datatype == "BYTES":
        return _strings(chunk.tobytes(), n)
    if datatype == "BOOL":
        raw = chunk.tobytes()
        if len(raw) != n or raw.translate(None, b"\x00\x01"):
            return None
        return [byte == 1 for byte in raw]
    if len(chunk) != n * _ITEM_SIZES[datatype]:
        return None
    one = _ONE_ELEMENT.get(datatype) if n == 1 else None
    # struct keeps the formats it compiled (a bounded cache) for other row counts.
    values = list(one.unpack(chunk) if one else struct.unpack(_BINARY_FORMATS[datatype] % n, chunk))
    # NaN and infinity come only in binary (JSON has neither): the bounds' checks are left to
    # refuse them, with their message.
    if datatype == "FP64" and not all(map(math.isfinite, values)):
        return None
    return values


def _strings(data: bytes, n: int) -> list[str] | None:
    """n BYTES elements (each a 4-byte length, then its bytes) as text, or None."""
    if n == 1:  # the one element is the whole chunk after its length
        if len(data) < 4 or _LENGTH.unpack_from(data)[0] != len(data) - 4:
            return None
        try:
            return [data[4:].decode("utf-8")]
        except UnicodeDecodeError:
            return None
    elements: list[str] = []
    offset = 0
    for _ in range(n):
        if offset + 4 > len(data):
            return None
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > len(data):
            return None
        try:
            elements.append(data[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        offset += length
    return elements if offset == len(data) else None
