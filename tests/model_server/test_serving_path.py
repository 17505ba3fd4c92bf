"""The compiled path serves predict_proba's probability; other models fall back, saying so."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import joblib
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from model_server.app import create_app
from model_server.features import CATEGORICAL_MAPS, encode_rows
from model_server.predictor import Predictor
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest
from model_server.settings import ModelSettings
from model_server.train import generate_dataset, sha256_file
from vocabulary.tiers import RISK_TIERS

VERSIONS = ["v2.3.1", "v2.4.0"]
# The served probability is scipy.special.expit of the log-odds, as predict_proba's is, so only the
# log-odds can differ: both add the same leaves in the same order, equal bit for bit on x86-64
# (every row below), but where scikit-learn's compiler fuses its `out += scale * value` into an
# FMA (GCC may, on aarch64) the sum can round differently in the last bits, about 1e-16 per tree.
# A wrong leaf moves the log-odds by at least 3.9e-6 (the smallest of the served models' 6,300
# leaves, learning rate applied), so a probability between 0.001 and 0.999 by over 3.8e-9.
TOLERANCE = 1e-9


def extreme_customers() -> list[ChurnPredictionRequest]:
    """Every category, with the schema's bounds and far-out values on the numeric fields."""
    grid = itertools.product(
        [0, 1, 60, 119, 120],  # tenure
        [0.0, 0.01, 5_000.0, 1e9],  # monthly_charges
        [0.0, 1e7],  # total_charges
        CATEGORICAL_MAPS["contract_type"],
        CATEGORICAL_MAPS["payment_method"],
        CATEGORICAL_MAPS["internet_service"],
        [0, 50],  # num_support_tickets
        [0, 4, 100],  # streaming_services
        [True, False],  # paperless_billing, senior_citizen together
    )
    return [
        ChurnPredictionRequest(
            tenure=tenure,
            monthly_charges=monthly,
            total_charges=total,
            contract_type=contract,
            payment_method=payment,
            num_support_tickets=tickets,
            internet_service=internet,
            streaming_services=streaming,
            paperless_billing=flag,
            senior_citizen=not flag,
        )
        for tenure, monthly, total, contract, payment, internet, tickets, streaming, flag in grid
    ]


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    """20,000 rows like the training data plus 8,640 at the schema's edges."""
    X, _ = generate_dataset(rows=20_000, seed=2718)
    return np.vstack([X, encode_rows(extreme_customers())])


@pytest.mark.parametrize("version", VERSIONS)
def test_compiled_probability_equals_predict_proba(
    version: str, artifacts_dir: Path, rows: np.ndarray
) -> None:
    model = joblib.load(artifacts_dir / version / "model.joblib")
    predictor = Predictor(model, version)
    assert predictor.serving_path.name == "compiled"
    assert len(rows) >= 20_000
    probabilities, _ = predictor.score(rows)
    reference = model.predict_proba(rows)[:, 1]
    assert np.max(np.abs(probabilities - reference)) <= TOLERANCE
    # One row at a time (the serial kernel) gives the same as the batch (the column-wise one).
    for i in range(0, len(rows), 997):
        single, _ = predictor.score(rows[i : i + 1])
        assert abs(single[0] - reference[i]) <= TOLERANCE


@pytest.mark.parametrize("version", VERSIONS)
def test_served_probability_is_predict_proba_rounded(version: str, artifacts_dir: Path) -> None:
    model = joblib.load(artifacts_dir / version / "model.joblib")
    predictor = Predictor(model, version)
    customers = extreme_customers()[::7]
    reference = model.predict_proba(encode_rows(customers))[:, 1]
    batch = [r["churn_probability"] for r in predictor.predict(customers)]
    single = [predictor.predict([c])[0]["churn_probability"] for c in customers]
    assert_rounded_from(batch, reference)
    assert_rounded_from(single, reference)


def assert_rounded_from(served: list[float], reference: np.ndarray) -> None:
    """Each served value is its reference rounded to 4 places; a reference within TOLERANCE of a
    rounding edge may be served rounded either way (the log-odds may differ in the last bits on
    another CPU, see TOLERANCE). Elsewhere both bounds round alike: the value is exact."""
    below, above = np.round(reference - TOLERANCE, 4), np.round(reference + TOLERANCE, 4)
    assert np.all((np.asarray(served) == below) | (np.asarray(served) == above))


def small_forest() -> RandomForestClassifier:
    X, y = generate_dataset(rows=600, seed=7)
    return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)


