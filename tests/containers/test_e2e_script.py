"""deploy/e2e-containers.sh where no Docker engine can be had: it must say so and exit 0."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_e2e_reports_skipped_without_an_engine(tmp_path: Path) -> None:
    routing_before = (ROOT / "routing.yaml").read_bytes()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "STREAMFLOW_", "E2E_"))
    }
    # No engine answers on this socket, and there is no sandbox tool to start one.
    env |= {
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "DOCKER_SANDBOX": str(tmp_path / "no-docker-sandbox"),
        "TMPDIR": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "e2e-containers.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIPPED: no Docker engine can be started here" in done.stdout
    assert "PASSED" not in done.stdout
    assert (ROOT / "routing.yaml").read_bytes() == routing_before
    assert not list(tmp_path.glob("streamflow-e2e.*")), "its temporary directory was left behind"
