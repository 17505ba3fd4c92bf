"""V2 inference requests for model-API customers, as a client would build them."""

from __future__ import annotations

from typing import Any

import numpy as np

from model_server.v2_rows import INPUTS
from protocols.v2.codec import InferRequest, RequestedOutput, Tensor, encode_request

DTYPES = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}


def input_tensors(rows: list[dict[str, Any]]) -> list[Tensor]:
    made = []
    for name, datatype in INPUTS.items():
        values = [row[name] for row in rows]
        data: Any
        if datatype == "BYTES":
            data = [str(value).encode() for value in values]
        else:
            data = np.array(values, dtype=DTYPES[datatype])
        made.append(Tensor(name, datatype, (len(rows),), data))
    return made


def v2_body(
    rows: list[dict[str, Any]],
    *,
    request_id: str | None = None,
    outputs: list[RequestedOutput] | None = None,
    binary: bool = False,
    **parameters: Any,
) -> tuple[bytes, dict[str, str]]:
    """The body and the headers that go with it (the header length when binary)."""
    request = InferRequest(request_id, input_tensors(rows), outputs, parameters)
    body, header_length = encode_request(request, binary=binary)
    if header_length is None:
        return body, {"content-type": "application/json"}
    return body, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(header_length),
    }