def test_other_estimators_fall_back_to_scikit_learn(caplog: pytest.LogCaptureFixture) -> None:
    model = small_forest()
    with caplog.at_level(logging.WARNING, logger="model_server"):
        predictor = Predictor(model, "v9.9.9")
    assert predictor.serving_path.name == "scikit-learn"
    assert "RandomForestClassifier" in predictor.serving_path.reason
    assert any("falling back to scikit-learn" in r.getMessage() for r in caplog.records)
    customer = ChurnPredictionRequest(**EXAMPLE_CUSTOMER)
    expected = model.predict_proba(encode_rows([customer]))[0, 1]
    result = predictor.predict([customer])[0]
    assert result["churn_probability"] == round(float(expected), 4)
    assert len(result["top_reasons"]) == 3


def test_a_loss_without_a_sigmoid_falls_back() -> None:
    X, y = generate_dataset(rows=600, seed=8)
    model = GradientBoostingClassifier(loss="exponential", n_estimators=10, max_depth=2)
    predictor = Predictor(model.fit(X, y), "v9.9.9")
    assert predictor.serving_path.name == "scikit-learn"
    assert "exponential" in predictor.serving_path.reason
    probabilities, _ = predictor.score(X[:50])
    # The fallback calls predict_proba itself: equal by construction.
    assert np.array_equal(probabilities, model.predict_proba(X[:50])[:, 1])


def test_metadata_names_the_serving_path(tmp_path: Path, artifacts_dir: Path) -> None:
    version_dir = tmp_path / "v9.9.9"
    version_dir.mkdir()
    model_path = version_dir / "model.joblib"
    joblib.dump(small_forest(), model_path)
    metadata = {"version": "v9.9.9", "sha256": sha256_file(model_path)}
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    with TestClient(create_app(ModelSettings(version="v9.9.9", path=model_path))) as client:
        fallback = client.get("/metadata").json()
        assert client.post("/predict", json=EXAMPLE_CUSTOMER).status_code == 200
    assert fallback["serving_path"] == "scikit-learn"
    assert "RandomForestClassifier" in fallback["serving_path_reason"]
    settings = ModelSettings(version="v2.3.1", path=artifacts_dir / "v2.3.1" / "model.joblib")
    with TestClient(create_app(settings)) as client:
        assert client.get("/metadata").json()["serving_path"] == "compiled"


@pytest.mark.parametrize("version", VERSIONS)
def test_batch_json_is_the_single_answers_as_orjson_writes_them(
    version: str, artifacts_dir: Path
) -> None:
    predictor = Predictor(joblib.load(artifacts_dir / version / "model.joblib"), version)
    customers = extreme_customers()[::5]
    answer = predictor.predict_batch(encode_rows(customers))
    singles = [predictor.predict([c])[0] for c in customers]
    # Byte for byte: the batch's spelling of every number, key and string is orjson's.
    assert answer.predictions_json == orjson.dumps(singles)
    assert answer.probabilities.tolist() == [s["churn_probability"] for s in singles]
    assert [RISK_TIERS[t] for t in answer.tiers] == [s["risk_tier"] for s in singles]


def test_a_version_with_a_percent_sign_is_written_as_is() -> None:
    X, y = generate_dataset(rows=400, seed=9)
    model = GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0).fit(X, y)
    predictor = Predictor(model, 'v1%s"x')
    rows = predictor.predict_batch(X[:3])
    assert [r["model_version"] for r in orjson.loads(rows.predictions_json)] == ['v1%s"x'] * 3


@pytest.mark.parametrize("path", ["compiled", "scikit-learn"])
def test_outputs_with_or_without_reasons_serve_the_same_probabilities(
    path: str, artifacts_dir: Path, rows: np.ndarray
) -> None:
    # The V2 columns: the probabilities and tiers /predict/batch serves, the SHAP pass (and the
    # reasons) only when asked for.
    if path == "compiled":
        predictor = Predictor(joblib.load(artifacts_dir / "v2.3.1" / "model.joblib"), "v2.3.1")
    else:
        predictor = Predictor(small_forest(), "v9.9.9")
    assert predictor.serving_path.name == path
    for n in (1, 300):
        answer = predictor.predict_batch(rows[:n])
        for reasons in (False, True):
            outputs = predictor.outputs(rows[:n], reasons=reasons)
            assert np.array_equal(outputs.probabilities, answer.probabilities)
            assert np.array_equal(outputs.tiers, answer.tiers)
            assert (outputs.reasons is not None) is reasons
        served = orjson.loads(answer.predictions_json)
        assert outputs.reasons == [orjson.dumps(p["top_reasons"]) for p in served]
