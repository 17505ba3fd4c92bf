"""``streamflow export mlserver``: the command around model_server.mlserver_export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.samples import run


def test_export_mlserver_writes_the_directory(
    capsys: pytest.CaptureFixture[str], artifacts_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mlserver-model"
    code, stdout, _ = run(
        capsys, "export", "mlserver", "v2.4.0", "--out", str(out), "--artifacts", str(artifacts_dir)
    )
    assert code == 0
    assert f"exported v2.4.0 as model 'churn' to {out}" in stdout
    assert "largest gap 0.0e+00" in stdout
    settings = json.loads((out / "churn" / "model-settings.json").read_text())
    assert settings["parameters"]["version"] == "v2.4.0"
    assert (out / "churn" / "model.joblib").is_file()
    assert (out / "settings.json").is_file()


def test_export_names_the_model(
    capsys: pytest.CaptureFixture[str], artifacts_dir: Path, tmp_path: Path
) -> None:
    argv = ["--out", str(tmp_path), "--artifacts", str(artifacts_dir), "--name", "attrition"]
    code, _, _ = run(capsys, "export", "mlserver", "v2.3.1", *argv)
    assert code == 0
    settings = json.loads((tmp_path / "attrition" / "model-settings.json").read_text())
    assert settings["name"] == "attrition"


def test_an_unknown_version_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], artifacts_dir: Path, tmp_path: Path
) -> None:
    argv = ["--out", str(tmp_path / "x"), "--artifacts", str(artifacts_dir)]
    code, _, stderr = run(capsys, "export", "mlserver", "v9.9.9", *argv)
    assert code == 1
    assert stderr.strip() == (
        f"cannot export v9.9.9: model file not found: {artifacts_dir / 'v9.9.9' / 'model.joblib'}"
    )
    assert not (tmp_path / "x").exists()


def test_export_needs_a_format_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "export")[0] == 2
    code, _, stderr = run(capsys, "export", "mlserver", "v2.3.1")
    assert code == 2
    assert "--out" in stderr


def test_a_model_name_is_one_path_segment(
    capsys: pytest.CaptureFixture[str], artifacts_dir: Path, tmp_path: Path
) -> None:
    argv = ["--out", str(tmp_path / "x"), "--artifacts", str(artifacts_dir), "--name", "../up"]
    code, _, stderr = run(capsys, "export", "mlserver", "v2.3.1", *argv)
    assert code == 1
    assert "model name '../up'" in stderr
    assert not (tmp_path / "up").exists() and not (tmp_path / "x").exists()


def test_without_the_model_server_it_says_where_to_run_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The gateway's image runs this CLI without the model server (tests/containers)."""
    import sys

    monkeypatch.setitem(sys.modules, "model_server.mlserver_export", None)
    code, _, stderr = run(capsys, "export", "mlserver", "v2.3.1", "--out", str(tmp_path / "x"))
    assert code == 1
    assert "needs the model server's packages" in stderr and "Traceback" not in stderr
    assert "gateway's image has none" in stderr
