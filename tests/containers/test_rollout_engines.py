"""deploy/rollout-engines/: the Argo Rollouts AnalysisTemplate and the Flagger Canary that use
`streamflow rollout analysis` as their judge.

The AnalysisTemplate is validated against Argo Rollouts' CRD schema (the npm package
@kubernetes-models/argo-rollouts, installed by `make tools`). No registry package ships
Flagger's CRD schema, so the Canary is an example: it parses, and each hook's path, type and
metadata are the ones the judge answers. Both point at paths a real judge answers here, asked
exactly as each engine would ask.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from cli.rollout import DEFAULT_LISTEN
from rollout.analysis import Analysis
from rollout.analysis_server import AnalysisServer
from rollout.counts import Snapshot
from routing_config import load_config
from tests.integration.procs import REPO_ROOT

ENGINES = REPO_ROOT / "deploy" / "rollout-engines"
ARGO = ENGINES / "argo-analysis-template.yaml"
FLAGGER = ENGINES / "flagger-canary.yaml"
NPM_MODULES = REPO_ROOT / ".cache" / "npm" / "node_modules"
VALIDATOR = Path(__file__).with_name("validate_argo.mjs")
PORT = DEFAULT_LISTEN.rsplit(":", 1)[1]


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def run_validator(docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (NPM_MODULES / "@kubernetes-models" / "argo-rollouts").is_dir():
        pytest.skip("node or @kubernetes-models/argo-rollouts missing (make tools installs them)")
    # Node resolves packages from the script's folder up: run a copy beside node_modules.
    script = NPM_MODULES.parent / VALIDATOR.name
    shutil.copyfile(VALIDATOR, script)
    return subprocess.run(
        [node, str(script)], input=json.dumps(docs), capture_output=True, text=True, timeout=60
    )


def test_the_analysis_template_passes_argo_rollouts_schema() -> None:
    result = run_validator([load(ARGO)])
    assert result.stdout.strip() == "valid", result.stdout + result.stderr
    broken = load(ARGO)
    del broken["spec"]["metrics"][0]["provider"]
    refused = run_validator([broken])
    assert refused.returncode == 1 and "provider" in refused.stdout


class Still:
    """A source whose counters stand still: every verdict is pending, which is all these
    tests need (what each engine gets back, not what it says)."""

    def read(self) -> Snapshot:
        return Snapshot({})

    def took_effect(self, revision: str) -> float:
        return 0.0

    def describe(self) -> str:
        return "still"


@pytest.fixture
def judge_url() -> Iterator[str]:
    analysis = Analysis(Still(), lambda: load_config(REPO_ROOT / "routing.yaml"))
    server = AnalysisServer(("127.0.0.1", 0), analysis)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_argo_asks_a_path_the_judge_answers_with_the_fields_its_conditions_read(
    judge_url: str,
) -> None:
    metric = load(ARGO)["spec"]["metrics"][0]
    url = metric["provider"]["web"]["url"]
    assert f":{PORT}/verdict?" in url
    assert metric["successCondition"] == "result.status == 'pass'"
    assert metric["failureCondition"] == "result.status == 'fail'"
    stable = load_config(REPO_ROOT / "routing.yaml").config.stable
    candidate = next(v for v in load_config(REPO_ROOT / "routing.yaml").config.versions
                     if v != stable)  # fmt: skip
    asked = urlsplit(
        url.replace("{{args.candidate}}", candidate).replace("{{args.stable}}", stable)
    )
    response = httpx.get(f"{judge_url}{asked.path}?{asked.query}")
    assert response.status_code == 200
    assert response.json()["status"] in ("pass", "fail", "pending")
    assert response.json()["candidate"] == candidate and response.json()["stable"] == stable


def test_flaggers_hooks_are_paths_the_judge_answers_as_flagger_reads_them(
    judge_url: str,
) -> None:
    canary = load(FLAGGER)
    assert canary["apiVersion"] == "flagger.app/v1beta1" and canary["kind"] == "Canary"
    hooks = {h["type"]: h for h in canary["spec"]["analysis"]["webhooks"]}
    assert set(hooks) == {"pre-rollout", "rollout", "confirm-promotion"}
    versions = load_config(REPO_ROOT / "routing.yaml").config.versions
    expected = {"pre-rollout": 200, "rollout": 200, "confirm-promotion": 425}  # pending
    for kind, hook in hooks.items():
        path = urlsplit(hook["url"]).path
        assert path == f"/flagger/{kind}" and f":{PORT}/" in hook["url"]
        metadata = hook["metadata"]
        assert all(isinstance(v, str) for v in metadata.values())  # Flagger's metadata
        assert metadata["candidate"] in versions and metadata["stable"] in versions
        payload = {"name": canary["metadata"]["name"], "namespace": "models",
                   "phase": "Progressing", "metadata": metadata}  # fmt: skip
        assert httpx.post(f"{judge_url}{path}", json=payload).status_code == expected[kind]
