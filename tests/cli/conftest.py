from pathlib import Path

import pytest

import cli
from tests.cli.samples import SAMPLE


@pytest.fixture(autouse=True)
def _no_routing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.ROUTING_FILE_ENV, raising=False)


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(SAMPLE)
    return path
