"""The rollout files the repository ships: routing.yaml's commented plan and the scrape config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from routing_config import load_config, parse_config
from routing_config.rollout_plan import RolloutThresholds

ROOT = Path(__file__).resolve().parents[2]


def test_routing_yaml_example_plan_is_valid_and_the_defaults() -> None:
    text = (ROOT / "routing.yaml").read_text()
    example = text.split("# rollout:\n", 1)[1]
    lines = [line.removeprefix("# ") for line in example.splitlines()]
    loaded = parse_config(text + "rollout:\n" + "\n".join(lines) + "\n")
    spec = loaded.config.rollout
    assert spec is not None and spec.candidate == "v2.4.0"
    defaults = type(spec)(candidate="v2.4.0", steps=(5, 25, 50, 100))
    assert spec.thresholds == defaults.thresholds
    assert (spec.min_requests, spec.failure_limit) == (
        defaults.min_requests,
        defaults.failure_limit,
    )


def test_routing_yaml_example_plan_names_every_check_and_threshold() -> None:
    text = (ROOT / "routing.yaml").read_text()
    example = text.split("# rollout:\n", 1)[1]
    lines = [line.removeprefix("# ") for line in example.splitlines()]
    written = yaml.safe_load("rollout:\n" + "\n".join(lines))["rollout"]["thresholds"]
    assert set(written) == set(RolloutThresholds.model_fields)
    notes = " ".join(
        line.strip("# ") for line in text.split("# Optional. The plan")[1].splitlines()
    )
    for check in ("error rate", "p99 latency", "PSI", "tier mix"):
        assert check in notes, check


def test_scrape_config_covers_the_gateway_and_every_replica() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    routing = load_config(ROOT / "routing.yaml").config
    replicas = {
        url.removeprefix("http://") for v in routing.versions.values() for url in v.replicas
    }
    assert targets == replicas | {"gateway:8080"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_scrape_config_passes_promtool() -> None:
    done = subprocess.run(
        ["promtool", "check", "config", str(ROOT / "deploy/prometheus/prometheus.yml")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
