"""The model-server tests' shared app: v2.3.1's, its lifespan run (model loaded and warmed),
once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from model_server.app import create_app
from model_server.settings import ModelSettings


@pytest.fixture(scope="module")
def app(artifacts_dir: Path) -> Iterator[FastAPI]:
    settings = ModelSettings(version="v2.3.1", path=artifacts_dir / "v2.3.1" / "model.joblib")
    built = create_app(settings)
    with TestClient(built):  # runs the lifespan: the model is loaded and warmed
        yield built
