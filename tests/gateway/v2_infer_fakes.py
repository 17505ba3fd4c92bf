"""Fake replicas that answer the Open Inference Protocol's infer: ours (the model contract's
outputs, binary tensors taken and given) and a scikit-learn server's (MLServer-like: its own
model name, ``predict_proba`` [n, 2], JSON only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import orjson

from protocols.v2.codec import (
    InferRequest,
    InferResponse,
    Tensor,
    TensorError,
    binary_outputs,
    decode_request,
    encode_request,
    encode_response,
    header_length_of,
)
from tests.gateway.fakes import VERSION_OF
from tests.gateway.v2_fakes import CHURN_INPUTS, FakeV2Replicas

INFER = re.compile(r"^/v2/models/([^/]+)/infer$")
OUTPUTS = ("churn_probability", "risk_tier", "top_reasons")
REASONS = [
    {"feature": f, "value": 1.0, "shap_contribution": 0.1, "direction": "increases_risk"}
    for f in ("tenure", "contract_type", "monthly_charges")
]

CUSTOMER: dict[str, Any] = {
    "tenure": 14,
    "monthly_charges": 70.5,
    "total_charges": 987.0,
    "contract_type": "Month-to-month",
    "payment_method": "Electronic check",
    "num_support_tickets": 2,
    "internet_service": "Fiber optic",
    "streaming_services": 1,
    "paperless_billing": True,
    "senior_citizen": False,
}
DATATYPES = dict(CHURN_INPUTS)  # our model server's V2 inputs and their datatypes


def probability(tenure: int) -> float:
    """Our fake model: deterministic in tenure."""
    return round(1.0 / (1.0 + tenure / 10.0), 6)


def v2_request(
    customers: list[dict[str, Any]],
    *,
    request_id: str | None = None,
    binary: bool = False,
    outputs: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A V2 infer request's body and headers for ``customers``."""
    inputs = []
    for name, datatype in DATATYPES.items():
        values = [c[name] for c in customers]
        data: Any
        if datatype == "BYTES":
            data = [str(v).encode() for v in values]
        else:
            dtype = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_}[datatype]
            data = np.array(values, dtype=dtype)
        inputs.append(Tensor(name, datatype, (len(values),), data))
    request = InferRequest(request_id, inputs, None, parameters or {})
    body, length = encode_request(request, binary=binary)
    if outputs is not None:  # the codec's RequestedOutput has no parameters but binary_data
        split = length if length is not None else len(body)
        document = orjson.loads(body[:split])
        document["outputs"] = outputs
        head = orjson.dumps(document)
        body, length = head + body[split:], (len(head) if length is not None else None)
    headers = {"content-type": "application/json"}
    if length is not None:
        headers = {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(length),
        }
    return body, headers


# MLServer's answer to a value our rules refuse (its inference worker names the error's class).
REFUSED = (
    b'{"error":"mlserver.errors.InferenceError: input \'tenure\': row 0: '
    b'Input should be greater than or equal to 0"}'
)


