"""Processes that cannot serve correctly refuse to start, with a one-line reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.integration.conftest import HOSTS
from tests.integration.procs import REPO_ROOT, gateway, replica, routing_yaml


def run_to_exit(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gateway_refuses_an_invalid_routing_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(routing_yaml(HOSTS, weights={"v2.3.1": 90, "v2.4.0": 8}))
    proc = gateway(path, {})
    result = run_to_exit(proc.argv, proc.env)
    assert result.returncode == 1
    assert "gateway refused to start" in result.stderr
    assert "canary.weights: sum to 98, must be 100" in result.stderr
    assert "Traceback" not in result.stderr


def test_model_server_refuses_a_tampered_artifact(artifacts_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(artifacts_dir / "v2.3.1", tmp_path / "v2.3.1")
    model = tmp_path / "v2.3.1" / "model.joblib"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    proc = replica("tampered", "v2.3.1", tmp_path)
    result = run_to_exit(proc.argv, proc.env)
    assert result.returncode == 1
    assert "model server refused to start: checksum mismatch" in result.stderr
    assert "Traceback" not in result.stderr


def test_model_server_refuses_a_version_mismatch(artifacts_dir: Path) -> None:
    proc = replica("mismatch", "v2.4.0", artifacts_dir)
    proc.env["MODEL_PATH"] = str(artifacts_dir / "v2.3.1" / "model.joblib")
    result = run_to_exit(proc.argv, proc.env)
    assert result.returncode == 1
    assert "version mismatch" in result.stderr
    assert "Traceback" not in result.stderr
