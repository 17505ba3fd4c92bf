"""A replica's first start fills numba's cache; later processes load the kernels from it.

Nothing here is timed: the tests check the mechanism (files written, cache hits, no recompiles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.procs import REPO_ROOT, replica, wait_for

KERNELS = {"treeshap._build_tables", "treeshap._shap_serial", "treeshap._shap_columns"}

# In a fresh process: build the explainer as a replica does, report each kernel's cache stats.
CACHE_STATS = """
import json, sys
from pathlib import Path
from model_server.artifact import load_artifact
from model_server import treeshap
artifact = load_artifact(Path(sys.argv[1]), "v2.3.1")
treeshap.GradientBoostingTreeShap(artifact.model).warm()
kernels = {"_build_tables": treeshap._build_tables, "_shap_serial": treeshap._shap_serial,
           "_shap_columns": treeshap._shap_columns}
print(json.dumps({name: [sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values())]
                  for name, k in kernels.items()}))
"""


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


def test_first_start_caches_every_kernel(filled_cache: Path) -> None:
    assert indexed_kernels(filled_cache) == KERNELS
    assert all(path.stat().st_size > 0 for path in filled_cache.rglob("*.nbc"))


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
    assert stats == {"_build_tables": [1, 0], "_shap_serial": [1, 0], "_shap_columns": [1, 0]}


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
    for kernel in KERNELS:
        assert f"{kernel}-" in output and "data loaded from" in output, output
    assert "data saved to" not in output, output
    assert output.count("data loaded from") == len(KERNELS), output
