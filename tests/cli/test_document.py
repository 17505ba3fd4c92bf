"""The round-trip edit: layout, line endings, symlinks, atomic writes, validation first."""

import os
import stat
from pathlib import Path

import pytest

from tests.cli.samples import (
    BLOCK_SAMPLE,
    SAMPLE,
    WEIGHTS_LINE,
    assert_only_lines_changed,
    run,
    weights_of,
)


def test_set_weights_keeps_block_layout_and_header(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(BLOCK_SAMPLE)
    code, _, err = run(capsys, "set-weights", "v2.4.0=100", "--file", str(path))
    assert code == 0, err
    after = path.read_text()
    assert weights_of(path) == {"v2.3.1": 0, "v2.4.0": 100}
    lines = BLOCK_SAMPLE.splitlines()
    changed = {
        lines.index("        v2.3.1: 90   # stable"),
        lines.index("        v2.4.0: 10   # canary"),
    }
    assert_only_lines_changed(BLOCK_SAMPLE, after, changed)


def test_set_weights_invalid_result_leaves_file_untouched(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    # The edit is fine; what the file already gets wrong (the stable version) still blocks it.
    text = SAMPLE.replace("stable: v2.3.1 ", "stable: v9     ")
    routing_file.write_text(text)
    code, out, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 1
    assert out == ""
    assert "not written" in err
    assert "stable: unknown version 'v9'; versions are: v2.3.1, v2.4.0 (line 2)" in err
    assert routing_file.read_text() == text
    assert os.listdir(routing_file.parent) == ["routing.yaml"]


def test_set_weights_keeps_mode_and_writes_through_symlink(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.chmod(0o640)
    link = routing_file.parent / "current.yaml"
    link.symlink_to(routing_file.name)
    code, _, err = run(capsys, "set-weights", "v2.4.0=30", "--file", str(link))
    assert code == 0, err
    assert link.is_symlink()
    assert stat.S_IMODE(routing_file.stat().st_mode) == 0o640
    assert weights_of(routing_file) == {"v2.3.1": 70, "v2.4.0": 30}
    assert sorted(os.listdir(routing_file.parent)) == ["current.yaml", "routing.yaml"]


def test_set_weights_keeps_crlf_line_endings(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    routing_file.write_bytes(SAMPLE.replace("\n", "\r\n").encode())
    code, _, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 0, err
    data = routing_file.read_bytes()
    assert data.count(b"\r\n") == SAMPLE.count("\n")
    assert data.count(b"\n") == SAMPLE.count("\n")


def test_a_yaml_syntax_error_is_reported_at_its_line_as_validate_does(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    text = SAMPLE.replace("{v2.3.1: 90, v2.4.0: 10}", "{v2.3.1: 90, v2.4.0: 10")
    routing_file.write_text(text)
    code, _, validate_err = run(capsys, "validate", str(routing_file))
    assert code == 1
    expected = f"  yaml: '{{' is not closed; the parser stopped at line {WEIGHTS_LINE + 2}"
    assert expected in validate_err
    assert validate_err.rstrip().endswith(f"(line {WEIGHTS_LINE + 1})")
    code, out, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"error: {routing_file} is not valid YAML:",
        validate_err.splitlines()[1],
    ]
    assert routing_file.read_text() == text
