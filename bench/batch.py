"""/predict/batch with 1,000 rows against the source chapter's batch code on the same artifact.

The baseline below is the chapter's endpoint body, reimplemented faithfully: a one-row
DataFrame per customer, ``pd.concat``, one ``predict_proba``, then SHAP row by row on a fresh
one-row DataFrame, with pydantic response objects. It is timed from the parsed JSON payload to
the response document (validation included), which is what its FastAPI endpoint would spend
between reading the body and writing the answer. Ours is timed over the same span, from the
parsed payload to the answer's JSON bytes (its rows checked and encoded, scored, explained and
written), which is more than the chapter's dict.

The two are measured in alternating rounds (ours, the chapter's, ours, ...), in process and
over HTTP, so a change in the machine's load falls on both.
"""

from __future__ import annotations

import json
import random
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import shap

from model_server.artifact import load_artifact
from model_server.features import (
    CONTRACT_MAP,
    FEATURE_ORDER,
    INTERNET_MAP,
    PAYMENT_MAP,
    encode_rows,
)
from model_server.plain_rows import encode_plain_batch
from model_server.predictor import Predictor
from model_server.schemas import (
    BatchPredictionRequest,
    BatchPredictionResponse,
    ChurnPredictionRequest,
    ChurnPredictionResponse,
    Reason,
    ShapReason,
)


