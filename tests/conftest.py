"""Shared fixtures: the trained artifacts every model-server test and integration test uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.train import NOISY_VERSION, ensure_artifacts

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "artifacts"
# The shipped versions and the deliberately worse one the quality gate tests hold back.
VERSIONS = ["v2.3.1", "v2.4.0", NOISY_VERSION]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """The repo's artifacts, trained once if missing (they are built, never committed)."""
    ensure_artifacts(ARTIFACTS, VERSIONS)
    return ARTIFACTS
