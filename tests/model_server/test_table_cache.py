"""The compiled path's tables cache: keyed by the artifact's sha256, never trusted when wrong."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import joblib
import numba
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from model_server import jit_cache, table_cache
from model_server import predictor as predictor_module
from model_server.artifact import ArtifactError
from model_server.loader import load_predictor
from model_server.predictor import Predictor
from model_server.train import generate_dataset, sha256_file

VERSION = "v2.3.1"


@pytest.fixture
def artifact(artifacts_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(artifacts_dir / VERSION, tmp_path / VERSION)
    return tmp_path / VERSION / "model.joblib"


def sha_of(model_path: Path) -> str:
    return json.loads((model_path.parent / "metadata.json").read_text())["sha256"]


def test_a_second_load_serves_from_the_tables_without_the_model(
    artifact: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "tables"
    first, first_metadata = load_predictor(artifact, VERSION, cache)
    assert first.model is not None
    assert [path.name for path in cache.iterdir()] == [f"{sha_of(artifact)}.npz"]
    # Readable by others: the image's baked entry is root's, its runtime user seeds from it.
    assert (cache / f"{sha_of(artifact)}.npz").stat().st_mode & 0o777 == 0o644
    second, second_metadata = load_predictor(artifact, VERSION, cache)
    assert second.model is None  # nothing unpickled
    assert second_metadata == first_metadata
    assert second_metadata["serving_path"] == "compiled"
    X, _ = generate_dataset(rows=2_000, seed=99)
    reference = joblib.load(artifact).predict_proba(X)[:, 1]
    for served in (first, second):
        probabilities, contributions = served.score(X)
        assert np.max(np.abs(probabilities - reference)) <= 1e-9
    # The same tables through the same kernels in one process: equal by construction.
    assert np.array_equal(second.score(X)[0], first.score(X)[0])
    assert np.array_equal(second.score(X)[1], first.score(X)[1])
    assert second.predict_batch(X).predictions_json == first.predict_batch(X).predictions_json


def test_the_artifact_is_still_verified_before_the_cache_is_read(
    artifact: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "tables"
    load_predictor(artifact, VERSION, cache)
    artifact.write_bytes(artifact.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_predictor(artifact, VERSION, cache)


def test_another_artifacts_tables_are_never_used(artifact: Path, tmp_path: Path) -> None:
    """An entry under one sha256 whose key names another artifact (copied, renamed) is a miss."""
    cache = tmp_path / "tables"
    predictor, _ = load_predictor(artifact, VERSION, cache)
    tables = predictor.compiled_tables()
    assert tables is not None
    other = "0" * 64
    table_cache.write(cache, other, tables)
    shutil.copy(
        table_cache.entry_path(cache, other), table_cache.entry_path(cache, sha_of(artifact))
    )
    assert table_cache.read(cache, sha_of(artifact)) is None
    assert table_cache.read(cache, other) is not None
    # And the load falls back to the artifact, then replaces the entry with its own.
    rebuilt, _ = load_predictor(artifact, VERSION, cache)
    assert rebuilt.model is not None
    assert table_cache.read(cache, sha_of(artifact)) is not None


def test_changed_code_is_a_miss(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "tables"
    load_predictor(artifact, VERSION, cache)
    monkeypatch.setattr(table_cache, "FORMAT_VERSION", table_cache.FORMAT_VERSION + 1)
    assert table_cache.read(cache, sha_of(artifact)) is None


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_entry_is_ignored_with_a_log_line(
    damage: str, artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "tables"
    load_predictor(artifact, VERSION, cache)
    entry = table_cache.entry_path(cache, sha_of(artifact))
    data = entry.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "garbage": b"\x93NUMPY" * 9, "empty": b""}
    entry.write_bytes(damaged[damage])
    with caplog.at_level(logging.WARNING, logger="model_server"):
        predictor, metadata = load_predictor(artifact, VERSION, cache)
    assert predictor.model is not None  # built from the artifact instead
    assert metadata["serving_path"] == "compiled"
    assert any("unreadable, ignored" in record.getMessage() for record in caplog.records)
    assert table_cache.read(cache, sha_of(artifact)) is not None  # and rewritten whole


def test_an_entry_holding_a_pickle_is_not_unpickled(artifact: Path, tmp_path: Path) -> None:
    cache = tmp_path / "tables"
    predictor, _ = load_predictor(artifact, VERSION, cache)
    tables = predictor.compiled_tables()
    assert tables is not None
    entry = table_cache.entry_path(cache, sha_of(artifact))
    arrays = dict(np.load(entry))
    arrays["group_table"] = np.array([object()], dtype=object)
    with entry.open("wb") as out:
        np.savez(out, **arrays)
    assert table_cache.read(cache, sha_of(artifact)) is None


def test_a_fallback_model_is_never_cached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    X, y = generate_dataset(rows=500, seed=3)
    model_path = tmp_path / "v9.9.9" / "model.joblib"
    model_path.parent.mkdir()
    joblib.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), model_path)
    metadata = {"version": "v9.9.9", "sha256": sha256_file(model_path)}
    (model_path.parent / "metadata.json").write_text(json.dumps(metadata))
    cache = tmp_path / "tables"
    for _ in range(2):
        with caplog.at_level(logging.WARNING, logger="model_server"):
            predictor, served = load_predictor(model_path, "v9.9.9", cache)
        assert served["serving_path"] == "scikit-learn"
        assert predictor.compiled_tables() is None
        assert not cache.exists() or not any(cache.iterdir())
    assert sum("falling back to scikit-learn" in r.getMessage() for r in caplog.records) == 2


def test_an_unwritable_cache_directory_only_logs(
    artifact: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="model_server"):
        predictor, metadata = load_predictor(artifact, VERSION, blocker / "tables")
    assert metadata["serving_path"] == "compiled"
    assert any("not cached" in record.getMessage() for record in caplog.records)


def test_the_probability_is_predict_probas_own_function_of_the_log_odds(
    artifact: Path, tmp_path: Path
) -> None:
    """Exact by construction, on any CPU: predict_proba (log_loss) is scipy.special.expit of the
    log-odds, and so is the served probability, from the model or from the cached tables.

    numpy's ``1 / (1 + np.exp(-x))`` was not: its SIMD exp is chosen by the CPU, and with
    AVX-512 3,779 of the 200,010 values below differed from expit by up to 2 ulp.
    """
    model = joblib.load(artifact)
    # model._loss.predict_proba is the step GradientBoostingClassifier.predict_proba takes from
    # the log-odds (decision_function) to the probabilities; compared on our log-odds, it leaves
    # nothing but that step to differ.
    cache = tmp_path / "tables"
    built, _ = load_predictor(artifact, VERSION, cache)
    cached, _ = load_predictor(artifact, VERSION, cache)
    assert cached.model is None
    X, _ = generate_dataset(rows=2_000, seed=99)
    for served in (built, cached):
        assert served.fast_explainer is not None
        raw, _ = served.fast_explainer.explain(X)
        assert np.array_equal(served.score(X)[0], model._loss.predict_proba(raw)[:, 1])
    raw = np.concatenate(
        [
            np.random.default_rng(5).normal(0.0, 8.0, 200_000),
            [0.0, -0.0, 1e-300, -745.0, -710.0, -1e308, 710.0, 1e308, 36.0, -36.0],
        ]
    )
    # Far-out log-odds give 0.0 and 1.0 without a warning (the tests turn warnings into errors).
    assert np.array_equal(predictor_module.expit(raw), model._loss.predict_proba(raw)[:, 1])
    assert predictor_module.expit(np.array([-1e308, 1e308])).tolist() == [0.0, 1.0]


def test_tables_round_trip_the_explainer(artifacts_dir: Path, tmp_path: Path) -> None:
    model = joblib.load(artifacts_dir / "v2.4.0" / "model.joblib")
    built = Predictor(model, "v2.4.0")
    tables = built.compiled_tables()
    assert tables is not None
    table_cache.write(tmp_path, "a" * 64, tables)
    loaded = table_cache.read(tmp_path, "a" * 64)
    assert loaded is not None
    assert loaded.n_features == tables.n_features and loaded.init_raw == tables.init_raw
    for before, after in zip(tables.arrays, loaded.arrays, strict=True):
        assert before.dtype == after.dtype and np.array_equal(before, after)
    assert loaded.serving_reason == built.serving_path.reason


def test_the_image_build_step_caches_the_tables_beside_the_kernels(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Dockerfile.model runs jit_cache into the cache it bakes and seeds: the tables go with it."""
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    assert jit_cache.main(["--version", VERSION, "--path", str(artifact)]) == 0
    assert "its tables in" in capsys.readouterr().out
    assert table_cache.read(tmp_path / "numba" / "model_tables", sha_of(artifact)) is not None
