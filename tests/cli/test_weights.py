"""`streamflow set-weights`: which version takes the rest of 100, and argument errors."""

import re
from pathlib import Path

import pytest

from tests.cli.samples import (
    SAMPLE,
    WEIGHTS_LINE,
    assert_only_lines_changed,
    run,
    weights_of,
)


def test_set_weights_one_version_gives_the_rest_to_the_other(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, out, err = run(capsys, "set-weights", "v2.4.0=25", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 75, "v2.4.0": 25}
    assert_only_lines_changed(SAMPLE, routing_file.read_text(), {WEIGHTS_LINE})
    assert re.search(r"v2\.3\.1\s+90\s+->\s+75", out)
    assert re.search(r"v2\.4\.0\s+10\s+->\s+25", out)
    assert "written (revision " in out


def test_set_weights_all_versions(capsys: pytest.CaptureFixture[str], routing_file: Path) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=50", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 50, "v2.4.0": 50}


def test_set_weights_without_an_obvious_remainder_must_sum_to_100(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.3.1=50", "v2.4.0=40", "--file", str(routing_file))
    assert code == 1
    assert "sum to 90, not 100" in err
    assert routing_file.read_text() == SAMPLE


def test_set_weights_unknown_version_is_rejected(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(
        capsys,
        "set-weights",
        "v2.3.1=0",
        "v2.4.0=0",
        "v9.9.9=100",
        "--file",
        str(routing_file),
    )
    assert code == 1
    assert f"{routing_file} has no version 'v9.9.9'; versions are: v2.3.1, v2.4.0" in err
    assert routing_file.read_text() == SAMPLE


@pytest.mark.parametrize("argument", ["v2.4.0", "v2.4.0=abc", "=5", "v2.4.0=2.5"])
def test_set_weights_bad_argument_syntax(
    capsys: pytest.CaptureFixture[str], routing_file: Path, argument: str
) -> None:
    code, _, err = run(capsys, "set-weights", argument, "--file", str(routing_file))
    assert code == 2
    assert "argument VERSION=PERCENT" in err
    assert repr(argument) in err
    assert routing_file.read_text() == SAMPLE


def test_set_weights_same_version_twice(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    code, _, err = run(capsys, "set-weights", "v2.4.0=20", "v2.4.0=30", "--file", str(routing_file))
    assert code == 2
    assert "v2.4.0 is given more than once" in err


def test_set_weights_after_a_full_rollout_works_both_ways(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    assert run(capsys, "set-weights", "v2.4.0=100", "--file", str(routing_file))[0] == 0
    assert weights_of(routing_file) == {"v2.3.1": 0, "v2.4.0": 100}
    code, _, err = run(capsys, "set-weights", "v2.4.0=50", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 50, "v2.4.0": 50}
    assert run(capsys, "set-weights", "v2.3.1=0", "--file", str(routing_file))[0] == 0
    code, _, err = run(capsys, "set-weights", "v2.3.1=30", "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 30, "v2.4.0": 70}


def test_set_weights_ambiguous_rest_prints_a_command_that_works(
    capsys: pytest.CaptureFixture[str], routing_file: Path
) -> None:
    text = SAMPLE.replace(
        "  v2.4.0:\n", "  v2.5.0:\n    replicas: [http://model-v2-5-0-a:8000]\n  v2.4.0:\n"
    ).replace("{v2.3.1: 90, v2.4.0: 10}", "{v2.3.1: 80, v2.4.0: 10, v2.5.0: 10}")
    routing_file.write_text(text)
    code, out, err = run(capsys, "set-weights", "v2.4.0=50", "--file", str(routing_file))
    assert code == 1
    assert out == ""
    assert routing_file.read_text() == text
    suggested = re.search(r"e\.g\.: streamflow (set-weights .*)$", err, re.M)
    assert suggested is not None, err
    assert suggested.group(1) == "set-weights v2.4.0=50 v2.3.1=50 v2.5.0=0"
    code, _, err = run(capsys, *suggested.group(1).split(), "--file", str(routing_file))
    assert code == 0, err
    assert weights_of(routing_file) == {"v2.3.1": 50, "v2.4.0": 50, "v2.5.0": 0}


@pytest.mark.parametrize("argument", ["v2.4.0=101", "v2.4.0=-5", "v2.4.0=+250"])
def test_set_weights_out_of_range_names_the_range(
    capsys: pytest.CaptureFixture[str], routing_file: Path, argument: str
) -> None:
    code, _, err = run(capsys, "set-weights", argument, "--file", str(routing_file))
    assert code == 2
    assert f"argument VERSION=PERCENT: {argument!r}: PERCENT must be from 0 to 100" in err
    assert "sum" not in err
    assert routing_file.read_text() == SAMPLE