@dataclass
class V2InferReplicas(FakeV2Replicas):
    """As FakeV2Replicas, plus POST /v2/models/{name}/infer. ``sklearn`` addresses answer as
    MLServer's scikit-learn runtime would (named ``churn-sk``, JSON only)."""

    sklearn: set[str] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)  # address -> the model name it serves
    seen_bodies: list[bytes] = field(default_factory=list)
    seen_infers: list[tuple[httpx.Headers, bytes]] = field(default_factory=list)

    def predict(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        found = INFER.match(path)
        if found is None:
            return self.model_api(request)
        address = self.address(request.url)
        self.calls[address] += 1
        self.seen_headers.append(request.headers)
        self.seen_targets.append(request.url.raw_path.decode())
        self.seen_bodies.append(request.content)
        self.seen_infers.append((request.headers, request.content))
        mode = self.behaviour.get(address, "ok")
        version = VERSION_OF[address]
        if mode == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if mode == "500":
            return httpx.Response(500, json={"error": "boom"})
        if mode == "refuse":  # bad input, as MLServer's checked runtime answers it
            return httpx.Response(
                400, content=REFUSED, headers={"content-type": "application/json"}
            )
        if mode == "empty":  # a 200 with no output at all
            return httpx.Response(200, json={"model_name": "churn", "outputs": []})
        sklearn = address in self.sklearn
        name = self.names.get(address, "churn-sk" if sklearn else "churn")
        if found[1] != name:
            return httpx.Response(404, json={"error": f"unknown model {found[1]!r}"})
        body = request.content
        try:
            length = header_length_of(list(request.headers.raw), len(body))
            if sklearn and length is not None:
                return httpx.Response(422, json={"error": "binary tensors are not supported"})
            decoded = decode_request(body, length, max_elements=100_000)
        except TensorError as exc:
            return httpx.Response(400, json={"error": str(exc)})
        tenure = next(t for t in decoded.inputs if t.name == "tenure")
        p = np.array([probability(int(v)) for v in np.asarray(tenure.data)], dtype=np.float64)
        n = len(p)
        outputs: dict[str, Tensor]
        if sklearn:
            asked = [o.name for o in decoded.outputs or ()] or ["predict"]
            outputs = {}
            for output in asked:
                if output == "predict_proba":
                    pairs = np.stack([1 - p + 0.01, p - 0.01], axis=1).reshape(-1)
                    outputs[output] = Tensor(output, "FP64", (n, 2), pairs)
                elif output == "predict":
                    outputs[output] = Tensor(output, "INT64", (n,), (p > 0.5).astype(np.int64))
                else:
                    return httpx.Response(400, json={"error": f"unknown output {output!r}"})
        else:
            asked = [o.name for o in decoded.outputs or ()] or list(OUTPUTS)
            every = {
                "churn_probability": Tensor("churn_probability", "FP64", (n,), p),
                "risk_tier": Tensor(
                    "risk_tier",
                    "BYTES",
                    (n,),
                    [(b"low" if q < 0.3 else b"medium" if q < 0.6 else b"high") for q in p],
                ),
                "top_reasons": Tensor("top_reasons", "BYTES", (n,), [orjson.dumps(REASONS)] * n),
            }
            if any(o not in every for o in asked):
                return httpx.Response(400, json={"error": "unknown output"})
            outputs = {o: every[o] for o in asked}
        answer = InferResponse(name, version, decoded.id, outputs, {})
        binary = () if sklearn else binary_outputs(decoded, outputs)
        content, answer_length = encode_response(answer, binary=binary)
        headers = {"content-type": "application/json"}
        if not sklearn:
            headers["x-model-version"] = version
        if answer_length is not None:
            headers = {
                **headers,
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(answer_length),
            }
        return httpx.Response(200, content=content, headers=headers)

    def model_api(self, request: httpx.Request) -> httpx.Response:
        """/predict and /predict/batch as our model server answers them (the fake model)."""
        response = super().predict(request)
        if (
            response.status_code != 200
            or self.behaviour.get(self.address(request.url), "ok") != "ok"
        ):
            return response
        payload = orjson.loads(request.content)
        version = VERSION_OF[self.address(request.url)]

        def scored(customer: dict[str, Any]) -> dict[str, Any]:
            p = probability(int(customer["tenure"]))
            tier = "low" if p < 0.3 else "medium" if p < 0.6 else "high"
            return {
                "churn_probability": p,
                "risk_tier": tier,
                "top_reasons": REASONS,
                "model_version": version,
            }

        if request.url.path.endswith("/batch"):
            rows = [scored(c) for c in payload["customers"]]
            body: dict[str, Any] = {"predictions": rows, "batch_size": len(rows)}
        else:
            body = scored(payload)
        return httpx.Response(200, content=orjson.dumps(body), headers=response.headers)
