"""The CLI on a ConfigMap (``--file configmap:NS/NAME`` or GATEWAY_ROUTING_FILE) through the
Kubernetes API stand-in: the same commands, the same output, the same comment-keeping edit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import cli
from routing_config import parse_config
from routing_config.store.kube_api import KUBE_API_ENV
from tests.cli.samples import SAMPLE, WEIGHTS_LINE, assert_only_lines_changed, run
from tests.kube_standin import KubeStandIn

LOCATION = "configmap:streamflow/streamflow-routing"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeStandIn]:
    with KubeStandIn("streamflow", "streamflow-routing", SAMPLE) as server:
        monkeypatch.setenv(KUBE_API_ENV, server.url)
        yield server


def test_set_weights_edits_the_configmap_keeping_its_comments(
    capsys: pytest.CaptureFixture[str], standin: KubeStandIn
) -> None:
    version = standin.resource_version
    code, out, err = run(capsys, "set-weights", "v2.4.0=25", "--file", LOCATION)
    assert code == 0, err
    assert parse_config(standin.text()).config.weights() == {"v2.3.1": 75, "v2.4.0": 25}
    assert_only_lines_changed(SAMPLE, standin.text(), {WEIGHTS_LINE})
    assert f"{LOCATION}: canary.weights" in out and "written (revision " in out
    assert int(standin.resource_version) == int(version) + 1
    assert standin.counts["patch"] == 1


def test_switch_and_mode_through_the_env_default(
    capsys: pytest.CaptureFixture[str], standin: KubeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cli.ROUTING_FILE_ENV, LOCATION)
    code, _, err = run(capsys, "mode", "blue_green")
    assert code == 0, err
    code, out, err = run(capsys, "switch", "green")
    assert code == 0, err
    config = parse_config(standin.text()).config
    assert config.mode == "blue_green" and config.live_version() == "v2.4.0"
    code, out, _ = run(capsys, "switch", "green")
    assert code == 0 and out.startswith("unchanged:")
    assert standin.counts["patch"] == 2  # nothing written when nothing changes


def test_validate_and_diff_read_the_configmap(
    capsys: pytest.CaptureFixture[str], standin: KubeStandIn, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "validate", LOCATION)
    assert code == 0 and out.startswith(f"ok: {LOCATION} (revision ")
    proposed = tmp_path / "new.yaml"
    proposed.write_text(SAMPLE.replace("{v2.3.1: 90, v2.4.0: 10}", "{v2.3.1: 50, v2.4.0: 50}"))
    code, out, _ = run(capsys, "diff", str(proposed), "--against", LOCATION)
    assert code == 0 and "v2.4.0" in out and "+40" in out


def test_an_invalid_edit_is_never_written(
    capsys: pytest.CaptureFixture[str], standin: KubeStandIn
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=40", "--file", LOCATION)
    assert code == 1 and "sum to 90" in err
    assert standin.text() == SAMPLE and standin.counts["patch"] == 0


def test_unreachable_or_malformed_locations_are_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KUBE_API_ENV, "http://127.0.0.1:9")  # discard port: refused
    code, _, err = run(capsys, "set-weights", "v2.4.0=25", "--file", LOCATION)
    assert code == 1 and "Kubernetes API unreachable" in err and "Traceback" not in err
    code, _, err = run(capsys, "validate", "configmap:streamflow")
    assert code == 1 and "configmap:NAMESPACE/NAME" in err


def test_the_controller_needs_an_explicit_log_with_a_configmap(
    capsys: pytest.CaptureFixture[str], standin: KubeStandIn
) -> None:
    code, _, err = run(capsys, "rollout", "status", "--file", LOCATION)
    assert code == 1 and "--log PATH is required" in err
