"""Fake replicas that also speak the Open Inference Protocol's health and metadata."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.gateway.fakes import VERSION_OF, FakeReplicas

# The V2 model contract of our model server: one input per model-API field.
CHURN_INPUTS = (
    ("tenure", "INT64"),
    ("monthly_charges", "FP64"),
    ("total_charges", "FP64"),
    ("contract_type", "BYTES"),
    ("payment_method", "BYTES"),
    ("num_support_tickets", "INT64"),
    ("internet_service", "BYTES"),
    ("streaming_services", "INT64"),
    ("paperless_billing", "BOOL"),
    ("senior_citizen", "BOOL"),
)
CHURN_OUTPUTS = (("churn_probability", "FP64"), ("risk_tier", "BYTES"), ("top_reasons", "BYTES"))

# Stable (model_api) on stable-a and stable-b; the canary is a V2-only server (MLServer-like).
V2_ROUTING = """\
service: streamflow-churn
stable: v2.3.1
mode: canary
versions:
  v2.3.1:
    replicas: [http://stable-a:8000, http://stable-b:8000]
  v2.4.0:
    replicas: [http://canary-a:8000]
    protocol: v2
    model_name: churn-sk
    score: {{output: predict_proba, column: 1}}
canary:
  weights: {{v2.3.1: {stable_weight}, v2.4.0: {canary_weight}}}
pinning: {{header: X-Model-Version, allow: [v2.3.1, v2.4.0]}}
"""


def metadata_doc(
    name: str,
    versions: list[str],
    *,
    platform: str = "streamflow",
    inputs: tuple[tuple[str, str], ...] = CHURN_INPUTS,
    outputs: tuple[tuple[str, str], ...] = CHURN_OUTPUTS,
) -> dict[str, Any]:
    return {
        "name": name,
        "versions": versions,
        "platform": platform,
        "inputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in inputs],
        "outputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in outputs],
    }


def our_replicas_metadata() -> dict[str, Any]:
    """Every fake address answering our model server's metadata for its version."""
    return {address: metadata_doc("churn", [v]) for address, v in VERSION_OF.items()}


@dataclass
class FakeV2Replicas(FakeReplicas):
    """As FakeReplicas, plus GET /v2/models/{name}[/ready] per address: ``metadata`` holds each
    address's document (no entry: 404, as a model server without the V2 door answers)."""

    metadata: dict[str, Any] = field(default_factory=dict)
    not_ready: set[str] = field(default_factory=set)
    v2_paths: list[str] = field(default_factory=list)
    metadata_asks: Counter[str] = field(default_factory=Counter)  # address -> metadata GETs

    def health(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/v2/"):
            return super().health(request)
        address = self.address(request.url)
        self.v2_paths.append(path)
        if self.behaviour.get(address) == "down":
            raise httpx.ConnectError("connection refused", request=request)
        doc = self.metadata.get(address)
        if doc is None or not path.startswith(f"/v2/models/{doc['name']}"):
            return httpx.Response(404, json={"error": "unknown model"})
        if path.endswith("/ready"):
            return httpx.Response(503 if address in self.not_ready else 200)
        self.metadata_asks[address] += 1
        return httpx.Response(200, json=doc)
