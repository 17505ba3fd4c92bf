"""`streamflow diff`: shares and sticky keys that would move."""

import re
from pathlib import Path

import pytest

from tests.cli.samples import SAMPLE, run


def test_diff_shows_shares_and_keys_that_move(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    proposed = routing_file.parent / "proposed.yaml"
    proposed.write_text(SAMPLE.replace("v2.3.1: 90, v2.4.0: 10", "v2.3.1: 75, v2.4.0: 25"))
    code, out, err = run(capsys, "diff", str(proposed), "--against", str(routing_file))
    assert code == 0, err
    assert "mode: canary (unchanged)" in out
    assert re.search(r"v2\.3\.1\s+90%\s+->\s+75%\s+-15", out)
    assert re.search(r"v2\.4\.0\s+10%\s+->\s+25%\s+\+15", out)
    moved = re.search(r"v2\.3\.1\s+->\s+v2\.4\.0\s+([\d.]+)%", out)
    assert moved is not None
    assert 13.0 < float(moved.group(1)) < 17.0
    # Ramp-safe: raising v2.4.0 moves nobody back to v2.3.1.
    assert not re.search(r"v2\.4\.0\s+->\s+v2\.3\.1", out)
    assert "other changes" not in out


def test_diff_mode_live_and_other_changes(
    capsys: pytest.CaptureFixture[str], routing_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proposed = routing_file.parent / "proposed.yaml"
    proposed.write_text(
        SAMPLE.replace("mode: canary ", "mode: blue_green")
        .replace("live: blue ", "live: green")
        .replace("percent: 10", "percent: 5")
    )
    monkeypatch.chdir(routing_file.parent)  # --against defaults to ./routing.yaml
    code, out, err = run(capsys, "diff", "proposed.yaml")
    assert code == 0, err
    assert "mode: canary -> blue_green" in out
    assert "blue/green live: blue (v2.3.1) -> green (v2.4.0)" in out
    moved = re.search(r"v2\.3\.1\s+->\s+v2\.4\.0\s+([\d.]+)%", out)
    assert moved is not None
    assert 88.0 < float(moved.group(1)) < 92.0  # every key on blue moves to green
    assert "shadow.percent: 10 -> 5" in out


def test_diff_identical(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, out, _ = run(capsys, "diff", str(routing_file), "--against", str(routing_file))
    assert code == 0
    assert "no changes" in out


def test_diff_invalid_file(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    proposed = routing_file.parent / "proposed.yaml"
    proposed.write_text(SAMPLE.replace("v2.4.0: 10}", "v2.4.0: 12}"))
    code, out, err = run(capsys, "diff", str(proposed), "--against", str(routing_file))
    assert code == 1
    assert out == ""
    assert f"invalid: {proposed}" in err
    assert "canary.weights: sum to 102, must be 100 (line 10)" in err
