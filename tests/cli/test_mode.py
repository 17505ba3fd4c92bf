"""`streamflow switch` and `streamflow mode`."""

import re
from pathlib import Path

import pytest

from routing_config import parse_config
from tests.cli.samples import LIVE_LINE, SAMPLE, assert_only_lines_changed, run


def test_switch_sets_live_and_warns_in_canary_mode(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "switch", "green", "--file", str(routing_file))
    assert code == 0, err
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {LIVE_LINE})
    assert parse_config(routing_file.read_text()).config.live_version() == "v2.4.0"
    assert "blue_green.live blue (v2.3.1) -> green (v2.4.0)" in out
    assert err.startswith("warning: mode is canary")


def test_switch_in_blue_green_mode_has_no_warning(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_text(SAMPLE.replace("mode: canary ", "mode: blue_green"))
    code, _, err = run(capsys, "switch", "green", "--file", str(routing_file))
    assert code == 0
    assert err == ""


def test_switch_to_the_live_colour_changes_nothing(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    before = routing_file.stat().st_mtime_ns
    code, out, _ = run(capsys, "switch", "blue", "--file", str(routing_file))
    assert code == 0
    assert "already live" in out
    assert routing_file.stat().st_mtime_ns == before


def test_switch_without_blue_green_section(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    text = re.sub(r"blue_green:.*?(?=shadow:)", "", SAMPLE, flags=re.S)
    routing_file.write_text(text)
    code, _, err = run(capsys, "switch", "green", "--file", str(routing_file))
    assert code == 1
    assert "has no blue_green section" in err
    assert routing_file.read_text() == text


def test_switch_rejects_other_colours(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "switch", "red", "--file", str(routing_file))
    assert code == 2
    assert "invalid choice: 'red'" in err


def test_mode_switches_routing_and_keeps_layout(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "mode", "blue_green", "--file", str(routing_file))
    assert code == 0, err
    mode_line = next(i for i, line in enumerate(SAMPLE.splitlines()) if line.startswith("mode:"))
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {mode_line})
    assert parse_config(routing_file.read_text()).config.mode == "blue_green"
    assert "every new request goes to blue (v2.3.1)" in out
    code, out, _ = run(capsys, "mode", "blue_green", "--file", str(routing_file))
    assert code == 0 and out.startswith("unchanged")


def test_mode_needs_its_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    lines = SAMPLE.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("blue_green:"))
    text = "".join(lines[:start] + lines[start + 4 :])  # drop the section and its 3 keys
    assert "live:" not in text
    path.write_text(text)
    code, _, err = run(capsys, "mode", "blue_green", "--file", str(path))
    assert code == 1
    assert "blue_green" in err
    assert path.read_text() == text
