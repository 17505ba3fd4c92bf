"""The KServe SDK's REST client (``kserve.InferenceRESTClient``, protocol "v2") against a
gateway, run by `make kserve`'s venv: kserve 0.21 pins pandas below 3 and python-dateutil below
3, the project's own venv pins both higher, so the SDK cannot live there.

    .venv-kserve/bin/python tests/integration/kserve_calls.py URL < CALLS_JSON

CALLS_JSON, on stdin, is a list of calls, each ``{"call": ..., ...}``; the answer, on stdout,
is one JSON list with an entry per call: what the SDK returned, or the error it raised (its
type, its text, the status). Nothing here checks anything: the test that runs it does
(test_kserve_client.py). It imports nothing of the project's: the SDK runs as a team's code would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

NUMPY = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}


def inputs_of(
    rows: list[dict[str, Any]], datatypes: dict[str, str], binary: bool
) -> list[InferInput]:
    """One tensor of shape [n] per input, from numpy arrays, as the SDK's docs build them."""
    made = []
    for name, datatype in datatypes.items():
        values = [row[name] for row in rows]
        if datatype == "BYTES":
            values = [str(v).encode() for v in values]
        tensor = InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(np.array(values, dtype=NUMPY[datatype]), binary_data=binary)
        made.append(tensor)
    return made


def plain(value: Any) -> Any:
    """A tensor's numpy values as JSON: BYTES elements as text."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def run(client: InferenceRESTClient, url: str, call: dict[str, Any]) -> dict[str, Any]:
    kind = call["call"]
    if kind == "is_server_live":
        return {"value": await client.is_server_live(url)}
    if kind == "is_server_ready":
        return {"value": await client.is_server_ready(url)}
    if kind == "is_model_ready":
        return {"value": await client.is_model_ready(url, call["model"])}
    if kind != "infer":
        raise ValueError(f"unknown call {kind!r}")
    inputs = inputs_of(call["rows"], call["datatypes"], call.get("binary", False))
    for name, values in call.get("replace", {}).items():  # a bad tensor, sent as given
        tensor = next(t for t in inputs if t.name == name)
        tensor.data = values["data"]
        tensor.shape = values["shape"]
    outputs = [
        RequestedOutput(name, {"binary_data": True} if call.get("binary_outputs") else None)
        for name in call.get("outputs", [])
    ]
    request = InferRequest(
        call.get("model", "churn"),
        inputs,
        request_id=call.get("id"),
        request_outputs=outputs or None,
    )
    headers = dict(call.get("headers", {}))
    seen_headers: dict[str, str] = {}
    if call.get("path"):
        # The SDK takes no version: its graph-endpoint form posts to the URL given, as given
        # (the versioned infer path here), and hands back the answer's JSON as it came.
        answer = await client.infer(
            url + call["path"], request, headers=headers, is_graph_endpoint=True
        )
        return {"body": answer}
    response = await client.infer(
        url, request, model_name=call.get("model", "churn"), headers=headers,
        response_headers=seen_headers,
    )  # fmt: skip
    return {
        "id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": {o.name: plain(o.as_numpy().tolist()) for o in response.outputs},
        "headers": {k.lower(): v for k, v in seen_headers.items()},
    }


async def main(url: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    async with InferenceRESTClient(RESTConfig(protocol="v2", timeout=30, retries=0)) as client:
        for call in calls:
            try:
                results.append(await run(client, url, call))
            except httpx.HTTPStatusError as exc:
                results.append(
                    {
                        "error": type(exc).__name__,
                        "text": str(exc),
                        "status": exc.response.status_code,
                    }
                )
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.load(sys.stdin)))))
