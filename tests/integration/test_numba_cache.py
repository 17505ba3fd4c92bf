"""A replica's first start fills numba's cache and the tables cache beside it; later processes
load the kernels and the tables from them.

Nothing here is timed: the tests check the mechanism (files written, cache hits, no recompiles,
no scikit-learn).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.procs import REPO_ROOT, replica, wait_for

KERNELS = {
    "treeshap._build_tables",
    "treeshap._shap_serial",
    "treeshap._shap_columns",
    # The probability alone, for a V2 request that asks for no reasons.
    "treeshap._log_odds",
    "treeshap._log_odds_columns",
}
# What a start with the tables cached calls: the tables are not built again.
SERVING_KERNELS = KERNELS - {"treeshap._build_tables"}

# In a fresh process: build the explainer as a replica does, report each kernel's cache stats.
CACHE_STATS = """
import json, sys
from pathlib import Path
from model_server.artifact import load_artifact
from model_server import treeshap
artifact = load_artifact(Path(sys.argv[1]), "v2.3.1")
treeshap.GradientBoostingTreeShap(artifact.model).warm()
kernels = {"_build_tables": treeshap._build_tables, "_shap_serial": treeshap._shap_serial,
           "_shap_columns": treeshap._shap_columns, "_log_odds": treeshap._log_odds,
           "_log_odds_columns": treeshap._log_odds_columns}
print(json.dumps({name: [sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())]
                  for name, k in kernels.items()}))
"""


# In a fresh process: start the model server's app (lifespan included), answer a batch and
# /metadata, report which scikit-learn modules were imported.
SERVE_AND_REPORT = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from model_server.app import create_app
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.settings import ModelSettings
customers = [dict(EXAMPLE_CUSTOMER, tenure=t, monthly_charges=20.0 + 3 * t) for t in range(40)]
app = create_app(ModelSettings(version="v2.3.1", path=Path(sys.argv[1])))
with TestClient(app) as client:
    batch = client.post("/predict/batch", json={"customers": customers}).json()
    single = client.post("/predict", json=customers[7]).json()
    metadata = client.get("/metadata").json()
print(json.dumps({
    "predictions": batch["predictions"], "single": single, "metadata": metadata,
    "sklearn": sorted(name for name in sys.modules if name.split(".")[0] == "sklearn"),
}))
"""


def serve_and_report(model: Path, cache: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", SERVE_AND_REPORT, str(model)],
        env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def indexed_kernels(cache: Path) -> set[str]:
    return {path.name.split("-")[0] for path in cache.rglob("*.nbi")}


@pytest.fixture(scope="module")
def filled_cache(
    artifacts_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The numba cache directory of one real replica start, taken from empty."""
    cache = tmp_path_factory.mktemp("numba-cache")
    proc = replica("first-start", "v2.3.1", artifacts_dir)
    proc.env["NUMBA_CACHE_DIR"] = str(cache)
    proc.start(log_dir)
    try:
        wait_for(f"http://{proc.address}/ready", timeout=180)
    finally:
        proc.stop()
    return cache


def test_first_start_caches_every_kernel_and_the_tables(
    filled_cache: Path, artifacts_dir: Path
) -> None:
    assert indexed_kernels(filled_cache) == KERNELS
    assert all(path.stat().st_size > 0 for path in filled_cache.rglob("*.nbc"))
    metadata = json.loads((artifacts_dir / "v2.3.1" / "metadata.json").read_text())
    tables = filled_cache / "model_tables"
    assert [path.name for path in tables.iterdir()] == [f"{metadata['sha256']}.npz"]


def test_a_warm_start_imports_no_scikit_learn_and_answers_as_a_cold_one(
    filled_cache: Path, artifacts_dir: Path, tmp_path: Path
) -> None:
    """Cold: the tables are not cached (the kernels are, to keep this fast), so the artifact is
    unpickled and the tables built and cached; warm: served from the cached tables."""
    cache = tmp_path / "numba"
    shutil.copytree(filled_cache, cache, ignore=shutil.ignore_patterns("model_tables"))
    model = artifacts_dir / "v2.3.1" / "model.joblib"
    cold = serve_and_report(model, cache)
    assert "sklearn.ensemble" in cold["sklearn"]
    assert (cache / "model_tables").is_dir()
    warm = serve_and_report(model, cache)
    assert warm["sklearn"] == []
    assert warm["predictions"] == cold["predictions"]
    assert len(warm["predictions"]) == 40
    assert warm["single"] == cold["single"] == cold["predictions"][7]
    assert warm["metadata"] == cold["metadata"]
    assert warm["metadata"]["serving_path"] == "compiled"


def test_a_second_process_loads_every_kernel_from_the_cache(
    filled_cache: Path, artifacts_dir: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CACHE_STATS, str(artifacts_dir / "v2.3.1" / "model.joblib")],
        env={**os.environ, "NUMBA_CACHE_DIR": str(filled_cache)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    # [hits, misses] per kernel: loaded, not compiled.
    assert stats == {
        "_build_tables": [1, 0],
        "_shap_serial": [1, 0],
        "_shap_columns": [1, 0],
        "_log_odds": [1, 0],
        "_log_odds_columns": [1, 0],
    }


def test_a_seeded_replica_copies_the_baked_cache_and_loads_from_it(
    filled_cache: Path, artifacts_dir: Path, log_dir: Path, tmp_path: Path
) -> None:
    """As in the model image: an empty writable cache, the baked one as MODEL_NUMBA_CACHE_SEED."""
    writable = tmp_path / "numba"
    proc = replica("seeded-start", "v2.3.1", artifacts_dir)
    proc.env.update(
        {
            "NUMBA_CACHE_DIR": str(writable),
            "MODEL_NUMBA_CACHE_SEED": str(filled_cache),
            "NUMBA_DEBUG_CACHE": "1",  # numba prints every cache load and save
            "PYTHONUNBUFFERED": "1",
        }
    )
    proc.start(tmp_path)
    try:
        wait_for(f"http://{proc.address}/ready", timeout=180)
    finally:
        proc.stop()
    output = (tmp_path / "seeded-start.log").read_text()
    assert indexed_kernels(writable) == KERNELS
    # The tables came with the seed: the serving kernels load, the tables are not built again.
    assert [p.name for p in (writable / "model_tables").iterdir()] == [
        p.name for p in (filled_cache / "model_tables").iterdir()
    ]
    assert "tables from the cache" in output, output
    for kernel in SERVING_KERNELS:
        assert f"{kernel}-" in output and "data loaded from" in output, output
    assert "data saved to" not in output, output
    assert output.count("data loaded from") == len(SERVING_KERNELS), output
