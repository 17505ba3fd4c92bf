"""What running the product leaves in the working tree stays out of git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize(
    "path",
    [
        "routing.rollout.jsonl",  # the rollout controller's decision log beside routing.yaml
        "data/predictions.sqlite3",  # the local stack's prediction log
        "artifacts/v2.4.0/model.joblib",
        ".cache/numba/x.nbi",
    ],
)
def test_what_the_product_writes_is_ignored(path: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, f"{path} is not in .gitignore"
