"""The benchmark runs end to end for a few seconds (1 s wrk runs, trivial backend only).

Not a performance test: the numbers are not judged, only that every part ran and answered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.tools import ToolError, ensure_tools

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tools() -> None:
    try:
        ensure_tools()  # installs wrk and nginx with apt-get when missing (as root)
    except ToolError as exc:
        pytest.skip(f"benchmark tools unavailable: {exc}")


def test_smoke_run_measures_every_target(tools: None, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())

    rows = {(r["target"], r["connections"]): r for r in doc["measurements"]}
    for target in ("direct", "nginx", "gateway"):
        for connections in (1, 64):
            row = rows[(target, connections)]
            assert row["backend"] == "trivial"
            assert row["requests"] > 0 and row["rps"] > 0, row
            assert row["errors"] == 0, row
    gateway = rows[("gateway", 64)]
    assert gateway["x_nginx"] is not None and gateway["x_direct"] is not None

    # The gateway ran with its features on: tags, sticky routing, a revision.
    check = next(c for c in doc["checks"] if c.get("target") == "gateway/trivial")
    assert check["status"] == 200 and not check["missing"]

    batch = doc["batch"]
    assert batch["rows"] > 0 and batch["probabilities_equal"]
    assert {bar["name"].split(":")[0] for bar in doc["bars"]}  # bars evaluated, not judged here
    assert "All bars met" in proc.stdout
