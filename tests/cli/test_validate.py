"""`streamflow validate`: the gateway's own checks, reported with key and line."""

import hashlib
from pathlib import Path

import pytest

from tests.cli.samples import SAMPLE, run


def test_validate_ok(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, out, err = run(capsys, "validate", str(routing_file))
    revision = hashlib.sha256(SAMPLE.encode()).hexdigest()[:12]
    assert code == 0, err
    assert out == (
        f"ok: {routing_file} (revision {revision}, mode canary, weights v2.3.1=90 v2.4.0=10)\n"
    )


def test_validate_defaults_to_routing_yaml_in_cwd(
    capsys: pytest.CaptureFixture[str], routing_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(routing_file.parent)
    code, out, _ = run(capsys, "validate")
    assert code == 0
    assert out.startswith("ok: routing.yaml (revision ")


def test_validate_blue_green_names_the_live_version(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_text(
        SAMPLE.replace("mode: canary ", "mode: blue_green").replace("live: blue ", "live: green")
    )
    code, out, err = run(capsys, "validate", str(routing_file))
    assert code == 0, err
    assert "mode blue_green, live green = v2.4.0, weights v2.3.1=0 v2.4.0=100)" in out


def test_validate_reports_each_error_on_stderr(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_text(
        SAMPLE.replace("v2.4.0: 10}", "v2.4.0: 8}").replace("stable: v2.3.1", "stable: v9")
    )
    code, out, err = run(capsys, "validate", str(routing_file))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"invalid: {routing_file}"
    assert "  canary.weights: sum to 98, must be 100 (line 10)" in lines
    assert any(line.startswith("  stable: unknown version 'v9'") for line in lines)


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "cannot read" in err
