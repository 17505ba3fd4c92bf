"""Shared fixtures: the trained artifacts every model-server test and integration test uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.train import ensure_artifacts

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "artifacts"
VERSIONS = ["v2.3.1", "v2.4.0"]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """The repo's artifacts, trained once if missing (they are built, never committed)."""
    ensure_artifacts(ARTIFACTS, VERSIONS)
    return ARTIFACTS