def make_customers(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Valid, varied customers (the same ones every run)."""
    rng = random.Random(seed)
    customers = []
    for _ in range(count):
        tenure = rng.randint(0, 72)
        monthly = round(rng.uniform(18, 120), 2)
        customers.append(
            {
                "tenure": tenure,
                "monthly_charges": monthly,
                "total_charges": round(monthly * tenure * rng.uniform(0.9, 1.05), 2),
                "contract_type": rng.choice(list(CONTRACT_MAP)),
                "payment_method": rng.choice(list(PAYMENT_MAP)),
                "num_support_tickets": rng.randint(0, 9),
                "internet_service": rng.choice(list(INTERNET_MAP)),
                "streaming_services": rng.randint(0, 4),
                "paperless_billing": rng.random() < 0.6,
                "senior_citizen": rng.random() < 0.16,
            }
        )
    return customers


class ChapterBatch:
    """The chapter's ``predict_batch`` (encode_features, get_top_shap_reasons), as written."""

    def __init__(self, model: Any, version: str) -> None:
        self.model = model
        self.version = version
        self.explainer = shap.TreeExplainer(model)

    def encode_features(self, request: ChurnPredictionRequest) -> pd.DataFrame:
        data = {
            "tenure": request.tenure,
            "monthly_charges": request.monthly_charges,
            "total_charges": request.total_charges,
            "contract_type": CONTRACT_MAP.get(request.contract_type, -1),
            "payment_method": PAYMENT_MAP.get(request.payment_method, -1),
            "num_support_tickets": request.num_support_tickets,
            "internet_service": INTERNET_MAP.get(request.internet_service, -1),
            "streaming_services": request.streaming_services,
            "paperless_billing": int(request.paperless_billing),
            "senior_citizen": int(request.senior_citizen),
        }
        for name in ("contract_type", "payment_method", "internet_service"):
            if data[name] == -1:
                raise ValueError(f"Unknown value for {name}: {getattr(request, name)}")
        return pd.DataFrame([data], columns=list(FEATURE_ORDER))

    def get_top_shap_reasons(self, features_df: pd.DataFrame, n: int = 3) -> list[ShapReason]:
        shap_values = self.explainer.shap_values(features_df)
        sv = shap_values[1][0] if isinstance(shap_values, list) else shap_values[0]
        feature_values = features_df.iloc[0].to_dict()
        contributions: list[Reason] = []
        for fname, shap_val in zip(FEATURE_ORDER, sv, strict=True):
            contributions.append(
                {
                    "feature": fname,
                    "value": float(feature_values[fname]),
                    "shap_contribution": round(float(shap_val), 4),
                    "direction": "increases_risk" if shap_val > 0 else "decreases_risk",
                }
            )
        contributions.sort(key=lambda x: abs(x["shap_contribution"]), reverse=True)
        return [ShapReason(**c) for c in contributions[:n]]

    def predict_batch(self, request: BatchPredictionRequest) -> BatchPredictionResponse:
        start = time.time()
        rows = [self.encode_features(customer) for customer in request.customers]
        batch_df = pd.concat(rows, ignore_index=True)
        with warnings.catch_warnings():
            # The artifact was fitted on a plain matrix; the chapter passes DataFrames.
            warnings.filterwarnings("ignore", message="X has feature names")
            probabilities = self.model.predict_proba(batch_df)[:, 1]
        predictions = []
        for i, _customer in enumerate(request.customers):
            prob = float(probabilities[i])
            features_df = pd.DataFrame([batch_df.iloc[i]])
            reasons = self.get_top_shap_reasons(features_df, n=3)
            predictions.append(
                ChurnPredictionResponse(
                    churn_probability=round(prob, 4),
                    risk_tier=risk_tier(prob),
                    top_reasons=reasons,
                    model_version=self.version,
                )
            )
        elapsed_ms = (time.time() - start) * 1000
        return BatchPredictionResponse(
            predictions=predictions,
            batch_size=len(predictions),
            processing_time_ms=round(elapsed_ms, 2),
        )

    def predict_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Parsed JSON in, response document out: what the endpoint does around the body."""
        return self.predict_batch(BatchPredictionRequest.model_validate(payload)).model_dump()


def risk_tier(probability: float) -> str:
    if probability < 0.3:
        return "low"
    if probability < 0.6:
        return "medium"
    return "high"


@dataclass
class BatchResult:
    rows: int
    chapter_ms: float
    ours_in_process_ms: float
    chapter_http_ms: float | None = None
    ours_http_ms: float | None = None
    ours_http_server_ms: float | None = None  # the server's own processing_time_ms
    probabilities_equal: bool = False
    top_reason_agreement: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def speedup_in_process(self) -> float:
        return self.chapter_ms / self.ours_in_process_ms

    @property
    def speedup_http(self) -> float | None:
        if self.ours_http_ms and self.chapter_http_ms:
            return self.chapter_http_ms / self.ours_http_ms
        return None

    def as_dict(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "rows": self.rows,
            "chapter_ms": ms(self.chapter_ms),
            "ours_in_process_ms": ms(self.ours_in_process_ms),
            "chapter_http_ms": ms(self.chapter_http_ms),
            "ours_http_ms": ms(self.ours_http_ms),
            "ours_http_server_ms": self.ours_http_server_ms,
            "speedup_in_process": round(self.speedup_in_process, 1),
            "speedup_http": None if self.speedup_http is None else round(self.speedup_http, 1),
            "probabilities_equal": self.probabilities_equal,
            "top_reason_agreement": round(self.top_reason_agreement, 4),
            "notes": self.notes,
        }


def _timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def _alternate(
    ours: Callable[[], Any], chapter: Callable[[], Any] | None, repeats: int, chapter_repeats: int
) -> tuple[float, Any, float, Any]:
    """Median ms and last result of each, in chapter_repeats rounds of (ours several times,
    the chapter's once), ours ``repeats`` times in all."""
    ours_ms: list[float] = []
    chapter_ms: list[float] = []
    ours_result = chapter_result = None
    rounds = max(1, chapter_repeats)
    for i in range(rounds):
        for _ in range(repeats // rounds + (i < repeats % rounds)):
            elapsed, ours_result = _timed_ms(ours)
            ours_ms.append(elapsed)
        if chapter is not None:
            elapsed, chapter_result = _timed_ms(chapter)
            chapter_ms.append(elapsed)
    chapter_median = statistics.median(chapter_ms) if chapter_ms else 0.0
    return statistics.median(ours_ms), ours_result, chapter_median, chapter_result


def run_batch(
    model_path: Path,
    version: str,
    rows: int,
    *,
    url: str | None = None,
    chapter_url: str | None = None,
    repeats: int = 5,
    chapter_repeats: int = 1,
) -> BatchResult:
    """Time the chapter's batch code and ours, in process and (given the URLs) over HTTP."""
    model = load_artifact(model_path, version).model
    payload = {"customers": make_customers(rows)}
    chapter = ChapterBatch(model, version)
    ours = Predictor(model, version)

    def in_process(doc: dict[str, Any]) -> bytes:
        # What our endpoint does with the parsed body: plain rows encoded column-wise (pydantic
        # for anything else), scored, explained, and the answer's predictions as JSON.
        matrix = encode_plain_batch(doc)
        if matrix is None:
            matrix = encode_rows(BatchPredictionRequest.model_validate(doc).customers)
        return ours.predict_batch(matrix).predictions_json

    warm = {"customers": payload["customers"][:5]}
    chapter.predict_payload(warm)  # first calls pay for lazy set-up in pandas, sklearn, shap
    in_process(warm)

    ours_ms, ours_json, chapter_ms, chapter_doc = _alternate(
        lambda: in_process(payload),
        lambda: chapter.predict_payload(payload),
        repeats,
        chapter_repeats,
    )
    result = BatchResult(rows=rows, chapter_ms=chapter_ms, ours_in_process_ms=ours_ms)
    compare(chapter_doc["predictions"], orjson.loads(ours_json), result)

    if url is not None:
        body = json.dumps(payload).encode()
        with httpx.Client(timeout=120) as client:
            warm_body = json.dumps(warm).encode()
            for target in (url, chapter_url):
                if target is not None:
                    client.post(target, content=warm_body, headers=JSON).raise_for_status()
            result.ours_http_ms, raw, chapter_http_ms, chapter_raw = _alternate(
                lambda: post(client, url, body),
                None if chapter_url is None else lambda: post(client, chapter_url, body),
                repeats,
                chapter_repeats,
            )
        doc = json.loads(raw)
        result.ours_http_server_ms = doc.get("processing_time_ms")
        if doc.get("batch_size") != rows:
            result.notes.append(f"our endpoint answered {doc.get('batch_size')} rows, not {rows}")
        if chapter_url is not None:
            result.chapter_http_ms = chapter_http_ms
            chapter_answer = json.loads(chapter_raw)
            if chapter_answer.get("batch_size") != rows:
                result.notes.append(
                    f"chapter endpoint answered {chapter_answer.get('batch_size')} rows"
                )
    return result


JSON = {"content-type": "application/json"}


def post(client: httpx.Client, url: str, body: bytes) -> bytes:
    """POST until the last byte of the answer; decoding it is the client's cost: not timed."""
    response = client.post(url, content=body, headers=JSON)
    response.raise_for_status()
    return response.content


def compare(
    chapter_rows: Sequence[dict[str, Any]], our_rows: Sequence[dict[str, Any]], result: BatchResult
) -> None:
    """Both must score the same: equal probabilities; top reasons equal up to exact ties."""
    chapter_p = np.array([r["churn_probability"] for r in chapter_rows])
    our_p = np.array([r["churn_probability"] for r in our_rows])
    result.probabilities_equal = bool(np.allclose(chapter_p, our_p, atol=1e-4))
    same = sum(
        [x["feature"] for x in a["top_reasons"]] == [x["feature"] for x in b["top_reasons"]]
        for a, b in zip(chapter_rows, our_rows, strict=True)
    )
    result.top_reason_agreement = same / max(1, len(our_rows))
    if not result.probabilities_equal:
        result.notes.append("probabilities differ between the chapter's code and ours")
